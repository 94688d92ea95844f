"""``gridedge check`` verifies what ``run`` needs: writable outbox, readable files, secrets."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.cli.runner import assert_refused, run

METER = '[[meters]]\nid = "m"\ndriver = "eastron-sdm630"\n[meters.link]\ntype = "simulated"\n'
UPSTREAM = '[[upstreams]]\nname = "cloud"\nhost = "127.0.0.1"\n'


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on a read-only bind mount: not writable even for root (mode bits are not)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gridedge.toml"
    path.write_text(text)
    return path


def test_an_outbox_under_a_read_only_mount_fails_check_naming_outbox_path(
    tmp_path: Path, read_only_dir: Path
) -> None:
    """The outbox in a read-only folder: exit 2 naming outbox.path and the OS's reason."""
    config = _write(tmp_path, f'[outbox]\npath = "{read_only_dir}/sub/outbox.sqlite3"\n' + METER)
    assert_refused(run(["check", "-c", str(config)]), "outbox.path", "EROFS")
    assert os.listdir(read_only_dir) == []


def test_mode_0555_is_honest_about_what_root_can_do(tmp_path: Path) -> None:
    """A 0555 folder stops others but not root: check agrees with what the daemon would do."""
    folder = tmp_path / "r-x"
    folder.mkdir(mode=0o555)
    config = _write(tmp_path, f'[outbox]\npath = "{folder}/o.sqlite3"\n' + METER)
    outcome = run(["check", "-c", str(config)])
    if os.geteuid() == 0:
        assert outcome.status == 0, outcome.err
    else:
        assert_refused(outcome, "outbox.path", "EACCES")
    assert os.listdir(folder) == []  # the probe file is gone


def test_a_missing_outbox_folder_is_fine_when_it_can_be_created(tmp_path: Path) -> None:
    """The daemon creates missing folders, so check accepts them and creates nothing."""
    config = _write(tmp_path, '[outbox]\npath = "a/b/outbox.sqlite3"\n' + METER)
    assert run(["check", "-c", str(config)]).status == 0
    assert not (tmp_path / "a").exists()


def test_an_outbox_path_under_a_file_is_refused(tmp_path: Path) -> None:
    """A path whose parent is a file cannot be created: named as outbox.path."""
    (tmp_path / "plain").write_text("x")
    config = _write(tmp_path, '[outbox]\npath = "plain/outbox.sqlite3"\n' + METER)
    assert_refused(run(["check", "-c", str(config)]), "outbox.path", "not a folder")


@pytest.mark.parametrize("key", ["ca_file", "cert_file", "password_file"])
def test_a_missing_referenced_file_is_named_by_its_key(tmp_path: Path, key: str) -> None:
    """ca_file, cert_file and password_file must exist and be readable."""
    extra = 'username = "u"\n' if key == "password_file" else ""
    config = _write(tmp_path, METER + UPSTREAM + extra + f'{key} = "nope.pem"\n')
    assert_refused(run(["check", "-c", str(config)]), f"upstreams[0].{key}", "ENOENT")


def test_a_key_file_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    """key_file naming a folder: EISDIR, by key."""
    (tmp_path / "cert.pem").write_text("x")
    (tmp_path / "keys").mkdir()
    text = METER + UPSTREAM + 'cert_file = "cert.pem"\nkey_file = "keys"\n'
    assert_refused(run(["check", "-c", str(_write(tmp_path, text))]), "upstreams[0].key_file")


def test_an_unset_password_variable_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """password_env naming an unset variable fails check; once set, check passes."""
    text = METER + UPSTREAM + 'username = "u"\npassword_env = "GRIDEDGE_TEST_SECRET"\n'
    config = _write(tmp_path, text)
    monkeypatch.delenv("GRIDEDGE_TEST_SECRET", raising=False)
    assert_refused(run(["check", "-c", str(config)]), "upstreams[0].password_env")
    monkeypatch.setenv("GRIDEDGE_TEST_SECRET", "s3cret-value")
    outcome = run(["check", "-c", str(config)])
    assert outcome.status == 0, outcome.err
    assert "s3cret-value" not in outcome.out + outcome.err


def test_a_missing_serial_port_is_a_warning_only(tmp_path: Path) -> None:
    """USB adapters come and go: a missing port is one warning line on stderr, exit 0."""
    text = (
        '[[meters]]\nid = "rs"\ndriver = "eastron-sdm120"\n[meters.link]\n'
        f'type = "modbus-rtu"\nport = "{tmp_path}/ttyUSB9"\n'
    )
    outcome = run(["check", "-c", str(_write(tmp_path, text))])
    assert outcome.status == 0
    assert outcome.err.count("\n") == 1
    for needle in ("warning", "link.port", "ENOENT"):
        assert needle in outcome.err
