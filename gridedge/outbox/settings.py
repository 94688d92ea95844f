"""Settings of the outbox: where it lives, how large it may grow, what it does when full."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from gridedge.outbox.budget import MIN_MAX_BYTES
from gridedge.tomlread import Table


class OnFull(StrEnum):
    """What the outbox does when it reaches ``max_bytes``."""

    DROP_OLDEST = "drop_oldest"
    """Delete the oldest envelopes (counted as dropped) to make room for new ones."""
    DROP_NEWEST = "drop_newest"
    """Keep what is stored; refuse new envelopes (counted as dropped) until there is room."""


class Synchronous(StrEnum):
    """SQLite ``synchronous`` setting: how hard a commit is pushed to the disk."""

    NORMAL = "normal"
    """Safe against a crash of the process; a power cut may lose the last commits (WAL)."""
    FULL = "full"
    """Every commit survives a power cut too, at the cost of an fsync per commit."""


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """The local store-and-forward queue.

    ``max_bytes`` bounds the files on disk: database, WAL, shm and the spare reserve together
    (at least 1 MiB).
    """

    path: Path = Path("gridedge-outbox.sqlite3")
    max_bytes: int = 256 * 1024 * 1024
    max_age_s: float = 30 * 86400.0
    on_full: OnFull = OnFull.DROP_OLDEST
    synchronous: Synchronous = Synchronous.NORMAL
    commit_interval_s: float = 0.2
    max_batch: int = 5000
    max_pending: int = 100_000


def parse_outbox(t: Table, base_dir: Path) -> OutboxConfig:
    """The ``[outbox]`` table; a relative ``path`` is taken from ``base_dir``."""
    d = OutboxConfig()
    cfg = OutboxConfig(
        path=base_dir / t.string("path", str(d.path)),
        max_bytes=t.integer("max_bytes", d.max_bytes, min=MIN_MAX_BYTES),
        max_age_s=t.number("max_age_s", d.max_age_s, positive=True),
        on_full=t.choice("on_full", OnFull, d.on_full),
        synchronous=t.choice("synchronous", Synchronous, d.synchronous),
        commit_interval_s=t.number("commit_interval_s", d.commit_interval_s, min=0.0, max=10.0),
        max_batch=t.integer("max_batch", d.max_batch, min=1),
        max_pending=t.integer("max_pending", d.max_pending, min=1),
    )
    t.finish()
    return cfg
