"""The forwarder against an in-memory broker: cursor, window, urgency, reconnects, rate."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

from gridedge.errors import BrokerUnavailableError, PublishRejectedError
from gridedge.forward.payload import unpack
from gridedge.forward.settings import BatchLayout
from gridedge.forward.state import UpstreamState
from gridedge.model import Envelope, Kind
from gridedge.outbox.store import read_stats
from tests.unit.forward.fakes import UP, FakeBroker, envelopes, forwarding, outbox_at, until


async def test_everything_committed_is_published_once_and_the_cursor_saved(tmp_path: Path) -> None:
    """With a healthy broker every envelope goes out once and the saved cursor reaches the end."""
    broker = FakeBroker()
    async with outbox_at(tmp_path) as outbox:
        await outbox.append(envelopes(50))
        async with forwarding(outbox, broker) as state:
            await until(lambda: state.cursor == 50)
            await outbox.append(envelopes(10))  # live data after the backlog
            await until(lambda: state.cursor == 60)
    assert read_stats(tmp_path / "outbox.sqlite3").cursors["up"] == 60
    assert sorted(broker.seqs()) == list(range(1, 61))
    assert state.envelopes_acked == state.envelopes_published == 60


async def test_cursor_waits_for_the_oldest_unacknowledged_message(tmp_path: Path) -> None:
    """Acks of every later message leave the cursor where the first unacked one holds it."""
    broker = FakeBroker(auto_ack=False)
    async with outbox_at(tmp_path) as outbox:
        await outbox.append(envelopes(100))
        async with forwarding(outbox, broker) as state:
            await until(lambda: len(broker.pending()) == UP.window)
            first = broker.pending()[0]

            def all_sent_and_acked_but_first() -> bool:
                for done in broker.pending():
                    if done is not first:
                        done.set_result(None)
                return set(broker.seqs()) == set(range(1, 101))

            await until(all_sent_and_acked_but_first)
            assert state.cursor == 0
            first.set_result(None)
            await until(lambda: state.cursor == 100)
    assert broker.most_pending <= UP.window


async def test_no_more_than_window_messages_await_their_puback(tmp_path: Path) -> None:
    """However acks trickle in, at most ``window`` messages are ever unacknowledged."""
    broker = FakeBroker(auto_ack=False)
    async with outbox_at(tmp_path) as outbox:
        await outbox.append(envelopes(200))
        async with forwarding(outbox, broker) as state:

            def ack_oldest() -> bool:
                pending = broker.pending()
                if pending:
                    pending[0].set_result(None)
                return state.cursor == 200

            await until(ack_oldest)
    assert broker.most_pending == UP.window
    assert state.published > UP.window


async def test_alerts_overtake_the_backlog_and_are_not_sent_twice(tmp_path: Path) -> None:
    """Urgent envelopes go out before older samples; the backlog then skips them."""
    broker = FakeBroker()
    async with outbox_at(tmp_path) as outbox:
        await outbox.append(envelopes(40, urgent_every=10))
        async with forwarding(outbox, broker) as state:
            await until(lambda: state.cursor == 40)
    kinds = [topic.rsplit("/", 1)[1] for topic, _, _ in broker.log]
    alerts = kinds.count("alert")
    assert kinds[:alerts] == ["alert"] * alerts  # every alert before the first sample
    assert sorted(broker.seqs()) == list(range(1, 41))


async def test_a_backlog_of_only_alerts_is_delivered_once(tmp_path: Path) -> None:
    """When every envelope of a chunk went ahead as an alert, the chunk has nothing left to send."""
    broker = FakeBroker()
    async with outbox_at(tmp_path) as outbox:
        await outbox.append(envelopes(6, urgent_every=1))
        async with forwarding(outbox, broker) as state:
            await until(lambda: state.cursor == 6)
            await outbox.append(envelopes(3))
            await until(lambda: state.cursor == 9)
    assert sorted(broker.seqs()) == list(range(1, 10))


async def test_a_lost_connection_resends_from_the_cursor_and_reconnects(tmp_path: Path) -> None:
    """What was unacknowledged when the connection dropped is published again."""
    broker = FakeBroker(auto_ack=False)
    async with outbox_at(tmp_path) as outbox:
        await outbox.append(envelopes(100))
        async with forwarding(outbox, broker) as state:
            await until(lambda: len(broker.pending()) == UP.window)
            in_flight = broker.seqs()
            assert broker.connection is not None
            broker.connection.lose()
            broker.auto_ack = True
            await until(lambda: state.cursor == 100)
            assert state.reconnects >= 1
            assert state.last_error is None
    assert broker.connects == 2
    assert set(in_flight) <= set(broker.seqs(acked_only=True))


async def test_a_refusing_broker_is_retried_and_reported(tmp_path: Path) -> None:
    """Refused credentials: last_error says so, attempts continue, nothing is marked sent."""
    broker = FakeBroker()
    broker.refuse = PublishRejectedError("broker.test", "connection refused: Not authorized")
    async with outbox_at(tmp_path) as outbox:
        await outbox.append(envelopes(5))
        async with forwarding(outbox, broker) as state:
            await until(lambda: state.reconnects >= 3)
            assert state.last_error == "connection refused: Not authorized"
            assert not state.connected
            assert state.cursor == 0
            broker.refuse = None
            await until(lambda: state.cursor == 5)


async def test_a_down_upstream_does_not_hold_back_another(tmp_path: Path) -> None:
    """Two forwarders on one outbox: the refused one stays at 0, the other delivers everything."""
    down, up = FakeBroker(), FakeBroker()
    down.refuse = BrokerUnavailableError("down.test", "connection refused")
    async with outbox_at(tmp_path, ("up", "down")) as outbox:
        async with (
            forwarding(outbox, down, replace(UP, name="down")) as down_state,
            forwarding(outbox, up) as up_state,
        ):
            for _ in range(5):
                await outbox.append(envelopes(10))
                await until(lambda: up_state.cursor == outbox.last_committed_seq)
            assert down_state.cursor == 0
            assert down_state.backlog == 50
        assert (await outbox.stats()).rows == 50  # kept for "down"


class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_drain_rate_caps_envelopes_per_second(tmp_path: Path) -> None:
    """At 5 envelopes/s, what went out never exceeds 5 per elapsed second plus one burst."""
    broker = FakeBroker()
    slow = replace(UP, drain_rate=5.0)
    clock = FakeClock()
    async with outbox_at(tmp_path) as outbox:
        await outbox.append(envelopes(90))
        async with forwarding(outbox, broker, slow, clock=clock) as state:
            biggest = 0

            def within_rate() -> bool:
                nonlocal biggest
                biggest = max([biggest, *(len(unpack(p)) for _, p, _ in broker.log)])
                assert state.envelopes_published <= 5 * (clock.now - 100.0) + 5 + biggest
                return True

            await until(lambda: state.envelopes_published > 0 and within_rate())
            before = state.envelopes_published
            clock.now += 3.0
            await until(lambda: state.envelopes_published > before and within_rate())
            assert state.cursor < 90


async def test_outbox_commit_listeners_hear_each_commit_that_storedenvelopes(
    tmp_path: Path,
) -> None:
    """on_commit reports the last committed seq after appends, and stops once removed."""
    heard: list[int] = []
    async with outbox_at(tmp_path) as outbox:
        remove = outbox.on_commit(heard.append)
        await outbox.append(envelopes(3))
        await outbox.append(envelopes(2))
        remove()
        await outbox.append(envelopes(1))
    assert heard == [3, 5]


def _cursor_at(state: UpstreamState, seq: int) -> bool:
    return state.cursor == seq


async def test_the_batch_layout_setting_chooses_rows_or_objects(tmp_path: Path) -> None:
    """A backlog of samples goes out as rows under a channel list by default, and as objects
    with batch_layout = "objects"; both carry every seq once.
    """
    samples = [
        Envelope(Kind.SAMPLE, "m1", 1_767_600_000.0 + i, {"values": {"v": i}, "quality": "good"})
        for i in range(1, 21)
    ]
    for layout, key in ((BatchLayout.COLUMNS, b'"rows":'), (BatchLayout.OBJECTS, b'"envelopes":')):
        broker = FakeBroker()
        async with outbox_at(tmp_path / layout.value) as outbox:
            await outbox.append(samples)
            config = replace(UP, batch_layout=layout)
            async with forwarding(outbox, broker, config) as state:
                await until(partial(_cursor_at, state, 20))
        assert sorted(broker.seqs()) == list(range(1, 21))
        assert all(key in payload for _, payload, _ in broker.log)
