"""An in-memory broker behind the forwarder's ``connect=`` seam, over a real SQLite outbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from gridedge.config import OutboxConfig
from gridedge.errors import BrokerUnavailableError, ForwardError, MessageRefusedError
from gridedge.forward.forwarder import Forwarder, Publisher
from gridedge.forward.payload import Identity, unpack
from gridedge.forward.settings import UpstreamConfig
from gridedge.forward.state import UpstreamState
from gridedge.model import Envelope, Kind
from gridedge.outbox.store import Outbox, open_outbox

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
        self.acks = 0

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> asyncio.Future[None]:
        """Record the message; answer it as the broker is configured to."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        broker = self.broker
        if self.error is not None:
            done.set_exception(self.error)
            return done
        broker.log.append((topic, payload, done))
        broker.most_pending = max(broker.most_pending, len(broker.pending()))
        if broker.refuse_topic is not None and broker.refuse_topic in topic:
            done.set_exception(MessageRefusedError("broker.test", topic, 0x87, "Not authorized"))
        elif broker.auto_ack:
            done.set_result(None)
            self.acks += 1
            if broker.acks_per_connection is not None and self.acks >= broker.acks_per_connection:
                asyncio.get_running_loop().call_soon(self.lose)
        return done

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the connection is lost."""
        self._callbacks.append(callback)

    def subscribe(self, topics: Sequence[str], on_message: Callable[[str, bytes], None]) -> None:
        """Record the subscription; tests deliver messages through ``on_message`` themselves."""
        self.subscriptions = list(topics)
        self.deliver = on_message

    def lose(self) -> None:
        """Drop the connection: unanswered publishes fail."""
        if self.error is not None:
            return
        self.error = BrokerUnavailableError("broker.test", "connection lost")
        for _, _, done in self.broker.log:
            if not done.done():
                done.set_exception(self.error)
        for callback in self._callbacks:
            callback()


class FakeBroker:
    """Records every publish; refuses connections while ``refuse`` is set.

    Attributes:
        refuse_topic: publishes to a topic containing this are refused (MQTT 5, 0x87).
        acks_per_connection: a connection is lost after acking this many messages.
        fail_inside: raised once from inside the next connection attempt.
    """

    def __init__(self, *, auto_ack: bool = True) -> None:
        self.auto_ack = auto_ack
        self.refuse: ForwardError | None = None
        self.refuse_topic: str | None = None
        self.acks_per_connection: int | None = None
        self.fail_inside: BaseException | None = None
        self.log: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self.connection: FakeConnection | None = None
        self.connects = 0
        self.most_pending = 0

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[Publisher]:
        if self.refuse is not None:
            raise self.refuse
        if self.fail_inside is not None:
            error, self.fail_inside = self.fail_inside, None
            raise error
        self.connects += 1
        self.connection = FakeConnection(self)
        yield self.connection

    def connect(self) -> AbstractAsyncContextManager[Publisher]:
        """Open one connection (the forwarder's ``connect=`` seam)."""
        return self._connect()

    def seqs(self, *, acked_only: bool = False) -> list[int]:
        """The seqs of every envelope published, in order (only acknowledged ones if told)."""
        return [
            entry["seq"]
            for _, payload, done in self.log
            if not acked_only or (done.done() and not done.exception())
            for entry in unpack(payload)
        ]

    def pending(self) -> list[asyncio.Future[None]]:
        """Publishes not answered yet."""
        return [done for _, _, done in self.log if not done.done()]


def envelopes(count: int, *, urgent_every: int = 0) -> list[Envelope]:
    """``count`` envelopes of devices m0..m2, every ``urgent_every``-th an urgent alert."""
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
async def outbox_at(tmp_path: Path, upstreams: tuple[str, ...] = ("up",)) -> AsyncIterator[Outbox]:
    """A real outbox file in ``tmp_path`` with these upstreams."""
    config = OutboxConfig(path=tmp_path / "outbox.sqlite3", commit_interval_s=0.005)
    async with open_outbox(config, upstreams=upstreams) as outbox:
        yield outbox


@asynccontextmanager
async def forwarding(
    outbox: Outbox, broker: FakeBroker, config: UpstreamConfig = UP, **kwargs: object
) -> AsyncIterator[UpstreamState]:
    """A forwarder running as a task; cancelled (and must end cancelled) on the way out."""
    state = UpstreamState(config.name, config.broker, config.tls)
    forwarder = Forwarder(config, outbox, IDENTITY, state, connect=broker.connect, **kwargs)  # type: ignore[arg-type]
    task = asyncio.create_task(forwarder.run())
    try:
        yield state
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], object], timeout_s: float = 10.0) -> None:
    """Poll ``condition`` until it holds, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.002)
