"""InfluxDB line protocol: escaping, flattening, timestamps and batching."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridedge.forward.influx import escape_key, line, pack_lines, timestamp_ns
from gridedge.forward.payload import Identity
from gridedge.model import Envelope, Kind

ID = Identity("gridedge", "site-a", "gw-1")
T0 = 1_767_571_200.25


def sample(seq: int, values: dict[str, float], device: str = "mains") -> Envelope:
    """A committed sample envelope."""
    body = {"values": values, "quality": "good"}
    return Envelope(Kind.SAMPLE, device, T0 + seq, body, seq=seq)


def test_a_sample_is_one_line_with_tags_channel_fields_seq_and_nanoseconds() -> None:
    """Channels become float fields, quality a string, seq an integer; time in ns."""
    text = line(sample(42, {"voltage_l1": 231.2, "frequency": 50.0}), ID)
    assert text == (
        "gridedge_sample,device=mains,gateway=gw-1,site=site-a "
        'voltage_l1=231.2,frequency=50.0,quality="good",seq=42i 1767571242250000000'
    )


def test_nested_aggregate_bodies_are_flattened_and_non_finite_values_left_out() -> None:
    """An aggregate's per-channel summary flattens to channel_stat fields; NaN is dropped."""
    body = {"window_s": 60, "channels": {"voltage_l1": {"mean": 230.5, "max": math.nan}}}
    text = line(Envelope(Kind.AGGREGATE, "mains", T0, body, seq=7), ID)
    assert "window_s=60i" in text
    assert "channels_voltage_l1_mean=230.5" in text
    assert "max" not in text


def test_reserved_characters_are_escaped_in_tags_and_strings() -> None:
    """Commas, spaces and equals signs in ids and quotes in strings cannot break a line."""
    assert escape_key("a b,c=d") == r"a\ b\,c\=d"
    env = Envelope(Kind.ALERT, "m 1", T0, {"rule": 'say "hi"', "value": 1.5}, seq=3)
    text = line(env, ID, epoch="e1")
    assert text.startswith(r"gridedge_alert,device=m\ 1,")
    assert r'rule="say \"hi\""' in text
    assert 'epoch="e1"' in text


def test_uncommitted_envelopes_are_refused() -> None:
    """Only envelopes with a seq are forwarded."""
    with pytest.raises(ValueError, match="seq"):
        line(Envelope(Kind.SAMPLE, "m", T0, {"values": {}}), ID)


def test_timestamps_outside_what_influx_stores_are_left_to_the_server_clock() -> None:
    """A non-finite or out-of-range ts gives no timestamp rather than a broken line."""
    assert timestamp_ns(math.inf) is None
    assert timestamp_ns(1e12) is None
    assert timestamp_ns(1.5) == 1_500_000_000


def test_batches_respect_max_bytes_and_keep_every_seq_once() -> None:
    """Lines are grouped per device and kind, each message within the size bound."""
    envelopes = [sample(i, {"voltage_l1": 230.0 + i}) for i in range(1, 51)]
    messages = pack_lines(envelopes, ID, max_bytes=400)
    assert len(messages) > 1
    assert all(len(m.payload) <= 400 for m in messages)
    assert [s for m in messages for s in m.seqs] == list(range(1, 51))
    assert all(m.topic == "gridedge/site-a/gw-1/mains/sample" for m in messages)
    assert sum(m.payload.count(b"\n") + 1 for m in messages) == 50


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12),
        st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8) | st.integers(),
        max_size=6,
    ),
    st.text(min_size=1, max_size=10),
)
def test_any_body_and_device_give_exactly_one_line(body: dict[str, object], device: str) -> None:
    """Whatever the body holds, the result is one line: newlines are always escaped."""
    text = line(Envelope(Kind.STATUS, device, T0, body, seq=1), ID)
    assert "\n" not in text
    assert "seq=1i" in text
