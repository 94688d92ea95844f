"""Topics and payloads: valid JSON always, every envelope once, timestamps as measured."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridedge.forward.payload import (
    Identity,
    Message,
    entry_json,
    pack,
    pack_objects,
    rfc3339,
    to_json,
    unpack,
)
from gridedge.model import Envelope, Kind
from gridedge.outbox.schema import decode, encode

ID = Identity("gridedge", "site-1", "gw-1")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
MAX_TS = 253402300799.0  # 9999-12-31T23:59:59Z


def _strict_loads(text: str | bytes) -> Any:
    """json.loads that refuses NaN and Infinity, as strict consumers do."""

    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def _parse_ts(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


def _sample(seq: int, device: str = "m1", values: dict[str, float] | None = None) -> Envelope:
    return Envelope(
        kind=Kind.SAMPLE,
        device=device,
        ts=1_767_600_000.25 + seq,
        body={"values": values or {"voltage_l1": 230.0 + seq}, "quality": "good"},
        seq=seq,
    )


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
any_float = st.floats(width=64)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), any_float, st.text())
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=12,
)
devices = st.sampled_from(["m1", "m2", "mains", "flat-3"])


@st.composite
def envelope_runs(draw: st.DrawFn) -> list[Envelope]:
    """Committed envelopes of a few devices and kinds, in seq order."""
    count = draw(st.integers(1, 25))
    seqs = sorted(draw(st.sets(st.integers(1, 10_000), min_size=count, max_size=count)))
    return [
        Envelope(
            kind=draw(st.sampled_from(Kind)),
            device=draw(devices),
            ts=draw(st.floats(0, MAX_TS)),
            body=draw(st.dictionaries(st.text(max_size=8), json_value, max_size=4)),
            seq=seq,
        )
        for seq in seqs
    ]


def test_topics_follow_prefix_site_gateway_device_kind() -> None:
    """Envelope topics are prefix/site/gateway/device/kind; status is prefix/site/gateway/status."""
    assert ID.topic("mains", "sample") == "gridedge/site-1/gw-1/mains/sample"
    assert ID.status_topic == "gridedge/site-1/gw-1/status"


@given(ts=st.floats(0, MAX_TS))
def test_rfc3339_keeps_the_timestamp_to_the_microsecond(ts: float) -> None:
    """A timestamp formats as UTC RFC 3339 with microseconds and parses back within 1 µs."""
    text = rfc3339(ts)
    assert text is not None
    assert RFC3339.match(text)
    assert abs(_parse_ts(text) - ts) <= 1e-6 + abs(ts) * 1e-15


@pytest.mark.parametrize("ts", [math.nan, math.inf, -math.inf, 1e20, -1e20])
def test_rfc3339_is_none_for_times_it_cannot_write(ts: float) -> None:
    """NaN, infinities and years beyond 1-9999 have no RFC 3339 form: None, not an exception."""
    assert rfc3339(ts) is None


@given(value=json_value)
def test_to_json_is_always_strict_json_with_nan_as_null(value: object) -> None:
    """Any value encodes to strict JSON; non-finite floats become null, finite ones stay."""
    decoded = _strict_loads(to_json(value))
    expected = json.loads(json.dumps(value), parse_constant=lambda _: None)
    assert decoded == expected


def test_nan_channel_values_are_sent_as_null() -> None:
    """A NaN reading is null in the payload, its neighbours unchanged."""
    sample = _sample(7, values={"voltage_l1": math.nan, "frequency": 50.0})
    (message,) = pack([sample], ID, 4096)
    (entry,) = unpack(message.payload)
    assert entry["values"] == {"voltage_l1": None, "frequency": 50.0}


def test_a_single_envelope_is_a_flat_object_with_gateway_seq_and_ts() -> None:
    """One envelope is one flat object: gateway, seq, ts, device, kind and the body's fields."""
    (message,) = pack([_sample(42)], ID, 4096)
    obj = _strict_loads(message.payload)
    assert obj == {
        "gateway": "gw-1",
        "seq": 42,
        "ts": "2026-01-05T08:00:42.250000Z",
        "device": "m1",
        "kind": "sample",
        "values": {"voltage_l1": 272.0},
        "quality": "good",
    }
    assert message.topic == "gridedge/site-1/gw-1/m1/sample"
    assert message.seqs == (42,)


def test_body_fields_named_like_envelope_fields_are_renamed_not_lost() -> None:
    """A body key "seq" or "gateway" is kept as body_seq/body_gateway; the envelope's win."""
    envelope = Envelope(Kind.STATUS, "m1", 1.0, body={"seq": "x", "gateway": "y"}, seq=5)
    obj = json.loads(entry_json(envelope))
    assert (obj["seq"], obj["body_seq"], obj["body_gateway"]) == (5, "x", "y")


def test_an_uncommitted_envelope_cannot_be_packed() -> None:
    """Only envelopes with a seq (committed to the outbox) can be forwarded."""
    with pytest.raises(ValueError, match="seq"):
        entry_json(Envelope(Kind.SAMPLE, "m1", 1.0))


@settings(max_examples=50)  # each example is a run of up to 25 envelopes
@given(envelopes=envelope_runs(), max_bytes=st.integers(256, 4096))
def test_packing_carries_every_envelope_once_in_order_within_the_size(
    envelopes: list[Envelope], max_bytes: int
) -> None:
    """Messages hold one device and kind, in seq order, each under max_bytes unless alone."""
    messages = pack(envelopes, ID, max_bytes)
    seen: list[int] = []
    for message in messages:
        entries = unpack(message.payload)
        _strict_loads(message.payload)
        assert [e["seq"] for e in entries] == list(message.seqs)
        assert list(message.seqs) == sorted(message.seqs)
        assert len({(e["device"], e["kind"]) for e in entries}) == 1
        assert message.topic == ID.topic(entries[0]["device"], entries[0]["kind"])
        assert all(e["gateway"] == "gw-1" for e in entries)
        assert len(message.payload) <= max_bytes or len(entries) == 1
        seen.extend(message.seqs)
    assert sorted(seen) == [e.seq for e in envelopes]


@settings(max_examples=50)
@given(envelopes=envelope_runs())
def test_unpacked_entries_carry_the_stored_fields(envelopes: list[Envelope]) -> None:
    """seq, ts, device, kind and each body field survive packing (NaN as null)."""
    by_seq = {e.seq: e for e in envelopes}
    for message in pack(envelopes, ID, 2048):
        for entry in unpack(message.payload):
            original = by_seq[entry["seq"]]
            assert entry["device"] == original.device
            assert entry["kind"] == original.kind.value
            assert entry["ts"] == rfc3339(original.ts)
            body_keys = {k for k in entry if k not in ("gateway", "seq", "ts", "device", "kind")}
            assert len(body_keys) == len(original.body)


def test_several_samples_of_a_device_share_one_column_message() -> None:
    """Samples of one device with the same channels become one message: one channel list,
    then one row of values per sample, in seq order.
    """
    messages = pack([_sample(1), _sample(2, "m2"), _sample(3), _sample(4)], ID, 4096)
    assert [m.seqs for m in messages] == [(1, 3, 4), (2,)]
    batch = _strict_loads(messages[0].payload)
    assert (batch["gateway"], batch["device"], batch["kind"]) == ("gw-1", "m1", "sample")
    assert batch["channels"] == ["voltage_l1"]
    assert [row["seq"] for row in batch["rows"]] == [1, 3, 4]
    assert [row["values"] for row in batch["rows"]] == [[231.0], [233.0], [234.0]]
    assert "envelopes" not in batch


def test_the_object_layout_repeats_names_in_every_envelope() -> None:
    """batch_layout = "objects": the same samples as a {"gateway", "envelopes": [...]} batch."""
    messages = pack_objects([_sample(1), _sample(2, "m2"), _sample(3), _sample(4)], ID, 4096)
    assert [m.seqs for m in messages] == [(1, 3, 4), (2,)]
    batch = _strict_loads(messages[0].payload)
    assert [e["seq"] for e in batch["envelopes"]] == [1, 3, 4]
    assert batch["envelopes"][1]["values"] == {"voltage_l1": 233.0}


def test_a_change_of_channels_starts_a_new_column_message() -> None:
    """A partial sample (fewer channels) between full ones cuts the run; nothing is reordered."""
    full = {"voltage_l1": 230.5, "current_l1": 1.25}
    envelopes = [
        _sample(1, values=full),
        _sample(2, values=full),
        _sample(3, values={"voltage_l1": 229.0}),
        _sample(4, values=full),
        _sample(5, values=full),
    ]
    messages = pack(envelopes, ID, 4096)
    assert [m.seqs for m in messages] == [(1, 2), (3,), (4, 5)]
    assert [_strict_loads(m.payload).get("channels") for m in messages] == [
        ["voltage_l1", "current_l1"],
        None,
        ["voltage_l1", "current_l1"],
    ]


def _stored(envelope: Envelope) -> Envelope:
    """The envelope as the forwarder reads it back from an outbox row."""
    assert envelope.seq is not None
    return decode(envelope.seq, *encode(envelope))


channel_names = st.one_of(
    st.sampled_from(["voltage_l1", "current_l1", "frequency", "energy.import", "t-1"]),
    st.text(max_size=6),
)
channel_value = st.one_of(st.floats(width=32), st.floats(), st.integers(-(2**53), 2**53))


@st.composite
def stored_sample_runs(draw: st.DrawFn) -> list[Envelope]:
    """Stored samples (some partial, some of other devices or kinds) as read from the outbox."""
    names = draw(st.lists(channel_names, min_size=0, max_size=6, unique=True))
    envelopes: list[Envelope] = []
    for seq in range(1, draw(st.integers(1, 30)) + 1):
        kept = [n for n in names if draw(st.integers(0, 9)) > 0]
        values = {name: draw(channel_value) for name in kept}
        quality = draw(st.sampled_from(["good", "partial", 'odd"},"quality":"x']))
        kind = draw(st.sampled_from([Kind.SAMPLE, Kind.SAMPLE, Kind.SAMPLE, Kind.ALERT]))
        envelope = Envelope(
            kind, draw(devices), 1_767_600_000.0 + seq, {"values": values, "quality": quality}
        )
        envelopes.append(_stored(replace(envelope, seq=seq)))
    return envelopes


@settings(max_examples=150)
@given(envelopes=stored_sample_runs(), max_bytes=st.integers(256, 4096))
def test_column_messages_carry_what_object_messages_carry(
    envelopes: list[Envelope], max_bytes: int
) -> None:
    """Unpacked, the column layout gives exactly the entries of the object layout (values,
    NaN as null, quality, ts), every seq once in order, each message strict JSON within
    max_bytes unless it holds one envelope.
    """
    columns = pack(envelopes, ID, max_bytes)
    objects = pack_objects(envelopes, ID, max_bytes)
    for message in columns:
        _strict_loads(message.payload)
        assert len(message.payload) <= max_bytes or len(message.seqs) == 1
        assert [e["seq"] for e in unpack(message.payload)] == list(message.seqs)

    def entries(messages: list[Message]) -> list[dict[str, Any]]:
        return sorted((e for m in messages for e in unpack(m.payload)), key=lambda e: int(e["seq"]))

    assert entries(columns) == entries(objects)
    assert sorted(s for m in columns for s in m.seqs) == [e.seq for e in envelopes]


def test_unpack_refuses_what_is_not_an_envelope_message() -> None:
    """A payload without a gateway is not a gridedge message."""
    with pytest.raises(ValueError, match="not a gridedge"):
        unpack(b'{"seq": 1}')


# --- the outbox epoch ---------------------------------------------------------------------------


@given(count=st.integers(1, 30), max_bytes=st.integers(256, 4096))
def test_every_envelope_carries_the_epoch_of_its_outbox_file(count: int, max_bytes: int) -> None:
    """Single and batch messages both give each envelope the epoch, so (gateway, epoch, seq)
    is its key, and the epoch does not push a batch over max_bytes.
    """
    identity = Identity("gridedge", "site-1", "gw-1", "9f2c4e1a7b3d5f60")
    messages = pack([_sample(seq) for seq in range(1, count + 1)], identity, max_bytes)
    flat = [entry for message in messages for entry in unpack(message.payload)]
    assert [(e["gateway"], e["epoch"], e["seq"]) for e in flat] == [
        ("gw-1", "9f2c4e1a7b3d5f60", seq) for seq in range(1, count + 1)
    ]
    for message in messages:
        assert len(message.payload) <= max_bytes or len(message.seqs) == 1


def test_a_body_field_named_epoch_is_renamed() -> None:
    """A body field that would shadow the epoch is sent as body_epoch."""
    identity = Identity("gridedge", "site-1", "gw-1", "00ff")
    envelope = Envelope(kind=Kind.STATUS, device="m", ts=1.0, body={"epoch": 3}, seq=1)
    (entry,) = unpack(pack([envelope], identity, 4096)[0].payload)
    assert (entry["epoch"], entry["body_epoch"]) == ("00ff", 3)
