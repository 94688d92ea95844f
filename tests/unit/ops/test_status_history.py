"""The status page's history: bounded rings per meter, thinned by time, and the alert board."""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridedge.model import Envelope, Kind, Record, Sample
from gridedge.ops.status.history import History, HistorySink, MeterHistory

T0 = 1_700_000_000.0


@given(
    points=st.integers(2, 50),
    steps=st.lists(st.floats(0.0, 30.0, allow_nan=False), min_size=1, max_size=300),
)
def test_a_ring_never_holds_more_than_its_points_in_time_order(
    points: int, steps: list[float]
) -> None:
    """Whatever the arrival times, a ring keeps at most ``points`` points, oldest first, spaced
    at least one step apart.
    """
    ring = MeterHistory(points, step_s=5.0)
    ts = T0
    for dt in steps:
        ts += dt
        ring.add(ts, {"voltage_l1": 230.0}, {})
    series = ring.series("voltage_l1")
    assert 1 <= len(series.ts) <= points
    assert all(b - a >= 4.999 for a, b in zip(series.ts, series.ts[1:], strict=False))
    assert series.ts[-1] <= ts + 0.001  # times are given to the millisecond


def test_a_spike_between_kept_points_is_kept_as_the_points_score() -> None:
    """The score of a kept point is the highest seen since the previous kept point."""
    ring = MeterHistory(10, step_s=10.0)
    ring.add(T0, {"current_l1": 1.0}, {"current_l1": 0.1})
    ring.add(T0 + 1, {"current_l1": 9.0}, {"current_l1": 0.97})  # thinned away
    ring.add(T0 + 10, {"current_l1": 1.0}, {"current_l1": 0.2})
    assert ring.series("current_l1").scores == [0.1, 0.97]
    assert ring.last["current_l1"] == 1.0
    assert ring.last_ts == T0 + 10


def test_a_channel_missing_from_a_sample_is_a_gap_not_a_repeat() -> None:
    """A partial sample leaves null in the channels it lacks; a new channel starts with nulls."""
    ring = MeterHistory(10, step_s=1.0)
    ring.add(T0, {"voltage_l1": 230.0}, {})
    ring.add(T0 + 1, {"frequency": 50.0}, {})
    assert ring.series("voltage_l1").values == [230.0, None]
    assert ring.series("frequency").values == [None, 50.0]
    assert ring.series("voltage_l1", since=T0).ts == [T0 + 1]
    assert ring.series("nope").ts == []


def test_history_memory_per_channel_is_what_the_docstring_states() -> None:
    """720 points cost about 8 bytes each per channel (5.8 KB), with no growth once full."""
    history = History(3600.0, 720)
    channels = {f"x_c{i}": float(i) for i in range(30)}
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for k in range(2000):
            for m in range(10):
                history.meter(f"m{m}").add(T0 + 5.0 * k, channels, channels)
        used = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    per_channel = used / 300
    assert history.nbytes() == 10 * 720 * 8 + 300 * 720 * 8
    assert 5760 <= per_channel < 7000, per_channel


class _Store:
    """An inner sink that stores, or fails like a full outbox."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.stored: list[Record] = []

    async def put(self, records: Sequence[Record]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.stored.extend(records)


def _alert(state: str, ts: float) -> Envelope:
    body: dict[str, object] = {
        "state": state,
        "severity": "critical",
        "channel": "voltage_l1",
        "value": 390.0,
        "score": 1.0,
        "rule": "limit",
    }
    if state == "cleared":
        body["since"] = T0
    return Envelope(kind=Kind.ALERT, device="m1", ts=ts, body=body, urgent=True)


async def test_the_sink_records_only_what_the_outbox_took() -> None:
    """A failed put leaves the history untouched; a stored one records samples and scores."""
    history = History(60.0, 12)
    inner = _Store(fail=True)
    sink = HistorySink(inner, history)
    sink.scores = {"m1": {"voltage_l1": 0.5}}
    sample = Sample("m1", T0, {"voltage_l1": 231.0})
    with pytest.raises(OSError, match="disk full"):
        await sink.put([sample])
    assert history.meters == {}
    inner.fail = False
    await sink.put([sample, _alert("raised", T0)])
    ring = history.meters["m1"]
    assert ring.series("voltage_l1").values == [231.0]
    assert ring.series("voltage_l1").scores == [0.5]
    assert list(history.alerts.active) == [("m1", "voltage_l1", "limit")]


async def test_a_cleared_alert_leaves_the_active_list_and_stays_in_recent() -> None:
    """Raised then cleared: nothing active, both events recent, the clear carries its since."""
    history = History(60.0, 12)
    sink = HistorySink(_Store(), history)
    await sink.put([_alert("raised", T0)])
    await sink.put([_alert("cleared", T0 + 30)])
    assert history.alerts.active == {}
    recent = list(history.alerts.recent)
    assert [a.state for a in recent] == ["raised", "cleared"]
    assert recent[1].since == T0
    assert not math.isnan(recent[1].value)


async def test_recent_alerts_are_bounded() -> None:
    """The recent list keeps the last ``recent_max`` events only."""
    history = History(60.0, 12)
    sink = HistorySink(_Store(), history)
    for k in range(250):
        await sink.put([_alert("raised" if k % 2 == 0 else "cleared", T0 + k)])
    assert len(history.alerts.recent) == history.alerts.recent_max
    assert history.alerts.recent[-1].ts == T0 + 249
