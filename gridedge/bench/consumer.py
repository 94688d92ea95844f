"""A consumer of forwarded envelopes that drops replays as the README says (paho, in a thread).

Used by ``gridedge bench --only soak`` to check the delivery promise from the receiving end: it
subscribes at QoS 1 under MQTT 5 with ``clean_start`` false and a long session expiry, so the
broker keeps what it owes across the consumer's and the broker's own restarts, and keys every
envelope on ``(gateway, epoch, seq)``. paho's own network thread runs it, apart from any asyncio
loop. It measures the daemon from outside, so it speaks paho itself rather than through
:mod:`gridedge.forward.mqtt`, the daemon's adapter.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridedge.errors import BrokerUnavailableError
from gridedge.forward.payload import unpack

__all__ = ["DedupingConsumer", "Received", "ReplayKey"]

ReplayKey = tuple[str, str, int]
"""``(gateway, epoch, seq)``: never repeats for two different readings."""
_SESSION_EXPIRY_S = 86400
_GATEWAY_TOPICS = ("/status", "/health", "/state")  # the gateway's own messages, no envelopes


@dataclass(frozen=True, slots=True)
class Received:
    """What the consumer has seen so far.

    Attributes:
        copies: how often each key arrived (1 = once, more = replays).
        not_envelopes: messages on envelope topics that did not parse as envelopes.
        connects: successful connections (CONNACKs), the first included.
    """

    copies: Counter[ReplayKey]
    not_envelopes: int
    connects: int

    @property
    def duplicates(self) -> int:
        """Copies beyond the first of each key: what deduplication dropped."""
        return sum(self.copies.values()) - len(self.copies)


class DedupingConsumer:
    """Subscribes to ``topic`` at QoS 1 on a persistent session and counts every key.

    Args:
        host: broker address.
        port: broker port (plain TCP: the consumer is a check, not a deployment).
        client_id: fixed, so that the broker finds the session again.
        topic: the subscription filter.
    """

    def __init__(self, host: str, port: int, client_id: str, topic: str = "gridedge/#") -> None:
        self._host, self._port, self._topic = host, port, topic
        self._broker = f"{host}:{port}"
        self._lock = threading.Lock()
        self._copies: Counter[ReplayKey] = Counter()
        self._not_envelopes = 0
        self._connects = 0
        self._subscribed = threading.Event()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        client.reconnect_delay_set(1, 1)  # back within a second of the broker's return
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    def start(self, timeout_s: float = 10.0) -> DedupingConsumer:
        """Connect, subscribe and wait for the SUBACK.

        Raises:
            BrokerUnavailableError: no connection or no SUBACK within ``timeout_s``.
        """
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: untyped
        props.SessionExpiryInterval = _SESSION_EXPIRY_S
        try:
            self._client.connect(
                self._host, self._port, keepalive=10, clean_start=False, properties=props
            )
        except OSError as exc:
            raise BrokerUnavailableError(self._broker, f"consumer cannot connect: {exc}") from exc
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise BrokerUnavailableError(self._broker, f"consumer: no SUBACK within {timeout_s} s")
        return self

    def stop(self) -> None:
        """Disconnect (the broker keeps the session) and end the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def received(self) -> Received:
        """A snapshot of what arrived so far."""
        with self._lock:
            return Received(Counter(self._copies), self._not_envelopes, self._connects)

    def _on_connect(
        self, client: paho.Client, _userdata: Any, _flags: Any, code: Any, *_: Any
    ) -> None:
        if not code.is_failure:
            with self._lock:
                self._connects += 1
            client.subscribe(self._topic, qos=1)

    def _on_subscribe(self, *_: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        if message.topic.endswith(_GATEWAY_TOPICS):
            return
        try:
            keys = [
                (str(e["gateway"]), str(e["epoch"]), int(e["seq"]))
                for e in unpack(bytes(message.payload))
            ]
        except (ValueError, KeyError, TypeError):
            with self._lock:
                self._not_envelopes += 1
            return
        with self._lock:
            self._copies.update(keys)
