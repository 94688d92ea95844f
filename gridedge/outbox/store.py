"""Opening an outbox: the lock, the file, its schema and the writer.

The SQLite connections are :class:`~gridedge.outbox.database.Database` (the only aiosqlite
importer, where every ``sqlite3.Error`` becomes an :class:`OutboxError`);
:func:`open_outbox` takes the owner lock, opens and configures the file, checks it after an
unclean stop, creates or migrates its schema and runs the group-commit writer of
:mod:`gridedge.outbox.queue` over the store of :mod:`gridedge.outbox.writer`.

Memory mapping is off (``mmap_size = 0``): a mapped database file that shrinks, vanishes or
sits on a failing filesystem turns a read into SIGBUS instead of an error. The WAL index
(``-shm``) is mapped by SQLite in WAL mode; SQLite writes every page of it before mapping it,
so a full disk is an error there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gridedge.errors import OutboxError
from gridedge.log import get_logger
from gridedge.outbox import quarantine
from gridedge.outbox import schema as sql
from gridedge.outbox.budget import DiskBudget
from gridedge.outbox.database import (
    BUSY_TIMEOUT_MS,
    DAMAGED_HINT,
    Database,
    mapped,
    read_only_uri,
)
from gridedge.outbox.files import FileWatch, OwnerLock, Spare, disk_bytes, prepare_path
from gridedge.outbox.handle import Outbox
from gridedge.outbox.queue import CommitQueue, QueueLimits
from gridedge.outbox.schema import DropReason, OutboxStats
from gridedge.outbox.settings import OutboxConfig
from gridedge.outbox.writer import HOUSEKEEPING_S, SqliteStore, StoreParts

__all__ = ["Database", "DropReason", "Outbox", "OutboxStats", "open_outbox", "read_stats"]

_FLUSH_TIMEOUT_S = 5.0
_EAGER_COMMIT_BYTES = 64 * 1024  # ~16 pages: a queue this big commits without waiting
_EPOCH_BYTES = 8


@asynccontextmanager
async def open_outbox(
    config: OutboxConfig,
    *,
    upstreams: Sequence[str] = (),
    clock: Callable[[], float] = time.time,
    max_page_count: int | None = None,
    flush_timeout_s: float = _FLUSH_TIMEOUT_S,
) -> AsyncIterator[Outbox]:
    """Own the outbox file (create it if needed) and run its writer until the block exits.

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
        OutboxError: another process owns the outbox, or the file cannot be opened or
            created, fails its integrity check, or is not a gridedge outbox.
    """
    path = config.path
    log = get_logger("outbox")
    async with contextlib.AsyncExitStack() as stack:
        # A WAL file left behind means the last writer did not close cleanly (or a reader
        # left it): only then is the file checked, since that reads all of it.
        unclean = prepare_path(path)
        lock = OwnerLock(path)
        lock.acquire()
        stack.callback(lock.release)
        db = await Database.connect(path)
        stack.push_async_callback(db.close)
        budget, pragmas = await _configure(db, config, max_page_count)
        epoch = await _check_and_create(db, path, check=unclean, log=log)
        await db.execute(quarantine.SCHEMA)
        reader = await Database.connect(path, read_only=True)
        stack.push_async_callback(reader.close)
        parts = StoreParts(db, budget, Spare(path, budget.spare_bytes), FileWatch(path), epoch)
        store = SqliteStore(config, parts, upstreams, clock, log)
        await store.load()
        limits = QueueLimits(
            max_batch=config.max_batch,
            max_pending=config.max_pending,
            commit_interval_s=config.commit_interval_s,
            eager_bytes=min(_EAGER_COMMIT_BYTES, budget.max_commit_bytes),
            idle_wakeup_s=HOUSEKEEPING_S,
            max_batch_bytes=budget.max_commit_bytes,
        )
        queue = CommitQueue(store, limits, log, str(path))
        writer = asyncio.create_task(queue.run(), name="gridedge-outbox-writer")
        stack.push_async_callback(queue.stop, writer, flush_timeout_s)
        log.info(
            "outbox.opened", path=str(path), bytes=store.bytes, last_seq=store.last_seq, epoch=epoch
        )
        yield Outbox(store, queue, reader, path, pragmas)


def read_stats(path: Path) -> OutboxStats:
    """Statistics of an outbox file, opened read-only: safe while a daemon writes to it.

    Synchronous, for the command line. Unlike :meth:`Outbox.stats` it sums the stored bytes,
    which reads the whole file.

    Raises:
        OutboxError: the file does not exist, cannot be read or is not a gridedge outbox.
    """
    if not path.is_file():
        raise OutboxError(f"no outbox at {path}")
    with mapped(path):
        db = sqlite3.connect(read_only_uri(path), uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            db.execute("PRAGMA mmap_size = 0")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != sql.SCHEMA_VERSION:
                raise OutboxError(f"{path} is not a gridedge outbox of this version ({version})")
            stats = sql.build_stats(
                db.execute(sql.SELECT_SUMMARY).fetchone(),
                db.execute(sql.SELECT_UPSTREAMS).fetchall(),
                db.execute(sql.SELECT_COUNTERS).fetchall(),
                db.execute(sql.SELECT_TOTAL_BYTES).fetchone()[0],
                disk_bytes(path),
                db.execute(sql.SELECT_EPOCH).fetchone()[0],
            )
            return dataclasses.replace(stats, quarantined=_read_quarantine_counts(db))
        finally:
            db.close()


def _read_quarantine_counts(db: sqlite3.Connection) -> dict[str, dict[str, int]]:
    try:
        return quarantine.counts_by_upstream(db.execute(quarantine.SELECT_COUNTS).fetchall())
    except sqlite3.OperationalError as exc:
        if quarantine.is_missing_table(exc):
            return {}  # a file no daemon of this version has opened yet
        raise


async def _configure(
    db: Database, config: OutboxConfig, max_page_count: int | None
) -> tuple[DiskBudget, dict[str, object]]:
    """Apply the connection settings; the disk budget and the settings as SQLite reports them."""
    mode = (await db.one("PRAGMA journal_mode = WAL"))[0]
    if str(mode).lower() != "wal":
        raise OutboxError(
            f"cannot open outbox {config.path}: SQLite cannot use WAL mode there (got {mode});"
            " put it on a local filesystem"
        )
    budget = DiskBudget.of(config.max_bytes, int((await db.one("PRAGMA page_size"))[0]))
    await db.execute(f"PRAGMA synchronous = {config.synchronous.value.upper()}")
    await db.execute(f"PRAGMA journal_size_limit = {budget.wal_bytes}")
    await db.execute(f"PRAGMA wal_autocheckpoint = {budget.checkpoint_pages}")
    if max_page_count is not None:
        await db.execute(f"PRAGMA max_page_count = {int(max_page_count)}")
    names = (
        "journal_mode",
        "synchronous",
        "journal_size_limit",
        "wal_autocheckpoint",
        "mmap_size",
        "busy_timeout",
        "max_page_count",
    )
    return budget, {name: (await db.one(f"PRAGMA {name}"))[0] for name in names}


async def _check_and_create(db: Database, path: Path, *, check: bool, log: Any) -> str:
    """Verify the file after a possible crash, create or migrate its schema; its epoch."""
    if check:
        started = time.monotonic()
        problems = [row[0] for row in await db.fetch("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise OutboxError(f"outbox {path} is damaged: {problems[0]}{DAMAGED_HINT}")
        log.info("outbox.checked", path=str(path), seconds=round(time.monotonic() - started, 3))
    version = (await db.one("PRAGMA user_version"))[0]
    if version > sql.SCHEMA_VERSION:
        raise OutboxError(f"outbox {path} was written by a newer gridedge (schema {version})")
    if version == 0:
        if (await db.one("SELECT COUNT(*) FROM sqlite_master"))[0]:
            raise OutboxError(f"{path} is an SQLite database but not a gridedge outbox")
        await db.script(sql.schema_script(sql.SCHEMA, secrets.token_hex(_EPOCH_BYTES)))
    elif version == 1:
        await db.script(sql.schema_script(sql.MIGRATE_FROM_1, secrets.token_hex(_EPOCH_BYTES)))
        log.info("outbox.migrated", path=str(path), schema=sql.SCHEMA_VERSION)
    return str((await db.one(sql.SELECT_EPOCH))[0])
