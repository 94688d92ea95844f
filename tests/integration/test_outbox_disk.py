"""The outbox on a real disk: a full filesystem, a read-only one, its size cap, one owner.

The filesystems are small ext4 images, loop-mounted: real ENOSPC, real EROFS, real page cache.
Each test prints one JSON line of what it measured (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import structlog

from gridedge.config import OnFull, OutboxConfig
from gridedge.model import Envelope, Sample
from gridedge.outbox.files import disk_bytes
from gridedge.outbox.store import Outbox, open_outbox
from tests.integration.daemonproc import (
    meter,
    running_daemon,
    samples_by_device,
    wait_for,
    write_config,
)
from tests.integration.loopfs import loop_fs

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
INTERVAL_S = 0.02  # commit interval, and the poll interval of the recovery loop
BATCH = 10


def readings(n: int, count: int = BATCH) -> list[Envelope]:
    """``count`` ten-value samples, numbered from ``n``."""
    ts = time.time()
    return [
        Envelope.of_sample(
            Sample(device=f"m{i % 3}", ts=ts, values={f"ch{k}": n + i + k / 10 for k in range(10)})
        )
        for i in range(n, n + count)
    ]


async def timed_append(outbox: Outbox, n: int) -> float:
    """Append one batch; the seconds it took."""
    began = time.monotonic()
    await outbox.append(readings(n))
    return time.monotonic() - began


def disk_drops(outbox: Outbox) -> int:
    dropped = outbox.dropped_total
    return dropped.get("disk_full", 0) + dropped.get("disk_full_rejected", 0)


@pytest.mark.parametrize("on_full", [OnFull.DROP_OLDEST, OnFull.DROP_NEWEST])
async def test_polling_goes_on_while_the_filesystem_is_full_and_storing_resumes_after(
    tmp_path: Path, on_full: OnFull
) -> None:
    """On a full ext4, appends return within a commit interval, drops are counted, and
    storing resumes within seconds of space coming back.
    """
    with loop_fs(tmp_path, 16) as fs, structlog.testing.capture_logs():
        config = OutboxConfig(
            path=fs.mount / "outbox.sqlite3",
            max_bytes=4 * MIB,
            on_full=on_full,
            commit_interval_s=INTERVAL_S,
        )
        async with open_outbox(config, upstreams=["up"]) as outbox:
            for n in range(0, 500, BATCH):
                await outbox.append(readings(n))
            filler = fs.fill()
            slowest = 0.0
            errors = set()
            n = 500
            for n in range(500, 3500, BATCH):
                slowest = max(slowest, await timed_append(outbox, n))
                errors.add(outbox.last_error)
            during = disk_drops(outbox)
            unsent = outbox.dropped_unsent_total.get("up", 0)
            assert during > 0
            assert unsent >= during
            assert any("is full" in (error or "") for error in errors)  # /health saw it
            assert slowest < INTERVAL_S + 1.0
            filler.unlink()
            freed = time.monotonic()
            stored_at = spare_at = None
            while stored_at is None or spare_at is None:
                assert time.monotonic() - freed < 30, "no recovery within 30 s"
                n += BATCH
                before, drops = outbox.last_committed_seq, disk_drops(outbox)
                await outbox.append(readings(n))
                stored = outbox.last_committed_seq == before + BATCH
                if stored_at is None and stored and disk_drops(outbox) == drops and outbox.healthy:
                    stored_at = time.monotonic() - freed
                if spare_at is None and (fs.mount / "outbox.sqlite3.spare").exists():
                    spare_at = time.monotonic() - freed
                await asyncio.sleep(INTERVAL_S)  # a poll interval between readings
            assert stored_at < 10
            print(
                json.dumps(
                    {
                        "test": "full_disk",
                        "on_full": on_full.value,
                        "slowest_append_s": round(slowest, 3),
                        "dropped": outbox.dropped_total,
                        "dropped_unsent": outbox.dropped_unsent_total,
                        "storing_again_after_s": round(stored_at, 3),
                        "spare_back_after_s": round(spare_at, 3),
                    }
                )
            )


async def test_a_filesystem_turned_read_only_is_reported_and_appends_still_return(
    tmp_path: Path,
) -> None:
    """ext4 going read-only under the outbox: unhealthy with the error, one warning, no SIGBUS."""
    with loop_fs(tmp_path, 16, options="errors=remount-ro") as fs:
        config = OutboxConfig(path=fs.mount / "outbox.sqlite3", commit_interval_s=INTERVAL_S)
        with structlog.testing.capture_logs() as logs:
            async with open_outbox(config, upstreams=["up"]) as outbox:
                for n in range(0, 200, BATCH):
                    await outbox.append(readings(n))
                fs.turn_read_only()
                slowest = max([await timed_append(outbox, n) for n in range(200, 400, BATCH)])
                assert not outbox.healthy
                error = outbox.last_error or ""
                assert "outbox" in error
                dropped = outbox.dropped_total.get("write_failed", 0)
                assert dropped == 200
                # The read side and the command line keep working or fail with an error.
                stats = await outbox.stats()
                assert stats.last_seq == 200
                cli = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "gridedge",
                    "outbox",
                    "-c",
                    str(write_cfg(fs.mount)),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                _, cli_err = await asyncio.wait_for(cli.communicate(), 60)
        assert cli.returncode in (0, 2), cli_err  # never -7 (SIGBUS)
        warnings = [e for e in logs if e["event"] == "outbox.write.failed"]
        assert [e["log_level"] for e in warnings][:1] == ["warning"]
        assert {e["log_level"] for e in warnings[1:]} <= {"debug"}
        print(
            json.dumps(
                {
                    "test": "read_only",
                    "slowest_append_s": round(slowest, 3),
                    "write_failed": dropped,
                    "error": error,
                    "cli_exit": cli.returncode,
                }
            )
        )


def write_cfg(folder: Path) -> Path:
    """A config whose outbox is ``folder``'s outbox.sqlite3, written outside ``folder``."""
    path = folder.parent / "gridedge.toml"
    path.write_text(
        f'[gateway]\nid = "gw"\nsite = "lab"\n[outbox]\npath = "{folder / "outbox.sqlite3"}"\n'
    )
    return path


@pytest.mark.parametrize("cap_mib", [1, 4, 16])  # larger caps: bench/outbox_disk.py
async def test_database_wal_and_shm_stay_within_a_tenth_over_max_bytes(
    tmp_path: Path, cap_mib: int
) -> None:
    """Twice the cap in readings, with a reader paging along: the files stay within 110 %."""
    cap = cap_mib * MIB
    config = OutboxConfig(path=tmp_path / "outbox.sqlite3", max_bytes=cap, commit_interval_s=0)
    peak, body, n = 0, 0, 0
    with structlog.testing.capture_logs():
        async with open_outbox(config, upstreams=["slow"]) as outbox:
            while body < 2 * cap:
                batch = readings(n, 100)
                n += 100
                body += sum(len(json.dumps(e.body, separators=(",", ":"))) for e in batch)
                await outbox.append(batch)
                if n % 500 == 0:  # a forwarder that reads and never gets an acknowledgement
                    await outbox.read_after(max(0, outbox.last_committed_seq - 500), 500)
                peak = max(peak, disk_bytes(config.path))
            dropped = outbox.dropped_total.get("full", 0)
    assert dropped > 0
    assert peak <= 1.1 * cap
    print(
        json.dumps(
            {
                "test": "cap",
                "cap_bytes": cap,
                "peak_bytes": peak,
                "ratio": round(peak / cap, 4),
                "dropped_full": dropped,
            }
        )
    )


def test_a_second_daemon_on_the_same_outbox_exits_2_naming_the_first(tmp_path: Path) -> None:
    """The second `gridedge run` on one outbox stops at once with one line naming the owner."""
    config = write_config(tmp_path, meter("a", "eastron-sdm120", 0.2, 1))
    with running_daemon(config) as first:
        wait_for(lambda: (tmp_path / "outbox.sqlite3.lock").exists() or None, 30, "the lock")
        wait_for(lambda: (tmp_path / "outbox.sqlite3.lock").read_text().strip() or None, 30, "pid")
        second = subprocess.run(
            [sys.executable, "-m", "gridedge", "run", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        assert first.poll() is None  # the owner runs on
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert f"pid {first.pid}" in lines[0]


def test_a_damaged_outbox_stops_the_daemon_and_moving_it_aside_lets_a_fresh_one_start(
    tmp_path: Path,
) -> None:
    """Garbage in the outbox file: `run` exits 2 with one line and the remedy; after
    `outbox --move-aside` the daemon starts on a fresh file and the damaged one is kept.
    """
    config = write_config(tmp_path, meter("a", "eastron-sdm120", 0.2, 1))
    damaged = b"not an sqlite file " * 4096
    (tmp_path / "outbox.sqlite3").write_bytes(damaged)
    gridedge = [sys.executable, "-m", "gridedge"]
    run = subprocess.run(
        [*gridedge, "run", "-c", str(config)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "outbox.sqlite3" in lines[0]
    assert "--move-aside" in lines[0]
    aside = subprocess.run(
        [*gridedge, "outbox", "-c", str(config), "--move-aside"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (kept,) = (Path(p) for p in json.loads(aside.stdout)["moved"])
    assert kept.read_bytes() == damaged
    with running_daemon(config) as proc:
        wait_for(lambda: samples_by_device(tmp_path / "outbox.sqlite3").get("a"), 30, "samples")
        assert proc.poll() is None
