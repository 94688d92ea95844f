"""Online detectors: scores in [0, 1], strictly online, rare values score high, repeats held off."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gridedge.analytics.detectors import ChannelDetector, DetectorParams, Holdoff, Surprise

T0 = 1_767_571_200.0


def _noise(n: int, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [230.0 + 2.0 * math.sin(i / 50.0) + rng.gauss(0.0, 0.5) for i in range(n)]


def _scores(values: list[float], params: DetectorParams | None = None) -> list[float]:
    det = ChannelDetector(params)
    return [det.update(T0 + 60.0 * i, v) for i, v in enumerate(values)]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=400))
def test_scores_stay_within_unit_interval(values: list[float]) -> None:
    """Any finite series yields scores in [0, 1]."""
    params = DetectorParams(warmup_samples=5)
    assert all(0.0 <= s <= 1.0 for s in _scores(values, params))


def test_a_score_depends_only_on_earlier_values() -> None:
    """Changing the future leaves every earlier score unchanged (no look-ahead)."""
    values = _noise(800)
    altered = values[:500] + [v * 3.0 for v in values[500:]]
    assert _scores(values)[:500] == _scores(altered)[:500]


def test_warm_up_scores_zero() -> None:
    """The first warmup_samples values score 0 while the detector learns."""
    scores = _scores(_noise(400), DetectorParams(warmup_samples=300))
    assert set(scores[:300]) == {0.0}


def test_a_spike_after_a_calm_history_scores_above_the_alert_threshold() -> None:
    """A 30-sigma spike is rarer than anything seen, so it scores above 0.5."""
    values = _noise(2000)
    values[1500] += 15.0
    scores = _scores(values)
    assert scores[1500] > 0.5
    assert max(scores[1000:1500]) < scores[1500]


def test_a_level_shift_is_noticed() -> None:
    """A lasting jump of a few deviations scores above 0.5 soon after it starts."""
    values = _noise(2000)
    values[1500:] = [v + 6.0 for v in values[1500:]]
    assert max(_scores(values)[1500:1510]) > 0.5


def test_surprise_grows_with_rarity() -> None:
    """A value beyond everything seen is more surprising than a typical one."""
    s = Surprise(memory=1000)
    rng = random.Random(3)
    for _ in range(2000):
        s.update(abs(rng.gauss(0.0, 1.0)))
    assert s.update(0.5) < 1.0 < 3.0 < s.update(10.0) < s.update(100.0)


def test_holdoff_passes_one_detection_per_burst() -> None:
    """After a detection, the rest of the burst is zeroed or halved below the threshold."""
    h = Holdoff(samples=10, threshold=0.5)
    out = [h.update(x) for x in [0.1, 0.6, 0.7, 0.65, 0.55, 0.2, 0.1]]
    assert out[1] == 0.6
    assert all(x < 0.5 for i, x in enumerate(out) if i != 1)
