"""``gridedge outbox``: statistics as JSON, moving a damaged file aside, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from gridedge.cli.main import main
from gridedge.outbox.store import open_outbox, read_stats
from tests.unit.outbox.kit import batch, make_config

CONFIG = """[gateway]
id = "gw-test"
site = "lab"

[outbox]
path = "outbox.sqlite3"

[[meters]]
id = "a"
driver = "eastron-sdm120"
[meters.link]
type = "simulated"
"""


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[None]:
    """Keep the outbox's log lines out of the captured stdout."""
    with structlog.testing.capture_logs():
        yield


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "gridedge.toml"
    path.write_text(CONFIG)
    return path


async def test_outbox_prints_statistics_with_the_epoch(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The statistics name the rows and the file's epoch."""
    async with open_outbox(make_config(config_file.parent)) as outbox:
        await outbox.append(batch(0, 4))
        epoch = outbox.epoch
    assert main(["outbox", "-c", str(config_file)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["rows"], printed["epoch"]) == (4, epoch)


async def test_move_aside_keeps_the_file_and_the_next_open_starts_a_new_epoch(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--move-aside renames the file (it stays readable) and a fresh outbox gets a new epoch."""
    config = make_config(config_file.parent)
    async with open_outbox(config) as outbox:
        await outbox.append(batch(0, 4))
        old = outbox.epoch
    assert main(["outbox", "-c", str(config_file), "--move-aside"]) == 0
    moved = [Path(p) for p in json.loads(capsys.readouterr().out)["moved"]]
    assert moved[0].name.startswith("outbox.sqlite3.damaged-")
    assert read_stats(moved[0]).epoch == old
    async with open_outbox(config) as outbox:
        assert outbox.epoch != old


async def test_move_aside_is_refused_while_a_daemon_owns_the_outbox(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """While the outbox is open, --move-aside exits 2 with one line naming the owner's pid."""
    config = make_config(config_file.parent)
    async with open_outbox(config) as outbox:
        await outbox.append(batch(0, 1))
        assert main(["outbox", "-c", str(config_file), "--move-aside"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "in use by another gridedge process (pid" in err
    assert config.path.exists()


def test_a_corrupt_outbox_is_one_line_and_exit_2(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that is not a database is reported in one line naming it, exit status 2."""
    (config_file.parent / "outbox.sqlite3").write_bytes(b"\x00garbage" * 512)
    assert main(["outbox", "-c", str(config_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "outbox.sqlite3" in err
