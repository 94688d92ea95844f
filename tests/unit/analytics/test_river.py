"""The River adapter: half-space trees over a device and change detectors per channel."""

from __future__ import annotations

import random

from gridedge.analytics.engine import Analytics
from gridedge.analytics.river_models import SHIFT_SCORE, DeviceRiver
from gridedge.analytics.settings import AnalyticsConfig, RiverModel
from gridedge.model import Sample


def test_half_space_trees_score_an_outlier_higher_than_typical_samples() -> None:
    """After learning a cluster, a far-away point scores above the typical ones."""
    rng = random.Random(2)
    river = DeviceRiver([RiverModel.HALF_SPACE_TREES])
    typical = []
    for i in range(800):
        s = river.score({"a": 230.0 + rng.gauss(0, 1), "b": 10.0 + rng.gauss(0, 0.5)})
        if i > 600:
            typical.append(s)
    assert river.ready
    outlier = river.score({"a": 236.0, "b": 6.0})
    assert outlier > sorted(typical)[len(typical) // 2]


def test_adwin_notices_a_level_shift() -> None:
    """A lasting jump makes the change detector fire within a few hundred readings."""
    rng = random.Random(4)
    river = DeviceRiver([RiverModel.ADWIN])
    before = [river.shift_score({"v": rng.gauss(0, 1)}) for _ in range(500)]
    after = [river.shift_score({"v": 5.0 + rng.gauss(0, 1)}) for _ in range(300)]
    assert SHIFT_SCORE in after
    assert before.count(SHIFT_SCORE) <= 2


def test_configured_river_models_feed_the_device_score() -> None:
    """With River models configured the engine still yields scores in [0, 1]."""
    config = AnalyticsConfig(river_models=(RiverModel.HALF_SPACE_TREES, RiverModel.PAGE_HINKLEY))
    analytics = Analytics(config)
    rng = random.Random(1)
    scores = [
        analytics.process(Sample("m", 60.0 * i, {"a": rng.gauss(0, 1), "b": rng.gauss(5, 1)})).score
        for i in range(700)
    ]
    assert all(0.0 <= s <= 1.0 for s in scores)
