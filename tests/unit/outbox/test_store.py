"""The SQLite outbox: group commit, seqs, bounds and drop counts, cursors, failures, stats."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridedge.config import Synchronous
from gridedge.errors import OutboxError
from gridedge.model import Envelope, Kind
from gridedge.outbox.schema import admit, decode, encode
from gridedge.outbox.store import open_outbox, read_stats
from tests.unit.outbox.kit import (
    T0,
    batch,
    body_ids,
    envelope,
    everything,
    make_config,
    wait_until,
)

# --- pure helpers ------------------------------------------------------------------------------

json_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()
)


@given(
    kind=st.sampled_from(Kind),
    device=st.text(),
    ts=st.floats(allow_nan=False, allow_infinity=False),
    body=st.dictionaries(st.text(), st.one_of(json_values, st.lists(json_values))),
    urgent=st.booleans(),
    seq=st.integers(min_value=1, max_value=2**62),
)
def test_rows_decode_to_the_envelope_that_was_encoded(
    kind: Kind, device: str, ts: float, body: dict[str, object], urgent: bool, seq: int
) -> None:
    """Any envelope with a JSON body survives encode then decode, gaining its seq."""
    original = Envelope(kind=kind, device=device, ts=ts, body=body, urgent=urgent)
    assert decode(seq, *encode(original)) == dataclasses.replace(original, seq=seq)


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=50), max_size=30),
    stored=st.integers(min_value=0, max_value=500),
    limit=st.integers(min_value=0, max_value=800),
)
def test_admit_keeps_the_total_under_the_limit_and_the_order(
    sizes: list[int], stored: int, limit: int
) -> None:
    """drop_newest admission never exceeds the limit, keeps order and counts every reject."""
    rows = [("sample", "m", float(n), 0, "x" * size) for n, size in enumerate(sizes)]
    admitted, rejected = admit(rows, stored, limit)
    assert rejected == len(rows) - len(admitted)
    assert [r[2] for r in admitted] == sorted(r[2] for r in admitted)
    if admitted:
        assert stored + sum(len(r[4]) for r in admitted) <= limit


# --- seqs and group commit ----------------------------------------------------------------------


async def test_seqs_increase_strictly_in_append_order_across_concurrent_appends(
    tmp_path: Path,
) -> None:
    """Concurrent append calls each get consecutive seqs, in call order, and keep their order."""
    async with open_outbox(make_config(tmp_path)) as outbox:
        await asyncio.gather(*(outbox.append(batch(10 * t, 4)) for t in range(50)))
        stored = await everything(outbox)
    assert [e.seq for e in stored] == list(range(1, 201))
    assert body_ids(stored) == [10 * t + i for t in range(50) for i in range(4)]


async def test_many_concurrent_appends_share_few_commits(tmp_path: Path) -> None:
    """Two hundred concurrent single-envelope appends are committed in a handful of commits."""
    async with open_outbox(make_config(tmp_path, commit_interval_s=0.2)) as outbox:
        await asyncio.gather(*(outbox.append([envelope(i)]) for i in range(200)))
        assert outbox.appended_total == 200
        assert outbox.commits_total <= 5
        assert outbox.last_committed_seq == 200


async def test_a_big_queue_is_committed_without_waiting_for_the_interval(tmp_path: Path) -> None:
    """Small appends wait for the commit interval; 64 KiB of queued bodies commit at once."""
    async with open_outbox(make_config(tmp_path, commit_interval_s=3600.0)) as outbox:
        await outbox.append(batch(0, 1))  # the first commit after a quiet spell is immediate
        small = asyncio.create_task(outbox.append(batch(1, 1)))
        await wait_until(lambda: outbox.pending == 1)
        async with asyncio.timeout(10):
            await outbox.append([envelope(i, pad=300) for i in range(2, 302)])
            await small
        assert outbox.commits_total == 2
        assert outbox.last_committed_seq == 302


async def test_reopen_keeps_committed_envelopes(tmp_path: Path) -> None:
    """Envelopes appended before closing are read back, unchanged, after reopening."""
    config = make_config(tmp_path)
    async with open_outbox(config) as outbox:
        await outbox.append(batch(0, 5))
    async with open_outbox(config) as outbox:
        stored = await everything(outbox)
    assert [e.seq for e in stored] == [1, 2, 3, 4, 5]
    assert [dataclasses.replace(e, seq=None) for e in stored] == batch(0, 5)


async def test_seq_continues_above_the_old_maximum_after_everything_was_pruned(
    tmp_path: Path,
) -> None:
    """A seq is never reused, even when every envelope was deleted before reopening."""
    config = make_config(tmp_path)
    async with open_outbox(config, upstreams=["up"]) as outbox:
        await outbox.append(batch(0, 10))
        await outbox.set_cursor("up", 10)
        assert (await outbox.stats()).rows == 0
    async with open_outbox(config, upstreams=["up"]) as outbox:
        await outbox.append(batch(100, 1))
        stored = await everything(outbox)
    assert [e.seq for e in stored] == [11]


async def test_closing_commits_appends_that_are_still_queued(tmp_path: Path) -> None:
    """Leaving the block flushes queued appends before the file is closed."""
    config = make_config(tmp_path, commit_interval_s=60.0)
    async with open_outbox(config) as outbox:
        await outbox.append(batch(0, 1))  # the first commit after a quiet spell is immediate
        tasks = [asyncio.create_task(outbox.append(batch(i, 1))) for i in range(1, 20)]
        await wait_until(lambda: outbox.pending == 19)
    await asyncio.gather(*tasks)
    async with open_outbox(config) as outbox:
        assert body_ids(await everything(outbox)) == list(range(20))


# --- cursors and retention ----------------------------------------------------------------------


async def test_cursor_never_moves_backwards_and_survives_reopen(tmp_path: Path) -> None:
    """set_cursor ignores an older seq, and the committed cursor is there after reopening."""
    config = make_config(tmp_path)
    async with open_outbox(config, upstreams=["a", "b"]) as outbox:
        assert await outbox.cursor("a") == 0
        await outbox.append(batch(0, 10))
        await outbox.set_cursor("a", 7)
        await outbox.set_cursor("a", 3)
        assert await outbox.cursor("a") == 7
        with pytest.raises(ValueError, match="beyond"):
            await outbox.set_cursor("a", 11)
    async with open_outbox(config, upstreams=["a", "b"]) as outbox:
        assert await outbox.cursor("a") == 7
        assert await outbox.cursor("b") == 0


async def test_envelopes_every_upstream_received_are_deleted_without_counting_drops(
    tmp_path: Path,
) -> None:
    """Retention deletes up to the lowest cursor; that is delivery, not a drop."""
    async with open_outbox(make_config(tmp_path), upstreams=["a", "b"]) as outbox:
        await outbox.append(batch(0, 10))
        await outbox.set_cursor("a", 6)
        assert (await outbox.stats()).rows == 10  # b has received nothing yet
        await outbox.set_cursor("b", 4)
        stats = await outbox.stats()
    assert (stats.first_seq, stats.last_seq, stats.rows) == (5, 10, 6)
    assert stats.dropped == {}
    assert stats.delivered == 4
    assert stats.backlog == {"a": 4, "b": 6}


# --- reads -------------------------------------------------------------------------------------


async def test_read_after_returns_envelopes_after_the_cursor_in_seq_order(
    tmp_path: Path,
) -> None:
    """read_after pages through the queue in seq order, with seqs set and bodies parsed."""
    async with open_outbox(make_config(tmp_path)) as outbox:
        await outbox.append(batch(0, 10))
        page = await outbox.read_after(3, 2)
        assert await outbox.read_after(10, 5) == []
    assert [(e.seq, e.body) for e in page] == [
        (4, {"i": 3, "pad": "x" * 30}),
        (5, {"i": 4, "pad": "x" * 30}),
    ]


async def test_read_urgent_after_returns_only_urgent_envelopes(tmp_path: Path) -> None:
    """read_urgent_after skips the backlog and returns alerts after the cursor."""
    mixed = [envelope(i, urgent=i % 4 == 0) for i in range(12)]
    async with open_outbox(make_config(tmp_path)) as outbox:
        await outbox.append(mixed)
        urgent = await outbox.read_urgent_after(1, 10)
    assert [(e.seq, e.kind, e.urgent) for e in urgent] == [
        (5, Kind.ALERT, True),
        (9, Kind.ALERT, True),
    ]


@settings(max_examples=25, deadline=None)
@given(
    batches=st.lists(st.lists(st.booleans(), min_size=1, max_size=6), min_size=1, max_size=5),
    cursor=st.integers(0, 40),
)
async def test_reads_after_a_cursor_see_every_commit_and_survive_a_reopen(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[bool]], cursor: int
) -> None:
    """read_after and read_urgent_after answer from the committed rows, commit after commit
    and after the file is opened again (what they skip without asking SQLite is nothing).
    """
    folder = tmp_path_factory.mktemp("reads")
    flags: list[bool] = []
    async with open_outbox(make_config(folder)) as outbox:
        for batch in batches:
            now = time.time()  # young enough that opening the file again expires none of them
            await outbox.append(
                [envelope(len(flags) + i, ts=now, urgent=u) for i, u in enumerate(batch)]
            )
            flags.extend(batch)
            urgent = [e.seq for e in await outbox.read_urgent_after(cursor, 100)]
            assert urgent == [i + 1 for i, u in enumerate(flags) if u and i + 1 > cursor]
            later = [e.seq for e in await outbox.read_after(cursor, 100)]
            assert later == list(range(cursor + 1, len(flags) + 1))
    async with open_outbox(make_config(folder)) as outbox:
        urgent = [e.seq for e in await outbox.read_urgent_after(cursor, 100)]
        assert urgent == [i + 1 for i, u in enumerate(flags) if u and i + 1 > cursor]
        assert outbox.last_urgent_seq == max((i + 1 for i, u in enumerate(flags) if u), default=0)
        later = [e.seq for e in await outbox.read_after(cursor, 100)]
        assert later == list(range(cursor + 1, len(flags) + 1))


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "value"), [(Synchronous.FULL, 2), (Synchronous.NORMAL, 1)])
async def test_synchronous_setting_is_applied(
    tmp_path: Path, setting: Synchronous, value: int
) -> None:
    """The configured synchronous level is what SQLite reports back, in WAL mode."""
    async with open_outbox(make_config(tmp_path, synchronous=setting)) as outbox:
        assert outbox.pragmas["synchronous"] == value
        assert outbox.pragmas["journal_mode"] == "wal"
        assert int(str(outbox.pragmas["journal_size_limit"])) > 0


async def test_open_on_a_directory_raises_outbox_error(tmp_path: Path) -> None:
    """A path that is a directory is reported as an OutboxError naming it."""
    config = dataclasses.replace(make_config(tmp_path), path=tmp_path)
    with pytest.raises(OutboxError, match="directory"):
        async with open_outbox(config):
            pass


async def test_open_creates_missing_parent_directories(tmp_path: Path) -> None:
    """The outbox file's parent directories are created when missing."""
    config = dataclasses.replace(make_config(tmp_path), path=tmp_path / "a" / "b" / "o.sqlite3")
    async with open_outbox(config) as outbox:
        await outbox.append(batch(0, 1))
    assert config.path.is_file()


async def test_open_refuses_an_sqlite_file_that_is_not_an_outbox(tmp_path: Path) -> None:
    """Another application's database is not taken over."""
    config = make_config(tmp_path)
    other = sqlite3.connect(config.path)
    other.execute("CREATE TABLE notes (text TEXT)")
    other.close()
    with pytest.raises(OutboxError, match="not a gridedge outbox"):
        async with open_outbox(config):
            pass


@pytest.mark.parametrize(
    "bad",
    [
        Envelope(kind=Kind.SAMPLE, device="m", ts=T0, body={"when": object()}),
        Envelope(kind=Kind.SAMPLE, device="m", ts=float("nan")),
        Envelope(kind=Kind.SAMPLE, device="m\udc80", ts=T0),
    ],
    ids=["body-not-json", "ts-nan", "device-surrogate"],
)
async def test_an_envelope_sqlite_cannot_store_is_refused_by_append(
    tmp_path: Path, bad: Envelope
) -> None:
    """A bad envelope raises OutboxError in its own append and never reaches a group commit."""
    async with open_outbox(make_config(tmp_path)) as outbox:
        with pytest.raises(OutboxError, match="cannot be stored"):
            await outbox.append([envelope(0), bad])
        assert outbox.pending == 0
        await outbox.append([envelope(1)])
        assert body_ids(await everything(outbox)) == [1]


async def test_cancelling_the_owner_closes_the_outbox_and_keeps_committed_data(
    tmp_path: Path,
) -> None:
    """Cancellation inside the block still closes both connections and propagates."""
    config = make_config(tmp_path)
    threads_before = threading.active_count()
    opened = asyncio.Event()

    async def owner() -> None:
        async with open_outbox(config) as outbox:
            await outbox.append(batch(0, 3))
            opened.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(owner())
    await opened.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: threading.active_count() <= threads_before)
    async with open_outbox(config) as outbox:
        assert body_ids(await everything(outbox)) == [0, 1, 2]


# --- stats -------------------------------------------------------------------------------------


async def test_stats_and_read_stats_report_the_same_contents(tmp_path: Path) -> None:
    """stats() and read_stats (read-only, beside the writer) agree on rows, bytes, ts, cursors."""
    config = make_config(tmp_path)
    async with open_outbox(config, upstreams=["up"]) as outbox:
        await outbox.append([envelope(i, ts=T0 + i) for i in range(10)])
        await outbox.set_cursor("up", 4)
        live = await outbox.stats()
        beside = read_stats(config.path)
    after = read_stats(config.path)
    body_bytes = sum(len(encode(envelope(i))[4]) for i in range(6))
    for stats in (live, beside, after):
        assert (stats.rows, stats.first_seq, stats.last_seq) == (6, 5, 10)
        assert stats.bytes == body_bytes
        assert (stats.oldest_ts, stats.newest_ts) == (T0 + 4, T0 + 9)
        assert stats.cursors == {"up": 4}
        assert stats.backlog == {"up": 6}
        assert stats.oldest_unsent_ts == {"up": T0 + 4}
        assert stats.delivered == 4
        assert stats.file_bytes > stats.bytes


async def test_stats_of_an_empty_outbox_have_no_range(tmp_path: Path) -> None:
    """An empty outbox reports zero rows and no seqs or timestamps."""
    async with open_outbox(make_config(tmp_path), upstreams=["up"]) as outbox:
        stats = await outbox.stats()
    assert (stats.rows, stats.bytes, stats.first_seq, stats.oldest_ts) == (0, 0, None, None)
    assert stats.backlog == {"up": 0}
    assert stats.oldest_unsent_ts == {"up": None}


def test_read_stats_of_a_missing_file_raises_outbox_error(tmp_path: Path) -> None:
    """read_stats names the missing file instead of creating one."""
    with pytest.raises(OutboxError, match="no outbox"):
        read_stats(tmp_path / "missing.sqlite3")
    assert not (tmp_path / "missing.sqlite3").exists()
