"""The forwarder against an in-memory broker: cursor, window, urgency, reconnects, rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from gridedge.config import OutboxConfig
from gridedge.errors import BrokerUnavailableError, ForwardError, PublishRejectedError
from gridedge.forward.forwarder import Forwarder, Publisher
from gridedge.forward.payload import Identity, unpack
from gridedge.forward.settings import UpstreamConfig
from gridedge.forward.state import UpstreamState
from gridedge.model import Envelope, Kind
from gridedge.outbox.store import Outbox, open_outbox, read_stats

UP = UpstreamConfig(
    "up", "broker.test", 8883, window=4, max_batch_bytes=1024, reconnect_min_s=0.01,
    reconnect_max_s=0.02, drain_rate=0.0,
)  # fmt: skip
IDENTITY = Identity("gridedge", "site", "gw")


class FakeConnection:
    """One connection to the in-memory broker; publishes wait for ack() unless auto-acked."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.error: ForwardError | None = None
        self._callbacks: list[Callable[[], None]] = []

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.broker.log.append((topic, payload, done))
        self.broker.most_pending = max(self.broker.most_pending, len(self.broker.pending()))
        if self.broker.auto_ack:
            done.set_result(None)
        return done

    def on_close(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def lose(self) -> None:
        self.error = BrokerUnavailableError("broker.test", "connection lost")
        for _, _, done in self.broker.log:
            if not done.done():
                done.set_exception(self.error)
        for callback in self._callbacks:
            callback()


class FakeBroker:
    """Records every publish; refuses connections while ``refuse`` is set."""

    def __init__(self, *, auto_ack: bool = True) -> None:
        self.auto_ack = auto_ack
        self.refuse: ForwardError | None = None
        self.log: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self.connection: FakeConnection | None = None
        self.connects = 0
        self.most_pending = 0

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[Publisher]:
        if self.refuse is not None:
            raise self.refuse
        self.connects += 1
        self.connection = FakeConnection(self)
        yield self.connection

    def connect(self) -> AbstractAsyncContextManager[Publisher]:
        return self._connect()

    def seqs(self, *, acked_only: bool = False) -> list[int]:
        return [
            entry["seq"]
            for _, payload, done in self.log
            if not acked_only or (done.done() and not done.exception())
            for entry in unpack(payload)
        ]

    def pending(self) -> list[asyncio.Future[None]]:
        return [done for _, _, done in self.log if not done.done()]


def _envelopes(count: int, *, urgent_every: int = 0) -> list[Envelope]:
    return [
        Envelope(
            Kind.ALERT if urgent_every and i % urgent_every == 0 else Kind.SAMPLE,
            f"m{i % 3}",
            time.time() + i / 1000,
            {"i": i},
            urgent=bool(urgent_every and i % urgent_every == 0),
        )
        for i in range(1, count + 1)
    ]


@asynccontextmanager
async def _outbox(tmp_path: Path, upstreams: tuple[str, ...] = ("up",)) -> AsyncIterator[Outbox]:
    config = OutboxConfig(path=tmp_path / "outbox.sqlite3", commit_interval_s=0.005)
    async with open_outbox(config, upstreams=upstreams) as outbox:
        yield outbox


@asynccontextmanager
async def _forwarding(
    outbox: Outbox, broker: FakeBroker, config: UpstreamConfig = UP, **kwargs: object
) -> AsyncIterator[UpstreamState]:
    state = UpstreamState(config.name, config.broker, config.tls)
    forwarder = Forwarder(config, outbox, IDENTITY, state, connect=broker.connect, **kwargs)  # type: ignore[arg-type]
    task = asyncio.create_task(forwarder.run())
    try:
        yield state
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _until(condition: Callable[[], object], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.002)


async def test_everything_committed_is_published_once_and_the_cursor_saved(tmp_path: Path) -> None:
    """With a healthy broker every envelope goes out once and the saved cursor reaches the end."""
    broker = FakeBroker()
    async with _outbox(tmp_path) as outbox:
        await outbox.append(_envelopes(50))
        async with _forwarding(outbox, broker) as state:
            await _until(lambda: state.cursor == 50)
            await outbox.append(_envelopes(10))  # live data after the backlog
            await _until(lambda: state.cursor == 60)
    assert read_stats(tmp_path / "outbox.sqlite3").cursors["up"] == 60
    assert sorted(broker.seqs()) == list(range(1, 61))
    assert state.envelopes_acked == state.envelopes_published == 60


async def test_cursor_waits_for_the_oldest_unacknowledged_message(tmp_path: Path) -> None:
    """Acks of every later message leave the cursor where the first unacked one holds it."""
    broker = FakeBroker(auto_ack=False)
    async with _outbox(tmp_path) as outbox:
        await outbox.append(_envelopes(100))
        async with _forwarding(outbox, broker) as state:
            await _until(lambda: len(broker.pending()) == UP.window)
            first = broker.pending()[0]

            def all_sent_and_acked_but_first() -> bool:
                for done in broker.pending():
                    if done is not first:
                        done.set_result(None)
                return set(broker.seqs()) == set(range(1, 101))

            await _until(all_sent_and_acked_but_first)
            assert state.cursor == 0
            first.set_result(None)
            await _until(lambda: state.cursor == 100)
    assert broker.most_pending <= UP.window


async def test_no_more_than_window_messages_await_their_puback(tmp_path: Path) -> None:
    """However acks trickle in, at most ``window`` messages are ever unacknowledged."""
    broker = FakeBroker(auto_ack=False)
    async with _outbox(tmp_path) as outbox:
        await outbox.append(_envelopes(200))
        async with _forwarding(outbox, broker) as state:

            def ack_oldest() -> bool:
                pending = broker.pending()
                if pending:
                    pending[0].set_result(None)
                return state.cursor == 200

            await _until(ack_oldest)
    assert broker.most_pending == UP.window
    assert state.published > UP.window


async def test_alerts_overtake_the_backlog_and_are_not_sent_twice(tmp_path: Path) -> None:
    """Urgent envelopes go out before older samples; the backlog then skips them."""
    broker = FakeBroker()
    async with _outbox(tmp_path) as outbox:
        await outbox.append(_envelopes(40, urgent_every=10))
        async with _forwarding(outbox, broker) as state:
            await _until(lambda: state.cursor == 40)
    kinds = [topic.rsplit("/", 1)[1] for topic, _, _ in broker.log]
    alerts = kinds.count("alert")
    assert kinds[:alerts] == ["alert"] * alerts  # every alert before the first sample
    assert sorted(broker.seqs()) == list(range(1, 41))


async def test_a_backlog_of_only_alerts_is_delivered_once(tmp_path: Path) -> None:
    """When every envelope of a chunk went ahead as an alert, the chunk has nothing left to send."""
    broker = FakeBroker()
    async with _outbox(tmp_path) as outbox:
        await outbox.append(_envelopes(6, urgent_every=1))
        async with _forwarding(outbox, broker) as state:
            await _until(lambda: state.cursor == 6)
            await outbox.append(_envelopes(3))
            await _until(lambda: state.cursor == 9)
    assert sorted(broker.seqs()) == list(range(1, 10))


async def test_a_lost_connection_resends_from_the_cursor_and_reconnects(tmp_path: Path) -> None:
    """What was unacknowledged when the connection dropped is published again."""
    broker = FakeBroker(auto_ack=False)
    async with _outbox(tmp_path) as outbox:
        await outbox.append(_envelopes(100))
        async with _forwarding(outbox, broker) as state:
            await _until(lambda: len(broker.pending()) == UP.window)
            in_flight = broker.seqs()
            assert broker.connection is not None
            broker.connection.lose()
            broker.auto_ack = True
            await _until(lambda: state.cursor == 100)
            assert state.reconnects >= 1
            assert state.last_error is None
    assert broker.connects == 2
    assert set(in_flight) <= set(broker.seqs(acked_only=True))


async def test_a_refusing_broker_is_retried_and_reported(tmp_path: Path) -> None:
    """Refused credentials: last_error says so, attempts continue, nothing is marked sent."""
    broker = FakeBroker()
    broker.refuse = PublishRejectedError("broker.test", "connection refused: Not authorized")
    async with _outbox(tmp_path) as outbox:
        await outbox.append(_envelopes(5))
        async with _forwarding(outbox, broker) as state:
            await _until(lambda: state.reconnects >= 3)
            assert state.last_error == "connection refused: Not authorized"
            assert not state.connected
            assert state.cursor == 0
            broker.refuse = None
            await _until(lambda: state.cursor == 5)


async def test_a_down_upstream_does_not_hold_back_another(tmp_path: Path) -> None:
    """Two forwarders on one outbox: the refused one stays at 0, the other delivers everything."""
    down, up = FakeBroker(), FakeBroker()
    down.refuse = BrokerUnavailableError("down.test", "connection refused")
    async with _outbox(tmp_path, ("up", "down")) as outbox:
        async with (
            _forwarding(outbox, down, replace(UP, name="down")) as down_state,
            _forwarding(outbox, up) as up_state,
        ):
            for _ in range(5):
                await outbox.append(_envelopes(10))
                await _until(lambda: up_state.cursor == outbox.last_committed_seq)
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
    async with _outbox(tmp_path) as outbox:
        await outbox.append(_envelopes(90))
        async with _forwarding(outbox, broker, slow, clock=clock) as state:
            biggest = 0

            def within_rate() -> bool:
                nonlocal biggest
                biggest = max([biggest, *(len(unpack(p)) for _, p, _ in broker.log)])
                assert state.envelopes_published <= 5 * (clock.now - 100.0) + 5 + biggest
                return True

            await _until(lambda: state.envelopes_published > 0 and within_rate())
            before = state.envelopes_published
            clock.now += 3.0
            await _until(lambda: state.envelopes_published > before and within_rate())
            assert state.cursor < 90


async def test_outbox_commit_listeners_hear_each_commit_that_stored_envelopes(
    tmp_path: Path,
) -> None:
    """on_commit reports the last committed seq after appends, and stops once removed."""
    heard: list[int] = []
    async with _outbox(tmp_path) as outbox:
        remove = outbox.on_commit(heard.append)
        await outbox.append(_envelopes(3))
        await outbox.append(_envelopes(2))
        remove()
        await outbox.append(_envelopes(1))
    assert heard == [3, 5]
