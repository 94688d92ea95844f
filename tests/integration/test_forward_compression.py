"""Compressed batches through a real mosquitto: announced, decodable, equal to the outbox."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridedge.config import Config
from gridedge.forward.compression import GZIP_MAGIC, ZSTD_MAGIC, decompress
from gridedge.forward.payload import unpack
from tests.integration.broker import Broker
from tests.integration.forwardkit import gateway_config, running_gateway, until, upstream

pytestmark = pytest.mark.integration


class Recorder:
    """Every envelope message on ``gridedge/#`` (payload and MQTT 5 user properties), and the
    envelopes of an uncompressed upstream on ``plain/#`` by seq.
    """

    def __init__(self, port: int, protocol: MQTTProtocolVersion) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.messages: list[tuple[bytes, dict[str, str]]] = []
        self.plain: dict[int, dict[str, Any]] = {}
        v5 = protocol is MQTTProtocolVersion.MQTTv5
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id="rec",
            protocol=protocol,
            clean_session=None if v5 else False,
        )
        client.reconnect_delay_set(1, 1)
        client.on_connect = lambda c, *_: c.subscribe([("gridedge/#", 1), ("plain/#", 1)])
        client.on_subscribe = lambda *_: self._ready.set()
        client.on_message = self._on_message
        # A persistent session: what is published while it reconnects after an outage waits.
        if v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 300
            client.connect("127.0.0.1", port, keepalive=10, clean_start=False, properties=props)
        else:
            client.connect("127.0.0.1", port, keepalive=10)
        client.loop_start()
        self._client = client
        if not self._ready.wait(10):
            raise AssertionError("no SUBACK within 10 s")

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.topic.endswith(("/status", "/health")):
            return
        props = getattr(message.properties, "UserProperty", None) or []
        with self._lock:
            if message.topic.startswith("plain/"):
                self.plain.update((e["seq"], e) for e in unpack(bytes(message.payload)))
                return
            self.messages.append((bytes(message.payload), dict(props)))

    def compressed(self) -> list[tuple[bytes, dict[str, str]]]:
        """The messages that are not plain JSON."""
        with self._lock:
            return [m for m in self.messages if not m[0].startswith(b"{")]

    def stop(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()


def _zstd_installed() -> bool:
    if importlib.util.find_spec("zstandard") is not None:
        return True
    if os.environ.get("CI") == "true":
        raise AssertionError("the zstandard package (dev extra) is not installed")
    return False


async def _through_an_outage(
    recorder: Recorder,
    broker: Broker,
    config: Config,
    *,
    live: int,
    outage_s: float,
    after: int,
    done: Callable[[], bool] | None = None,
) -> None:
    """Run the gateway until ``live`` plain envelopes arrived, stop the broker for
    ``outage_s``, then wait for three compressed messages, ``after`` more plain envelopes
    and ``done`` (when given).
    """
    try:
        async with running_gateway(config):
            await until(lambda: len(recorder.plain) > live, 20, "live envelopes")
            broker.stop()
            await asyncio.sleep(outage_s)  # the outage itself, not a synchronisation
            broker.start()
            await until(lambda: len(recorder.compressed()) >= 3, 20, "compressed batches")
            seen = max(recorder.plain)
            await until(lambda: max(recorder.plain) > seen + after, 20, "the plain upstream")
            if done is not None:
                await until(done, 20, "the other upstream")
    finally:
        recorder.stop()


@pytest.mark.parametrize(
    ("compression", "protocol", "magic"),
    [("gzip", "5", GZIP_MAGIC), ("zstd", "3.1.1", ZSTD_MAGIC), ("zstd", "5", ZSTD_MAGIC)],
)
async def test_a_compressed_batch_arrives_announced_and_decodes_to_what_was_stored(
    tmp_path: Path, fresh_broker: Broker, compression: str, protocol: str, magic: bytes
) -> None:
    """Batches arrive compressed (magic number; MQTT 5 also a user property) and decode to
    the same envelopes an uncompressed upstream received.
    """
    if compression == "zstd" and not _zstd_installed():
        pytest.skip("zstandard is not installed")
    port = fresh_broker.ports["plain"]
    recorder = Recorder(
        port, MQTTProtocolVersion.MQTTv5 if protocol == "5" else MQTTProtocolVersion.MQTTv311
    )
    table = upstream(
        "up", port, None, compression=compression, protocol=protocol, max_batch_bytes=32768
    )
    plain = upstream("plain", port, None, topic_prefix="plain", max_batch_bytes=32768)
    config = gateway_config(tmp_path, [table, plain], meters=20, interval_s=0.05)
    # Live envelopes go out one by one as they come; a backlog goes out in batches.
    await _through_an_outage(recorder, fresh_broker, config, live=20, outage_s=2.0, after=50)
    checked = 0
    for payload, props in recorder.compressed():
        assert payload.startswith(magic)
        if protocol == "5":
            assert props == {"content-encoding": compression}
        entries = unpack(decompress(payload))
        assert len(entries) > 1  # only batches are compressed
        for entry in entries:
            assert entry["gateway"] == "gw-fwd"
            # A backlog batches whatever one device stored: samples, and aggregates or alerts.
            assert entry["kind"] in ("sample", "aggregate", "alert")
            if entry["kind"] == "sample":
                assert len(entry["values"]) == 38
            if entry["seq"] in recorder.plain:
                assert entry == recorder.plain[entry["seq"]]
                checked += 1
    assert checked >= 6


async def test_gateway_scope_carries_what_device_scope_carries(
    tmp_path: Path, fresh_broker: Broker
) -> None:
    """batch_scope = "gateway" through a real mosquitto, across an outage: every meter's
    messages arrive together, zstd-compressed, and hold exactly the
    envelopes a device-scope upstream received, in fewer messages.
    """
    if not _zstd_installed():
        pytest.skip("zstandard is not installed")
    port = fresh_broker.ports["plain"]
    recorder = Recorder(port, MQTTProtocolVersion.MQTTv311)
    table = upstream(
        "up", port, None, batch_scope="gateway", compression="zstd", max_batch_bytes=65536
    )
    plain = upstream("plain", port, None, topic_prefix="plain", max_batch_bytes=65536)
    config = gateway_config(tmp_path, [table, plain], meters=12, interval_s=0.1)

    def gateway_entries() -> tuple[dict[int, dict[str, Any]], list[int]]:
        """The gateway-scope upstream's envelopes by seq, and the devices in each message."""
        gateway: dict[int, dict[str, Any]] = {}
        devices_per_message = []
        for payload, _ in list(recorder.messages):
            text = decompress(payload) if not payload.startswith(b"{") else payload
            entries = unpack(text)
            if entries[0]["kind"] == "alert":
                continue
            devices_per_message.append(len({e["device"] for e in entries}))
            for entry in entries:
                gateway[entry["seq"]] = entry
        return gateway, devices_per_message

    def caught_up() -> bool:  # the gateway upstream may lag the plain one under load
        return len(gateway_entries()[0].keys() & recorder.plain.keys()) > 100

    await _through_an_outage(
        recorder, fresh_broker, config, live=50, outage_s=1.5, after=100, done=caught_up
    )
    gateway, devices_per_message = gateway_entries()
    common = gateway.keys() & recorder.plain.keys()
    assert len(common) > 100
    assert all(gateway[seq] == recorder.plain[seq] for seq in common)
    assert max(devices_per_message) > 1  # meters travelled together
    assert len(devices_per_message) < len(common) / 2
