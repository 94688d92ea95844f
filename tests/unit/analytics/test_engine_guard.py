"""The analytics entry point skips non-finite and absurd values instead of failing on them."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from gridedge.analytics.engine import MAX_ABS_VALUE, Analytics, ChannelLimits
from gridedge.analytics.settings import AnalyticsConfig, TrendChannel, TrendConfig
from gridedge.model import Quality, Sample

T0 = 1_767_571_200.0
HOSTILE = [1.797e308, -1.797e308, math.nan, math.inf, -math.inf, 1e300, -1e16]


def _analytics() -> Analytics:
    trend = TrendConfig(forecast_interval_s=0.0, channels=(TrendChannel("a", 300.0),))
    return Analytics(AnalyticsConfig(trend=trend), {"m": {"a": ChannelLimits(0.0, 300.0)}})


def test_hostile_values_in_every_position_are_skipped_and_counted() -> None:
    """±1.797e308, NaN and ±inf in any channel and any order never raise and are each counted."""
    analytics = _analytics()
    skipped = 0
    for i in range(400):
        values = {"a": 230.0 + (i % 7), "b": 50.0, "c": 1.0}
        if i % 3:
            bad = HOSTILE[i % len(HOSTILE)]
            values[("a", "b", "c")[i % 3]] = bad
            skipped += 1
        result = analytics.process(Sample("m", T0 + i, values))
        assert all(math.isfinite(s) for s in result.channel_scores.values())
        assert result.score >= 0.0
        assert math.isfinite(result.score)
    assert analytics.skipped_values == skipped


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.floats(allow_nan=True, allow_infinity=True),
        min_size=1,
        max_size=60,
    )
)
def test_any_float_series_is_analysed_without_raising(series: list[float]) -> None:
    """Whatever floats arrive, the analytics return finite scores and count what they skipped."""
    analytics = _analytics()
    for i, value in enumerate(series):
        result = analytics.process(Sample("m", T0 + i, {"a": value, "b": -value}))
        assert math.isfinite(result.score)
    usable = sum(abs(v) <= MAX_ABS_VALUE for v in series)
    assert analytics.skipped_values == 2 * (len(series) - usable)


def test_a_sample_with_a_skipped_value_is_analysed_as_partial() -> None:
    """Skipping leaves the other channels analysed; the stored sample is not the engine's job."""
    analytics = _analytics()
    result = analytics.process(Sample("m", T0, {"a": 1.797e308, "b": 1.0}, Quality.GOOD))
    assert result.channel_scores.keys() == {"b"}
    assert analytics.skipped_values == 1
