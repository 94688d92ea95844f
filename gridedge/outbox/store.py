"""Durable store-and-forward queue in SQLite (WAL): the only module that talks to SQLite.

Appends are group-committed by the writer of :mod:`gridedge.outbox.queue`; this module is its
store. Every delete removes a prefix of the queue, in the same transaction as the inserts and the
drop counters, so no drop escapes the counts. In each transaction, envelopes every upstream has
received go first (not a drop); then, at most once per few seconds, envelopes older than
``max_age_s`` from the head of the queue (``expired``); then the new envelopes are inserted, and
``drop_oldest`` cuts the oldest down to 90% of ``max_bytes`` once the total goes over it
(``full``), while ``drop_newest`` stores only the new envelopes that still fit
(``full_rejected``). Reads use a second, read-only connection, so they never see a transaction
that has not committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiosqlite

from gridedge.errors import OutboxError
from gridedge.log import FailureStreak, get_logger
from gridedge.model import Envelope
from gridedge.outbox import quarantine
from gridedge.outbox import schema as sql
from gridedge.outbox.queue import CommitQueue, QueueLimits
from gridedge.outbox.schema import DropReason, OutboxStats, Row, Tally
from gridedge.outbox.settings import OnFull, OutboxConfig

__all__ = ["DropReason", "Outbox", "OutboxStats", "open_outbox", "read_stats"]

_FLUSH_TIMEOUT_S = 5.0
_HOUSEKEEPING_S = 5.0  # expiry cadence (clock seconds) and idle wake-up of the writer
_LOW_WATER = 0.9  # drop_oldest prunes to this share of max_bytes, not at every batch
_DISK_FULL_SHED = 0.1  # share of the stored bytes deleted when the disk is full
_EAGER_COMMIT_BYTES = 64 * 1024  # ~16 pages: a queue this big commits without waiting
_BUSY_TIMEOUT_MS = 5000
# Expiry runs every few seconds in a steady state without upstreams: keep it quiet.
_PRUNE_LOG_LEVEL = {
    DropReason.EXPIRED: "debug",
    DropReason.FULL: "info",
    DropReason.DISK_FULL: "warning",
}
_WAL_LIMIT_BYTES = 32 * 1024 * 1024  # the WAL is truncated back to this after checkpoints


@dataclass(slots=True)
class _Delta:
    """The store's state as one transaction leaves it; applied only once it commits."""

    bytes: int
    last_seq: int
    cursors: dict[str, int]
    expiry_checked_at: float
    retired_through: int
    tally: Tally = field(default_factory=Tally)
    appended: int = 0
    rejected: int = 0
    pruned: list[tuple[DropReason, int, int]] = field(default_factory=list)  # reason, rows, bytes


class _SqliteStore:
    """The write side: transactions, pruning and the committed state they leave in memory."""

    def __init__(
        self,
        config: OutboxConfig,
        db: aiosqlite.Connection,
        upstreams: Sequence[str],
        clock: Callable[[], float],
        log: Any,
    ) -> None:
        self._config = config
        self._db = db
        self.upstreams = tuple(dict.fromkeys(upstreams))
        self._clock = clock
        self._log = log
        # Under drop_newest every batch is refused while full: say so once, not per commit.
        self._refusing = FailureStreak(log, "outbox.full", path=str(config.path))
        self.bytes = 0
        self.last_seq = 0
        self.cursors: dict[str, int] = {}
        self.tally = Tally()
        self.appended_total = 0
        self.commits_total = 0
        self._expiry_checked_at = float("-inf")
        self._retired_through = 0
        self.listeners: list[Callable[[int], None]] = []  # see Outbox.on_commit

    async def load(self) -> None:
        """Read the committed state; configured upstreams get a cursor row at 0."""
        db = self._db
        await db.execute("BEGIN IMMEDIATE")
        await db.executemany(sql.ADD_CURSOR, [(upstream,) for upstream in self.upstreams])
        await db.commit()
        self.bytes = (await _one(db, sql.SELECT_TOTAL_BYTES))[0]
        last = await _one(db, sql.SELECT_LAST_SEQ)
        self.last_seq = last[0] if last else 0
        self.cursors = dict(await _fetch(db, sql.SELECT_CURSORS))
        self.tally = Tally.from_counter_rows(await _fetch(db, sql.SELECT_COUNTERS))

    def housekeeping_due(self) -> bool:
        """Whether stored envelopes are due for an expiry check."""
        return self.bytes > 0 and _expiry_due(self._clock(), self._expiry_checked_at)

    async def commit(self, rows: list[Row], cursors: Mapping[str, int]) -> None:
        """Store rows and cursor moves in one transaction, pruning as configured.

        Raises:
            OutboxError: SQLite failed; the transaction was rolled back. On a full disk under
                ``drop_oldest`` the oldest tenth has been deleted first, so a retry can fit.
        """
        try:
            await self._transaction(functools.partial(self._write, rows, cursors))
        except sqlite3.Error as exc:
            name = getattr(exc, "sqlite_errorname", type(exc).__name__)
            full = getattr(exc, "sqlite_errorcode", -1) & 0xFF == sqlite3.SQLITE_FULL
            if full and self._config.on_full is OnFull.DROP_OLDEST:
                with contextlib.suppress(sqlite3.Error):  # the retry reports a lasting failure
                    await self._transaction(self._shed_for_disk)
            raise OutboxError(f"cannot write outbox {self._config.path}: {name}: {exc}") from exc

    async def _transaction(self, work: Callable[[_Delta], Awaitable[None]]) -> None:
        """Run ``work`` in one write transaction, with the drop counters it produced."""
        delta = _Delta(
            self.bytes,
            self.last_seq,
            dict(self.cursors),
            self._expiry_checked_at,
            self._retired_through,
        )
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            await work(delta)
            if delta.tally:
                await self._db.executemany(sql.ADD_COUNTER, delta.tally.counter_rows())
            await self._db.commit()
        except BaseException:
            # After SQLITE_FULL or an I/O error SQLite may have rolled back already; rollback()
            # is then a no-op.
            with contextlib.suppress(sqlite3.Error):
                await self._db.rollback()
            raise
        self._apply(delta)

    def _apply(self, delta: _Delta) -> None:
        self.bytes, self.last_seq, self.cursors = delta.bytes, delta.last_seq, delta.cursors
        self._expiry_checked_at = delta.expiry_checked_at
        self._retired_through = delta.retired_through
        self.tally.add(delta.tally)
        self.appended_total += delta.appended
        self.commits_total += 1
        for reason, rows, size in delta.pruned:
            emit = getattr(self._log, _PRUNE_LOG_LEVEL[reason])
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
        # Deletes come first so that the space they free is there for the insert.
        await self._retire_delivered(delta)
        await self._expire_if_due(delta)
        await self._insert(rows, delta)
        max_bytes = self._config.max_bytes
        if delta.bytes > max_bytes and self._config.on_full is OnFull.DROP_OLDEST:
            await self._shed(delta.bytes - int(max_bytes * _LOW_WATER), DropReason.FULL, delta)

    async def _insert(self, rows: list[Row], delta: _Delta) -> None:
        if self._config.on_full is OnFull.DROP_NEWEST:
            rows, rejected = sql.admit(rows, delta.bytes, self._config.max_bytes)
            if rejected:
                delta.tally.dropped[DropReason.FULL_REJECTED] += rejected
                delta.rejected += rejected
        if rows:
            await self._db.executemany(sql.INSERT, rows)
            delta.last_seq = (await _one(self._db, sql.SELECT_LAST_INSERT))[0]
            delta.bytes += sum(len(row[4]) for row in rows)
            delta.appended += len(rows)

    async def _retire_delivered(self, delta: _Delta) -> None:
        """Delete what every configured upstream has received (not a drop)."""
        if self.upstreams:
            through = min(delta.cursors.get(upstream, 0) for upstream in self.upstreams)
            if through > delta.retired_through:
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
        delta.expiry_checked_at = now
        young = await _one(self._db, sql.SELECT_AGE_CUT, (now - self._config.max_age_s,))
        through = young[0] - 1 if young else delta.last_seq
        if through > 0:
            await self._delete_through(through, DropReason.EXPIRED, delta)

    async def _shed_for_disk(self, delta: _Delta) -> None:
        await self._shed(max(1, int(delta.bytes * _DISK_FULL_SHED)), DropReason.DISK_FULL, delta)

    async def _shed(self, amount: int, reason: DropReason, delta: _Delta) -> None:
        """Delete the oldest envelopes whose bodies add up to at least ``amount`` bytes."""
        cut = await _one(self._db, sql.SELECT_BYTES_CUT, (amount,))
        await self._delete_through(cut[0] if cut else delta.last_seq, reason, delta)

    async def _delete_through(self, through: int, reason: DropReason | None, delta: _Delta) -> None:
        """Delete every envelope with seq <= ``through`` and count it (None: delivered)."""
        rows, size = await _one(self._db, sql.SELECT_PREFIX, (through,))
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
                    unsent = await _one(self._db, sql.COUNT_BETWEEN, (cursor, through))
                    delta.tally.unsent[upstream] += unsent[0]
        await self._db.execute(sql.DELETE_PREFIX, (through,))
        delta.bytes -= size


class Outbox:
    """An open outbox; get one from :func:`open_outbox`.

    Attributes:
        pragmas: the SQLite settings in effect, as SQLite reports them after opening.
    """

    def __init__(
        self,
        store: _SqliteStore,
        queue: CommitQueue,
        reader: aiosqlite.Connection,
        path: Path,
        pragmas: Mapping[str, object],
    ) -> None:
        self._store = store
        self._queue = queue
        self._reader = reader
        self._path = path
        self.pragmas = pragmas

    @property
    def healthy(self) -> bool:
        """Whether the last commit succeeded."""
        return self._queue.healthy

    @property
    def last_error(self) -> str | None:
        """Why the last commit failed, None while healthy."""
        return self._queue.last_error

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
        """Store envelopes; returns once they are committed (durable as configured).

        One call is stored atomically and its envelopes take consecutive seqs, in order. Under
        ``drop_newest`` envelopes that do not fit are counted and not stored. When
        ``max_pending`` envelopes are waiting (the disk is slow or failing) this waits for room;
        bound it with ``asyncio.timeout``. A call cancelled after queueing may still commit.

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
        return await self._read_envelopes(sql.SELECT_AFTER, cursor, limit)

    async def read_urgent_after(self, cursor: int, limit: int) -> list[Envelope]:
        """Up to ``limit`` committed urgent envelopes with seq > ``cursor``, in seq order."""
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
        with _mapped(f"cannot read outbox {self._path}"):
            summary = await _one(self._reader, sql.SELECT_SUMMARY)
            upstreams = await _fetch(self._reader, sql.SELECT_UPSTREAMS)
            counters = await _fetch(self._reader, sql.SELECT_COUNTERS)
        file_bytes = _file_bytes(self._path)
        stats = sql.build_stats(summary, upstreams, counters, self._store.bytes, file_bytes)
        return replace(stats, quarantined=await self._quarantine_counts())

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
        with _mapped(f"cannot write the quarantine of {self._path}"):
            async with aiosqlite.connect(self._path, isolation_level=None) as db:
                await db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                await db.execute("BEGIN IMMEDIATE")
                before = db.total_changes
                for batch in quarantine.batches(seqs):
                    params = (upstream, reason, time.time(), *batch)
                    await db.execute(quarantine.insert_statement(len(batch)), params)
                added = db.total_changes - before
                await db.commit()
        return added

    async def quarantined(self, upstream: str) -> dict[str, int]:
        """Envelopes set aside for ``upstream`` over the file's life, by reason."""
        return (await self._quarantine_counts()).get(upstream, {})

    async def _quarantine_counts(self) -> dict[str, dict[str, int]]:
        self._queue.check_open()
        with _mapped(f"cannot read outbox {self._path}"):
            rows = await _fetch(self._reader, quarantine.SELECT_COUNTS)
        return quarantine.counts_by_upstream(rows)

    async def _read_envelopes(self, query: str, cursor: int, limit: int) -> list[Envelope]:
        self._queue.check_open()
        with _mapped(f"cannot read outbox {self._path}"):
            rows = await _fetch(self._reader, query, (cursor, limit))
        return [sql.decode(*row) for row in rows]


@asynccontextmanager
async def open_outbox(
    config: OutboxConfig,
    *,
    upstreams: Sequence[str] = (),
    clock: Callable[[], float] = time.time,
    max_page_count: int | None = None,
    flush_timeout_s: float = _FLUSH_TIMEOUT_S,
) -> AsyncIterator[Outbox]:
    """Open (or create) the outbox file and run its writer until the block exits.

    On exit, queued appends are committed for at most ``flush_timeout_s``; whatever is still
    queued then fails with :class:`OutboxError`. Cleanup runs even when cancelled.

    Args:
        config: where the file is and how it is bounded and synced.
        upstreams: the forwarders' names; envelopes all of them received are deleted.
        clock: wall-clock seconds, compared with envelope ``ts`` for ``max_age_s``.
        max_page_count: cap the database at this many pages (SQLite ``max_page_count``); a
            test hook that makes a real "database or disk is full" error.
        flush_timeout_s: how long closing waits for queued appends to commit.

    Raises:
        OutboxError: the file cannot be opened or created, fails its integrity check, or is
            not a gridedge outbox.
    """
    path = config.path
    log = get_logger("outbox")
    async with contextlib.AsyncExitStack() as stack:
        with _mapped(f"cannot open outbox {path}"):
            # A WAL file left behind means the last writer did not close cleanly (or a reader
            # left it): only then is the file checked, since that reads all of it.
            unclean = _prepare_path(path)
            db = await aiosqlite.connect(path, isolation_level=None)
            stack.push_async_callback(db.close)
            pragmas = await _configure(db, config, max_page_count)
            await _check_and_create(db, path, check=unclean, log=log)
            await db.execute(quarantine.SCHEMA)
            reader = await aiosqlite.connect(_read_only_uri(path), uri=True, isolation_level=None)
            stack.push_async_callback(reader.close)
            await reader.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            store = _SqliteStore(config, db, upstreams, clock, log)
            await store.load()
        limits = QueueLimits(
            max_batch=config.max_batch,
            max_pending=config.max_pending,
            commit_interval_s=config.commit_interval_s,
            eager_bytes=_EAGER_COMMIT_BYTES,
            idle_wakeup_s=_HOUSEKEEPING_S,
        )
        queue = CommitQueue(store, limits, log, str(path))
        writer = asyncio.create_task(queue.run(), name="gridedge-outbox-writer")
        stack.push_async_callback(queue.stop, writer, flush_timeout_s)
        log.info("outbox.opened", path=str(path), bytes=store.bytes, last_seq=store.last_seq)
        yield Outbox(store, queue, reader, path, pragmas)


def read_stats(path: Path) -> OutboxStats:
    """Statistics of an outbox file, opened read-only: safe while a daemon writes to it.

    Synchronous, for the command line. Unlike :meth:`Outbox.stats` it sums the stored bytes,
    which reads the whole file.

    Raises:
        OutboxError: the file does not exist or is not a gridedge outbox.
    """
    if not path.is_file():
        raise OutboxError(f"no outbox at {path}")
    with _mapped(f"cannot read outbox {path}"):
        db = sqlite3.connect(_read_only_uri(path), uri=True, timeout=_BUSY_TIMEOUT_MS / 1000)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != sql.SCHEMA_VERSION:
                raise OutboxError(f"{path} is not a gridedge outbox (schema {version})")
            stats = sql.build_stats(
                db.execute(sql.SELECT_SUMMARY).fetchone(),
                db.execute(sql.SELECT_UPSTREAMS).fetchall(),
                db.execute(sql.SELECT_COUNTERS).fetchall(),
                db.execute(sql.SELECT_TOTAL_BYTES).fetchone()[0],
                _file_bytes(path),
            )
            return replace(stats, quarantined=_read_quarantine_counts(db))
        finally:
            db.close()


def _read_quarantine_counts(db: sqlite3.Connection) -> dict[str, dict[str, int]]:
    try:
        return quarantine.counts_by_upstream(db.execute(quarantine.SELECT_COUNTS).fetchall())
    except sqlite3.OperationalError as exc:
        if quarantine.is_missing_table(exc):
            return {}  # a file no daemon of this version has opened yet
        raise


def _file_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return sum(p.stat().st_size for p in (path, wal) if p.exists())


def _expiry_due(now: float, checked_at: float) -> bool:
    # A clock stepped backwards (NTP, RTC-less boot) must not suspend expiry until it catches up.
    return not 0 <= now - checked_at < _HOUSEKEEPING_S


def _prepare_path(path: Path) -> bool:
    """Create the parent directory; whether a WAL file was left behind."""
    if path.is_dir():
        raise OutboxError(f"cannot open outbox {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
    return path.with_name(path.name + "-wal").exists()


async def _configure(
    db: aiosqlite.Connection, config: OutboxConfig, max_page_count: int | None
) -> dict[str, object]:
    """Apply the connection settings and return them as SQLite reports them."""
    await db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    mode = (await _one(db, "PRAGMA journal_mode = WAL"))[0]
    if str(mode).lower() != "wal":
        raise OutboxError(
            f"cannot open outbox {config.path}: SQLite cannot use WAL mode there (got {mode});"
            " put it on a local filesystem"
        )
    await db.execute(f"PRAGMA synchronous = {config.synchronous.value.upper()}")
    await db.execute(f"PRAGMA journal_size_limit = {_WAL_LIMIT_BYTES}")
    if max_page_count is not None:
        await db.execute(f"PRAGMA max_page_count = {int(max_page_count)}")
    names = ("journal_mode", "synchronous", "journal_size_limit", "busy_timeout", "max_page_count")
    return {name: (await _one(db, f"PRAGMA {name}"))[0] for name in names}


async def _check_and_create(db: aiosqlite.Connection, path: Path, *, check: bool, log: Any) -> None:
    """Verify the file after a possible crash and create the schema in a new one."""
    if check:
        started = time.monotonic()
        problems = [row[0] for row in await _fetch(db, "PRAGMA quick_check")]
        if problems != ["ok"]:
            raise OutboxError(f"outbox {path} is damaged: {problems[0]}")
        log.info("outbox.checked", path=str(path), seconds=round(time.monotonic() - started, 3))
    version = (await _one(db, "PRAGMA user_version"))[0]
    if version > sql.SCHEMA_VERSION:
        raise OutboxError(f"outbox {path} was written by a newer gridedge (schema {version})")
    if version == 0:
        if (await _one(db, "SELECT COUNT(*) FROM sqlite_master"))[0]:
            raise OutboxError(f"{path} is an SQLite database but not a gridedge outbox")
        await db.executescript(sql.SCHEMA)


def _read_only_uri(path: Path) -> str:
    return path.resolve().as_uri() + "?mode=ro"


async def _fetch(db: aiosqlite.Connection, query: str, params: Sequence[object] = ()) -> list[Any]:
    return list(await db.execute_fetchall(query, params))


async def _one(db: aiosqlite.Connection, query: str, params: Sequence[object] = ()) -> Any:
    """The first row of a query, or None."""
    rows = await _fetch(db, query, params)
    return rows[0] if rows else None


@contextlib.contextmanager
def _mapped(context: str) -> Iterator[None]:
    """Translate SQLite errors into OutboxError at this boundary."""
    try:
        yield
    except sqlite3.Error as exc:
        raise OutboxError(f"{context}: {exc}") from exc
