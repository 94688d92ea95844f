"""Detector alerts are held while their fault lasts and clear soon after it ends."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridedge.analytics.engine import Analytics
from gridedge.analytics.hold import Hold, ReferenceBank
from gridedge.analytics.settings import AnalyticsConfig
from gridedge.model import Sample


def _active(values: list[float]) -> list[bool]:
    analytics = Analytics(AnalyticsConfig())
    return [
        analytics.process(Sample("m", 1.7e9 + 10.0 * i, {"x": v})).active
        for i, v in enumerate(values)
    ]


def test_an_alert_stays_active_while_a_shift_lasts_and_clears_after() -> None:
    """A 300-sample shift of 10 deviations is active for nearly all of it, cleared within 20
    samples of its end, and nothing is active before it.
    """
    rng = random.Random(1)
    normal = [100.0 + rng.gauss(0.0, 1.0) for _ in range(2000)]
    shifted = [110.0 + rng.gauss(0.0, 1.0) for _ in range(300)]
    after = [100.0 + rng.gauss(0.0, 1.0) for _ in range(300)]
    active = _active(normal + shifted + after)
    assert not any(active[400:2000])
    assert sum(active[2000:2300]) >= 0.9 * 300
    assert not any(active[2320:])


def test_the_hold_releases_once_the_value_is_back_at_its_baseline() -> None:
    """A hold started on a steady reference releases within a few values of a return."""
    ref = ReferenceBank(1)
    for v in [10.0, 10.2, 9.8, 10.1, 9.9] * 10:
        ref.update(np.array([v]), slice(None))
    level, dev = ref.level(0), ref.deviation(0)
    ref.update(np.array([20.0]), slice(None))
    assert ref.before(0, 20.0) == pytest.approx((level, dev))
    hold = Hold()
    hold.start("x", *ref.before(0, 20.0))
    assert all(hold.update(20.0) for _ in range(20))
    back = [hold.update(10.0) for _ in range(10)]
    assert not back[-1]


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=2, max_size=50))
def test_a_reference_stays_between_the_values_it_saw(values: list[float]) -> None:
    """A reference's level never leaves the range of the values it learned, in every channel
    of a bank (the second channel sees the values reversed).
    """
    ref = ReferenceBank(2)
    for v, w in zip(values, reversed(values), strict=True):
        ref.update(np.array([v, w]), slice(None))
    for c in range(2):
        assert min(values) - 1e-6 <= ref.level(c) <= max(values) + 1e-6
        assert ref.deviation(c) >= 0.0


def test_a_counter_is_analysed_as_its_rate() -> None:
    """An energy counter that suddenly counts ten times faster scores high, while its steady
    climb (a reading never seen before, every time) does not.
    """
    rng = random.Random(2)
    analytics = Analytics(AnalyticsConfig())
    energy, scores = 1000.0, []
    for i in range(1500):
        energy += (10.0 if i == 1400 else 1.0) * (1.0 + rng.uniform(-0.05, 0.05))
        sample = Sample("m", 1.7e9 + 10.0 * i, {"energy_import": energy})
        scores.append(analytics.process(sample).channel_scores["energy_import"])
    assert scores[1400] > 0.5
    assert max(scores[400:1400]) < scores[1400]


def test_an_oscillating_load_raises_an_alert_active_while_it_lasts() -> None:
    """A load whose current and power swing by 20 % every 60 s (sampled every 10 s) for 100
    samples raises a detector alert within 15 samples, active for most of the swing and
    cleared soon after it; nothing is active before it.
    """
    rng = random.Random(7)
    analytics = Analytics(AnalyticsConfig())
    active = []
    raised = []
    for i in range(2200):
        wave = 0.2 * math.sin(2.0 * math.pi * 10.0 * i / 60.0) if 2000 <= i < 2100 else 0.0
        amps = 30.0 * (1.0 + 0.01 * rng.gauss(0.0, 1.0)) * (1.0 + wave)
        values = {
            "current_l1": amps,
            "active_power_l1": 220.0 * amps,
            "voltage_l1": 230.0 + rng.gauss(0.0, 0.5),
        }
        result = analytics.process(Sample("m", 1.7e9 + 10.0 * i, values))
        active.append(result.active)
        raised += [i for e in result.raised if e.rule == "detector"]
    assert not any(active[400:2000])
    assert raised
    assert 2000 <= raised[0] <= 2015
    assert sum(active[2000:2100]) >= 0.75 * 100
    assert not any(active[2110:])
