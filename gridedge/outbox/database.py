"""One SQLite connection that speaks gridedge's errors: the only module that imports aiosqlite.

Every ``sqlite3.Error`` leaves here as :class:`~gridedge.errors.OutboxError` (a full disk as
:class:`~gridedge.errors.OutboxFullError`), with a hint to move a damaged file aside.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from gridedge.errors import OutboxError, OutboxFullError

BUSY_TIMEOUT_MS = 5000
DAMAGED_HINT = "; keep it with `gridedge outbox --move-aside` and start again"


@contextlib.contextmanager
def mapped(path: Path) -> Iterator[None]:
    """Translate SQLite errors into OutboxError (a full disk: OutboxFullError) here."""
    try:
        yield
    except sqlite3.Error as exc:
        name = getattr(exc, "sqlite_errorname", type(exc).__name__)
        code = getattr(exc, "sqlite_errorcode", -1) & 0xFF
        error = OutboxFullError if code == sqlite3.SQLITE_FULL else OutboxError
        hint = DAMAGED_HINT if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) else ""
        raise error(f"outbox {path}: {name}: {exc}{hint}") from exc


class Database:
    """One SQLite connection (its own thread, through aiosqlite) speaking gridedge's errors."""

    def __init__(self, connection: aiosqlite.Connection, path: Path) -> None:
        self._connection = connection
        self.path = path

    @classmethod
    async def connect(cls, path: Path, *, read_only: bool = False) -> Database:
        """Open ``path`` (read-only through a URI when asked), with a busy timeout."""
        with mapped(path):
            if read_only:
                connection = await aiosqlite.connect(
                    read_only_uri(path), uri=True, isolation_level=None
                )
            else:
                connection = await aiosqlite.connect(path, isolation_level=None)
        database = cls(connection, path)
        try:
            await database.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await database.execute("PRAGMA mmap_size = 0")
        except BaseException:
            await database.close()
            raise
        return database

    async def fetch(self, query: str, params: Sequence[object] = ()) -> list[Any]:
        """All rows of a query."""
        with mapped(self.path):
            return list(await self._connection.execute_fetchall(query, params))

    async def one(self, query: str, params: Sequence[object] = ()) -> Any:
        """The first row of a query, or None."""
        rows = await self.fetch(query, params)
        return rows[0] if rows else None

    async def execute(self, query: str, params: Sequence[object] = ()) -> None:
        """Run one statement."""
        with mapped(self.path):
            await self._connection.execute(query, params)

    async def executemany(self, query: str, rows: Sequence[Sequence[object]]) -> None:
        """Run one statement per row."""
        with mapped(self.path):
            await self._connection.executemany(query, rows)

    async def script(self, text: str) -> None:
        """Run several statements (the script holds its own transaction)."""
        with mapped(self.path):
            await self._connection.executescript(text)

    async def begin(self) -> None:
        """Start a write transaction now (``BEGIN IMMEDIATE``)."""
        await self.execute("BEGIN IMMEDIATE")

    async def commit(self) -> None:
        """Commit the transaction."""
        with mapped(self.path):
            await self._connection.commit()

    async def rollback(self) -> None:
        """Roll back; a no-op if SQLite already did (after SQLITE_FULL or an I/O error)."""
        with contextlib.suppress(sqlite3.Error):
            await self._connection.rollback()

    async def checkpoint(self) -> None:
        """Copy the WAL into the database and restart it from its beginning."""
        await self.fetch("PRAGMA wal_checkpoint(RESTART)")

    async def close(self) -> None:
        """Close the connection (its thread ends)."""
        with contextlib.suppress(sqlite3.Error):
            await self._connection.close()


def read_only_uri(path: Path) -> str:
    """A URI that opens ``path`` read-only."""
    return path.resolve().as_uri() + "?mode=ro"
