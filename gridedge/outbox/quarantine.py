"""Envelopes an upstream's broker refused, kept aside per upstream with the reason (SQL, pure).

Under MQTT 5 a broker may refuse one message and go on (a PUBACK reason code >= 0x80: not
authorized, quota exceeded, packet too large). Sending it again would be refused again and
hold back everything behind it, so the forwarder sets the refused envelopes aside here and its
cursor passes them. A copy of each is kept in its own table, keyed by upstream and seq, so the
envelopes table can still be pruned from its head and an operator can look at (and, once the
broker's rule is fixed, replay) what was refused. Nothing here does I/O;
:mod:`gridedge.outbox.store` runs these statements.

The table is created with ``IF NOT EXISTS`` when an outbox is opened, so older outbox files
gain it without a schema version change; readers treat a missing table as empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine (
    upstream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    device TEXT NOT NULL,
    ts REAL NOT NULL,
    urgent INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (upstream, seq)
) WITHOUT ROWID;
"""

MAX_SEQS_PER_STATEMENT = 500
"""Seqs bound in one INSERT (SQLite allows 32766 variables; a refused message holds fewer)."""


def insert_statement(count: int) -> str:
    """Copy ``count`` envelopes (parameters: upstream, reason, at, then the seqs) into the
    quarantine; a seq already quarantined for that upstream, or no longer stored, is skipped.
    """
    marks = ", ".join("?" * count)
    return (
        "INSERT OR IGNORE INTO quarantine"
        " (upstream, seq, reason, at, kind, device, ts, urgent, body)"
        " SELECT ?, seq, ?, ?, kind, device, ts, urgent, body FROM envelopes"
        f" WHERE seq IN ({marks})"
    )


SELECT_COUNTS = (
    "SELECT upstream, reason, COUNT(*) FROM quarantine GROUP BY upstream, reason"
    " ORDER BY upstream, reason"
)


def batches(seqs: Sequence[int]) -> Iterable[Sequence[int]]:
    """``seqs`` in slices small enough for one statement each."""
    for start in range(0, len(seqs), MAX_SEQS_PER_STATEMENT):
        yield seqs[start : start + MAX_SEQS_PER_STATEMENT]


def counts_by_upstream(rows: Iterable[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    """``{upstream: {reason: envelopes}}`` from the rows of SELECT_COUNTS."""
    out: dict[str, dict[str, int]] = {}
    for upstream, reason, count in rows:
        out.setdefault(upstream, {})[reason] = int(count)
    return out


def is_missing_table(error: Exception) -> bool:
    """Whether an SQLite error says the quarantine table does not exist (an outbox file opened
    read-only that no daemon of this version has opened yet).
    """
    return "no such table: quarantine" in str(error)
