"""A real ``gridedge run`` process: it fills the outbox, stops on signals, survives kill -9."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.daemonproc import (
    integrity,
    meter,
    running_daemon,
    samples_by_device,
    seqs,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration

METERS = (
    meter("a", "eastron-sdm630", 0.2, 1)
    + meter("b", "eastron-sdm630", 0.2, 2)
    + meter("c", "eastron-sdm120", 0.2, 3)
)


def _log_events(output: bytes) -> list[str]:
    events = []
    for line in output.decode().splitlines():
        try:
            events.append(str(json.loads(line)["event"]))
        except (ValueError, KeyError, TypeError):
            continue
    return events


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_gracefully_with_status_zero(tmp_path: Path, sig: signal.Signals) -> None:
    """Every meter's samples reach the outbox; SIGTERM or SIGINT ends the process with 0."""
    config = write_config(tmp_path, METERS)
    db = tmp_path / "outbox.sqlite3"
    with running_daemon(config) as proc:
        wait_for(
            lambda: len(c := samples_by_device(db)) == 3 and min(c.values()) >= 3,
            30,
            "3 samples from each meter",
        )
        assert set(samples_by_device(db)) == {"a", "b", "c"}
        proc.send_signal(sig)
        started = time.monotonic()
        code = proc.wait(timeout=10)
        stop_s = time.monotonic() - started
        assert proc.stdout is not None
        events = _log_events(proc.stdout.read())
    assert code == 0
    assert stop_s < 5.0
    assert events.index("daemon.started") < events.index("daemon.stopping")
    assert events[-1] == "daemon.stopped"
    assert integrity(db) == "ok"


def test_samples_follow_the_configured_interval(tmp_path: Path) -> None:
    """Over a few seconds a 0.25 s meter stores about four samples per second, not more."""
    config = write_config(tmp_path, meter("fast", "eastron-sdm120", 0.25, 1))
    db = tmp_path / "outbox.sqlite3"
    with running_daemon(config) as proc:
        wait_for(lambda: samples_by_device(db).get("fast", 0) >= 1, 30, "a first sample")
        first = samples_by_device(db)["fast"]
        t0 = time.monotonic()
        wait_for(lambda: time.monotonic() - t0 >= 3.0, 10, "three seconds")
        stored = samples_by_device(db)["fast"] - first
        elapsed = time.monotonic() - t0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    expected = elapsed / 0.25
    # Commits are grouped, so the count seen lags by up to one commit interval.
    assert expected - 3 <= stored <= expected + 1


def test_kill_9_loses_no_committed_sample(tmp_path: Path) -> None:
    """After SIGKILL every seq seen committed is still there, the file is intact, seq goes on."""
    config = write_config(tmp_path, METERS)
    db = tmp_path / "outbox.sqlite3"
    with running_daemon(config) as proc:
        wait_for(lambda: sum(samples_by_device(db).values()) >= 30, 30, "30 samples")
        seen = seqs(db)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert integrity(db) == "ok"
    after_crash = seqs(db)
    assert set(seen) <= set(after_crash)
    assert after_crash == list(range(1, len(after_crash) + 1))
    with running_daemon(config) as proc:
        wait_for(lambda: seqs(db)[-1] > after_crash[-1], 30, "a new seq after restart")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert integrity(db) == "ok"


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    """`gridedge run` with a wrong type exits 2 and names the dotted path on stderr."""
    config = write_config(tmp_path, meter("a", "eastron-sdm630", 1.0, 1), outbox="max_bytes = 'x'")
    result = subprocess.run(
        [sys.executable, "-m", "gridedge", "check", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "outbox.max_bytes" in result.stderr
