"""The publishing side of one connection: read, pack, publish, and settle what comes back.

A :class:`Session` lives as long as one connection. Everything that outlives it (which seqs
are settled, the cursor) is in the :class:`~gridedge.forward.ledger.Ledger` it is given. A
session ends by raising :class:`~gridedge.errors.ForwardError`: the connection failed, or the
oldest message in flight waited longer than ``puback_timeout_s`` for its PUBACK (a broker
that answers pings but no publishes). A message the broker refuses (MQTT 5 reason code
>= 0x80) does not end it: its envelopes are set aside in the outbox's quarantine for this
upstream, counted by reason, and the cursor passes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gridedge.errors import BrokerUnavailableError, ForwardError, MessageRefusedError
from gridedge.forward.backoff import RateLimit
from gridedge.forward.compression import compressor
from gridedge.forward.gateway_batch import merge_json, merge_lines
from gridedge.forward.ledger import Ledger
from gridedge.forward.payload import Identity, Message, pack
from gridedge.forward.settings import BatchScope, PayloadFormat, UpstreamConfig
from gridedge.forward.state import UpstreamState
from gridedge.log import get_logger
from gridedge.model import Envelope
from gridedge.outbox.store import Outbox

_log = get_logger("forward")

READ_CHUNK = 5000
"""Envelopes read from the outbox at a time; a backlog chunk is packed per device into
batches, so bigger chunks make bigger (fewer) messages."""


class Publisher(Protocol):
    """One open connection to a broker (see :class:`gridedge.forward.mqtt.MqttPublisher`)."""

    error: ForwardError | None

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> asyncio.Future[None]:
        """Publish at QoS 1; the future completes on PUBACK or fails with a ForwardError.

        A compressed payload is published with ``content_encoding=`` its compression as well
        (see :class:`gridedge.forward.mqtt.MqttPublisher`).
        """

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the connection ends."""

    def subscribe(self, topics: Sequence[str], on_message: Callable[[str, bytes], None]) -> None:
        """Subscribe at QoS 1; messages on ``topics`` go to ``on_message``."""


Packer = Callable[[Sequence[Envelope], Identity, int], list[Message]]
"""Turns envelopes into messages of one payload format (JSON, line protocol)."""


class Mirror(Protocol):
    """Retained messages an upstream publishes beside the envelope stream (not in the ledger):
    Home Assistant's discovery and state topics.
    """

    @property
    def subscriptions(self) -> Sequence[str]:
        """Topics whose messages go to :meth:`on_message`."""
        ...

    def on_connect(self) -> list[Message]:
        """What to publish on every new connection."""
        ...

    def on_envelopes(self, envelopes: Sequence[Envelope]) -> list[Message]:
        """What to publish for envelopes about to be sent."""
        ...

    def on_message(self, topic: str, payload: bytes) -> list[Message]:
        """What to publish in answer to a message received."""
        ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """Envelopes of one refused message, waiting to be set aside."""

    seqs: tuple[int, ...]
    error: MessageRefusedError


@dataclass(frozen=True, slots=True)
class Upstream:
    """What a session needs of its upstream, besides the connection.

    Attributes:
        config: the upstream's settings.
        outbox: where envelopes are read and refused ones set aside.
        identity: topic prefix, site and gateway id.
        ledger: per-seq delivery state, kept across connections.
        state: live state to fill in.
        rate: the drain rate limit (shared across connections).
        wake: set on new envelopes, answers and a lost connection.
        on_progress: called when the ledger's cursor moved.
        clock: monotonic seconds.
        reasons_logged: refusal reasons already logged at WARNING (later ones go to DEBUG).
    """

    config: UpstreamConfig
    outbox: Outbox
    identity: Identity
    ledger: Ledger
    state: UpstreamState
    rate: RateLimit
    wake: asyncio.Event
    on_progress: Callable[[], None]
    clock: Callable[[], float] = time.monotonic
    reasons_logged: set[str] = field(default_factory=set)
    pack: Packer = pack
    mirror: Mirror | None = None


class Session:
    """Publishes over one connection until it fails; see the module docstring."""

    def __init__(self, upstream: Upstream, publisher: Publisher) -> None:
        self._up = upstream
        self._pub = publisher
        self._staged: deque[Message] = deque()
        self._refused: list[Refusal] = []
        self._failure: ForwardError | None = None
        self._rate_delay = 0.0
        self._cursor = upstream.ledger.cursor
        self._compression = upstream.config.compression
        self._compress = compressor(self._compression)
        config = upstream.config
        self._merge = (
            None
            if config.batch_scope is BatchScope.DEVICE
            else merge_lines
            if config.format is PayloadFormat.INFLUX
            else merge_json
        )
        publisher.on_close(upstream.wake.set)

    def _pack(self, envelopes: Sequence[Envelope], *, urgent: bool = False) -> list[Message]:
        """Messages carrying ``envelopes``, merged across devices and compressed as the
        upstream asks (alerts keep their device topics).
        """
        up = self._up
        messages = up.pack(envelopes, up.identity, up.config.max_batch_bytes)
        if self._merge is not None and not urgent:
            messages = self._merge(messages, up.identity, up.config.max_batch_bytes)
        compress = self._compress
        if compress is None:
            return messages
        encoding = self._compression.value
        return [
            Message(m.topic, compress(m.payload), m.seqs, encoding) if len(m.seqs) > 1 else m
            for m in messages
        ]

    def _side(self, messages: list[Message]) -> None:
        """Publish retained side messages; their outcome changes no delivery state."""
        for message in messages:
            done = self._pub.publish(message.topic, message.payload, retain=True)
            done.add_done_callback(lambda fut: fut.cancelled() or fut.exception())

    async def pump(self) -> None:
        """Publish until the connection fails (raises ForwardError) or the task is cancelled."""
        mirror = self._up.mirror
        if mirror is not None:
            self._pub.subscribe(
                mirror.subscriptions, lambda t, p: self._side(mirror.on_message(t, p))
            )
            self._side(mirror.on_connect())
        wake = self._up.wake
        while True:
            wake.clear()
            self._raise_if_failed()
            await self._set_aside()
            if await self._fill():
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._wait_s()):
                    await wake.wait()

    def _raise_if_failed(self) -> None:
        error = self._failure or self._pub.error
        if error is not None:
            raise error
        oldest = self._up.ledger.oldest_sent_at()
        limit = self._up.config.puback_timeout_s
        if oldest is not None and self._up.clock() - oldest >= limit:
            raise BrokerUnavailableError(
                self._up.config.broker, f"no PUBACK within {limit:g} s (the broker is stuck)"
            )

    def _wait_s(self) -> float | None:
        """How long to wait for a wake-up: until the rate allows more or a PUBACK is late."""
        waits = [self._rate_delay] if self._rate_delay > 0 else []
        oldest = self._up.ledger.oldest_sent_at()
        if oldest is not None:
            due = oldest + self._up.config.puback_timeout_s - self._up.clock()
            waits.append(max(0.0, due))
        return min(waits, default=None)

    def _room(self) -> int:
        return self._up.config.window - self._up.ledger.in_flight

    async def _fill(self) -> bool:
        """Publish what the window and the rate allow, urgent first; whether anything went."""
        up, ledger = self._up, self._up.ledger
        progressed = False
        while self._room() > 0:
            urgent = await up.outbox.read_urgent_after(ledger.urgent_after, self._room())
            if not urgent:
                break
            taken = ledger.take_urgent(urgent)
            if up.mirror is not None:
                self._side(up.mirror.on_envelopes(taken))
            for message in self._pack(taken, urgent=True):
                self._send(message, urgent=True)
                progressed = True
        self._rate_delay = 0.0
        while self._room() > 0:
            if not self._staged:
                if not await self._read_chunk():
                    break
                continue  # the chunk may have held only envelopes sent or settled already
            delay = up.rate.delay(up.clock())
            if delay > 0:
                self._rate_delay = delay
                break
            message = self._staged.popleft()
            self._send(message, urgent=False)
            up.rate.take(len(message.seqs), up.clock())
            progressed = True
        return progressed

    async def _read_chunk(self) -> bool:
        """Stage the next chunk of the backlog; whether there was one."""
        up, ledger = self._up, self._up.ledger
        after = ledger.backlog_after
        chunk = await up.outbox.read_after(after, READ_CHUNK)
        if not chunk:
            return False
        first = chunk[0].seq or 0
        if first > after + 1:
            _log.warning(
                "forward.skipped_dropped",
                upstream=up.config.name,
                envelopes=first - after - 1,
                after_seq=after,
            )
        fresh = ledger.take_backlog(chunk)
        if up.mirror is not None:
            self._side(up.mirror.on_envelopes(fresh))
        self._staged.extend(self._pack(fresh))
        self._moved()
        return True

    def _send(self, message: Message, *, urgent: bool) -> None:
        up = self._up
        if message.encoding is None:
            done = self._pub.publish(message.topic, message.payload)
        else:
            publish: Callable[..., asyncio.Future[None]] = self._pub.publish
            done = publish(message.topic, message.payload, content_encoding=message.encoding)
        msg_id = up.ledger.sent(message.seqs, now=up.clock(), urgent=urgent)
        up.state.published += 1
        up.state.envelopes_published += len(message.seqs)
        done.add_done_callback(lambda fut: self._answered(fut, msg_id, len(message.seqs)))

    def _answered(self, done: asyncio.Future[None], msg_id: int, envelopes: int) -> None:
        up = self._up
        up.wake.set()
        error = None if done.cancelled() else done.exception()
        if isinstance(error, MessageRefusedError):
            seqs = up.ledger.refused(msg_id)
            if seqs:
                self._refused.append(Refusal(seqs, error))
            return
        if done.cancelled() or error is not None:
            if self._failure is None:
                self._failure = (
                    error
                    if isinstance(error, ForwardError)
                    else BrokerUnavailableError(up.config.broker, f"publish failed: {error!r}")
                )
            return
        up.state.acked += 1
        up.state.envelopes_acked += envelopes
        up.state.last_publish_ts = time.time()
        up.ledger.acked(msg_id)
        self._moved()

    async def _set_aside(self) -> None:
        """Quarantine the envelopes of refused messages, then let the cursor pass them."""
        up = self._up
        while self._refused:
            refusal = self._refused[0]
            error = refusal.error
            added = await up.outbox.quarantine(up.config.name, refusal.seqs, error.reason)
            self._refused.pop(0)
            if added:
                counts = up.state.quarantined
                counts[error.reason] = counts.get(error.reason, 0) + added
                log = _log.debug if error.reason in up.reasons_logged else _log.warning
                up.reasons_logged.add(error.reason)
                log(
                    "forward.quarantined",
                    upstream=up.config.name,
                    reason=error.reason,
                    code=error.code,
                    envelopes=added,
                    first_seq=refusal.seqs[0],
                    detail=error.detail,
                )
            up.ledger.settle(refusal.seqs)
            self._moved()

    def _moved(self) -> None:
        if self._up.ledger.cursor != self._cursor:
            self._cursor = self._up.ledger.cursor
            self._up.on_progress()
