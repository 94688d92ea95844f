"""Home Assistant discovery, the flat state topic, fleet health and line protocol, over a real
mosquitto.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gridedge.config import Config, parse_config
from tests.helpers import until
from tests.integration.broker import Broker
from tests.integration.forwardkit import running_gateway, upstream

pytestmark = pytest.mark.integration


class Watcher:
    """A plain subscriber keeping the last payload (and how many) of every topic it sees."""

    def __init__(self, port: int, topics: list[str]) -> None:
        self.last: dict[str, bytes] = {}
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        client = paho.Client(CallbackAPIVersion.VERSION2)
        client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        client.on_subscribe = lambda *_: self._ready.set()
        client.on_message = self._on_message
        client.connect("127.0.0.1", port, keepalive=10)
        client.loop_start()
        assert self._ready.wait(10), "no SUBACK"
        self.client = client

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.last[message.topic] = bytes(message.payload)
            self.counts[message.topic] = self.counts.get(message.topic, 0) + 1

    def get(self, topic: str) -> bytes | None:
        """The last payload on ``topic``."""
        with self._lock:
            return self.last.get(topic)

    def matching(self, needle: str) -> dict[str, bytes]:
        """Every topic containing ``needle`` with its last non-empty payload."""
        with self._lock:
            return {t: p for t, p in self.last.items() if needle in t and p}

    def stop(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def watching(port: int, *topics: str) -> Iterator[Watcher]:
    """A :class:`Watcher` for the duration of a block."""
    watcher = Watcher(port, list(topics))
    try:
        yield watcher
    finally:
        watcher.stop()


def config_with(folder: Path, meter_ids: list[str], table: dict[str, Any]) -> Config:
    """A gateway with simulated SDM120 meters of these ids and one upstream."""
    doc = {
        "gateway": {"id": "gw-ha", "site": "lab"},
        "outbox": {"path": "outbox.sqlite3", "commit_interval_s": 0.1},
        "http": {"enabled": False},
        "analytics": {"enabled": False},
        "upstreams": [table],
        "meters": [
            {
                "id": m,
                "driver": "eastron-sdm120",
                "interval_s": 0.2,
                "link": {"type": "simulated", "seed": i},
            }
            for i, m in enumerate(meter_ids)
        ],
    }
    return parse_config(doc, source="<test>", base_dir=folder)


@pytest.fixture
def broker(fresh_broker: Broker) -> Broker:
    """A mosquitto of this test's own."""
    return fresh_broker


async def test_home_assistant_sees_discovery_state_and_loses_a_removed_meter(
    tmp_path: Path, broker: Broker
) -> None:
    """Retained device discovery and state per meter; a meter left out of the config is removed."""
    port = broker.ports["plain"]
    table = upstream("ha", port, None, home_assistant=True, health_interval_s=0.5)
    state_a = "gridedge/lab/gw-ha/a/state"
    with watching(port, "homeassistant/#", "gridedge/+/+/+/state", "gridedge/+/+/health") as w:
        async with running_gateway(config_with(tmp_path, ["a", "b"], table)):
            await until(lambda: len(w.matching("homeassistant/device/")) == 2, 15, "discovery")
            await until(lambda: w.get(state_a) is not None, 15, "a state")
            health = "gridedge/lab/gw-ha/health"
            await until(lambda: w.get(health) is not None, 15, "a health message")
            announced = w.counts["homeassistant/device/gridedge_lab_gw-ha_a/config"]
            w.client.publish("homeassistant/status", b"online", qos=1)
            await until(
                lambda: w.counts["homeassistant/device/gridedge_lab_gw-ha_a/config"] > announced,
                15,
                "discovery again after Home Assistant's birth message",
            )
        config = json.loads(w.matching("gridedge_lab_gw-ha_a/config").popitem()[1])
        assert config["state_topic"] == state_a
        assert config["cmps"]["voltage_l1"]["device_class"] == "voltage"
        state = json.loads(w.get(state_a) or b"{}")
        assert state["online"] is True
        assert state["problem"] is False
        assert 150 < state["voltage_l1"] < 300
        report = json.loads(w.get(health) or b"{}")
        assert report["meters_total"] == 2
        assert report["status"] in {"ok", "degraded"}
    b_config = "homeassistant/device/gridedge_lab_gw-ha_b/config"
    with watching(port, "homeassistant/#") as later:
        # The retained config of b arrives first; the gateway, now without b, then clears it.
        await until(lambda: bool(later.get(b_config)), 10, "b's retained config")
        async with running_gateway(config_with(tmp_path, ["a"], table)):
            await until(lambda: later.get(b_config) == b"", 15, "b's discovery removed")
    with watching(port, "homeassistant/#") as fresh:
        a_config = "homeassistant/device/gridedge_lab_gw-ha_a/config"
        await until(lambda: bool(fresh.get(a_config)), 10, "a's retained config")
        assert fresh.get(b_config) is None


async def test_an_influx_upstream_sends_line_protocol_on_the_same_topics(
    tmp_path: Path, broker: Broker
) -> None:
    """Format = "influx": each message is lines of gridedge_sample with tags, fields and seq."""
    port = broker.ports["plain"]
    table = upstream("influx", port, None, format="influx")
    with watching(port, "gridedge/lab/gw-ha/+/sample") as w:
        async with running_gateway(config_with(tmp_path, ["a"], table)):
            await until(lambda: w.get("gridedge/lab/gw-ha/a/sample") is not None, 15, "a sample")
    lines = (w.get("gridedge/lab/gw-ha/a/sample") or b"").decode().splitlines()
    assert lines
    for line in lines:
        head, fields, ts = line.split(" ")
        assert head == "gridedge_sample,device=a,gateway=gw-ha,site=lab"
        assert "voltage_l1=" in fields
        assert "seq=" in fields
        assert int(ts) > 1_600_000_000 * 10**9
