"""The group-commit queue over a store that fails: producers are never held for long."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import structlog

from gridedge.errors import OutboxError, OutboxFullError
from gridedge.outbox.queue import CommitQueue, QueueLimits
from gridedge.outbox.schema import Row

INTERVAL_S = 0.1


class FailingStore:
    """A BatchStore that fails with ``error`` until ``error`` is set to None."""

    def __init__(self, error: OutboxError | None) -> None:
        self.error = error
        self.committed: list[Row] = []
        self.rejected: list[tuple[int, type[OutboxError]]] = []
        self.attempts = 0

    async def commit(self, rows: list[Row], cursors: Mapping[str, int]) -> None:
        self.attempts += 1
        if self.error is not None:
            raise self.error
        self.committed += rows

    def housekeeping_due(self) -> bool:
        return False

    def reject(self, rows: list[Row], error: OutboxError) -> None:
        self.rejected.append((len(rows), type(error)))


def rows(n: int) -> list[Row]:
    return [("sample", "m", float(i), 0, "{}") for i in range(n)]


async def run_queue(store: FailingStore) -> tuple[CommitQueue, asyncio.Task[None]]:
    limits = QueueLimits(
        max_batch=100,
        max_pending=1000,
        commit_interval_s=INTERVAL_S,
        eager_bytes=1 << 20,
        idle_wakeup_s=5.0,
    )
    queue = CommitQueue(store, limits, structlog.get_logger(), "test")
    return queue, asyncio.create_task(queue.run())


async def test_a_failing_store_gives_appends_back_within_one_commit_interval() -> None:
    """While commits fail, an append returns after about one interval, counted as rejected."""
    store = FailingStore(OutboxError("read-only file system"))
    queue, writer = await run_queue(store)
    for _ in range(3):
        began = time.monotonic()
        await queue.append(rows(5))
        assert time.monotonic() - began < 3 * INTERVAL_S
    assert store.rejected == [(5, OutboxError)] * 3
    assert store.attempts > 3  # retried inside the interval before giving up
    assert not queue.healthy
    store.error = None
    await queue.append(rows(2))
    assert queue.healthy
    assert len(store.committed) == 2
    await queue.stop(writer, 1.0)


async def test_a_full_disk_rejects_a_batch_at_the_first_failure() -> None:
    """OutboxFullError means the store has done what it could: no retry, the batch is counted."""
    store = FailingStore(OutboxFullError("database or disk is full"))
    queue, writer = await run_queue(store)
    await queue.append(rows(4))
    assert store.attempts == 1
    assert store.rejected == [(4, OutboxFullError)]
    assert queue.last_error == "database or disk is full"
    await queue.stop(writer, 1.0)


async def test_cursor_moves_of_a_rejected_batch_are_committed_once_the_store_heals() -> None:
    """A cursor move is not lost with the rows it rode with; it commits after recovery."""
    store = FailingStore(OutboxFullError("full"))
    queue, writer = await run_queue(store)
    moved = asyncio.create_task(queue.move_cursor("up", 3))
    await queue.append(rows(1))
    assert not moved.done()
    store.error = None
    async with asyncio.timeout(5):
        await moved
    assert queue.healthy
    await queue.stop(writer, 1.0)
