"""Signals to a real ``gridedge run`` process: SIGHUP is logged and ignored, never fatal."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from tests.integration.daemonproc import (
    integrity,
    meter,
    running_daemon,
    samples_by_device,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration


class OutputLines:
    """Collects a process's output lines on a thread, so a test can wait for one."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self._stdout = proc.stdout
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for raw in self._stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def events(self) -> list[str]:
        """The ``event`` of every JSON line so far."""
        found = []
        for line in list(self.lines):
            try:
                found.append(str(json.loads(line)["event"]))
            except (ValueError, KeyError, TypeError):
                continue
        return found

    def finish(self, timeout_s: float = 10.0) -> None:
        """Wait until the process closed its output."""
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "output did not end"


def test_sighup_is_logged_and_ignored_and_sigterm_still_stops_gracefully(tmp_path: Path) -> None:
    """Two SIGHUPs leave the daemon polling; each is logged once; SIGTERM then exits 0."""
    config = write_config(tmp_path, meter("a", "eastron-sdm120", 0.1, 1))
    db = tmp_path / "outbox.sqlite3"
    with running_daemon(config) as proc:
        output = OutputLines(proc)
        wait_for(lambda: "daemon.started" in output.events(), 30, "daemon.started")
        for n in (1, 2):
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: output.events().count("daemon.sighup_ignored") >= n, 10, "sighup")  # noqa: B023 - called before the next iteration
        before = samples_by_device(db).get("a", 0)
        wait_for(lambda: samples_by_device(db).get("a", 0) >= before + 5, 20, "5 more samples")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        output.finish()
    events = output.events()
    assert code == 0
    assert events.count("daemon.sighup_ignored") == 2
    assert events.index("daemon.sighup_ignored") < events.index("daemon.stopping")
    assert events[-1] == "daemon.stopped"
    assert not [line for line in output.lines if "Traceback" in line]
    assert integrity(db) == "ok"
