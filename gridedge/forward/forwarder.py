"""One store-and-forward loop per upstream broker.

A forwarder owns one cursor in the outbox. While connected it publishes what follows the
cursor, urgent envelopes (alerts) first, with up to ``window`` messages awaiting their PUBACK,
and moves the cursor only over the prefix the broker acknowledged (:mod:`.window`). A lost or
refused connection is retried with capped, jittered exponential backoff around the whole
connection (``async with`` inside a loop); what was in flight is sent again, so delivery is
at-least-once and a crash or outage duplicates at most what was unacknowledged (plus, after a
crash, what was acknowledged since the cursor's last commit). Forwarders share nothing but
the outbox: a broker that is down holds back no other upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from gridedge.errors import ForwardError, OutboxError
from gridedge.forward.backoff import Backoff, RateLimit
from gridedge.forward.payload import Identity, Message, pack
from gridedge.forward.settings import UpstreamConfig, read_password
from gridedge.forward.state import UpstreamState
from gridedge.forward.window import AckWindow
from gridedge.log import FailureStreak, get_logger
from gridedge.model import Envelope
from gridedge.outbox.store import Outbox

_log = get_logger("forward")

READ_CHUNK = 5000
"""Envelopes read from the outbox at a time; a backlog chunk is packed per device into
batches, so bigger chunks make bigger (fewer) messages."""
_FINAL_SAVE_TIMEOUT_S = 1.0


class Publisher(Protocol):
    """One open connection to a broker (see :class:`gridedge.forward.mqtt.MqttPublisher`)."""

    error: ForwardError | None

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> asyncio.Future[None]:
        """Publish at QoS 1; the future completes on PUBACK or fails with a ForwardError."""

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the connection ends."""


Connect = Callable[[], AbstractAsyncContextManager[Publisher]]


class Forwarder:
    """Forwards the outbox to one upstream, forever; run it with :meth:`run`.

    Args:
        config: the upstream.
        outbox: the open outbox (opened with this upstream's name among ``upstreams``).
        identity: topic prefix, site and gateway id.
        state: filled with live state.
        connect: opens one connection (default: MQTT as configured); a seam for tests.
        clock: monotonic seconds, for the drain rate.
    """

    def __init__(
        self,
        config: UpstreamConfig,
        outbox: Outbox,
        identity: Identity,
        state: UpstreamState,
        *,
        connect: Connect | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._outbox = outbox
        self._identity = identity
        self.state = state
        self._connect = connect if connect is not None else self._open_mqtt
        self._clock = clock
        self._wake = asyncio.Event()  # new envelopes, an ack, a lost connection
        self._dirty = asyncio.Event()  # the cursor moved and is not saved yet
        self._urgent_acked: set[int] = set()  # urgent seqs past the cursor, already delivered
        self._rate = RateLimit(config.drain_rate, clock())

    def _open_mqtt(self) -> AbstractAsyncContextManager[Publisher]:
        from gridedge.forward.mqtt import open_mqtt  # paho is imported only when forwarding

        return open_mqtt(
            self._config,
            client_id=self._config.client_id,
            status_topic=self._identity.status_topic,
            password=read_password(self._config),
        )

    async def run(self) -> None:
        """Forward until cancelled; the cursor reached is saved on the way out (bounded)."""
        name = self._config.name
        self.state.cursor = await self._outbox.cursor(name)
        self._on_commit(self._outbox.last_committed_seq)
        remove = self._outbox.on_commit(self._on_commit)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._save_cursor_forever(), name=f"cursor:{name}")
                await self._connect_forever()
        finally:
            remove()
            with contextlib.suppress(OutboxError, TimeoutError):
                async with asyncio.timeout(_FINAL_SAVE_TIMEOUT_S):
                    await self._outbox.set_cursor(name, self.state.cursor)

    def _on_commit(self, last_seq: int) -> None:
        self.state.last_seq = last_seq
        self.state.dropped_unsent = self._outbox.dropped_unsent_total.get(self._config.name, 0)
        self._wake.set()

    async def _save_cursor_forever(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            # Rides the outbox's next group commit; acks go on arriving meanwhile.
            await self._outbox.set_cursor(self._config.name, self.state.cursor)

    async def _connect_forever(self) -> None:
        config, state = self._config, self.state
        backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s)
        streak = FailureStreak(
            _log, "forward.connection", upstream=config.name, broker=state.broker
        )
        attempts = 0
        while True:
            if attempts:
                state.reconnects += 1
            attempts += 1
            delay = backoff.nominal()
            try:
                async with self._connect() as publisher:
                    state.connected, state.last_error = True, None
                    state.connects += 1
                    backoff.reset()
                    streak.succeeded()
                    _log.info(
                        "forward.connected",
                        upstream=config.name,
                        broker=state.broker,
                        cursor=state.cursor,
                        backlog=state.backlog,
                    )
                    await _Session(self, publisher).pump()
            except ForwardError as exc:
                state.last_error = exc.detail
                delay = backoff.next_delay()
                streak.failed(exc.detail, error_type=type(exc).__name__, retry_in_s=round(delay, 2))
            finally:
                state.connected = False
            await asyncio.sleep(delay)  # backoff, not synchronisation

    def delivered(self, cursor: int) -> None:
        """Every envelope up to ``cursor`` is acknowledged."""
        if cursor <= self.state.cursor:
            return  # a late ack of an earlier connection's window
        self.state.cursor = cursor
        self._urgent_acked = {seq for seq in self._urgent_acked if seq > cursor}
        self._dirty.set()


class _Session:
    """The publishing side of one connection: what is read, staged, in flight and acked."""

    def __init__(self, forwarder: Forwarder, publisher: Publisher) -> None:
        self._fw = forwarder
        self._pub = publisher
        self._cfg = forwarder._config
        self._state = forwarder.state
        self._window = AckWindow(forwarder.state.cursor)
        self._read_pos = forwarder.state.cursor  # the last seq taken into a chunk
        self._urgent_pos = max([forwarder.state.cursor, *forwarder._urgent_acked])
        self._urgent_inflight: dict[int, int] = {}  # urgent seq -> id of its message
        self._staged: deque[tuple[int, Message]] = deque()
        self._inflight = 0
        self._next_id = 0
        self._failure: ForwardError | None = None
        self._rate_delay = 0.0
        publisher.on_close(forwarder._wake.set)

    async def pump(self) -> None:
        """Publish until the connection fails (raises ForwardError) or the task is cancelled."""
        wake = self._fw._wake
        while True:
            wake.clear()
            self._raise_if_failed()
            if await self._fill():
                continue
            timeout = self._rate_delay if self._rate_delay > 0 else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await wake.wait()

    def _raise_if_failed(self) -> None:
        error = self._failure or self._pub.error
        if error is not None:
            raise error

    def _room(self) -> int:
        return self._cfg.window - self._inflight

    async def _fill(self) -> bool:
        """Publish what the window and the rate allow, urgent first; whether anything went."""
        progressed = False
        while self._room() > 0:
            start = max(self._urgent_pos, self._read_pos)
            urgent = await self._fw._outbox.read_urgent_after(start, self._room())
            if not urgent:
                break
            self._urgent_pos = _last_seq(urgent)
            for message in pack(urgent, self._fw._identity, self._cfg.max_batch_bytes):
                msg_id = self._send(message, urgent=True)
                self._urgent_inflight.update(dict.fromkeys(message.seqs, msg_id))
            progressed = True
        self._rate_delay = 0.0
        while self._room() > 0:
            if not self._staged:
                if not await self._read_chunk():
                    break
                continue  # the chunk may have held only alerts that were sent already
            delay = self._fw._rate.delay(self._fw._clock())
            if delay > 0:
                self._rate_delay = delay
                break
            msg_id, message = self._staged.popleft()
            self._send(message, urgent=False, msg_id=msg_id)
            self._fw._rate.take(len(message.seqs), self._fw._clock())
            progressed = True
        return progressed

    async def _read_chunk(self) -> bool:
        """Stage the messages of the next chunk after the read position; whether there was one."""
        chunk = await self._fw._outbox.read_after(self._read_pos, READ_CHUNK)
        if not chunk:
            return False
        first = chunk[0].seq or 0
        if first > self._read_pos + 1:
            _log.warning(
                "forward.skipped_dropped",
                upstream=self._cfg.name,
                envelopes=first - self._read_pos - 1,
                after_seq=self._read_pos,
            )
        fresh, waits = self._without_urgent_sent(chunk)
        for message in pack(fresh, self._fw._identity, self._cfg.max_batch_bytes):
            msg_id = self._new_id()
            self._staged.append((msg_id, message))
            waits.add(msg_id)
        self._read_pos = _last_seq(chunk)
        if self._window.add(self._read_pos, waits):
            self._fw.delivered(self._window.cursor)
        return True

    def _without_urgent_sent(self, chunk: Sequence[Envelope]) -> tuple[list[Envelope], set[int]]:
        """The envelopes of a chunk that still need sending, and the in-flight urgent messages
        that carry the others (the chunk is done only once those are acknowledged too)."""
        fresh: list[Envelope] = []
        waits: set[int] = set()
        acked, inflight = self._fw._urgent_acked, self._urgent_inflight
        for envelope in chunk:
            seq = envelope.seq or 0
            if not envelope.urgent or (seq not in acked and seq not in inflight):
                fresh.append(envelope)
            elif seq in inflight:
                waits.add(inflight[seq])
        return fresh, waits

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _send(self, message: Message, *, urgent: bool, msg_id: int | None = None) -> int:
        msg_id = self._new_id() if msg_id is None else msg_id
        done = self._pub.publish(message.topic, message.payload)
        self._inflight += 1
        self._state.published += 1
        self._state.envelopes_published += len(message.seqs)
        done.add_done_callback(lambda fut: self._acked(fut, msg_id, message, urgent))
        return msg_id

    def _acked(
        self, done: asyncio.Future[None], msg_id: int, message: Message, urgent: bool
    ) -> None:
        self._inflight -= 1
        self._fw._wake.set()
        error = None if done.cancelled() else done.exception()
        if done.cancelled() or error is not None:
            if self._failure is None and isinstance(error, ForwardError):
                self._failure = error
            return
        state = self._state
        state.acked += 1
        state.envelopes_acked += len(message.seqs)
        state.last_publish_ts = time.time()
        if urgent:
            for seq in message.seqs:
                self._urgent_inflight.pop(seq, None)
                self._fw._urgent_acked.add(seq)
        if self._window.ack(msg_id):
            self._fw.delivered(self._window.cursor)


def _last_seq(envelopes: Sequence[Envelope]) -> int:
    return envelopes[-1].seq or 0


def start_forwarders(
    tg: asyncio.TaskGroup,
    upstreams: Sequence[UpstreamConfig],
    *,
    site: str,
    gateway: str,
    outbox: Outbox,
    states: dict[str, UpstreamState],
) -> list[asyncio.Task[None]]:
    """Start one forwarder per enabled upstream in ``tg``; their states go into ``states``.

    Args:
        tg: the task group the forwarders run in.
        upstreams: the configured upstreams (disabled ones are skipped).
        site: the gateway's site id (a topic level).
        gateway: the gateway's id (a topic level).
        outbox: where the envelopes come from.
        states: filled with each forwarder's live state, by upstream name.
    """
    tasks = []
    for upstream in upstreams:
        if not upstream.enabled:
            continue
        state = UpstreamState(upstream.name, upstream.broker, upstream.tls)
        states[upstream.name] = state
        identity = Identity(upstream.topic_prefix, site, gateway, outbox.epoch)
        _log.info(
            "forward.started",
            upstream=upstream.name,
            broker=upstream.broker,
            tls=upstream.tls,
            protocol=upstream.protocol.value,
            client_id=upstream.client_id,
        )
        if not upstream.tls:
            _log.warning("forward.plaintext", upstream=upstream.name, broker=upstream.broker)
        forwarder = Forwarder(upstream, outbox, identity, state)
        tasks.append(tg.create_task(forwarder.run(), name=f"forward:{upstream.name}"))
    return tasks
