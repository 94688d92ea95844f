"""MQTT over paho-mqtt on asyncio: the only module that imports paho.

:func:`open_mqtt` is one connection, as an async context manager; reconnecting is the caller's
loop around it. paho runs without a thread of its own: its socket is watched by the asyncio
loop (``add_reader``/``add_writer``) and a ticker calls ``loop_misc`` for keepalive pings. Only
``connect`` (TCP connect and TLS handshake, both blocking in paho) runs in a thread of its own,
bounded by ``connect_timeout_s``. Every paho or ssl failure leaves this module as a
:class:`~gridedge.errors.ForwardError`: :class:`~gridedge.errors.PublishRejectedError` when the
broker refused the credentials or a publish, :class:`~gridedge.errors.BrokerUnavailableError`
for everything else (refused, unreachable, TLS, lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gridedge.errors import (
    BrokerUnavailableError,
    ForwardError,
    MessageRefusedError,
    PublishRejectedError,
)
from gridedge.forward.settings import MqttProtocol, UpstreamConfig
from gridedge.forward.thread import in_thread
from gridedge.forward.tls import TlsContext, describe_connect_error, tls_context

__all__ = ["MqttPublisher", "open_mqtt"]

_MISC_INTERVAL_S = 1.0  # paho's keepalive bookkeeping wants a call about once a second
_CLOSE_TIMEOUT_S = 1.0
_CREDENTIAL_CODES = frozenset({134, 135})  # MQTT 5 "bad user name or password", "not authorized"
_MAX_PENDING_READS = 64


class MqttPublisher:
    """One open connection to a broker; get it from :func:`open_mqtt`.

    Attributes:
        error: why the connection ended (None while it is open or after a clean close).
    """

    def __init__(
        self, client: paho.Client, broker: str, tls: ssl.SSLContext | None, *, v5: bool = False
    ) -> None:
        self._client = client
        self._v5 = v5
        self._broker = broker
        self._tls = tls
        self._loop = asyncio.get_running_loop()
        self._connack: asyncio.Future[None] = self._loop.create_future()
        self._pending: dict[int, tuple[asyncio.Future[None], str]] = {}
        self._close_callbacks: list[Callable[[], None]] = []
        self._fd = -1
        self._attached = False
        self._closing = False
        self._misc: asyncio.Task[None] | None = None
        self._last_log: str | None = None
        self._on_message: Callable[[str, bytes], None] | None = None
        self.error: ForwardError | None = None
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_log = self._on_log
        client.on_message = self._message
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write

    @property
    def open(self) -> bool:
        """Whether the connection is up (CONNACK accepted, not failed, not closing)."""
        connack = self._connack
        connected = connack.done() and not connack.cancelled() and connack.exception() is None
        return connected and self._attached and self.error is None and not self._closing

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        content_encoding: str | None = None,
    ) -> asyncio.Future[None]:
        """Publish at QoS 1; the future completes on PUBACK. ``content_encoding`` (``gzip``,
        ``zstd``) goes out as the MQTT 5 user property of that name (3.1.1 has no properties).

        The future fails with MessageRefusedError when the broker refuses the message (MQTT 5
        reason code) and with BrokerUnavailableError when the connection ends first.
        """
        done: asyncio.Future[None] = self._loop.create_future()
        if not self.open:
            done.set_exception(self.error or BrokerUnavailableError(self._broker, "not connected"))
            return done
        properties = None
        if content_encoding is not None and self._v5:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.UserProperty = [("content-encoding", content_encoding)]
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            done.set_exception(
                BrokerUnavailableError(
                    self._broker, f"publish failed: {paho.error_string(info.rc)}"
                )
            )
        else:
            self._pending[info.mid] = (done, topic)
        return done

    def subscribe(self, topics: Sequence[str], on_message: Callable[[str, bytes], None]) -> None:
        """Subscribe at QoS 1; every message on ``topics`` goes to ``on_message``."""
        self._on_message = on_message
        if self.open:
            self._client.subscribe([(topic, 1) for topic in topics])

    def _message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if self._on_message is not None:
            self._on_message(message.topic, bytes(message.payload))

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when the connection ends (at once if it has ended)."""
        if self.error is not None:
            self._loop.call_soon(callback)
        else:
            self._close_callbacks.append(callback)

    # --- lifecycle -------------------------------------------------------------------------

    async def _connect(self, config: UpstreamConfig) -> None:
        """TCP, TLS, CONNECT, then wait for a CONNACK."""
        kwargs = _connect_options(config)

        def connect() -> MQTTErrorCode | Exception:
            try:
                return self._client.connect(config.host, config.port, config.keepalive_s, **kwargs)
            except (OSError, ValueError) as exc:
                return exc

        done = in_thread(connect)
        try:
            outcome = await asyncio.shield(done)
        except asyncio.CancelledError:
            # connect() goes on in its thread (bounded by connect_timeout_s): close what it opens.
            done.add_done_callback(lambda _: self._release())
            raise
        if outcome != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._release()
            if isinstance(outcome, Exception):
                raise BrokerUnavailableError(self._broker, describe_connect_error(outcome))
            raise BrokerUnavailableError(self._broker, paho.error_string(outcome))
        self._attach()
        try:
            async with asyncio.timeout(config.connect_timeout_s):
                # Shielded: the timeout must not cancel the future itself, which _close and
                # the paho callbacks read afterwards.
                await asyncio.shield(self._connack)
        except TimeoutError:
            raise BrokerUnavailableError(
                self._broker, f"no CONNACK within {config.connect_timeout_s} s"
            ) from None

    def _attach(self) -> None:
        """Hand the connected socket to the event loop."""
        sock = self._client.socket()
        if sock is None:
            raise BrokerUnavailableError(self._broker, "connection closed while connecting")
        self._fd = sock.fileno()
        self._attached = True
        self._loop.add_reader(self._fd, self._on_readable)
        if self._client.want_write():
            self._loop.add_writer(self._fd, self._on_writable)
        self._misc = self._loop.create_task(self._misc_forever(), name="mqtt-keepalive")

    async def _close(self, status_topic: str) -> None:
        """Say ``offline`` (retained) and disconnect cleanly if still connected; always release."""
        try:
            if self.open:
                offline = self.publish(status_topic, b"offline", retain=True)
                with contextlib.suppress(ForwardError, TimeoutError):
                    async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                        await offline
                self._closing = True
                closed = asyncio.Event()
                self._close_callbacks.append(closed.set)
                if self._client.disconnect() == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                            await closed.wait()
        finally:
            self._release()

    def _release(self) -> None:
        """Stop watching the socket, close it and fail whatever still waits (idempotent)."""
        self._closing = True
        if self._misc is not None:
            self._misc.cancel()
        self._detach()
        sock = self._client.socket()
        if sock is not None:
            sock.close()
        if isinstance(self._tls, TlsContext) and self._tls.last_socket is not None:
            self._tls.last_socket.close()  # closing twice is harmless
        self._ended(self.error or BrokerUnavailableError(self._broker, "connection closed"))

    def _detach(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._fd = -1

    def _ended(self, error: ForwardError) -> None:
        """The connection is over: fail pending publishes and tell whoever listens, once."""
        if self.error is None and not self._closing:
            self.error = error
        failure = self.error or error
        if not self._connack.done():
            self._connack.set_exception(failure)
            self._connack.exception()  # retrieved here: a CONNACK that never came is `failure`
        pending, self._pending = self._pending, {}
        for done, _topic in pending.values():
            if not done.done():
                done.set_exception(failure)
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            callback()

    async def _misc_forever(self) -> None:
        # A ticker for paho's keepalive bookkeeping, not a wait for a condition.
        while True:
            if self._client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            await asyncio.sleep(_MISC_INTERVAL_S)

    # --- paho callbacks (all on the event loop thread once attached) -----------------------

    def _on_readable(self) -> None:
        try:
            rc = self._client.loop_read()
            sock = self._client.socket()
            # TLS may hold decrypted records that no longer show as readable socket data.
            for _ in range(_MAX_PENDING_READS):
                if rc or not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                    break
                rc = self._client.loop_read()
        except Exception as exc:  # paho lets socket errors escape from its read path
            self._lost(f"read failed: {exc!r}")

    def _on_writable(self) -> None:
        try:
            self._client.loop_write()
        except Exception as exc:  # as for reads
            self._lost(f"write failed: {exc!r}")

    def _lost(self, detail: str) -> None:
        self._ended(BrokerUnavailableError(self._broker, detail))
        self._release()

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._connack.done():
            return
        if not reason.is_failure:
            self._connack.set_result(None)
            return
        detail = f"connection refused by the broker: {reason}"
        error_type = (
            PublishRejectedError if reason.value in _CREDENTIAL_CODES else BrokerUnavailableError
        )
        self.error = error_type(self._broker, detail)
        self._connack.set_exception(self.error)
        self._connack.exception()  # retrieved: _connect may have given up waiting already

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if flags.is_disconnect_packet_from_server:
            why = f"the broker disconnected: {reason}"
        else:
            why = self._last_log or "closed by the broker or the network"
        state = "connection lost" if self._connack.done() else "connection closed before CONNACK"
        self._ended(BrokerUnavailableError(self._broker, f"{state}: {why}"))

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties,
    ) -> None:
        done, topic = self._pending.pop(mid, (None, ""))
        if done is None or done.done():
            return
        if reason.is_failure:
            done.set_exception(
                MessageRefusedError(self._broker, topic, reason.value, reason.getName())
            )
        else:
            done.set_result(None)

    def _on_log(self, client: paho.Client, userdata: Any, level: int, text: str) -> None:
        if level in (paho.MQTT_LOG_ERR, paho.MQTT_LOG_WARNING):
            self._last_log = text

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._detach()

    def _on_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # Before _attach (connect runs in a thread) the socket is not the loop's yet.
        if self._attached and self._fd >= 0:
            self._loop.add_writer(self._fd, self._on_writable)

    def _on_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._attached and self._fd >= 0:
            self._loop.remove_writer(self._fd)


def _connect_options(config: UpstreamConfig) -> dict[str, Any]:
    """MQTT 5 session settings for ``connect`` (MQTT 3.1.1 sets clean_session on the client)."""
    if config.protocol is not MqttProtocol.V5:
        return {}
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: no annotation
    props.SessionExpiryInterval = config.session_expiry_s if config.persistent_session else 0
    return {"clean_start": not config.persistent_session, "properties": props}


def _client(
    config: UpstreamConfig, client_id: str, password: str | None, tls: ssl.SSLContext | None
) -> paho.Client:
    v5 = config.protocol is MqttProtocol.V5
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 else not config.persistent_session,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        reconnect_on_failure=False,
    )
    client.connect_timeout = config.connect_timeout_s
    # The forwarder bounds what is in flight; paho must neither queue nor hold back beyond it.
    client.max_inflight_messages_set(config.window + 1)
    client.max_queued_messages_set(0)
    if tls is not None:
        client.tls_set_context(tls)
    if config.username is not None:
        client.username_pw_set(config.username, password)
    return client


@asynccontextmanager
async def open_mqtt(
    config: UpstreamConfig, *, client_id: str, status_topic: str, password: str | None
) -> AsyncIterator[MqttPublisher]:
    """Connect, announce ``online`` (retained) with a retained last will of ``offline``, and
    yield the connection; on the way out say ``offline`` and disconnect (bounded).

    Raises:
        BrokerUnavailableError: the broker cannot be reached, TLS fails, or the connection ends.
        PublishRejectedError: the broker refused the credentials or the status message.
        asyncio.CancelledError: only when the caller is cancelled; every failure of the
            attempt itself is one of the above.
        ForwardError: a local TLS file cannot be loaded.
    """
    tls = tls_context(config) if config.tls else None
    client = _client(config, client_id, password, tls)
    client.will_set(status_topic, b"offline", qos=1, retain=True)
    publisher = MqttPublisher(client, config.broker, tls, v5=config.protocol is MqttProtocol.V5)
    try:
        await publisher._connect(config)
        online = publisher.publish(status_topic, b"online", retain=True)
        try:
            async with asyncio.timeout(config.connect_timeout_s):
                await online
        except TimeoutError:
            raise BrokerUnavailableError(
                config.broker, "no PUBACK for the status message"
            ) from None
        yield publisher
    finally:
        await publisher._close(status_topic)
