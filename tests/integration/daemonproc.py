"""Start and watch a real ``gridedge run`` process (used by every integration test)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from tests.helpers import integrity as integrity  # re-exported for the tests that use this kit

T = TypeVar("T")


def write_config(folder: Path, meters: str, *, outbox: str = "", http: str = "port = 0") -> Path:
    """A config with the given [[meters]] tables and an outbox in ``folder``.

    The HTTP endpoint takes a free port unless ``http`` (the body of ``[http]``) says otherwise,
    so that test daemons never compete for the default one.
    """
    path = folder / "gridedge.toml"
    path.write_text(
        '[gateway]\nid = "gw-test"\nsite = "lab"\n\n'
        f'[log]\nformat = "json"\n\n[http]\n{http}\n\n'
        f'[outbox]\npath = "outbox.sqlite3"\n{outbox}\n{meters}'
    )
    return path


def meter(meter_id: str, driver: str, interval_s: float, seed: int, extra: str = "") -> str:
    """One [[meters]] table of a simulated meter."""
    return (
        f'[[meters]]\nid = "{meter_id}"\ndriver = "{driver}"\ninterval_s = {interval_s}\n'
        f'[meters.link]\ntype = "simulated"\nseed = {seed}\n{extra}\n'
    )


@contextmanager
def running_daemon(
    config: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A real daemon process; killed on the way out if the test left it running.

    ``extra_env`` adds variables (e.g. ``NOTIFY_SOCKET``) to the daemon's environment.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("NOTIFY_SOCKET", None)
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridedge", "run", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def wait_for(condition: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def samples_by_device(db: Path) -> dict[str, int]:
    """Sample envelopes per device, read through a read-only connection (WAL reader)."""
    if not db.exists():
        return {}
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute(
                "SELECT device, count(*) FROM envelopes WHERE kind = 'sample' GROUP BY device"
            ).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:
        return {}  # schema not created yet
    return {str(d): int(n) for d, n in rows}


def seqs(db: Path) -> list[int]:
    """Every stored seq, ascending."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return [int(r[0]) for r in con.execute("SELECT seq FROM envelopes ORDER BY seq")]
    finally:
        con.close()
