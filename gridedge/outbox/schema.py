"""The outbox's SQL text and the pure values around it: schema, row codec, drop tallies, stats.

Nothing here does I/O; :mod:`gridedge.outbox.store` runs these statements through aiosqlite.

Every delete in the outbox removes a *prefix* of the queue (all envelopes up to some seq), and
inserts take consecutive seqs, so the stored seqs always form one contiguous range. That is what
lets statistics use ``MIN(seq)``/``MAX(seq)`` instead of counting rows.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from gridedge.model import Envelope, Kind

SCHEMA_VERSION = 2
"""Stored in ``PRAGMA user_version``; bump it with a migration when the schema changes."""

# The epoch names this outbox file: drawn at random when the file is created and carried in
# every forwarded envelope. seq restarts at 1 in a new file; (gateway, epoch, seq) does not repeat.
_META = "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"

SCHEMA = f"""
CREATE TABLE envelopes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    device TEXT NOT NULL,
    ts REAL NOT NULL,
    urgent INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX envelopes_urgent ON envelopes (seq) WHERE urgent = 1;
CREATE TABLE cursors (upstream TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
{_META}
"""
MIGRATE_FROM_1 = _META


def schema_script(tables: str, epoch: str) -> str:
    """One transaction: ``tables``, the file's epoch and the schema version.

    Raises:
        ValueError: ``epoch`` is not lowercase hex (it is written into the SQL text).
    """
    if not epoch or any(c not in "0123456789abcdef" for c in epoch):
        raise ValueError(f"epoch must be lowercase hex, got {epoch!r}")
    return (
        f"BEGIN IMMEDIATE;{tables}"
        f"INSERT INTO meta (name, value) VALUES ('epoch', '{epoch}');"
        f"PRAGMA user_version = {SCHEMA_VERSION};COMMIT;"
    )


SELECT_EPOCH = "SELECT value FROM meta WHERE name = 'epoch'"
SELECT_PAGES = "SELECT page_count, freelist_count FROM pragma_page_count, pragma_freelist_count"
# AUTOINCREMENT (not a plain rowid) so a seq is never reused within a file, even after the
# newest rows were pruned or the table emptied: consumers deduplicate by (gateway, epoch, seq).

INSERT = "INSERT INTO envelopes (kind, device, ts, urgent, body) VALUES (?, ?, ?, ?, ?)"
SELECT_AFTER = (
    "SELECT seq, kind, device, ts, urgent, body FROM envelopes WHERE seq > ? ORDER BY seq LIMIT ?"
)
SELECT_URGENT_AFTER = (
    "SELECT seq, kind, device, ts, urgent, body FROM envelopes"
    " WHERE urgent = 1 AND seq > ? ORDER BY seq LIMIT ?"
)
SELECT_LAST_SEQ = "SELECT seq FROM sqlite_sequence WHERE name = 'envelopes'"
SELECT_LAST_INSERT = "SELECT last_insert_rowid()"
SELECT_LAST_URGENT = "SELECT MAX(seq) FROM envelopes WHERE urgent = 1"
SELECT_TOTAL_BYTES = "SELECT COALESCE(SUM(length(body)), 0) FROM envelopes"
SELECT_RANGE = "SELECT MIN(seq), MAX(seq) FROM envelopes"
SELECT_TS_AFTER = "SELECT ts FROM envelopes WHERE seq > ? ORDER BY seq LIMIT 1"
SELECT_NEWEST_TS = "SELECT ts FROM envelopes ORDER BY seq DESC LIMIT 1"
SELECT_PREFIX = "SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM envelopes WHERE seq <= ?"
COUNT_BETWEEN = "SELECT COUNT(*) FROM envelopes WHERE seq > ? AND seq <= ?"
DELETE_PREFIX = "DELETE FROM envelopes WHERE seq <= ?"
# The first seq at which the running byte total of the queue reaches the amount to free. SQLite
# runs the window as a co-routine, so the scan stops there instead of reading the whole table.
SELECT_BYTES_CUT = (
    "SELECT seq FROM (SELECT seq, SUM(length(body)) OVER (ORDER BY seq) AS run FROM envelopes)"
    " WHERE run >= ? LIMIT 1"
)
# The first envelope, in queue order, that is still young enough: everything before it expires.
SELECT_AGE_CUT = "SELECT seq FROM envelopes WHERE ts >= ? ORDER BY seq LIMIT 1"
SELECT_CURSORS = "SELECT upstream, seq FROM cursors ORDER BY upstream"
ADD_CURSOR = "INSERT OR IGNORE INTO cursors (upstream, seq) VALUES (?, 0)"
UPSERT_CURSOR = (
    "INSERT INTO cursors (upstream, seq) VALUES (?, ?)"
    " ON CONFLICT (upstream) DO UPDATE SET seq = max(seq, excluded.seq)"
)
# One statement each, so that each is read from one snapshot.
SELECT_SUMMARY = (
    "SELECT (SELECT MIN(seq) FROM envelopes), (SELECT MAX(seq) FROM envelopes),"
    " (SELECT ts FROM envelopes ORDER BY seq LIMIT 1),"
    " (SELECT ts FROM envelopes ORDER BY seq DESC LIMIT 1)"
)
SELECT_UPSTREAMS = (
    "SELECT upstream, cursors.seq, (SELECT ts FROM envelopes WHERE envelopes.seq > cursors.seq"
    " ORDER BY envelopes.seq LIMIT 1) FROM cursors ORDER BY upstream"
)
SELECT_COUNTERS = "SELECT name, value FROM counters ORDER BY name"
ADD_COUNTER = (
    "INSERT INTO counters (name, value) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"
)

Row = tuple[str, str, float, int, str]
"""An envelope as inserted: kind, device, ts, urgent (0/1), body (compact JSON)."""


class DropReason(StrEnum):
    """Why the outbox dropped envelopes that were not (or not everywhere) delivered."""

    FULL = "full"
    """``drop_oldest``: the oldest envelopes were deleted to stay under ``max_bytes``."""
    FULL_REJECTED = "full_rejected"
    """``drop_newest``: new envelopes did not fit under ``max_bytes`` and were not stored."""
    EXPIRED = "expired"
    """Envelopes older than ``max_age_s`` were deleted."""
    DISK_FULL = "disk_full"
    """The filesystem was full; ``drop_oldest`` deleted the oldest envelopes to go on."""
    DISK_FULL_REJECTED = "disk_full_rejected"
    """The filesystem was full and new envelopes could not be stored (either policy)."""
    WRITE_FAILED = "write_failed"
    """The file could not be written (read-only, I/O error) and new envelopes were not stored."""


_DROPPED = "dropped:"
_UNSENT = "dropped_unsent:"
_DELIVERED = "delivered"


def _plain(value: object) -> object:
    # Envelope bodies are typed as Mapping; json only knows dict.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# One shared encoder: json.dumps with keyword arguments would build a new encoder per call.
# ensure_ascii stays on so that len() of the text equals its stored byte length and SQL length().
_encode_json = json.JSONEncoder(separators=(",", ":"), default=_plain).encode


def encode(envelope: Envelope) -> Row:
    """The row for an envelope.

    Raises:
        TypeError, ValueError: the body is not JSON, or a field cannot be stored. Checked here,
            per call, because a row SQLite refuses would fail the whole group commit.
    """
    if not math.isfinite(envelope.ts):
        raise ValueError(f"ts must be a finite number, got {envelope.ts}")
    envelope.device.encode()  # SQLite stores UTF-8; a lone surrogate would fail the insert
    return (
        envelope.kind.value,
        envelope.device,
        envelope.ts,
        1 if envelope.urgent else 0,
        _encode_json(envelope.body),
    )


def decode(seq: int, kind: str, device: str, ts: float, urgent: int, body: str) -> Envelope:
    """The envelope stored in one row, with its seq."""
    return Envelope(
        kind=Kind(kind),
        device=device,
        ts=ts,
        body=json.loads(body),
        urgent=bool(urgent),
        seq=seq,
        stored_body=body,
    )


def admit(rows: Sequence[Row], stored_bytes: int, max_bytes: int) -> tuple[list[Row], int]:
    """The rows that fit under ``max_bytes`` in order (``drop_newest``), and how many did not."""
    admitted: list[Row] = []
    total = stored_bytes
    for row in rows:
        size = len(row[4])
        if total + size <= max_bytes:
            admitted.append(row)
            total += size
    return admitted, len(rows) - len(admitted)


@dataclass(slots=True)
class Tally:
    """Envelopes removed by one transaction, kept apart until it commits.

    Attributes:
        dropped: envelopes dropped, by :class:`DropReason` value.
        unsent: of those, how many each upstream had not received yet.
        delivered: envelopes deleted because every upstream had received them (not a drop).
    """

    dropped: Counter[str] = field(default_factory=Counter)
    unsent: Counter[str] = field(default_factory=Counter)
    delivered: int = 0

    def __bool__(self) -> bool:
        return bool(self.delivered or +self.dropped or +self.unsent)

    def counter_rows(self) -> list[tuple[str, int]]:
        """``(name, increment)`` rows for the counters table."""
        rows = [(_DROPPED + reason, n) for reason, n in self.dropped.items() if n]
        rows += [(_UNSENT + upstream, n) for upstream, n in self.unsent.items() if n]
        if self.delivered:
            rows.append((_DELIVERED, self.delivered))
        return rows

    @classmethod
    def from_counter_rows(cls, rows: Iterable[tuple[str, int]]) -> Tally:
        """The totals stored in the counters table."""
        tally = cls()
        for name, value in rows:
            if name.startswith(_DROPPED):
                tally.dropped[name.removeprefix(_DROPPED)] += value
            elif name.startswith(_UNSENT):
                tally.unsent[name.removeprefix(_UNSENT)] += value
            elif name == _DELIVERED:
                tally.delivered += value
        return tally

    def add(self, other: Tally) -> None:
        """Add another tally into this one."""
        self.dropped.update(other.dropped)
        self.unsent.update(other.unsent)
        self.delivered += other.delivered


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What an outbox file holds, read in one go.

    Attributes:
        rows: envelopes stored.
        bytes: their total body bytes.
        file_bytes: size of the database, its WAL and shm files and the spare reserve on
            disk (what ``max_bytes`` bounds).
        epoch: the file's epoch, carried in every forwarded envelope with its seq.
        first_seq: the lowest stored seq, None when empty.
        last_seq: the highest stored seq, None when empty.
        oldest_ts: ts of the first envelope in queue order, None when empty.
        newest_ts: ts of the last envelope in queue order, None when empty.
        dropped: envelopes dropped over the file's life, by :class:`DropReason` value.
        dropped_unsent: of those, how many each upstream had not received.
        delivered: envelopes deleted because every upstream had received them.
        cursors: upstream -> the last seq it acknowledged.
        backlog: upstream -> envelopes stored after its cursor.
        oldest_unsent_ts: upstream -> ts of the first envelope after its cursor, or None.
        quarantined: upstream -> reason -> envelopes its broker refused, kept aside (see
            :mod:`gridedge.outbox.quarantine`).
    """

    rows: int
    bytes: int
    file_bytes: int
    first_seq: int | None
    last_seq: int | None
    oldest_ts: float | None
    newest_ts: float | None
    dropped: Mapping[str, int]
    dropped_unsent: Mapping[str, int]
    delivered: int
    cursors: Mapping[str, int]
    backlog: Mapping[str, int]
    oldest_unsent_ts: Mapping[str, float | None]
    quarantined: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    epoch: str = ""


def build_stats(
    summary: tuple[int | None, int | None, float | None, float | None],
    upstreams: Iterable[tuple[str, int, float | None]],
    counters: Iterable[tuple[str, int]],
    stored_bytes: int,
    file_bytes: int,
    epoch: str,
) -> OutboxStats:
    """Stats from the rows of SELECT_SUMMARY, SELECT_UPSTREAMS and SELECT_COUNTERS."""
    first, last, oldest, newest = summary
    # Stored seqs are one contiguous range, so counts come from the range, not from a scan.
    backlog: dict[str, int] = {}
    unsent_ts: dict[str, float | None] = {}
    cursors: dict[str, int] = {}
    for upstream, cursor, ts in upstreams:
        cursors[upstream] = cursor
        after = cursor if first is None else max(cursor, first - 1)
        backlog[upstream] = 0 if last is None else max(0, last - after)
        unsent_ts[upstream] = ts
    tally = Tally.from_counter_rows(counters)
    return OutboxStats(
        rows=0 if first is None or last is None else last - first + 1,
        bytes=stored_bytes,
        file_bytes=file_bytes,
        first_seq=first,
        last_seq=last,
        oldest_ts=oldest,
        newest_ts=newest,
        dropped=dict(tally.dropped),
        dropped_unsent=dict(tally.unsent),
        delivered=tally.delivered,
        cursors=cursors,
        backlog=backlog,
        oldest_unsent_ts=unsent_ts,
        epoch=epoch,
    )
