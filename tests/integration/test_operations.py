"""A real daemon under real supervision: Prometheus scrapes it, a notify socket hears it, and
/health follows meters and the outbox as they fail and recover.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemonproc import meter, running_daemon, wait_for, write_config
from tests.integration.opsproc import (
    LogTail,
    get,
    health,
    notify_socket,
    prometheus_value,
    require,
    running_prometheus,
)

pytestmark = pytest.mark.integration

TWO_METERS = meter("a", "eastron-sdm630", 0.2, 1) + meter("b", "eastron-sdm120", 0.2, 2)
WATCHDOG_ENV = {"WATCHDOG_USEC": "1000000"}  # pings every 0.5 s


@contextmanager
def outbox_locked(db: Path) -> Iterator[None]:
    """Another process' exclusive write transaction on the outbox: the daemon's commits wait."""
    con = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        con.execute("BEGIN EXCLUSIVE")
        yield
        con.execute("ROLLBACK")
    finally:
        con.close()


def dropout_meter(meter_id: str, driver: str, seed: int) -> str:
    """A meter that stops answering 3 s after it starts, for 3 s, and is retried quickly."""
    return (
        f'[[meters]]\nid = "{meter_id}"\ndriver = "{driver}"\ninterval_s = 0.2\n'
        "offline_after = 2\nmax_backoff_s = 0.4\n"
        f'[meters.link]\ntype = "simulated"\nseed = {seed}\n'
        '[[meters.link.faults.schedule]]\nkind = "dropout"\nat_s = 3.0\nduration_s = 3.0\n\n'
    )


def health_with(base: str, status: int, what: str, verdict: str | None = None) -> dict[str, Any]:
    """The first /health report that comes with HTTP ``status`` (and ``verdict``, if given)."""

    def probe() -> dict[str, Any] | None:
        code, report = health(base)
        return report if code == status and verdict in (None, report["status"]) else None

    return wait_for(probe, 30, what)


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=15)


def test_prometheus_scrapes_a_rising_samples_counter(tmp_path: Path) -> None:
    """A real Prometheus server scrapes the daemon and its query API shows samples rising."""
    with running_daemon(write_config(tmp_path, TWO_METERS)) as proc:
        base = LogTail(proc).http_base()
        target = base.removeprefix("http://")
        with running_prometheus(tmp_path, target) as prom:
            query = 'sum(gridedge_samples_total{job="gridedge"})'
            first = wait_for(lambda: prometheus_value(prom, query), 30, "a first scrape")
            wait_for(lambda: (prometheus_value(prom, query) or 0) > first, 30, "a higher count")
            assert prometheus_value(prom, 'up{job="gridedge"}') == 1
            assert prometheus_value(prom, "count(gridedge_meter_online == 1)") == 2
        assert stop(proc) == 0


def test_promtool_accepts_the_exposition(tmp_path: Path) -> None:
    """Promtool check metrics finds no problem in what /metrics serves."""
    promtool = require("promtool")
    with running_daemon(write_config(tmp_path, TWO_METERS)) as proc:
        base = LogTail(proc).http_base()
        wait_for(lambda: b"gridedge_samples_total" in get(base + "/metrics")[1], 30, "samples")
        status, body = get(base + "/metrics")
        assert stop(proc) == 0
    assert status == 200
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    for name in (b"gridedge_poll_duration_seconds_bucket", b"process_resident_memory_bytes"):
        assert name in body


def test_systemd_hears_ready_status_watchdog_and_stopping_in_order(tmp_path: Path) -> None:
    """Under a notify socket: READY first, readable STATUS and WATCHDOG pings, STOPPING last."""
    with notify_socket() as sock:
        env = {"NOTIFY_SOCKET": sock.path, **WATCHDOG_ENV}
        with running_daemon(write_config(tmp_path, TWO_METERS), env) as proc:
            sock.wait_for(lambda m: "READY" in m, 30, "READY=1")
            sock.wait_for(lambda m: m.get("STATUS", "").startswith("2 meters online"), 10, "STATUS")
            sock.wait_for(lambda m: "WATCHDOG" in m, 10, "a WATCHDOG ping")
            sock.wait_for(lambda m: "WATCHDOG" in m, 10, "a second WATCHDOG ping")
            proc.send_signal(signal.SIGTERM)
            sock.wait_for(lambda m: "STOPPING" in m, 10, "STOPPING=1")
            assert proc.wait(timeout=15) == 0
        kinds = [k for m in sock.messages for k in ("READY", "WATCHDOG", "STOPPING") if k in m]
    assert kinds[0] == "READY"
    assert kinds[-1] == "STOPPING"
    assert kinds.count("READY") == 1
    assert sock.messages[0] == {"READY": "1", "STATUS": "2 meters polling"}


def test_watchdog_stops_while_the_poll_loops_are_stalled_and_resumes(tmp_path: Path) -> None:
    """An outbox locked by another process stalls the loops: pings stop, then resume."""
    db = tmp_path / "outbox.sqlite3"
    with notify_socket() as sock:
        env = {"NOTIFY_SOCKET": sock.path, **WATCHDOG_ENV}
        with running_daemon(write_config(tmp_path, TWO_METERS), env) as proc:
            sock.wait_for(lambda m: "WATCHDOG" in m, 30, "a WATCHDOG ping")
            with outbox_locked(db):
                sock.wait_for(
                    lambda m: "polling stalled" in m.get("STATUS", ""), 15, "a stalled STATUS"
                )
                during = sock.collect_for(3.0)  # six ping intervals
            sock.wait_for(lambda m: "WATCHDOG" in m, 30, "pings again after the lock")
            assert stop(proc) == 0
    assert not [m for m in during if "WATCHDOG" in m]


def test_health_is_503_while_every_meter_is_offline_and_200_after(tmp_path: Path) -> None:
    """A dropout of both meters turns /health to 503; their return brings back 200."""
    meters = dropout_meter("a", "eastron-sdm630", 1) + dropout_meter("b", "eastron-sdm120", 2)
    with running_daemon(write_config(tmp_path, meters)) as proc:
        base = LogTail(proc).http_base()
        health_with(base, 200, "200 while polling")
        report = health_with(base, 503, "503 when every meter is offline")
        assert report["problems"] == ["every meter is offline"]
        assert not any(m["online"] for m in report["meters"].values())
        report = health_with(base, 200, "ok once both meters are back", verdict="ok")
        assert all(m["online"] for m in report["meters"].values())
        assert stop(proc) == 0


def test_health_is_503_while_the_outbox_cannot_be_written_and_200_after(tmp_path: Path) -> None:
    """Commits refused by a lock held elsewhere turn /health to 503 until the lock goes."""
    db = tmp_path / "outbox.sqlite3"
    with running_daemon(write_config(tmp_path, TWO_METERS)) as proc:
        base = LogTail(proc).http_base()
        health_with(base, 200, "200 while polling")
        with outbox_locked(db):
            report = health_with(base, 503, "503 while the outbox is locked")
        assert report["outbox"]["healthy"] is False
        assert report["problems"][0].startswith("the outbox cannot be written")
        health_with(base, 200, "200 after the lock is released")
        assert stop(proc) == 0
