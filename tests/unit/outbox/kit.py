"""Shared helpers of the outbox tests: configs, envelopes, waiting on a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from gridedge.config import OnFull, OutboxConfig, Synchronous
from gridedge.model import Envelope, Kind
from gridedge.outbox.schema import OutboxStats
from gridedge.outbox.store import Outbox

T0 = 1_700_000_000.0
BIG = 1 << 30
MIB = 1024 * 1024


class FakeClock:
    """A wall clock that moves only when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_config(
    tmp_path: Path,
    *,
    max_bytes: int = BIG,
    max_age_s: float = 30 * 86400.0,
    on_full: OnFull = OnFull.DROP_OLDEST,
    synchronous: Synchronous = Synchronous.NORMAL,
    commit_interval_s: float = 0.005,
    max_pending: int = 100_000,
) -> OutboxConfig:
    return OutboxConfig(
        path=tmp_path / "outbox.sqlite3",
        max_bytes=max_bytes,
        max_age_s=max_age_s,
        on_full=on_full,
        synchronous=synchronous,
        commit_interval_s=commit_interval_s,
        max_pending=max_pending,
    )


def envelope(i: int, *, ts: float = T0, urgent: bool = False, pad: int = 30) -> Envelope:
    return Envelope(
        kind=Kind.ALERT if urgent else Kind.SAMPLE,
        device=f"m{i % 3}",
        ts=ts,
        body={"i": i, "pad": "x" * pad},
        urgent=urgent,
    )


def batch(start: int, count: int, *, ts: float = T0) -> list[Envelope]:
    return [envelope(i, ts=ts) for i in range(start, start + count)]


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``condition`` until it holds, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.005)


async def everything(outbox: Outbox) -> list[Envelope]:
    return await outbox.read_after(0, 1_000_000)


def body_ids(envelopes: list[Envelope]) -> list[object]:
    return [e.body["i"] for e in envelopes]


async def wait_for_stats(
    outbox: Outbox, condition: Callable[[OutboxStats], bool], timeout_s: float = 10.0
) -> OutboxStats:
    """Poll the outbox's stats until ``condition`` holds; the stats (fails at the deadline)."""
    deadline = time.monotonic() + timeout_s
    while not condition(stats := await outbox.stats()):
        if time.monotonic() > deadline:
            raise AssertionError(f"stats never met the condition: {stats}")
        await asyncio.sleep(0.01)
    return stats
