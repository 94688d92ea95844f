"""The outbox's write side: one transaction per group commit, pruning inside it, drops counted.

Every delete removes a prefix of the queue, in the same transaction as the inserts and the drop
counters, so no drop escapes the counts. In each transaction, envelopes every upstream has
received go first (not a drop); then, at most once per few seconds, envelopes older than
``max_age_s`` from the head of the queue (``expired``); then, so that the new envelopes fit in
the database's share of ``max_bytes`` (see :mod:`gridedge.outbox.budget`), ``drop_oldest``
deletes the oldest (``full``) while ``drop_newest`` stores only what still fits
(``full_rejected``). Deletes move at most ``max_commit_bytes`` per transaction (a delete writes
the pages it touches into the WAL); what remains is deleted by the next ones.

When the filesystem is full the spare reserve (:class:`gridedge.outbox.files.Spare`) is given
back and the WAL checkpointed; until the reserve can be taken again the database does not grow:
new envelopes go into pages that deletes freed, ``drop_oldest`` deleting the oldest to make
room (``disk_full``), ``drop_newest`` refusing what does not fit (``disk_full_rejected``). A
batch that still cannot be written is counted by :meth:`reject` (``disk_full_rejected``, or
``write_failed`` for other write errors) and its appends return, so that polling goes on. Those
counts are held in memory and written with the next transaction that commits.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gridedge.errors import OutboxError, OutboxFullError
from gridedge.log import FailureStreak
from gridedge.outbox import budget as disk
from gridedge.outbox import schema as sql
from gridedge.outbox.files import FileWatch, Spare, side_file
from gridedge.outbox.schema import DropReason, Row, Tally
from gridedge.outbox.settings import OnFull, OutboxConfig

if TYPE_CHECKING:
    from gridedge.outbox.database import Database

HOUSEKEEPING_S = 5.0  # expiry cadence (clock seconds), spare retries, idle wake-up of the writer
_FIXED_PAGES = 8  # page 1, sqlite_sequence and the roots of the tables and the index
_GROWTH_SLACK_PAGES = 4  # interior pages a commit may split off while the disk is full
# Expiry runs every few seconds in a steady state without upstreams: keep it quiet.
_PRUNE_LOG_LEVEL = {
    DropReason.EXPIRED: "debug",
    DropReason.FULL: "info",
    DropReason.DISK_FULL: "warning",
}


@dataclass(slots=True)
class _Delta:
    """The store's state as one transaction leaves it; applied only once it commits."""

    bytes: int
    last_seq: int
    cursors: dict[str, int]
    expiry_checked_at: float
    retired_through: int
    ratio: float
    tally: Tally = field(default_factory=Tally)
    appended: int = 0
    rejected: int = 0
    unfinished: bool = False  # a delete stopped at max_commit_bytes; the next commit goes on
    pruned: list[tuple[DropReason, int, int]] = field(default_factory=list)  # reason, rows, bytes
    last_urgent_seq: int = 0  # of the urgent envelopes this transaction inserted, 0 for none


@dataclass(frozen=True, slots=True)
class StoreParts:
    """What the store works with besides its settings."""

    db: Database
    budget: disk.DiskBudget
    spare: Spare
    watch: FileWatch
    epoch: str


class SqliteStore:
    """The write side: transactions, pruning and the committed state they leave in memory."""

    def __init__(
        self,
        config: OutboxConfig,
        parts: StoreParts,
        upstreams: Sequence[str],
        clock: Callable[[], float],
        log: Any,
    ) -> None:
        self._config = config
        self._db = parts.db
        self.budget = parts.budget
        self._spare = parts.spare
        self._watch = parts.watch
        self.epoch = parts.epoch
        self.upstreams = tuple(dict.fromkeys(upstreams))
        self._clock = clock
        self._log = log
        # Under drop_newest every batch is refused while full: say so once, not per commit.
        self._refusing = FailureStreak(log, "outbox.full", path=str(config.path))
        self._file = FailureStreak(log, "outbox.file", path=str(config.path))
        self._disk = FailureStreak(log, "outbox.disk_full", path=str(config.path))
        self.file_problem: str | None = None
        self.bytes = 0
        self.last_seq = 0
        self.last_urgent_seq = 0
        self.cursors: dict[str, int] = {}
        self.tally = Tally()
        self._unwritten = Tally()  # counted in memory, not yet in the counters table
        self.appended_total = 0
        self.commits_total = 0
        self._ratio = disk.page_ratio(0, 0, 0)
        self._expiry_checked_at = float("-inf")
        self._retired_through = 0
        self._unfinished = False
        self._spare_tried_at = float("-inf")
        self._disk_full = False  # since a write found the filesystem full, until the spare is back
        self.listeners: list[Callable[[int], None]] = []  # see Outbox.on_commit

    async def load(self) -> None:
        """Read the committed state; configured upstreams get a cursor row at 0."""
        db = self._db
        await db.begin()
        await db.executemany(sql.ADD_CURSOR, [(upstream,) for upstream in self.upstreams])
        await db.commit()
        self.bytes = (await db.one(sql.SELECT_TOTAL_BYTES))[0]
        last = await db.one(sql.SELECT_LAST_SEQ)
        self.last_seq = last[0] if last else 0
        self.last_urgent_seq = (await db.one(sql.SELECT_LAST_URGENT))[0] or 0
        self.cursors = dict(await db.fetch(sql.SELECT_CURSORS))
        self.tally = Tally.from_counter_rows(await db.fetch(sql.SELECT_COUNTERS))
        self._ratio = disk.page_ratio(await self._used_bytes(), self._fixed, self.bytes)
        self._spare.ensure()

    @property
    def _fixed(self) -> int:
        return _FIXED_PAGES * self.budget.page_size

    def housekeeping_due(self) -> bool:
        """Whether an otherwise empty commit would do something useful."""
        if self._unfinished:
            return True
        return self.bytes > 0 and _expiry_due(self._clock(), self._expiry_checked_at)

    async def commit(self, rows: list[Row], cursors: Mapping[str, int]) -> None:
        """Store rows and cursor moves in one transaction, pruning as configured.

        Raises:
            OutboxFullError: the filesystem is full; the reserve was given back, the WAL
                checkpointed and the batch tried once more within the file's present size
                (``drop_oldest`` deleting the oldest to make room), in vain.
            OutboxError: SQLite failed otherwise; the transaction was rolled back.
        """
        self._check_file()
        write = functools.partial(self._write, rows, cursors)
        try:
            await self._transaction(write)
        except OutboxFullError as exc:
            self._disk.failed(str(exc))
            # Room for the WAL: the reserve goes back to the filesystem, and a checkpoint lets
            # the next transaction write the WAL from its start, over space it already holds.
            # Until the reserve can be taken again the database may not grow (see _write).
            self._spare.release()
            self._disk_full = True
            with contextlib.suppress(OutboxError):  # the retry reports a lasting failure
                await self._db.checkpoint()
            await self._transaction(write)
        await self._after_commit()

    @property
    def problem(self) -> str | None:
        """What keeps the outbox from working normally now, None while nothing does."""
        if self.file_problem is not None:
            return self.file_problem
        if self._disk_full:
            return (
                f"the filesystem under outbox {self._config.path} is full ({self._config.on_full})"
            )
        return None

    def reject(self, rows: Sequence[Row], error: OutboxError) -> None:
        """Count a batch that could not be written as dropped (its appends return)."""
        reason = (
            DropReason.DISK_FULL_REJECTED
            if isinstance(error, OutboxFullError)
            else DropReason.WRITE_FAILED
        )
        tally = Tally()
        tally.dropped[reason] += len(rows)
        for upstream in self.upstreams:
            tally.unsent[upstream] += len(rows)
        self.tally.add(tally)
        self._unwritten.add(tally)

    def _check_file(self) -> None:
        problem = self._watch.problem()
        if problem is not None and self.file_problem is None:
            self._file.failed(problem)
        self.file_problem = problem

    async def _after_commit(self) -> None:
        """Keep the WAL in its share and the spare reserve in place."""
        wal = side_file(self._config.path, "-wal")
        with contextlib.suppress(OSError):
            if wal.stat().st_size > self.budget.wal_bytes:
                # A reader kept the automatic checkpoint from resetting the WAL; this one
                # waits for readers (busy_timeout) and lets journal_size_limit truncate it.
                with contextlib.suppress(OutboxError):
                    await self._db.checkpoint()
        now = time.monotonic()
        if not self._spare.present and now - self._spare_tried_at >= HOUSEKEEPING_S:
            self._spare_tried_at = now
            if self._spare.ensure() and self._disk_full:
                self._disk_full = False
                self._disk.succeeded()

    async def _transaction(self, work: Callable[[_Delta], Awaitable[None]]) -> None:
        """Run ``work`` in one write transaction, with the drop counters it produced."""
        delta = _Delta(
            self.bytes,
            self.last_seq,
            dict(self.cursors),
            self._expiry_checked_at,
            self._retired_through,
            self._ratio,
        )
        await self._db.begin()
        try:
            await work(delta)
            counters = Tally()
            counters.add(delta.tally)
            counters.add(self._unwritten)
            if counters:
                await self._db.executemany(sql.ADD_COUNTER, counters.counter_rows())
            await self._db.commit()
        except BaseException:
            await self._db.rollback()
            raise
        self._unwritten = Tally()
        self._apply(delta)

    def _apply(self, delta: _Delta) -> None:
        self.bytes, self.last_seq, self.cursors = delta.bytes, delta.last_seq, delta.cursors
        self.last_urgent_seq = max(self.last_urgent_seq, delta.last_urgent_seq)
        self._expiry_checked_at = delta.expiry_checked_at
        self._retired_through = delta.retired_through
        self._ratio, self._unfinished = delta.ratio, delta.unfinished
        self.tally.add(delta.tally)
        self.appended_total += delta.appended
        self.commits_total += 1
        for reason, rows, size in delta.pruned:
            emit = getattr(self._log, _PRUNE_LOG_LEVEL.get(reason, "info"))
            emit("outbox.pruned", reason=reason.value, rows=rows, bytes=size)
        if delta.rejected:
            self._refusing.failed("full_rejected", rejected=delta.rejected)
        elif delta.appended:
            self._refusing.succeeded()
        if delta.appended:
            for listener in tuple(self.listeners):
                listener(self.last_seq)

    async def _write(self, rows: list[Row], cursors: Mapping[str, int], delta: _Delta) -> None:
        if cursors:
            await self._db.executemany(sql.UPSERT_CURSOR, list(cursors.items()))
            for upstream, seq in cursors.items():
                delta.cursors[upstream] = max(seq, delta.cursors.get(upstream, 0))
        # Deletes come first so that the pages they free are reused by the insert.
        await self._retire_delivered(delta)
        await self._expire_if_due(delta)
        used = await self._used_bytes()
        db_bytes, incoming = self.budget.db_bytes, sum(len(row[4]) for row in rows)
        full, rejected_as = DropReason.FULL, DropReason.FULL_REJECTED
        if self._disk_full:
            # The filesystem is full: new pages come only from the free list, never from
            # growing the file (its checkpoint could not be written back).
            db_bytes = min(db_bytes, self._file_size() - _GROWTH_SLACK_PAGES * self._page)
            full, rejected_as = DropReason.DISK_FULL, DropReason.DISK_FULL_REJECTED
        if self._config.on_full is OnFull.DROP_OLDEST:
            need = disk.excess(used, incoming, db_bytes, delta.ratio)
            if need:
                await self._shed(need, full, delta)
        else:
            room = disk.room_for(used, db_bytes, delta.ratio)
            rows, rejected = sql.admit(rows, 0, room)
            if rejected:
                self._count_rejected(rejected, rejected_as, delta)
        await self._insert(rows, delta)
        used = await self._used_bytes()
        delta.ratio = disk.page_ratio(used, self._fixed, delta.bytes)
        if self._config.on_full is OnFull.DROP_OLDEST and used > db_bytes:
            # The estimate was low: the file grew past its share; bring the pages back under.
            await self._shed(disk.excess(used, 0, db_bytes, delta.ratio), full, delta)

    @property
    def _page(self) -> int:
        return self.budget.page_size

    def _file_size(self) -> int:
        try:
            return self._config.path.stat().st_size
        except OSError:
            return 0

    def _count_rejected(self, count: int, reason: DropReason, delta: _Delta) -> None:
        delta.tally.dropped[reason] += count
        for upstream in self.upstreams:
            delta.tally.unsent[upstream] += count
        delta.rejected += count

    async def _insert(self, rows: list[Row], delta: _Delta) -> None:
        if rows:
            await self._db.executemany(sql.INSERT, rows)
            delta.last_seq = (await self._db.one(sql.SELECT_LAST_INSERT))[0]
            # One insert takes consecutive seqs, ending at last_seq.
            first = delta.last_seq - len(rows) + 1
            urgent = [first + i for i, row in enumerate(rows) if row[3]]
            if urgent:
                delta.last_urgent_seq = urgent[-1]
            delta.bytes += sum(len(row[4]) for row in rows)
            delta.appended += len(rows)

    async def _used_bytes(self) -> int:
        pages, free = await self._db.one(sql.SELECT_PAGES)
        return int(pages - free) * self.budget.page_size

    async def _capped(self, through: int) -> tuple[int, bool]:
        """``through``, lowered so that one delete moves at most max_commit_bytes; lowered?"""
        cut = await self._db.one(sql.SELECT_BYTES_CUT, (self.budget.max_commit_bytes,))
        if cut is not None and cut[0] < through:
            return int(cut[0]), True
        return through, False

    async def _retire_delivered(self, delta: _Delta) -> None:
        """Delete what every configured upstream has received (not a drop)."""
        if self.upstreams:
            through = min(delta.cursors.get(upstream, 0) for upstream in self.upstreams)
            if through > delta.retired_through:
                through, capped = await self._capped(through)
                delta.unfinished |= capped
                await self._delete_through(through, None, delta)
                delta.retired_through = through

    async def _expire_if_due(self, delta: _Delta) -> None:
        """Delete envelopes older than max_age_s from the head of the queue.

        Walking from the head costs no index on ts and reads only what it deletes; an envelope
        stamped out of order (behind a younger one) expires once it reaches the head.
        """
        now = self._clock()
        if not _expiry_due(now, delta.expiry_checked_at):
            return
        young = await self._db.one(sql.SELECT_AGE_CUT, (now - self._config.max_age_s,))
        through = young[0] - 1 if young else delta.last_seq
        capped = False
        if through > 0:
            through, capped = await self._capped(through)
            await self._delete_through(through, DropReason.EXPIRED, delta)
        if capped:
            delta.unfinished = True  # checked only part way: the next commit goes on
        else:
            delta.expiry_checked_at = now

    async def _shed(self, amount: int, reason: DropReason, delta: _Delta) -> None:
        """Delete the oldest envelopes whose bodies add up to at least ``amount`` bytes."""
        amount = min(max(1, amount), self.budget.max_commit_bytes)
        cut = await self._db.one(sql.SELECT_BYTES_CUT, (amount,))
        await self._delete_through(cut[0] if cut else delta.last_seq, reason, delta)

    async def _delete_through(self, through: int, reason: DropReason | None, delta: _Delta) -> None:
        """Delete every envelope with seq <= ``through`` and count it (None: delivered)."""
        rows, size = await self._db.one(sql.SELECT_PREFIX, (through,))
        if not rows:
            return
        if reason is None:
            delta.tally.delivered += rows
        else:
            delta.tally.dropped[reason] += rows
            delta.pruned.append((reason, rows, size))
            for upstream in self.upstreams:
                cursor = delta.cursors.get(upstream, 0)
                if cursor < through:
                    unsent = await self._db.one(sql.COUNT_BETWEEN, (cursor, through))
                    delta.tally.unsent[upstream] += unsent[0]
        await self._db.execute(sql.DELETE_PREFIX, (through,))
        delta.bytes -= size


def _expiry_due(now: float, checked_at: float) -> bool:
    # A clock stepped backwards (NTP, RTC-less boot) must not suspend expiry until it catches up.
    return not 0 <= now - checked_at < HOUSEKEEPING_S
