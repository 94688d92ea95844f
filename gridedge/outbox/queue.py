"""Group commit for the outbox: queueing, the writer task, backpressure and retries.

This part knows nothing about SQLite; it drives a :class:`BatchStore` (the SQLite store in
:mod:`gridedge.outbox.store`, or a fake in tests).

Policy: callers queue whole append calls; the writer takes everything queued, whole calls only,
up to ``max_batch`` envelopes and ``max_batch_bytes`` of bodies (at least one call), into one
transaction. It starts a commit at
once when the queue is "big" (``max_batch`` envelopes or ``eager_bytes`` of bodies: a commit's
fixed cost, a few pages and under FULL an fsync, is then small beside the data) or when no
commit started in the last ``commit_interval_s`` (the first append after a quiet spell goes out
at once); otherwise it waits for whichever comes first. A trickle of small appends thus costs
one commit per interval instead of one each (flash wear), while producers that wait for their
commits are never held back by the interval once their appends add up to a big queue.

A failing store does not hold producers: a batch is retried with backoff for at most one
``commit_interval_s`` (not at all when the disk is full, the store has done what it can), then
handed to :meth:`BatchStore.reject`, which counts it as dropped, and its appends return. Cursor
moves of a failed batch stay queued for the next commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gridedge.errors import OutboxError, OutboxFullError
from gridedge.log import FailureStreak
from gridedge.outbox.schema import Row

_RETRY_MIN_S, _RETRY_MAX_S = 0.05, 5.0


class BatchStore(Protocol):
    """Where the writer commits batches."""

    async def commit(self, rows: list[Row], cursors: Mapping[str, int]) -> None:
        """Store rows and cursor moves in one transaction, with any housekeeping that is due.

        Raises:
            OutboxError: the transaction failed and was rolled back; it will be retried.
        """

    def housekeeping_due(self) -> bool:
        """Whether an otherwise empty commit would do something useful (expiry)."""

    def reject(self, rows: list[Row], error: OutboxError) -> None:
        """Count rows that could not be committed as dropped; they are given up."""


@dataclass(slots=True)
class _Append:
    rows: list[Row]
    size: int  # body bytes
    done: asyncio.Future[None]


@dataclass(slots=True)
class _Batch:
    """The work of one transaction and the callers waiting for it to commit."""

    appends: list[_Append] = field(default_factory=list)
    cursors: dict[str, int] = field(default_factory=dict)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def rows(self) -> list[Row]:
        return [row for append in self.appends for row in append.rows]

    def settle(self, error: BaseException | None = None) -> None:
        for done in [append.done for append in self.appends] + self.waiters:
            if done.done():  # the caller was cancelled
                continue
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """How big batches get, how often they commit and how much may wait in memory."""

    max_batch: int
    max_pending: int
    commit_interval_s: float
    eager_bytes: int
    idle_wakeup_s: float
    max_batch_bytes: int = 1 << 62


class CommitQueue:
    """Batches appends and cursor moves into group commits on one writer task.

    Attributes:
        healthy: whether the last commit succeeded.
        last_error: why the last commit failed, None while healthy.
    """

    def __init__(self, store: BatchStore, limits: QueueLimits, log: Any, name: str) -> None:
        self._store = store
        self._limits = limits
        self._log = log
        self._name = name
        self._streak = FailureStreak(log, "outbox.write", path=name)
        self.healthy = True
        self.last_error: str | None = None
        self._queue: deque[_Append] = deque()
        self._queued = 0
        self._queued_bytes = 0
        self._cursors: dict[str, int] = {}
        self._cursor_waiters: list[asyncio.Future[None]] = []
        self._work = asyncio.Event()  # something is queued
        self._big = asyncio.Event()  # the queue is big enough to commit at once, or closing
        self._room = asyncio.Event()  # the writer took a batch off the queue
        self._last_commit_at = float("-inf")
        self._closing = False
        self._broken: str | None = None

    @property
    def pending(self) -> int:
        """Envelopes queued and not yet taken into a transaction."""
        return self._queued

    def queued_cursor(self, upstream: str) -> int:
        """The cursor queued for ``upstream`` and not yet committed, 0 if none."""
        return self._cursors.get(upstream, 0)

    def check_open(self) -> None:
        """Raise OutboxError unless the queue accepts work."""
        if self._broken is not None:
            raise OutboxError(f"outbox writer failed: {self._broken}")
        if self._closing:
            raise OutboxError(f"outbox {self._name} is closed")

    async def append(self, rows: list[Row]) -> None:
        """Queue rows as one unit and wait until they are committed (waits for room first)."""
        self.check_open()
        # A call larger than max_pending still gets through an empty queue, or it never would.
        while self._queued and self._queued + len(rows) > self._limits.max_pending:
            self._room.clear()
            await self._room.wait()
            self.check_open()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        size = sum(len(row[4]) for row in rows)
        self._queue.append(_Append(rows, size, done))
        self._queued += len(rows)
        self._queued_bytes += size
        self._work.set()
        if self._is_big():
            self._big.set()
        await done

    async def move_cursor(self, upstream: str, seq: int) -> None:
        """Queue a cursor move and wait until it is committed."""
        self.check_open()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._cursors[upstream] = max(seq, self._cursors.get(upstream, 0))
        self._cursor_waiters.append(done)
        self._work.set()
        await done

    async def run(self) -> None:
        """The writer task: commit queued work until closing and drained."""
        try:
            while True:
                await self._gather()
                batch = self._take_batch()
                if not batch.appends and not self._cursors:
                    if self._closing:
                        return
                    if not self._store.housekeeping_due():
                        continue
                await self._commit(batch)
        except Exception as exc:
            # A bug, not a store failure: fail the waiters rather than leave them hanging.
            self._broken = repr(exc)
            self._log.exception("outbox.writer_failed")
            self._abandon(OutboxError(f"outbox writer failed: {exc!r}"))
            raise
        finally:
            self._room.set()

    async def _gather(self) -> None:
        """Wait for work (or the idle wake-up), then linger while the batch is small."""
        idle = not self._queue and not self._cursors and not self._closing
        if idle and not self._store.housekeeping_due():
            self._work.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._limits.idle_wakeup_s):
                    await self._work.wait()
        interval = self._limits.commit_interval_s
        if not self.healthy:  # a failing store is tried again no faster than the backoff floor
            interval = max(interval, _RETRY_MIN_S)
        deadline = self._last_commit_at + interval
        if not self._is_big() and asyncio.get_running_loop().time() < deadline:
            self._big.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._big.wait()

    def _is_big(self) -> bool:
        return (
            self._closing
            or self._queued >= self._limits.max_batch
            or self._queued_bytes >= self._limits.eager_bytes
        )

    def _take_batch(self) -> _Batch:
        """Whole append calls from the queue, up to max_batch envelopes (at least one call)."""
        batch = _Batch()
        count = size = 0
        limits = self._limits
        while self._queue and (
            not batch.appends
            or (
                count + len(self._queue[0].rows) <= limits.max_batch
                and size + self._queue[0].size <= limits.max_batch_bytes
            )
        ):
            append = self._queue.popleft()
            batch.appends.append(append)
            count += len(append.rows)
            size += append.size
            self._queued_bytes -= append.size
        self._queued -= count
        self._room.set()
        return batch

    async def _commit(self, batch: _Batch) -> None:
        """Commit a batch, retrying with capped backoff while the store fails, then settle it."""
        try:
            await self._commit_with_retry(batch)
        except asyncio.CancelledError:
            batch.settle(OutboxError(f"outbox {self._name} closed before committing"))
            raise
        except Exception as exc:
            batch.settle(OutboxError(f"outbox writer failed: {exc!r}"))
            raise
        batch.settle()

    async def _commit_with_retry(self, batch: _Batch) -> None:
        delay = _RETRY_MIN_S
        rows = batch.rows()
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._limits.commit_interval_s
        while True:
            # Cursor moves queued meanwhile ride along: under drop_newest the envelopes they
            # retire may be what frees the space a failing batch needs.
            batch.cursors.update(self._cursors)
            batch.waiters += self._cursor_waiters
            self._cursors, self._cursor_waiters = {}, []
            self._last_commit_at = asyncio.get_running_loop().time()
            try:
                await self._store.commit(rows, batch.cursors)
            except OutboxError as exc:
                self.healthy, self.last_error = False, str(exc)
                self._streak.failed(str(exc), rejected=len(rows))
                if isinstance(exc, OutboxFullError) or loop.time() + delay > give_up_at:
                    self._give_up(batch, rows, exc)
                    return
                await asyncio.sleep(delay)  # backoff, not synchronisation
                delay = min(2 * delay, _RETRY_MAX_S)
                continue
            if not self.healthy:
                self.healthy, self.last_error = True, None
                self._streak.succeeded()
            return

    def _give_up(self, batch: _Batch, rows: list[Row], error: OutboxError) -> None:
        """Count the batch's rows as dropped; its cursor moves wait for the next commit."""
        if rows:
            self._store.reject(rows, error)
        for upstream, seq in batch.cursors.items():
            self._cursors[upstream] = max(seq, self._cursors.get(upstream, 0))
        self._cursor_waiters += batch.waiters
        batch.cursors, batch.waiters = {}, []
        if self._cursors:
            self._work.set()

    async def stop(self, writer: asyncio.Task[None], flush_timeout_s: float) -> None:
        """Let the writer commit what is queued (bounded), then stop it; survives cancellation.

        Whatever is still queued after ``flush_timeout_s`` fails with OutboxError. A failure of
        the writer itself is raised here.
        """
        self._closing = True
        for event in (self._work, self._big, self._room):
            event.set()
        try:
            async with asyncio.timeout(flush_timeout_s):
                await asyncio.wait([writer])
        except TimeoutError:
            self._log.warning(
                "outbox.flush_timeout", pending=self._queued, timeout_s=flush_timeout_s
            )
        finally:
            writer.cancel()
            self._abandon(OutboxError(f"outbox {self._name} closed before committing"))
            await asyncio.wait([writer])
        if not writer.cancelled() and (error := writer.exception()) is not None:
            raise error

    def _abandon(self, error: OutboxError) -> None:
        """Fail everything still queued."""
        batch = _Batch(list(self._queue), waiters=self._cursor_waiters)
        self._queue.clear()
        self._queued, self._queued_bytes = 0, 0
        self._cursors, self._cursor_waiters = {}, []
        batch.settle(error)
