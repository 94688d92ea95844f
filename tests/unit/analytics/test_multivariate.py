"""The multivariate detector: a broken relation between channels that each look normal."""

from __future__ import annotations

import math
import random

import pytest

from gridedge.analytics.detectors import DetectorParams
from gridedge.analytics.engine import DEVICE_CHANNEL, Analytics
from gridedge.analytics.multivariate import MultivariateDetector, MultivariateParams
from gridedge.analytics.settings import AnalyticsConfig
from gridedge.analytics.stage import driver_limits
from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_drivers
from gridedge.model import Sample
from gridedge.simulator.faults import FaultPlan
from gridedge.simulator.load import LoadProfile
from gridedge.simulator.physics import MeterSimulator, SimulationParams

START_TS = 1767571200.0  # Monday 2026-01-05 00:00 UTC
PERIOD = 317.0  # samples: a cycle that is not the day's, so no daily profile learns it
BREAK = math.ceil(6000 / (PERIOD / 2)) * PERIOD / 2  # at a zero crossing: no step


def _pair(i: int, rng: random.Random) -> dict[str, float]:
    """Two channels moving together until BREAK, then against each other.

    Each stays within the same range as before.
    """
    s = math.sin(2 * math.pi * i / PERIOD)
    sign = 1.0 if i < BREAK else -1.0
    return {"a": 100 + 10 * s + rng.gauss(0, 0.5), "b": 50 + sign * 5 * s + rng.gauss(0, 0.25)}


def _alerts_after_break(multivariate: bool) -> list[tuple[int, str]]:
    # No daily rhythm in these signals, so no daily profile (the README's advice for them):
    # each channel's only change is then the relation to the other.
    config = AnalyticsConfig(
        detector=DetectorParams(seasonal_bins=0),
        multivariate=MultivariateParams(enabled=multivariate),
    )
    analytics = Analytics(config)
    rng = random.Random(3)
    raised = []
    for i in range(int(BREAK) + 1500):
        result = analytics.process(Sample("m", START_TS + 60.0 * i, _pair(i, rng)))
        raised += [(i, e.channel) for e in result.raised if i >= BREAK]
    return raised


def test_a_broken_correlation_is_flagged_only_by_the_multivariate_detector() -> None:
    """Per-channel detectors see nothing; the multivariate one raises a device alert soon."""
    assert _alerts_after_break(multivariate=False) == []
    raised = _alerts_after_break(multivariate=True)
    assert raised, "the multivariate detector raised nothing"
    first, channel = raised[0]
    assert channel == DEVICE_CHANNEL
    assert first - BREAK < PERIOD / 2


def test_it_scores_nothing_while_commissioned_and_keeps_its_size() -> None:
    """Zero scores through the window; arrays sized once, an unknown channel ignored."""
    params = MultivariateParams(window=200, refresh_samples=50)
    det = MultivariateDetector(["a", "b", "c"], params)
    rng = random.Random(1)
    early = [det.update({"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), "c": 1.0}) for _ in range(200)]
    assert early == [0.0] * 200
    assert not det.commissioned
    for _ in range(300):
        det.update({"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), "new": 5.0})
    assert det.commissioned
    assert det.vector({"new": 1.0}).shape == (3,)
    assert 1 <= det.kept <= 2


def test_a_joint_outlier_scores_above_typical_samples() -> None:
    """With x = y normally, a point off the line (each coordinate typical) is rare."""
    det = MultivariateDetector(["x", "y"], MultivariateParams(window=400, refresh_samples=50))
    rng = random.Random(5)
    typical = []
    for i in range(2000):
        v = rng.gauss(0, 1)
        s = det.update({"x": v, "y": v + rng.gauss(0, 0.05)})
        if i > 1000:
            typical.append(s)
    off = det.update({"x": 1.0, "y": -1.0})
    assert off > 0.5 > sorted(typical)[len(typical) // 2]


@pytest.mark.parametrize("profile", [LoadProfile.RESIDENTIAL, LoadProfile.INDUSTRIAL])
def test_fault_free_meters_raise_no_multivariate_alert(profile: LoadProfile) -> None:
    """Two simulated days of a fault-free three-phase meter raise no device-level alert.

    The false-alarm figures over many meter-weeks come from ``bench/false_alarms.py``.
    """
    driver = load_drivers([BUILTIN_DRIVERS_DIR])["eastron-sdm630"]
    device = f"sim-{profile.value}"
    sim = MeterSimulator(device, driver, SimulationParams(profile=profile), FaultPlan(), 11)
    config = AnalyticsConfig(multivariate=MultivariateParams(enabled=True, window=1000))
    analytics = Analytics(config, driver_limits([(device, driver)]))
    raised = []
    for k in range(2 * 86400 // 60):
        ts = START_TS + 60.0 * k
        values = sim.step(ts)
        if values is not None:
            raised += analytics.process(Sample(device, ts, values)).raised
    assert [e for e in raised if e.channel == DEVICE_CHANNEL and e.rule == "detector"] == []


def test_a_channel_still_while_commissioned_stays_out_of_the_model() -> None:
    """An unused phase (0 all through the window) that later carries load moves no score."""
    det = MultivariateDetector(["a", "b", "idle"], MultivariateParams(window=300))
    rng = random.Random(8)
    for _ in range(600):
        v = rng.gauss(0, 1)
        det.update({"a": v, "b": v + rng.gauss(0, 0.1), "idle": 0.0})
    later = []
    for _ in range(50):
        v = rng.gauss(0, 1)
        later.append(det.update({"a": v, "b": v + rng.gauss(0, 0.1), "idle": 25.0}))
    assert max(later) < 0.5
    v = 1.0
    assert det.update({"a": v, "b": -v, "idle": 25.0}) > 0.5
