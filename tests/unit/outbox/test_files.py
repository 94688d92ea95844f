"""The files beside the database: one owner, an epoch per file, moving a file aside, the spare."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gridedge.errors import OutboxError
from gridedge.outbox.files import OwnerLock, Spare, move_aside
from gridedge.outbox.store import open_outbox, read_stats
from tests.unit.outbox.kit import batch, body_ids, everything, make_config

# The schema of files written before epochs existed (user_version 1).
SCHEMA_1 = """
CREATE TABLE envelopes (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
    device TEXT NOT NULL, ts REAL NOT NULL, urgent INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX envelopes_urgent ON envelopes (seq) WHERE urgent = 1;
CREATE TABLE cursors (upstream TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO envelopes (kind, device, ts, urgent, body) VALUES ('sample', 'm', 1.0, 0, '{"i":7}');
PRAGMA user_version = 1;
"""


# --- one owner ---------------------------------------------------------------------------------


async def test_a_second_owner_of_the_same_outbox_is_refused_with_the_holders_pid(
    tmp_path: Path,
) -> None:
    """While one outbox is open, opening it again fails naming this process's pid."""
    config = make_config(tmp_path)
    async with open_outbox(config) as outbox:
        await outbox.append(batch(0, 3))
        with pytest.raises(
            OutboxError, match=f"in use by another gridedge process \\(pid {os.getpid()}\\)"
        ):
            async with open_outbox(config):
                pass
        assert outbox.healthy
    async with open_outbox(config) as outbox:  # released on close
        assert body_ids(await everything(outbox)) == [0, 1, 2]


def test_the_lock_of_a_killed_process_does_not_block_the_next_owner(tmp_path: Path) -> None:
    """A process that took the lock and died leaves a lock file that no longer locks."""
    path = tmp_path / "outbox.sqlite3"
    code = (
        "import os, sys; from pathlib import Path; from gridedge.outbox.files import OwnerLock;"
        "OwnerLock(Path(sys.argv[1])).acquire(); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    assert (tmp_path / "outbox.sqlite3.lock").read_text().strip().isdigit()
    lock = OwnerLock(path)
    lock.acquire()
    assert (tmp_path / "outbox.sqlite3.lock").read_text().strip() == str(os.getpid())
    lock.release()


# --- epochs ------------------------------------------------------------------------------------


async def test_each_new_outbox_file_gets_its_own_epoch_and_keeps_it(tmp_path: Path) -> None:
    """A file's epoch is 16 hex digits, survives reopening, and a replacement file differs."""
    config = make_config(tmp_path)
    async with open_outbox(config) as outbox:
        await outbox.append(batch(0, 3))
        first = outbox.epoch
    assert len(first) == 16
    assert int(first, 16) >= 0
    async with open_outbox(config) as outbox:
        assert outbox.epoch == first
    assert read_stats(config.path).epoch == first
    config.path.unlink()
    async with open_outbox(config) as outbox:
        await outbox.append(batch(0, 1))
        assert outbox.last_committed_seq == 1  # seq starts again...
        assert outbox.epoch != first  # ...under a new epoch, so (epoch, seq) does not repeat


async def test_a_file_of_the_previous_schema_is_migrated_and_keeps_its_envelopes(
    tmp_path: Path,
) -> None:
    """A schema-1 file gains an epoch; its envelopes and seqs stay as they were."""
    config = make_config(tmp_path)
    db = sqlite3.connect(config.path)
    db.executescript(SCHEMA_1)
    db.close()
    async with open_outbox(config) as outbox:
        stored = await everything(outbox)
        assert len(outbox.epoch) == 16
    assert [(e.seq, e.body) for e in stored] == [(1, {"i": 7})]
    assert read_stats(config.path).epoch == outbox.epoch


# --- moving a damaged file aside ---------------------------------------------------------------


async def test_moving_an_outbox_aside_keeps_its_files_and_a_fresh_one_starts(
    tmp_path: Path,
) -> None:
    """The database and its WAL are renamed with a timestamp; a new file has a new epoch."""
    config = make_config(tmp_path)
    async with open_outbox(config) as outbox:
        await outbox.append(batch(0, 3))
        old_epoch = outbox.epoch
    now = dt.datetime(2026, 1, 5, 10, 0, 0, tzinfo=dt.UTC)
    moved = move_aside(config.path, now)
    assert moved[0].name == "outbox.sqlite3.damaged-20260105T100000Z"
    assert not config.path.exists()
    assert read_stats(moved[0]).rows == 3
    async with open_outbox(config) as outbox:
        assert outbox.epoch != old_epoch
        assert await everything(outbox) == []


def test_moving_aside_a_missing_outbox_raises_outbox_error(tmp_path: Path) -> None:
    """There is nothing to move: the error names the path."""
    with pytest.raises(OutboxError, match="no outbox at"):
        move_aside(tmp_path / "none.sqlite3", dt.datetime.now(dt.UTC))


# --- the spare reserve -------------------------------------------------------------------------


def test_the_spare_is_allocated_released_and_allocated_again(tmp_path: Path) -> None:
    """ensure() allocates the full size on disk, release() frees it, ensure() is idempotent."""
    spare = Spare(tmp_path / "outbox.sqlite3", 256 * 1024)
    assert spare.ensure()
    assert spare.path.stat().st_blocks * 512 >= 256 * 1024  # allocated, not sparse
    assert spare.ensure()
    assert spare.release()
    assert not spare.present
    assert not spare.release()
    assert spare.ensure()


async def test_an_open_outbox_holds_its_spare_reserve(tmp_path: Path) -> None:
    """Opening an outbox allocates the spare beside it."""
    config = make_config(tmp_path)
    async with open_outbox(config):
        assert (tmp_path / "outbox.sqlite3.spare").stat().st_size > 0
