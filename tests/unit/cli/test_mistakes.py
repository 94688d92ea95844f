"""Every subcommand answers a mistake with exit status 2 and one line naming what is wrong."""

from __future__ import annotations

import codecs
import socket
from pathlib import Path

import pytest

from gridedge.cli.main import main
from tests.unit.cli.runner import assert_refused, run

METER = '[[meters]]\nid = "m"\ndriver = "eastron-sdm630"\n[meters.link]\ntype = "simulated"\n'


def _config(tmp_path: Path, text: str, name: str = "gridedge.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_latin1_byte_is_named_by_offset_and_line_not_echoed(tmp_path: Path) -> None:
    """A Latin-1 "Zähler" comment in a 12 KB file: one line with byte and line, no contents."""
    body = "# " + "x" * 12_000 + "\n" + METER
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"[gateway]\n# Z\xe4hler\n" + body.encode())
    for command in ("check", "run"):
        outcome = run([command, "-c", str(path)])
        assert_refused(outcome, str(path), "not UTF-8 at byte 13 (line 2)")
        assert len(outcome.err) < 300


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_a_config_saved_as_utf16_is_recognised(tmp_path: Path, encoding: str) -> None:
    """UTF-16 and UTF-32 files, with or without a byte order mark, are refused as such."""
    path = tmp_path / "wide.toml"
    text = '[gateway]\nid = "gw"\n'
    data = text.encode(encoding)
    path.write_bytes(data)
    outcome = run(["check", "-c", str(path)])
    needle = "NUL byte" if not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else ""
    assert_refused(outcome, str(path), needle or "UTF-")


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    """Windows editors prefix UTF-8 with a BOM; the file is read as if it had none."""
    path = tmp_path / "bom.toml"
    path.write_bytes(codecs.BOM_UTF8 + METER.encode())
    assert run(["check", "-c", str(path)]).status == 0


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("interval_s = " + "9" * 400, "meters[0].interval_s"),
        ("offline_after = " + "9" * 5000, "gridedge.toml"),
        ("offline_after = 99999999999999999999", "meters[0].offline_after"),
        ("interval_s = 1e308", "meters[0].interval_s"),
    ],
)
def test_numbers_beyond_any_range_name_their_key(tmp_path: Path, line: str, key: str) -> None:
    """Integers past float or 64-bit range and 1e308 are refused naming the key, not crashing."""
    text = METER.replace("[meters.link]", line + "\n[meters.link]")
    outcome = run(["check", "-c", str(_config(tmp_path, text))])
    assert_refused(outcome, key)
    assert len(outcome.err) < 300


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("rated_current_a = 1e308", "meters[0].link.rated_current_a"),
        (
            "[[meters.link.faults.schedule]]\nkind = 'spike'\nat_s = 1\nmagnitude = 1e308",
            "meters[0].link.faults.schedule[0].magnitude",
        ),
        ("[[meters.link.faults.schedule]]\nkind = 'sag'\nat_s = 1e300", "at_s"),
    ],
)
def test_values_that_would_overflow_at_run_time_are_refused_by_check(
    tmp_path: Path, extra: str, key: str
) -> None:
    """A rated current or fault magnitude of 1e308 passes no more: check names the key."""
    outcome = run(["check", "-c", str(_config(tmp_path, METER + extra + "\n"))])
    assert_refused(outcome, key, "expected at most")


def test_a_nul_character_in_a_string_is_refused(tmp_path: Path) -> None:
    """A NUL escape in a path or id is named, never passed to the OS."""
    outcome = run(["check", "-c", str(_config(tmp_path, '[outbox]\npath = "a\\u0000b"\n'))])
    assert_refused(outcome, "outbox.path", "NUL")


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["check", "-c", "{missing}"], ["missing.toml", "file not found"]),
        (["check", "-c", "{tmp}"], ["is a folder"]),
        (["run", "-c", "{missing}"], ["file not found"]),
        (["drivers", "--dir", "{missing}"], ["driver folder not found"]),
        (["drivers", "-c", "{missing}"], ["file not found"]),
        (["outbox", "-c", "{missing}"], ["file not found"]),
        (["outbox", "tail", "--path", "{missing}"], ["outbox.path", "no outbox file"]),
        (["outbox", "tail", "-n", "x", "--path", "{missing}"], ["argument -n"]),
        (["outbox", "tail", "--path", "{garbage}"], ["not a gridedge outbox"]),
        (["simulate", "-o", "{file}"], ["--out", "not a folder"]),
        (["simulate", "-o", "{tmp}/s", "--meters", "0"], ["--meters", "greater than 0"]),
        (["simulate", "-o", "{tmp}/s", "--days", "abc"], ["--days"]),
        (["simulate", "-o", "{tmp}/s", "--seed", "-1"], ["--seed"]),
        (["simulate", "-o", "{tmp}/s", "--faults", "sag,nope"], ["--faults", "'nope'"]),
        (["simulate", "-o", "{tmp}/s", "--start", "monday"], ["--start"]),
        (["simulate", "-o", "{tmp}/s", "--driver", "nope"], ["--driver", "'nope'"]),
        (["simulate", "-o", "{tmp}/s", "--days", "100000", "--interval-s", "0.001"], ["--days"]),
        (["simulate"], ["required", "-o/--out"]),
        (["replay", "{missing}", "-o", "{tmp}/o.csv"], ["input file not found"]),
        (["replay", "{csv}", "-o", "{tmp}/nope/o.csv"], ["--out", "does not exist"]),
        (["replay", "{csv}", "-o", "{tmp}"], ["--out", "is a folder"]),
        (["replay", "{csv}", "-o", "{tmp}/o.csv", "--forecast-horizons", "0"], ["horizons"]),
        (["replay", "{csv}", "-o", "{tmp}/o.csv", "--driver", "nope"], ["--driver"]),
        (["replay", "{csv}", "-o", "{tmp}/o.csv", "-c", "{missing}"], ["file not found"]),
        (["bench", "--seconds", "-1"], ["--seconds"]),
        (["bench", "--only", "nope"], ["--only"]),
        (["bench", "--only", "soak", "--soak-cycles", "0"], ["--soak-cycles", "at least 1"]),
        (["bench", "--soak-cycles", "3", "--soak-move-aside-cycle", "5"], ["past --soak-cycles"]),
        (["bench", "--soak-meters", "many"], ["--soak-meters"]),
        (["emulate", "--unit-ids", "300"], ["--unit-ids"]),
        (["emulate", "--tcp", "host:notaport"], ["--tcp", "HOST:PORT"]),
        (["emulate", "--serial", "{missing}"], ["--serial", "no such device"]),
        (["emulate", "--exception-code", "x"], ["--exception-code"]),
        (["emulate", "--faults", "nope"], ["--faults"]),
        (["emulate", "--baud", "9"], ["--baud"]),
        (["emulate", "--driver", "nope"], ["--driver"]),
        (["emulate", "--engine", "gridedge", "--rtu-over-tcp"], ["--engine", "plain Modbus TCP"]),
        (["emulate", "--engine", "fast"], ["--engine"]),
        (["scan"], ["--tcp", "--serial"]),
        (["scan", "--tcp", "127.0.0.1:1", "--unit-ids", "5-1"], ["--unit-ids"]),
        (["scan", "--serial", "{missing}"], ["--serial", "ENOENT"]),
        (["scan", "--tcp", "127.0.0.1:{closed}"], ["--tcp", "ECONNREFUSED"]),
        (["scan", "--tcp", "127.0.0.1:1", "--timeout-s", "0"], ["--timeout-s"]),
        (["nonsense"], ["invalid choice"]),
    ],
)
def test_each_mistake_is_one_line_and_exit_2(
    tmp_path: Path, argv: list[str], needles: list[str]
) -> None:
    """Bad arguments, missing or wrong files and dead endpoints: exit 2, one line, no trace."""
    (tmp_path / "in.csv").write_text("timestamp,v\n2026-01-05T00:00:00Z,1\n")
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "garbage.sqlite3").write_bytes(b"not sqlite" * 100)
    with socket.socket() as sock:  # a port that was just free, and nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = str(sock.getsockname()[1])
    names = {
        "missing": str(tmp_path / "missing.toml"),
        "tmp": str(tmp_path),
        "file": str(tmp_path / "a-file"),
        "csv": str(tmp_path / "in.csv"),
        "garbage": str(tmp_path / "garbage.sqlite3"),
        "closed": closed,
    }
    outcome = run([arg.format(**names) for arg in argv])
    assert_refused(outcome, *needles)
    assert not (tmp_path / "o.csv").exists()


def test_a_busy_emulator_port_says_so_and_suggests_port_0() -> None:
    """Emulate on a port someone listens on: exit 2, one line with the reason and the hint."""
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        outcome = run(["emulate", "--tcp", f"127.0.0.1:{port}"])
    assert_refused(outcome, "--tcp", "Address already in use", "port 0")


def test_the_version_and_help_still_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    """--version is not a mistake: it prints and exits 0 (argparse's own SystemExit)."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert "gridedge" in capsys.readouterr().out
