"""One store-and-forward loop per upstream broker.

A forwarder owns one cursor in the outbox. While connected it publishes what follows the
cursor, urgent envelopes (alerts) first, with up to ``window`` messages awaiting their PUBACK
(:mod:`.session`), and moves the cursor only over seqs the broker acknowledged or refused
(:mod:`.ledger`, which outlives each connection: an ack is never lost to a later disconnect).
Any failure of a connection, a silent broker (``puback_timeout_s``) included, is retried with
capped, jittered exponential backoff around the whole connection (``async with`` inside a
loop); what was in flight is sent again, so delivery is at-least-once and an outage duplicates
at most the messages in flight (plus, after a crash, what was acknowledged since the cursor's
last commit). Forwarders share nothing but
the outbox: a broker that is down holds back no other upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager

from gridedge.drivers import Driver
from gridedge.errors import BrokerUnavailableError, ForwardError, OutboxError
from gridedge.forward.backoff import HEALTHY_S, Backoff, RateLimit
from gridedge.forward.homeassistant import HomeAssistantBridge
from gridedge.forward.influx import pack_lines
from gridedge.forward.ledger import Ledger
from gridedge.forward.payload import Identity, pack, pack_objects
from gridedge.forward.session import READ_CHUNK, Mirror, Packer, Publisher, Session, Upstream
from gridedge.forward.settings import BatchLayout, PayloadFormat, UpstreamConfig, read_password
from gridedge.forward.state import UpstreamState
from gridedge.log import FailureStreak, get_logger
from gridedge.outbox.store import Outbox

__all__ = ["READ_CHUNK", "Connect", "Forwarder", "Publisher", "start_forwarders"]

_log = get_logger("forward")

_FINAL_SAVE_TIMEOUT_S = 1.0


Connect = Callable[[], AbstractAsyncContextManager[Publisher]]
HealthReport = Callable[[], Awaitable[bytes]]
"""The gateway's health report as a JSON payload (built by the daemon from its runtime)."""


class Forwarder:
    """Forwards the outbox to one upstream, forever; run it with :meth:`run`.

    Args:
        config: the upstream.
        outbox: the open outbox (opened with this upstream's name among ``upstreams``).
        identity: topic prefix, site and gateway id.
        state: filled with live state.
        connect: opens one connection (default: MQTT as configured); a seam for tests.
        clock: monotonic seconds, for the drain rate and the PUBACK timeout.
        mirror: retained side messages (Home Assistant), when the upstream has them.
        health: the gateway's health report, published every ``health_interval_s``.
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
        mirror: Mirror | None = None,
        health: HealthReport | None = None,
    ) -> None:
        self._mirror = mirror
        self._health = health
        self._pack: Packer = (
            pack_lines
            if config.format is PayloadFormat.INFLUX
            else pack_objects
            if config.batch_layout is BatchLayout.OBJECTS
            else pack
        )
        self._config = config
        self._outbox = outbox
        self._identity = identity
        self.state = state
        self._connect = connect if connect is not None else self._open_mqtt
        self._clock = clock
        self._wake = asyncio.Event()  # new envelopes, an answer, a lost connection
        self._dirty = asyncio.Event()  # the cursor moved and is not saved yet
        self._rate = RateLimit(config.drain_rate, clock())
        self._ledger = Ledger(0)
        self._up_since: float | None = None  # monotonic time the current connection came up

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
        name, state = self._config.name, self.state
        state.cursor = await self._outbox.cursor(name)
        state.quarantined = await self._outbox.quarantined(name)
        state.stall_after_s = self._config.stall_after_s
        state.progress_ts = time.time()
        self._ledger = Ledger(state.cursor)
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
                    await self._outbox.set_cursor(name, state.cursor)

    def _on_commit(self, last_seq: int) -> None:
        state = self.state
        if state.last_seq <= state.cursor:
            state.progress_ts = time.time()  # a backlog begins now, not at the last move
        state.last_seq = last_seq
        state.dropped_unsent = self._outbox.dropped_unsent_total.get(self._config.name, 0)
        self._wake.set()

    async def _save_cursor_forever(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            # Rides the outbox's next group commit; acks go on arriving meanwhile.
            await self._outbox.set_cursor(self._config.name, self.state.cursor)

    def _upstream(self) -> Upstream:
        return Upstream(
            config=self._config,
            outbox=self._outbox,
            identity=self._identity,
            ledger=self._ledger,
            state=self.state,
            rate=self._rate,
            wake=self._wake,
            on_progress=self._delivered,
            clock=self._clock,
            pack=self._pack,
            mirror=self._mirror,
        )

    async def _health_forever(self, publisher: Publisher) -> None:
        """Publish the retained health report while the connection lasts."""
        assert self._health is not None
        while True:
            payload = await self._health()
            done = publisher.publish(self._identity.health_topic, payload, retain=True)
            done.add_done_callback(lambda fut: fut.cancelled() or fut.exception())
            await asyncio.sleep(self._config.health_interval_s)  # a period, not a wait

    async def _connect_forever(self) -> None:
        config, state = self._config, self.state
        backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s)
        streak = FailureStreak(
            _log, "forward.connection", upstream=config.name, broker=state.broker
        )
        upstream = self._upstream()
        attempts = 0
        while True:
            if attempts:
                state.reconnects += 1
            attempts += 1
            delay = backoff.nominal()
            self._up_since = None
            try:
                await self._connection(upstream, streak)
            except (ForwardError, OutboxError) as exc:
                detail = exc.detail if isinstance(exc, ForwardError) else str(exc)
                state.last_error = detail
                # Only a connection that lasted counts as recovered: one that a broker drops
                # right after CONNACK keeps backing off instead of being retried every second.
                up_since = self._up_since
                if up_since is not None and time.monotonic() - up_since >= HEALTHY_S:
                    backoff.reset()
                delay = backoff.next_delay()
                streak.failed(detail, error_type=type(exc).__name__, retry_in_s=round(delay, 2))
            finally:
                state.connected = False
                self._ledger.lost()
            await asyncio.sleep(delay)  # backoff, not synchronisation

    async def _connection(self, upstream: Upstream, streak: FailureStreak) -> None:
        """One connection, from connecting to its end.

        Raises:
            ForwardError: it failed, including a cancellation that came from inside the
                attempt (a timeout of its own) rather than from whoever runs the forwarder.
        """
        state = self.state
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        try:
            async with self._connect() as publisher:
                state.connected, state.last_error = True, None
                state.connects += 1
                self._up_since = time.monotonic()
                streak.succeeded()
                _log.info(
                    "forward.connected",
                    upstream=self._config.name,
                    broker=state.broker,
                    cursor=state.cursor,
                    backlog=state.backlog,
                )
                reporter = None
                if self._health is not None and self._config.health_interval_s > 0:
                    reporter = asyncio.create_task(self._health_forever(publisher))
                try:
                    await Session(upstream, publisher).pump()
                finally:
                    if reporter is not None:
                        reporter.cancel()
        except asyncio.CancelledError:
            if task is None or task.cancelling() > cancelling:
                raise  # cancelled from outside: the forwarder stops
            raise BrokerUnavailableError(
                self._config.broker, "connection attempt cancelled from within"
            ) from None

    def _delivered(self) -> None:
        """The ledger's cursor moved: every envelope up to it is settled."""
        cursor = self._ledger.cursor
        if cursor <= self.state.cursor:
            return
        self.state.cursor = cursor
        self.state.progress_ts = time.time()
        self._dirty.set()


def start_forwarders(
    tg: asyncio.TaskGroup,
    upstreams: Sequence[UpstreamConfig],
    *,
    site: str,
    gateway: str,
    outbox: Outbox,
    states: dict[str, UpstreamState],
    meters: Sequence[tuple[str, Driver]] = (),
    health: HealthReport | None = None,
    version: str = "",
) -> list[asyncio.Task[None]]:
    """Start one forwarder per enabled upstream in ``tg``; their states go into ``states``.

    Args:
        tg: the task group the forwarders run in.
        upstreams: the configured upstreams (disabled ones are skipped).
        site: the gateway's site id (a topic level).
        gateway: the gateway's id (a topic level).
        outbox: where the envelopes come from.
        states: filled with each forwarder's live state, by upstream name.
        meters: every meter's id and driver (for Home Assistant discovery).
        health: the gateway's health report, for the periodic ``health`` message.
        version: gridedge's version, announced to Home Assistant.
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
        mirror = None
        if upstream.home_assistant:
            mirror = HomeAssistantBridge(
                meters, identity, discovery_prefix=upstream.discovery_prefix, version=version
            )
        forwarder = Forwarder(upstream, outbox, identity, state, mirror=mirror, health=health)
        tasks.append(tg.create_task(forwarder.run(), name=f"forward:{upstream.name}"))
    return tasks
