"""An open outbox as the rest of gridedge sees it: append, read after a cursor, move a cursor.

Reads use a second, read-only connection, so they never see a transaction that has not
committed. Open one with :func:`gridedge.outbox.store.open_outbox`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gridedge.errors import OutboxError
from gridedge.model import Envelope
from gridedge.outbox import quarantine
from gridedge.outbox import schema as sql
from gridedge.outbox.database import Database
from gridedge.outbox.files import disk_bytes
from gridedge.outbox.queue import CommitQueue
from gridedge.outbox.schema import OutboxStats
from gridedge.outbox.writer import SqliteStore


class Outbox:
    """An open outbox; get one from :func:`gridedge.outbox.store.open_outbox`.

    Attributes:
        pragmas: the SQLite settings in effect, as SQLite reports them after opening.
    """

    def __init__(
        self,
        store: SqliteStore,
        queue: CommitQueue,
        reader: Database,
        path: Path,
        pragmas: Mapping[str, object],
    ) -> None:
        self._store = store
        self._queue = queue
        self._reader = reader
        self._path = path
        self.pragmas = pragmas

    @property
    def epoch(self) -> str:
        """The file's epoch: with seq, the key that never repeats (see the payload docs)."""
        return self._store.epoch

    @property
    def max_commit_bytes(self) -> int:
        """Envelope body bytes one transaction moves at most (from ``max_bytes``)."""
        return self._store.budget.max_commit_bytes

    @property
    def healthy(self) -> bool:
        """Whether the last commit succeeded, the file is still the one that was opened and
        its filesystem has room.
        """
        return self._queue.healthy and self._store.problem is None

    @property
    def last_error(self) -> str | None:
        """Why the outbox is unhealthy, None while healthy."""
        return self._store.problem or self._queue.last_error

    @property
    def appended_total(self) -> int:
        """Envelopes stored by this process."""
        return self._store.appended_total

    @property
    def commits_total(self) -> int:
        """Write transactions committed by this process."""
        return self._store.commits_total

    @property
    def dropped_total(self) -> dict[str, int]:
        """Envelopes dropped over the file's life by reason (persisted; no I/O)."""
        return {str(reason): n for reason, n in self._store.tally.dropped.items()}

    @property
    def dropped_unsent_total(self) -> dict[str, int]:
        """Dropped envelopes that each upstream had not received (persisted; no I/O)."""
        return dict(self._store.tally.unsent)

    @property
    def last_committed_seq(self) -> int:
        """The highest seq ever committed to this file, 0 before the first."""
        return self._store.last_seq

    @property
    def last_urgent_seq(self) -> int:
        """The highest seq of an urgent envelope committed to this file (at least the one of
        any stored now), 0 if none is known.
        """
        return self._store.last_urgent_seq

    @property
    def pending(self) -> int:
        """Envelopes waiting in memory for the writer."""
        return self._queue.pending

    def on_commit(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call ``callback(last_committed_seq)`` after each commit that stored envelopes.

        It runs on the writer task, so it must be quick and must not raise (set an event).
        Returns a function that removes it.
        """
        self._store.listeners.append(callback)
        return functools.partial(self._store.listeners.remove, callback)

    async def append(self, envelopes: Sequence[Envelope]) -> None:
        """Store envelopes; returns once they are committed (durable as configured) or dropped.

        One call is stored atomically and its envelopes take consecutive seqs, in order. Under
        ``drop_newest`` envelopes that do not fit are counted and not stored. When the file
        cannot be written (a full disk, a read-only filesystem) the call returns within about
        one commit interval and its envelopes are counted as dropped (``disk_full_rejected``,
        ``write_failed``); :attr:`healthy` is then False. When ``max_pending`` envelopes are
        waiting this waits for room; bound it with ``asyncio.timeout``. A call cancelled after
        queueing may still commit.

        Raises:
            OutboxError: an envelope cannot be stored (its body is not JSON, its ts is not
                finite), or the outbox is closed.
        """
        if not envelopes:
            return
        self._queue.check_open()
        try:
            rows = [sql.encode(envelope) for envelope in envelopes]
        except (TypeError, ValueError) as exc:
            raise OutboxError(f"envelope cannot be stored: {exc}") from exc
        await self._queue.append(rows)

    async def read_after(self, cursor: int, limit: int) -> list[Envelope]:
        """Up to ``limit`` committed envelopes with seq > ``cursor``, in seq order."""
        if cursor >= self._store.last_seq:
            self._queue.check_open()
            return []  # nothing committed after it: no trip to the reader thread
        return await self._read_envelopes(sql.SELECT_AFTER, cursor, limit)

    async def read_urgent_after(self, cursor: int, limit: int) -> list[Envelope]:
        """Up to ``limit`` committed urgent envelopes with seq > ``cursor``, in seq order."""
        if cursor >= self._store.last_urgent_seq:
            self._queue.check_open()
            return []
        return await self._read_envelopes(sql.SELECT_URGENT_AFTER, cursor, limit)

    async def cursor(self, upstream: str) -> int:
        """The last committed cursor of ``upstream``, 0 if none."""
        return self._store.cursors.get(upstream, 0)

    async def set_cursor(self, upstream: str, seq: int) -> None:
        """Record that ``upstream`` has every envelope up to ``seq``; never moves backwards.

        Returns once the cursor is committed, which rides with the next group commit; a
        forwarder need not wait for it before reading on.

        Raises:
            ValueError: ``seq`` is beyond the last committed seq.
            OutboxError: the outbox is closed.
        """
        known = max(self._store.cursors.get(upstream, 0), self._queue.queued_cursor(upstream))
        if seq <= known:
            return
        if seq > self._store.last_seq:
            raise ValueError(f"cursor {seq} of {upstream} is beyond seq {self._store.last_seq}")
        await self._queue.move_cursor(upstream, seq)

    async def stats(self) -> OutboxStats:
        """What the file holds now; cheap (no table scans)."""
        self._queue.check_open()
        summary = await self._reader.one(sql.SELECT_SUMMARY)
        upstreams = await self._reader.fetch(sql.SELECT_UPSTREAMS)
        counters = await self._reader.fetch(sql.SELECT_COUNTERS)
        stats = sql.build_stats(
            summary, upstreams, counters, self._store.bytes, disk_bytes(self._path), self.epoch
        )
        # Drops counted while the disk could not be written are not in the file yet.
        tally = self._store.tally
        return dataclasses.replace(
            stats,
            dropped={k: v for k, v in tally.dropped.items() if v},
            dropped_unsent={k: v for k, v in tally.unsent.items() if v},
            quarantined=await self._quarantine_counts(),
        )

    # --- quarantine (see gridedge.outbox.quarantine) ----------------------------------------

    async def quarantine(self, upstream: str, seqs: Sequence[int], reason: str) -> int:
        """Keep a copy of the envelopes ``seqs`` aside for ``upstream``, refused for ``reason``;
        how many were added (a seq already there, or no longer stored, is skipped).

        Committed before it returns, on a connection of its own (the writer's group commits
        are not held up, and cannot roll this back), so the cursor may pass them afterwards.

        Raises:
            OutboxError: SQLite failed; nothing was added.
        """
        self._queue.check_open()
        db = await Database.connect(self._path)
        try:
            await db.begin()
            before = (await db.one("SELECT total_changes()"))[0]
            for batch in quarantine.batches(seqs):
                params = (upstream, reason, time.time(), *batch)
                await db.execute(quarantine.insert_statement(len(batch)), params)
            added = int((await db.one("SELECT total_changes()"))[0] - before)
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        finally:
            await db.close()
        return added

    async def quarantined(self, upstream: str) -> dict[str, int]:
        """Envelopes set aside for ``upstream`` over the file's life, by reason."""
        return (await self._quarantine_counts()).get(upstream, {})

    async def _quarantine_counts(self) -> dict[str, dict[str, int]]:
        self._queue.check_open()
        return quarantine.counts_by_upstream(await self._reader.fetch(quarantine.SELECT_COUNTS))

    async def _read_envelopes(self, query: str, cursor: int, limit: int) -> list[Envelope]:
        self._queue.check_open()
        rows = await self._reader.fetch(query, (cursor, limit))
        return [sql.decode(*row) for row in rows]
