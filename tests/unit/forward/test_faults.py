"""Field faults against the forwarder: cancelled attempts, flapping links, silent and refusing
brokers. Each injects the fault and checks that nothing is lost or stuck.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from gridedge.forward.forwarder import Forwarder
from gridedge.forward.payload import unpack
from gridedge.forward.state import UpstreamState
from gridedge.outbox.store import read_stats
from tests.unit.forward.fakes import (
    IDENTITY,
    UP,
    FakeBroker,
    envelopes,
    forwarding,
    outbox_at,
    until,
)


async def test_an_attempt_cancelled_from_within_is_a_counted_retry(tmp_path: Path) -> None:
    """A CancelledError raised inside a connection attempt (its own timeout) is retried."""
    broker = FakeBroker()
    broker.fail_inside = asyncio.CancelledError()
    async with outbox_at(tmp_path) as outbox:
        await outbox.append(envelopes(20))
        async with forwarding(outbox, broker) as state:
            await until(lambda: state.cursor == 20)
            assert state.reconnects == 1
            assert broker.connects == 1


async def test_cancelling_the_forwarder_during_a_connection_attempt_stops_it(
    tmp_path: Path,
) -> None:
    """An outer cancellation is never taken for a failed attempt."""
    entered, gate = asyncio.Event(), asyncio.Event()

    class Hanging:
        async def __aenter__(self) -> object:
            entered.set()
            await gate.wait()  # never set: the attempt hangs until cancelled
            return None

        async def __aexit__(self, *_: object) -> None:
            return None

    async with outbox_at(tmp_path) as outbox:
        state = UpstreamState(UP.name, UP.broker, UP.tls)
        forwarder = Forwarder(UP, outbox, IDENTITY, state, connect=Hanging)  # type: ignore[arg-type]
        task = asyncio.create_task(forwarder.run())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert state.reconnects == 0
        assert state.last_error is None


@pytest.mark.parametrize("acks", [1, 2, 3])
async def test_a_link_that_breaks_after_every_few_acks_still_drains(
    tmp_path: Path, acks: int
) -> None:
    """Each connection carries a few acked messages and breaks; the cursor reaches the end and
    re-sends stay within the window per reconnect.
    """
    broker = FakeBroker()
    broker.acks_per_connection = acks
    config = replace(UP, window=8, max_batch_bytes=1024)
    async with outbox_at(tmp_path) as outbox:
        await outbox.append(envelopes(300))
        async with forwarding(outbox, broker, config) as state:
            await until(lambda: state.cursor == 300, 30)
    seqs = broker.seqs()
    assert set(seqs) == set(range(1, 301))
    acked = broker.seqs(acked_only=True)
    assert sorted(set(acked)) == list(range(1, 301))
    biggest = max(len(unpack(payload)) for _, payload, _ in broker.log)
    assert len(seqs) - 300 <= state.reconnects * config.window * biggest


async def test_a_broker_that_stops_acking_fails_the_session_after_the_puback_timeout(
    tmp_path: Path,
) -> None:
    """No PUBACK within puback_timeout_s: the connection is dropped, retried and then drains."""
    broker = FakeBroker(auto_ack=False)
    config = replace(UP, puback_timeout_s=0.2)
    async with outbox_at(tmp_path) as outbox:
        await outbox.append(envelopes(30))
        async with forwarding(outbox, broker, config) as state:
            await until(lambda: state.reconnects >= 1 and state.last_error is not None)
            assert state.last_error is not None
            assert "no PUBACK within 0.2 s" in state.last_error
            assert state.cursor == 0
            broker.auto_ack = True
            await until(lambda: state.cursor == 30)


async def test_a_refused_message_is_quarantined_and_everything_else_flows(
    tmp_path: Path,
) -> None:
    """Messages of device m1 are refused (0x87): the cursor passes them, the others are
    delivered, and the refused envelopes are kept aside and counted by reason.
    """
    broker = FakeBroker()
    broker.refuse_topic = "/m1/"
    batch = envelopes(60)
    refused = {e_seq for e_seq, e in enumerate(batch, 1) if e.device == "m1"}
    async with outbox_at(tmp_path) as outbox:
        await outbox.append(batch)
        async with forwarding(outbox, broker) as state:
            await until(lambda: state.cursor == 60)
            assert state.quarantined == {"not_authorized": len(refused)}
            assert not broker.pending()
        stats = await outbox.stats()
        assert stats.quarantined == {"up": {"not_authorized": len(refused)}}
        async with forwarding(outbox, FakeBroker()) as again:
            await until(lambda: again.quarantined != {})
            assert again.quarantined == {"not_authorized": len(refused)}  # read back at start
    acked = set(broker.seqs(acked_only=True))
    assert acked == set(range(1, 61)) - refused
    assert read_stats(tmp_path / "outbox.sqlite3").quarantined == {
        "up": {"not_authorized": len(refused)}
    }


async def test_a_message_refused_again_after_a_restart_is_not_counted_twice(
    tmp_path: Path,
) -> None:
    """Re-sending a quarantined envelope (its cursor was not saved yet) adds no second copy."""
    async with outbox_at(tmp_path) as outbox:
        await outbox.append(envelopes(6))
        assert await outbox.quarantine("up", [1, 4], "not_authorized") == 2
        assert await outbox.quarantine("up", [1, 4], "not_authorized") == 0
        assert await outbox.quarantine("other", [4], "quota_exceeded") == 1
        assert await outbox.quarantined("up") == {"not_authorized": 2}
        assert (await outbox.stats()).quarantined == {
            "other": {"quota_exceeded": 1},
            "up": {"not_authorized": 2},
        }
