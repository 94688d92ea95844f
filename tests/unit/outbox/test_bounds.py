"""The outbox's bounds: max_bytes on disk, drop policies, a full disk, a vanished file."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import structlog

from gridedge.config import OnFull
from gridedge.outbox.files import disk_bytes
from gridedge.outbox.schema import encode
from gridedge.outbox.store import open_outbox, read_stats
from tests.unit.outbox.kit import (
    MIB,
    FakeClock,
    batch,
    body_ids,
    envelope,
    everything,
    make_config,
    wait_for_stats,
)

PAD = 2000  # ~2 KB bodies: a 1 MiB outbox holds a few hundred


def big_batch(start: int, count: int) -> list:  # type: ignore[type-arg]
    return [envelope(i, pad=PAD) for i in range(start, start + count)]


async def test_drop_oldest_keeps_the_files_on_disk_within_max_bytes(tmp_path: Path) -> None:
    """Under drop_oldest database + WAL + shm stay within 10 % of max_bytes; drops add up."""
    config = make_config(tmp_path, max_bytes=MIB)
    peak = 0
    async with open_outbox(config, clock=FakeClock(), upstreams=["never"]) as outbox:
        for start in range(0, 1500, 10):
            await outbox.append(big_batch(start, 10))
            peak = max(peak, disk_bytes(config.path))
        stats = await outbox.stats()
        stored = await everything(outbox)
    assert peak <= 1.1 * MIB
    assert 0 < stats.rows < 1500
    assert body_ids(stored) == list(range(1500 - stats.rows, 1500))  # the newest survive
    assert stats.dropped == {"full": 1500 - stats.rows}
    assert stats.dropped_unsent == {"never": 1500 - stats.rows}
    assert sum(len(encode(e)[4]) for e in stored) == stats.bytes


async def test_drop_newest_keeps_the_oldest_and_counts_rejects_per_upstream(
    tmp_path: Path,
) -> None:
    """Under drop_newest what is stored stays; rejects count as dropped and dropped_unsent."""
    config = make_config(tmp_path, max_bytes=MIB, on_full=OnFull.DROP_NEWEST)
    with structlog.testing.capture_logs() as logs:
        async with open_outbox(config, clock=FakeClock(), upstreams=["a", "b"]) as outbox:
            for start in range(0, 1500, 10):
                await outbox.append(big_batch(start, 10))
            stats = await outbox.stats()
            stored = await everything(outbox)
            live_unsent = outbox.dropped_unsent_total
    refusals = [e["log_level"] for e in logs if e["event"] == "outbox.full.failed"]
    assert refusals[0] == "warning"
    assert set(refusals[1:]) <= {"debug"}
    assert 0 < stats.rows < 1500
    assert body_ids(stored) == list(range(stats.rows))
    assert stats.file_bytes <= 1.1 * MIB
    rejected = 1500 - stats.rows
    assert stats.dropped == {"full_rejected": rejected}
    assert stats.dropped_unsent == live_unsent == {"a": rejected, "b": rejected}


async def test_drop_counters_survive_reopen(tmp_path: Path) -> None:
    """Drop counts are persisted with the deletes and reloaded when the file is reopened."""
    config = make_config(tmp_path, max_bytes=MIB)
    async with open_outbox(config, clock=FakeClock()) as outbox:
        for start in range(0, 1000, 20):
            await outbox.append(big_batch(start, 20))
        before = outbox.dropped_total
    assert before["full"] > 0
    async with open_outbox(config, clock=FakeClock()) as outbox:
        assert outbox.dropped_total == before
        assert (await outbox.stats()).dropped == before
    assert read_stats(config.path).dropped == before


async def test_pruning_past_a_cursor_counts_dropped_unsent_for_that_upstream(
    tmp_path: Path,
) -> None:
    """Envelopes pruned before an upstream received them are counted for that upstream."""
    config = make_config(tmp_path, max_bytes=MIB)
    async with open_outbox(config, clock=FakeClock(), upstreams=["a", "b"]) as outbox:
        await outbox.append(big_batch(0, 50))
        await outbox.set_cursor("a", 30)
        await outbox.set_cursor("b", 10)
        for start in range(50, 1000, 10):
            await outbox.append(big_batch(start, 10))
        stats = await outbox.stats()
    assert stats.first_seq is not None
    pruned_through = stats.first_seq - 1
    assert pruned_through > 30
    assert stats.delivered == 10
    assert stats.dropped == {"full": pruned_through - 10}
    assert stats.dropped_unsent == {"a": pruned_through - 30, "b": pruned_through - 10}


async def test_a_large_delivered_backlog_is_retired_in_steps_that_keep_the_wal_small(
    tmp_path: Path,
) -> None:
    """Acknowledging a big backlog at once deletes it over several commits, WAL in its share."""
    config = make_config(tmp_path, max_bytes=4 * MIB)
    async with open_outbox(config, clock=FakeClock(), upstreams=["up"]) as outbox:
        for start in range(0, 1000, 10):
            await outbox.append(big_batch(start, 10))
        commits = outbox.commits_total
        await outbox.set_cursor("up", outbox.last_committed_seq)
        stats = await wait_for_stats(outbox, lambda s: s.rows == 0)
        assert outbox.commits_total - commits > 1
    assert stats.rows == 0
    assert stats.delivered == 1000
    assert stats.file_bytes <= 1.1 * 4 * MIB


# --- a full disk (SQLite's max_page_count makes a real SQLITE_FULL) ---------------------------


async def test_full_disk_under_drop_oldest_sheds_the_oldest_and_keeps_storing(
    tmp_path: Path,
) -> None:
    """A real SQLITE_FULL sheds the oldest envelopes (counted), the batches are stored, and
    the outbox reports the full disk until its reserve can be taken again.
    """
    config = make_config(tmp_path)
    with structlog.testing.capture_logs() as logs:
        async with open_outbox(config, clock=FakeClock(), max_page_count=48) as outbox:
            for start in range(0, 3000, 50):
                await outbox.append(batch(start, 50))
            stats = await outbox.stats()
            assert not outbox.healthy
            assert "full" in (outbox.last_error or "")
    assert stats.dropped["disk_full"] > 0
    assert stats.rows + stats.dropped["disk_full"] == 3000
    assert stats.last_seq == 3000
    assert any(e["event"] == "outbox.pruned" and e["reason"] == "disk_full" for e in logs)
    assert not [e for e in logs if e["event"] == "outbox.write.failed"]


async def test_full_disk_under_drop_newest_counts_new_envelopes_and_never_blocks(
    tmp_path: Path,
) -> None:
    """Under drop_newest a full disk drops new batches at once, counted, until space returns."""
    config = make_config(tmp_path, on_full=OnFull.DROP_NEWEST, commit_interval_s=0.05)
    with structlog.testing.capture_logs() as logs:
        async with open_outbox(
            config, clock=FakeClock(), upstreams=["up"], max_page_count=48
        ) as outbox:
            start = 0
            while outbox.healthy:
                async with asyncio.timeout(1.0):
                    await outbox.append(batch(start, 50))
                start += 50
            assert "full" in (outbox.last_error or "")
            for _ in range(5):
                began = time.monotonic()
                await outbox.append(batch(start, 50))
                assert time.monotonic() - began < 0.5
                start += 50
            dropped = outbox.dropped_total["disk_full_rejected"]
            assert outbox.dropped_unsent_total == {"up": dropped}
            assert dropped >= 300
            stored = outbox.last_committed_seq
            await outbox.set_cursor("up", stored)  # delivery frees the pages
            await outbox.append(batch(start, 50))
            assert outbox.last_committed_seq == stored + 50
            for step in range(200):  # the reserve is taken back at most every 5 s
                if outbox.healthy:
                    break
                await outbox.append(batch(start + 50 + step, 1))
                await asyncio.sleep(0.05)  # a poll interval between readings
            assert outbox.healthy
            assert outbox.dropped_total["disk_full_rejected"] == dropped
    assert read_stats(config.path).dropped == {"disk_full_rejected": dropped}
    # One warning per full-disk episode; an episode ends when the reserve is taken back.
    events = [e["event"] for e in logs]
    failed = [e["log_level"] for e in logs if e["event"] == "outbox.disk_full.failed"]
    assert failed[0] == "warning"
    assert 1 <= failed.count("warning") <= events.count("outbox.disk_full.recovered") + 1


# --- a vanished file ---------------------------------------------------------------------------


async def test_a_deleted_outbox_file_makes_the_outbox_unhealthy_with_one_warning(
    tmp_path: Path,
) -> None:
    """Deleting the file under a running outbox is reported, once, and appends still return."""
    config = make_config(tmp_path)
    with structlog.testing.capture_logs() as logs:
        async with open_outbox(config, clock=FakeClock()) as outbox:
            await outbox.append(batch(0, 5))
            assert outbox.healthy
            config.path.unlink()
            for start in range(5, 50, 5):
                await outbox.append(batch(start, 5))
            assert not outbox.healthy
            assert "deleted" in (outbox.last_error or "")
    failed = [e for e in logs if e["event"] == "outbox.file.failed"]
    assert [e["log_level"] for e in failed] == ["warning"]
