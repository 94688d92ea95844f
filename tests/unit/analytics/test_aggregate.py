"""Window aggregates and report-by-exception."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gridedge.analytics.aggregate import Deadband, WindowBank
from gridedge.model import Envelope, Kind


class WindowAggregator:
    """A window bank fed by name: channels are indexed in the order they first appear."""

    def __init__(self, device: str, window_s: float) -> None:
        self.names: list[str] = []
        self.bank = WindowBank(device, (window_s,), self.names)

    def add(self, ts: float, values: Mapping[str, float]) -> Envelope | None:
        new = [k for k in values if k not in self.names]
        if new:
            self.names.extend(new)
            self.bank.grow(len(new))
        cols = np.array([self.names.index(k) for k in values], np.intp)
        closed = self.bank.add(ts, np.array(list(values.values())), cols)
        return closed[0] if closed else None

    def flush(self) -> Envelope | None:
        out = self.bank.flush()
        return out[0] if out else None


def test_a_window_closes_with_min_max_mean_last_and_count() -> None:
    """The first sample of the next minute emits the previous minute's summary."""
    agg = WindowAggregator("m1", 60.0)
    assert agg.add(0.0, {"v": 230.0}) is None
    assert agg.add(20.0, {"v": 232.0, "f": 50.0}) is None
    assert agg.add(40.0, {"v": 228.0}) is None
    env = agg.add(61.0, {"v": 1.0})
    assert env is not None
    assert env.kind is Kind.AGGREGATE
    assert env.device == "m1"
    assert env.ts == 60.0
    assert env.body["start"] == 0.0
    assert env.body["window_s"] == 60.0
    assert env.body["channels"] == {
        "v": {"min": 228.0, "max": 232.0, "mean": 230.0, "last": 228.0, "count": 3},
        "f": {"min": 50.0, "max": 50.0, "mean": 50.0, "last": 50.0, "count": 1},
    }


def test_windows_are_aligned_to_the_epoch() -> None:
    """A 15-minute window starts on a multiple of 900 s whatever the first sample's time."""
    agg = WindowAggregator("m1", 900.0)
    agg.add(1000.0, {"v": 1.0})
    env = agg.add(1800.0, {"v": 2.0})
    assert env is not None
    assert env.body["start"] == 900.0
    assert env.body["end"] == 1800.0


def test_flush_emits_the_open_window_once() -> None:
    """An orderly stop can still send the partial window."""
    agg = WindowAggregator("m1", 60.0)
    agg.add(5.0, {"v": 1.0})
    assert agg.flush() is not None
    assert agg.flush() is None


def test_deadband_passes_only_channels_that_moved() -> None:
    """Changes within the deadband are held back until max_silence_s."""
    band = Deadband(0.5, {"f": 0.01}, max_silence_s=100.0)
    assert band.filter(0.0, {"v": 230.0, "f": 50.0}) == {"v": 230.0, "f": 50.0}
    assert band.filter(10.0, {"v": 230.4, "f": 50.02}) == {"f": 50.02}
    assert band.filter(20.0, {"v": 231.0, "f": 50.02}) == {"v": 231.0}
    assert band.filter(115.0, {"v": 231.0, "f": 50.02}) == {"f": 50.02}
