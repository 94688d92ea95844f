"""How ``max_bytes`` is shared between the outbox's files on disk (pure).

``max_bytes`` bounds what the outbox takes on disk: database + WAL + shm + the spare reserve
(``<path>.spare``, half the WAL's share, given back when the filesystem is full so that the WAL
can be checkpointed into the database; the lock file is a few bytes). The WAL gets a tenth
(at least 192 KiB, at most 16 MiB): SQLite checkpoints it at half of that and truncates it back
to it, and one transaction may write at most a quarter of it, so the WAL stays in its share. The
shm file, 32 KiB per 4,062 WAL frames, gets its 32 KiB (the WAL's share stays under 4,062
frames). The database gets what remains, counted in pages actually used (envelopes, their index and
the small tables), not in body bytes; freed pages are reused before the file grows.

A transaction therefore moves at most ``max_commit_bytes`` of envelope bodies, in or out:
appends are batched up to it and deletes (retention, expiry, pruning) are cut into steps of it.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_MAX_BYTES = 1024 * 1024
"""The smallest ``max_bytes`` whose bound holds: below it, SQLite's fixed pages dominate."""

_WAL_SHARE = 10
_MIN_WAL_BYTES = 192 * 1024
_MAX_WAL_BYTES = 16 * 1024 * 1024
_SHM_BYTES = 32 * 1024
_DEFAULT_RATIO = 2.0  # disk bytes per body byte before a file has rows to measure it on
_MIN_RATIO, _MAX_RATIO = 1.0, 8.0
_RATIO_SAMPLE_BYTES = 16 * 1024  # measure the ratio only once this much body is stored


@dataclass(frozen=True, slots=True)
class DiskBudget:
    """The shares of ``max_bytes``.

    Attributes:
        max_bytes: database + WAL + shm + spare reserve on disk.
        page_size: SQLite's page size.
        wal_bytes: the WAL's share (``journal_size_limit``).
        spare_bytes: the size of the spare reserve.
        db_bytes: the pages the database may use.
        checkpoint_pages: WAL frames after which SQLite checkpoints (``wal_autocheckpoint``).
        max_commit_bytes: envelope body bytes one transaction inserts or deletes at most.
    """

    max_bytes: int
    page_size: int
    wal_bytes: int
    spare_bytes: int
    db_bytes: int
    checkpoint_pages: int
    max_commit_bytes: int

    @classmethod
    def of(cls, max_bytes: int, page_size: int) -> DiskBudget:
        """The budget for a cap and page size."""
        wal_share = min(_MAX_WAL_BYTES, max(_MIN_WAL_BYTES, max_bytes // _WAL_SHARE))
        wal_pages = max(4, wal_share // page_size)
        wal_bytes = wal_pages * page_size
        # After a full disk the checkpoint writes back what grew the database since the last
        # one: at most the automatic checkpoint threshold, half the WAL's share.
        spare_bytes = max(page_size, wal_pages // 2 * page_size)
        return cls(
            max_bytes=max_bytes,
            page_size=page_size,
            wal_bytes=wal_bytes,
            spare_bytes=spare_bytes,
            db_bytes=max(page_size, max_bytes - wal_bytes - spare_bytes - _SHM_BYTES),
            checkpoint_pages=max(1, wal_pages // 2),
            # A body byte costs up to ~2 page bytes when written and again when deleted.
            max_commit_bytes=max(page_size, wal_bytes // 8),
        )


def page_ratio(used_bytes: int, fixed_bytes: int, body_bytes: int) -> float:
    """Disk bytes per envelope body byte, as the stored rows show it (a default when few)."""
    if body_bytes < _RATIO_SAMPLE_BYTES:
        return _DEFAULT_RATIO
    ratio = (used_bytes - fixed_bytes) / body_bytes
    return min(_MAX_RATIO, max(_MIN_RATIO, ratio))


def room_for(used_bytes: int, db_bytes: int, ratio: float) -> int:
    """Body bytes that still fit in the database's share (``drop_newest``), at least 0."""
    return max(0, int((db_bytes - used_bytes) / ratio))


def excess(used_bytes: int, incoming_body: int, db_bytes: int, ratio: float) -> int:
    """Body bytes to delete from the head so that ``incoming_body`` fits (``drop_oldest``)."""
    over = used_bytes + incoming_body * ratio - db_bytes
    return max(0, int(over / ratio) + 1) if over > 0 else 0
