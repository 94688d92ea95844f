"""Nothing committed is lost on the way to a real mosquitto: outages, two upstreams, a full outbox.

Each test runs the gateway in this process (simulated meters, SQLite outbox, forwarders over
TLS) against its own broker, and checks the subscriber's view against the outbox file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gridedge.outbox.store import read_stats
from tests.integration.broker import BROKER_INFLIGHT, Broker, Certs
from tests.integration.forwardkit import (
    committed_seq,
    gateway_config,
    prepare_session,
    running_gateway,
    state_of,
    stored_seqs,
    subscribed,
    until,
    upstream,
)

pytestmark = pytest.mark.integration

WINDOW = 8  # the forwarders' in-flight window (forwardkit.upstream)
OUTAGE_BACKLOG = 2500
"""Envelopes committed while the broker is down: 50 meters at 5 samples/s make that about
10 s of outage (shorter than a real one, long enough for several reconnect attempts)."""


async def test_every_committed_seq_reaches_the_subscriber_across_a_broker_outage(
    tmp_path: Path, certs: Certs
) -> None:
    """50 meters publish through a ~5 s broker outage; every seq arrives, few twice."""
    broker = Broker(tmp_path / "broker", certs)
    broker.start()
    try:
        config = gateway_config(
            tmp_path, [upstream("up", broker.ports["tls"], certs)], meters=50, interval_s=0.1
        )
        with subscribed(broker.ports["plain"], "sub-outage") as sub:
            async with running_gateway(config) as (runtime, task):
                state = state_of(runtime, "up")
                await until(lambda: sub.count() >= 200, 20, "live samples before the outage")
                broker.stop()
                await until(lambda: not state.connected, 10, "the forwarder to see the outage")
                await until(lambda: state.backlog >= OUTAGE_BACKLOG, 60, "a backlog to build up")
                retries, outage_seq = state.reconnects, state.last_seq
                broker.start()
                await until(lambda: state.cursor >= outage_seq, 30, "the backlog to drain")
                acked = set(range(1, state.cursor + 1))
                await until(lambda: sub.received().keys() >= acked, 20, "every acked seq")
                assert not task.done()
    finally:
        broker.kill()
    received = sub.received()
    db = config.outbox.path
    assert set(range(1, committed_seq(db) + 1)) <= received.keys() | stored_seqs(db)
    assert retries >= 2
    duplicates = sum(n - 1 for n in received.values())
    # Re-sent by the forwarder (its window) or redelivered by the restarted broker (its own).
    assert duplicates <= (WINDOW + BROKER_INFLIGHT) * sub.largest_message


async def test_a_down_upstream_holds_back_nothing_and_catches_up_from_its_own_cursor(
    tmp_path: Path, certs: Certs
) -> None:
    """One broker is down throughout: the other gets everything live; the first then catches up."""
    live, late = Broker(tmp_path / "live", certs), Broker(tmp_path / "late", certs)
    prepare_session(late, "sub-late")
    live.start()
    try:
        ups = [
            upstream("live", live.ports["tls"], certs),
            upstream("late", late.ports["tls"], certs),
        ]
        config = gateway_config(tmp_path, ups, meters=20, interval_s=0.2)
        with subscribed(live.ports["plain"], "sub-live") as sub_live:
            async with running_gateway(config) as (runtime, _task):
                live_state, late_state = state_of(runtime, "live"), state_of(runtime, "late")
                await until(lambda: live_state.envelopes_acked >= 300, 20, "live deliveries")
                now = live_state.last_seq
                await until(lambda: live_state.cursor >= now, 5, "the live upstream in step")
                await until(lambda: sub_live.received().keys() >= set(range(1, now + 1)), 10, "all")
                assert late_state.cursor == 0
                assert late_state.reconnects >= 2
                assert not late_state.connected
                assert runtime.outbox is not None
                assert (await runtime.outbox.stats()).delivered == 0  # kept for "late"
                late.start()
                with subscribed(late.ports["plain"], "sub-late") as sub_late:
                    target = late_state.last_seq
                    await until(lambda: late_state.cursor >= target, 30, "the late catch-up")
                    wanted = set(range(1, target + 1))
                    await until(lambda: sub_late.received().keys() >= wanted, 20, "all, late")
    finally:
        live.kill()
        late.kill()
    assert min(sub_late.received()) == 1


async def test_an_outbox_cap_below_the_backlog_drops_the_oldest_and_counts_them(
    tmp_path: Path, certs: Certs
) -> None:
    """With the broker down and a 1 MiB outbox, the oldest are dropped and counted as unsent."""
    broker = Broker(tmp_path / "broker", certs)
    prepare_session(broker, "sub-cap")
    try:
        config = gateway_config(
            tmp_path,
            [upstream("up", broker.ports["tls"], certs)],
            # 200 samples/s fill the 1 MiB cap in a few seconds (the drops are the subject).
            meters=20,
            interval_s=0.1,
            outbox={"max_bytes": 1048576},
        )
        async with running_gateway(config) as (runtime, task):
            state = state_of(runtime, "up")
            outbox = runtime.outbox
            assert outbox is not None
            await until(lambda: state.dropped_unsent >= 200, 30, "drops of unsent envelopes")
            appended = outbox.appended_total
            await until(lambda: outbox.appended_total > appended, 5, "meters still storing")
            assert not task.done()
            assert (await outbox.stats()).file_bytes <= 1.1 * 1048576
            broker.start()
            with subscribed(broker.ports["plain"], "sub-cap") as sub:
                target = state.last_seq
                await until(lambda: state.cursor >= target, 30, "the rest to be delivered")
                acked = set(range(1, state.cursor + 1))
                await until(
                    lambda: len(acked - sub.received().keys()) <= state.dropped_unsent,
                    20,
                    "what was not dropped to arrive",
                )
    finally:
        broker.kill()
    db = config.outbox.path
    stats = read_stats(db)
    missing = set(range(1, committed_seq(db) + 1)) - sub.received().keys() - stored_seqs(db)
    assert 1 in missing  # the oldest went first
    assert 0 < len(missing) <= stats.dropped_unsent["up"] <= stats.dropped["full"]
