"""``wire`` section of ``gridedge bench``: bytes on the wire per reading value.

A simulated Eastron SDM630 (38 float32 channels) is read every 10 s for an hour of simulated
time; each reading goes through the register codec (encoded into float32 registers and decoded
back, as over Modbus), is stored in an outbox row and read back, and is packed into batch
messages of the default size, uncompressed (in the default column layout and in the object
layout) and with each compression. No I/O, no broker.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_driver
from gridedge.forward.compression import Compression, available, compressor
from gridedge.forward.payload import Identity, pack, pack_objects
from gridedge.forward.settings import UpstreamConfig
from gridedge.links.modbus.codec import decode_channel, encode_channel
from gridedge.model import Envelope, Sample
from gridedge.outbox.schema import decode, encode
from gridedge.simulator.faults import FaultPlan
from gridedge.simulator.physics import MeterSimulator, SimulationParams

WIRE_DRIVER = "eastron-sdm630"
WIRE_INTERVAL_S = 10.0
WIRE_SAMPLES = 360
_START_TS = 1_767_571_200.0  # 2026-01-05 00:00 UTC


def wire_envelopes(samples: int = WIRE_SAMPLES) -> list[Envelope]:
    """Committed envelopes of ``samples`` SDM630 readings, as the forwarder reads them."""
    driver = load_driver(BUILTIN_DRIVERS_DIR / f"{WIRE_DRIVER}.toml")
    simulator = MeterSimulator("mains", driver, SimulationParams(), FaultPlan(), seed=1)
    channels = [ch for ch in driver.channels if ch.name in set(driver.channel_names)]
    envelopes: list[Envelope] = []
    for i in range(samples):
        ts = _START_TS + i * WIRE_INTERVAL_S
        values = simulator.step(ts) or {}
        read = {
            ch.name: decode_channel(ch, encode_channel(ch, values[ch.name]))
            for ch in channels
            if ch.name in values
        }
        row = encode(Envelope.of_sample(Sample("mains", ts + 0.25, read)))
        envelopes.append(decode(i + 1, *row))
    return envelopes


def bench_wire(seconds: float) -> dict[str, Any]:
    """Bytes per value through a batch, uncompressed and compressed; ``seconds`` is unused."""
    del seconds
    envelopes = wire_envelopes()
    values = sum(len(v) for e in envelopes if isinstance(v := e.body["values"], Mapping))
    identity = Identity("gridedge", "site-1", "gw-1", "9f2c4e1a7b3d5f60")
    max_bytes = UpstreamConfig("", "", 0).max_batch_bytes
    started = time.perf_counter()
    messages = pack(envelopes, identity, max_bytes)
    pack_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "driver": WIRE_DRIVER,
        "values": values,
        "messages": len(messages),
        "pack_us_per_value": round(pack_s / values * 1e6, 3),
    }
    raw = sum(len(m.payload) for m in messages)
    result["json_bytes_per_value"] = round(raw / values, 2)
    objects = sum(len(m.payload) for m in pack_objects(envelopes, identity, max_bytes))
    result["objects_json_bytes_per_value"] = round(objects / values, 2)
    for compression in (Compression.GZIP, Compression.ZSTD):
        compress = compressor(compression) if available(compression) else None
        if compress is None:
            result[f"{compression.value}_bytes_per_value"] = None
            continue
        started = time.perf_counter()
        size = sum(len(compress(m.payload)) for m in messages)
        spent = time.perf_counter() - started
        result[f"{compression.value}_bytes_per_value"] = round(size / values, 2)
        result[f"{compression.value}_us_per_value"] = round(spent / values * 1e6, 3)
    return result
