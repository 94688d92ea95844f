"""A new outbox file restarts seq at 1; the epoch keeps a README-following consumer right.

The gateway forwards to a real mosquitto; a consumer keyed on ``(gateway, epoch, seq)``, as
the README says, sees every reading of the second outbox file as new.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gridedge.forward.payload import unpack
from gridedge.outbox.store import read_stats
from tests.integration.broker import Broker, make_certs
from tests.integration.forwardkit import gateway_config, running_gateway, state_of, until, upstream

pytestmark = pytest.mark.integration

Key = tuple[str, str, int]


class Consumer:
    """Keeps the (gateway, epoch, seq) of every envelope it receives."""

    def __init__(self, port: int) -> None:
        self.keys: list[Key] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="consumer", clean_session=False)
        client.on_connect = lambda c, *_: c.subscribe("gridedge/+/+/+/+", qos=1)
        client.on_subscribe = lambda *_: self._ready.set()
        client.on_message = self._on_message
        client.connect("127.0.0.1", port, keepalive=10)
        client.loop_start()
        assert self._ready.wait(10), "no SUBACK within 10 s"
        self._client = client

    def _on_message(self, _client: Any, _userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            for e in unpack(bytes(message.payload)):
                self.keys.append((e["gateway"], e["epoch"], int(e["seq"])))

    def snapshot(self) -> list[Key]:
        with self._lock:
            return list(self.keys)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


async def run_until_acked(folder: Path, port: int, certs: Any, envelopes: int) -> str:
    """Run the gateway until its forwarder has ``envelopes`` acknowledged; the outbox epoch."""
    config = gateway_config(folder, [upstream("up", port, certs)], meters=2, interval_s=0.1)
    async with running_gateway(config) as (runtime, task):
        state = state_of(runtime, "up")
        await until(lambda: state.cursor >= envelopes, 30, f"{envelopes} acknowledged")
        assert not task.done()
    return read_stats(config.outbox.path).epoch


async def test_a_consumer_keyed_on_gateway_epoch_seq_keeps_every_reading_of_a_new_outbox(
    tmp_path: Path,
) -> None:
    """After the outbox file is replaced, seqs repeat but no (gateway, epoch, seq) key does."""
    certs = make_certs(tmp_path / "certs")
    broker = Broker(tmp_path / "broker", certs)
    broker.start()
    consumer = Consumer(broker.ports["plain"])
    try:
        first = await run_until_acked(tmp_path, broker.ports["tls"], certs, 40)
        (tmp_path / "outbox.sqlite3").rename(tmp_path / "outbox.sqlite3.old")
        second = await run_until_acked(tmp_path, broker.ports["tls"], certs, 20)
        await until(lambda: any(k[1] == second for k in consumer.snapshot()), 10, "run 2")
    finally:
        consumer.stop()
        broker.kill()
    keys = consumer.snapshot()
    assert first != second
    assert {epoch for _, epoch, _ in keys} == {first, second}
    old = {k for k in keys if k[1] == first}
    new = {k for k in keys if k[1] == second}
    assert {seq for _, _, seq in old} & {seq for _, _, seq in new}  # seq alone repeats...
    assert not old & new  # ...the key does not: nothing new is taken for a replay
    assert {seq for _, _, seq in new} >= set(range(1, 21))
