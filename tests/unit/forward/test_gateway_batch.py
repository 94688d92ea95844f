"""batch_scope = "gateway": device messages merged into few, nothing lost or reordered."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridedge.forward.gateway_batch import merge_json, merge_lines
from gridedge.forward.influx import pack_lines
from gridedge.forward.payload import Identity, pack, pack_objects, unpack
from gridedge.forward.settings import BatchScope, PayloadFormat
from gridedge.model import Envelope, Kind
from tests.unit.forward.fakes import UP, FakeBroker, envelopes, forwarding, outbox_at, until
from tests.unit.forward.test_payload import envelope_runs
from tests.unit.forward.test_settings import _parse

ID = Identity("gridedge", "site-1", "gw-1", "9f2c4e1a7b3d5f60")


@settings(max_examples=60)
@given(
    envelopes_=envelope_runs(),
    max_bytes=st.integers(256, 4096),
    objects=st.booleans(),
)
def test_merged_messages_carry_what_the_device_messages_carry(
    envelopes_: list[Envelope], max_bytes: int, objects: bool
) -> None:
    """Every entry once, as the device messages had it, in their order; each merged message
    within max_bytes unless it carries a single device message; all on the batch topic.
    """
    devices = (pack_objects if objects else pack)(envelopes_, ID, max_bytes)
    merged = merge_json(devices, ID, max_bytes)
    expected = [entry for m in devices for entry in unpack(m.payload)]
    got = []
    for message in merged:
        obj = json.loads(message.payload)
        assert message.topic == "gridedge/site-1/gw-1/batch"
        assert (obj["gateway"], obj["epoch"]) == ("gw-1", "9f2c4e1a7b3d5f60")
        assert all("gateway" not in inner and "epoch" not in inner for inner in obj["messages"])
        assert len(message.payload) <= max_bytes or len(obj["messages"]) == 1
        entries = unpack(message.payload)
        assert [e["seq"] for e in entries] == list(message.seqs)
        got.extend(entries)
    assert got == expected


def test_one_merged_message_holds_a_read_of_many_meters() -> None:
    """One sample of each of 50 meters: 50 device messages, one gateway message."""
    samples = [
        Envelope(
            Kind.SAMPLE, f"m{i}", 1_767_600_000.5, {"values": {"v": i}, "quality": "good"}, seq=i
        )
        for i in range(1, 51)
    ]
    devices = pack(samples, ID, 65536)
    merged = merge_json(devices, ID, 65536)
    assert (len(devices), len(merged)) == (50, 1)
    assert merged[0].seqs == tuple(range(1, 51))
    # Gateway and epoch are said once instead of 50 times.
    assert len(merged[0].payload) < sum(len(m.payload) for m in devices) * 0.8


def test_a_message_that_is_not_this_gateways_json_is_refused() -> None:
    lines = pack_lines([Envelope(Kind.SAMPLE, "m1", 1.0, {"values": {"v": 1.0}}, seq=1)], ID, 1024)
    with pytest.raises(ValueError, match="JSON device message"):
        merge_json(lines, ID, 1024)


@settings(max_examples=40)
@given(count=st.integers(1, 60), max_bytes=st.integers(64, 2048))
def test_merged_lines_keep_every_line_within_the_size(count: int, max_bytes: int) -> None:
    samples = [
        Envelope(Kind.SAMPLE, f"m{i % 7}", 1_767_600_000.0 + i, {"values": {"v": float(i)}}, seq=i)
        for i in range(1, count + 1)
    ]
    devices = pack_lines(samples, ID, max_bytes)
    merged = merge_lines(devices, ID, max_bytes)
    assert b"\n".join(m.payload for m in merged) == b"\n".join(m.payload for m in devices)
    assert sorted(s for m in merged for s in m.seqs) == list(range(1, count + 1))
    for message in merged:
        assert message.topic == ID.batch_topic
        assert len(message.payload) <= max_bytes or b"\n" not in message.payload


async def test_gateway_scope_sends_samples_together_and_alerts_on_their_topics(
    tmp_path: Path,
) -> None:
    """A backlog of three meters' samples travels on the batch topic in fewer messages than
    with device scope; alerts still go first, alone, on their device topics.
    """
    logs = {}
    for scope in BatchScope:
        broker = FakeBroker()
        async with outbox_at(tmp_path / scope.value) as outbox:
            await outbox.append(envelopes(60, urgent_every=10))
            config = replace(UP, batch_scope=scope, max_batch_bytes=65536)
            async with forwarding(outbox, broker, config) as state:
                await until(lambda: state.cursor == 60)
        assert sorted(broker.seqs()) == list(range(1, 61))
        logs[scope] = broker.log
    gateway = logs[BatchScope.GATEWAY]
    topics = [topic for topic, _, _ in gateway]
    first = next(i for i, t in enumerate(topics) if not t.endswith("/alert"))
    alert_kinds = {e["kind"] for _, payload, _ in gateway[:first] for e in unpack(payload)}
    assert alert_kinds == {"alert"}
    assert sum(len(unpack(payload)) for _, payload, _ in gateway[:first]) == 6
    assert set(topics[first:]) == {"gridedge/site/gw/batch"}
    assert len(gateway) < len(logs[BatchScope.DEVICE])


async def test_gateway_scope_with_line_protocol(tmp_path: Path) -> None:
    broker = FakeBroker()
    async with outbox_at(tmp_path) as outbox:
        await outbox.append(envelopes(30))
        config = replace(UP, batch_scope=BatchScope.GATEWAY, format=PayloadFormat.INFLUX)
        async with forwarding(outbox, broker, config) as state:
            await until(lambda: state.cursor == 30)
    assert {topic for topic, _, _ in broker.log} == {"gridedge/site/gw/batch"}
    lines = b"\n".join(payload for _, payload, _ in broker.log).split(b"\n")
    assert len(lines) == 30
    assert {line.split(b",device=")[1].split(b",")[0] for line in lines} == {b"m0", b"m1", b"m2"}


def test_batch_scope_defaults_to_device_and_reads_gateway(tmp_path: Path) -> None:
    up = {"name": "u", "host": "h", "tls": False}
    assert _parse(tmp_path, up).upstreams[0].batch_scope is BatchScope.DEVICE
    config = _parse(tmp_path, {**up, "batch_scope": "gateway"})
    assert config.upstreams[0].batch_scope is BatchScope.GATEWAY
