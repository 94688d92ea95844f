"""Fuzzing the config, driver and replay CSV readers through the command line.

Whatever the input, the outcome is exit 0, or exit 2 with one line naming the file: never a
crash, a traceback or a second line. Inputs are structured mutations of valid documents
(:mod:`tests.strategies`), so most examples get past the first line of each parser.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import strategies as s
from tests.unit.cli.runner import Outcome, assert_clean, assert_refused, run

FUZZ = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@FUZZ
@given(st.data())
def test_any_config_mutation_is_accepted_or_refused_in_one_line(data: st.DataObject) -> None:
    """Check on a mutated config: exit 0 printing valid TOML, or exit 2 naming the file."""
    doc = data.draw(s.mutated(s.base_config()))
    raw = data.draw(s.damaged(s.toml_document(doc)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gridedge.toml"
        path.write_bytes(raw)
        outcome = run(["check", "-c", str(path)])
    assert_clean(outcome)
    if outcome.status == 0:
        tomllib.loads(outcome.out)  # the effective config is itself valid TOML
    else:
        assert str(path) in outcome.err


@settings(FUZZ, max_examples=150)
@given(st.data())
def test_any_driver_mutation_is_accepted_or_refused_in_one_line(data: st.DataObject) -> None:
    """Drivers --check on a mutated driver file: exit 0, or exit 2 naming that file.

    ``--check`` reads the one file (not the 45 built-in drivers beside it every example) and
    goes further with it than ``--dir``: it plans the reads and round-trips a reading.
    """
    doc = data.draw(s.mutated(s.base_driver()))
    raw = data.draw(s.damaged(s.toml_document(doc)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz-meter.toml"
        path.write_bytes(raw)
        outcome = run(["drivers", "--check", str(path)])
    assert_clean(outcome)
    if outcome.status == 2:
        assert str(path) in outcome.err


@settings(FUZZ, max_examples=200)
@given(st.data())
def test_any_csv_replays_or_is_refused_leaving_nothing(data: st.DataObject) -> None:
    """Replay of a near-valid CSV: a score row per data row, or exit 2 and no output file."""
    raw = data.draw(s.damaged(data.draw(s.csv_texts())))
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "in.csv", Path(tmp) / "out.csv"
        source.write_bytes(raw)
        outcome = run(["replay", str(source), "-o", str(target)])
        assert_clean(outcome)
        if outcome.status == 0:
            assert target.read_text().startswith("timestamp,anomaly_score,alert")
        else:
            assert os.listdir(tmp) == ["in.csv"]


def test_a_real_process_prints_one_line_for_a_latin1_config(tmp_path: Path) -> None:
    """The installed entry point (a real subprocess) answers a Latin-1 byte in one line."""
    path = tmp_path / "bad.toml"
    path.write_bytes(b"[gateway]\n# Z\xe4hler\n" + b"# padding\n" * 1000)
    done = subprocess.run(
        [sys.executable, "-m", "gridedge", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1
    assert "not UTF-8 at byte 13" in done.stderr
    assert "padding" not in done.stderr


def test_a_real_process_replays_into_a_missing_folder_in_one_line(tmp_path: Path) -> None:
    """Replay -o into a folder that does not exist: a real process exits 2 with one line."""
    source = tmp_path / "in.csv"
    source.write_text("timestamp,v\n2026-01-05T00:00:00Z,1\n")
    done = subprocess.run(
        [sys.executable, "-m", "gridedge", "replay", str(source), "-o", str(tmp_path / "x/o.csv")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_refused(_outcome(done), "--out", "does not exist")


def _outcome(done: subprocess.CompletedProcess[str]) -> Outcome:
    return Outcome(done.returncode, done.stdout, done.stderr)
