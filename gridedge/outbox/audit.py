"""What an outbox file committed over its life, read from outside once no daemon owns it.

seq is AUTOINCREMENT: SQLite keeps the highest seq ever assigned in ``sqlite_sequence`` in the
same transaction as the rows, so the file committed exactly ``1..highest_seq``, with no gap (a
rolled-back append assigns nothing). Each of those seqs was delivered everywhere and deleted,
is still stored, or was dropped by the size/age policy and counted. Used by the soak bench to
hold the consumer's receipts against every reading the outbox ever accepted.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from gridedge.errors import OutboxError
from gridedge.outbox import schema as sql
from gridedge.outbox.database import BUSY_TIMEOUT_MS

__all__ = ["FileLedger", "read_ledger"]


@dataclass(frozen=True, slots=True)
class FileLedger:
    """One outbox file's account of its seqs.

    Attributes:
        epoch: the file's epoch.
        highest_seq: the highest seq ever committed (0 when none was).
        stored: the seqs still stored, ascending.
        cursors: upstream -> the last seq it acknowledged, as saved in the file.
        dropped_unsent: upstream -> envelopes the size/age policy deleted before it had them.
        integrity: the first line of ``PRAGMA integrity_check`` (``ok`` for a sound file).
    """

    epoch: str
    highest_seq: int
    stored: tuple[int, ...]
    cursors: dict[str, int]
    dropped_unsent: dict[str, int]
    integrity: str


def read_ledger(path: Path) -> FileLedger:
    """Read ``path``'s ledger and check its integrity (this recovers its WAL, if any).

    The caller makes sure no daemon writes to the file meanwhile (stopped, or moved aside).

    Raises:
        OutboxError: the file does not exist or is not a gridedge outbox.
    """
    if not path.is_file():
        raise OutboxError(f"no outbox at {path}")
    try:
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
    try:
        db.execute("PRAGMA mmap_size = 0")
        integrity = str(db.execute("PRAGMA integrity_check").fetchone()[0])
        epoch = str(db.execute(sql.SELECT_EPOCH).fetchone()[0])
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'envelopes'").fetchone()
        stored = tuple(int(r[0]) for r in db.execute("SELECT seq FROM envelopes ORDER BY seq"))
        cursors = {str(u): int(s) for u, s, _ in db.execute(sql.SELECT_UPSTREAMS).fetchall()}
        tally = sql.Tally.from_counter_rows(db.execute(sql.SELECT_COUNTERS).fetchall())
    except (sqlite3.Error, TypeError) as exc:
        raise OutboxError(f"{path} is not a readable gridedge outbox: {exc}") from exc
    finally:
        db.close()
    return FileLedger(
        epoch=epoch,
        highest_seq=int(row[0]) if row else 0,
        stored=stored,
        cursors=cursors,
        dropped_unsent=dict(tally.unsent),
        integrity=integrity,
    )
