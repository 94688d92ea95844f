"""Trend forecasts and time-to-threshold."""

from __future__ import annotations

import math
import random

from gridedge.analytics.engine import Analytics
from gridedge.analytics.settings import AnalyticsConfig, TrendChannel, TrendConfig
from gridedge.analytics.trend import Forecaster, TrendParams
from gridedge.model import Kind, Sample

T0 = 1_767_571_200.0


def test_a_steady_ramp_is_forecast_close_to_its_continuation() -> None:
    """On a straight line the 6-step forecast errs less than half as much as the last value."""
    f = Forecaster((1, 6), TrendParams(phi=0.98))
    for i in range(300):
        f.update(T0 + 60.0 * i, 20.0 + 0.1 * i)
    truth, last = 20.0 + 0.1 * 305, 20.0 + 0.1 * 299
    assert abs(f.forecast(6) - truth) < 0.5 * abs(last - truth)


def test_a_rising_temperature_predicts_when_it_crosses_its_limit() -> None:
    """A 0.2 degree per minute rise with noise and a spike reaches a limit 20 degrees up in
    about 100 minutes, confidently.
    """
    f = Forecaster((1,))
    value = 0.0
    for i in range(120):
        value = 60.0 + 0.2 * i + 0.3 * math.sin(1.7 * i)
        f.update(T0 + 60.0 * i, value + (15.0 if i == 110 else 0.0))
    crossing = f.time_to_threshold(value + 20.0, above=True, horizon_s=3 * 3600.0)
    assert crossing is not None
    assert 85 * 60 <= crossing.seconds <= 115 * 60
    assert crossing.confidence > 0.8
    assert f.time_to_threshold(value + 20.0, above=True, horizon_s=3600.0) is None


def test_a_flat_signal_predicts_no_crossing() -> None:
    """No trend, no crossing within the horizon."""
    f = Forecaster((1,))
    for i in range(200):
        f.update(T0 + 10.0 * i, 40.0 + 0.1 * math.sin(i / 3.0))
    assert f.time_to_threshold(80.0, above=True, horizon_s=3600.0) is None


def test_a_daily_cycle_is_forecast_better_than_the_last_value() -> None:
    """With a clean daily cycle the forecaster beats repeating the last value at 6 hours."""
    f = Forecaster((6,))
    errors, naive = [], []
    values = [20.0 + 5.0 * math.sin(2 * math.pi * i / 24.0) for i in range(24 * 30)]
    predictions: dict[int, float] = {}
    for i, v in enumerate(values):
        if i in predictions:
            errors.append(abs(v - predictions.pop(i)))
            naive.append(abs(v - values[i - 6]))
        f.update(T0 + 3600.0 * i, v)
        predictions[i + 6] = f.forecast(6)
    assert sum(errors[-200:]) < 0.5 * sum(naive[-200:])


def test_a_predicted_crossing_raises_a_predictive_alert_and_fills_the_forecast() -> None:
    """A steady rise towards a configured limit yields a trend alert and forecast envelopes."""
    config = AnalyticsConfig(
        trend=TrendConfig(
            forecast_interval_s=60.0,
            channels=(TrendChannel("temperature", above=90.0, horizon_s=7200.0),),
        )
    )
    analytics = Analytics(config)
    alerts, forecasts = [], []
    for i in range(200):
        result = analytics.process(Sample("tx", T0 + 60.0 * i, {"temperature": 40.0 + 0.2 * i}))
        alerts += [e for e in result.envelopes if e.kind is Kind.ALERT]
        forecasts += [e for e in result.envelopes if e.kind is Kind.FORECAST]
    trend = [a for a in alerts if a.body["rule"] == "trend"]
    assert trend
    assert trend[0].body["channel"] == "temperature"
    assert trend[0].body["severity"] == "warning"
    crossing = forecasts[-1].body["crossing"]
    assert isinstance(crossing, dict)
    assert crossing["limit"] == 90.0
    horizons = forecasts[-1].body["horizons"]
    assert isinstance(horizons, dict)
    assert set(horizons) == {"1", "6", "12"}


def _fed(values: list[float], params: TrendParams | None = None) -> Forecaster:
    f = Forecaster((1,), params)
    for i, v in enumerate(values):
        f.update(1.7e9 + i, v)
    return f


def test_no_crossing_is_predicted_before_a_full_window_of_history() -> None:
    """Eight steep samples are not evidence: nothing is predicted until the window is full."""
    ramp = [228.0 + 0.5 * i for i in range(60)]
    assert _fed(ramp[:8]).time_to_threshold(253.0, above=True, horizon_s=3600.0) is None
    assert _fed(ramp).time_to_threshold(253.0, above=True, horizon_s=3600.0) is not None


def test_a_noisy_flat_voltage_never_predicts_a_crossing() -> None:
    """A flat 228 V with meter noise, an hour long, never yields a crossing of 253 V."""
    rng = random.Random(4)
    f = Forecaster((1,))
    for i in range(3600):
        f.update(1.7e9 + i, round(228.0 + rng.gauss(0.0, 0.05), 2))
        assert f.time_to_threshold(253.0, above=True, horizon_s=3600.0) is None


def test_a_slope_buried_in_noise_is_not_significant() -> None:
    """A slope far smaller than its standard error predicts nothing, however near the limit."""
    rng = random.Random(9)
    noisy = [252.0 + 0.0005 * i + rng.gauss(0.0, 1.0) for i in range(60)]
    assert _fed(noisy).time_to_threshold(253.0, above=True, horizon_s=3600.0) is None


def test_the_crossing_time_carries_an_interval_around_it() -> None:
    """A noisy ramp's crossing time lies inside its own interval, which has some width."""
    rng = random.Random(2)
    ramp = [228.0 + 0.05 * i + rng.gauss(0.0, 0.2) for i in range(120)]
    crossing = _fed(ramp, TrendParams(slope_samples=120)).time_to_threshold(
        240.0, above=True, horizon_s=3600.0
    )
    assert crossing is not None
    assert crossing.seconds_high is not None
    assert crossing.seconds_low < crossing.seconds < crossing.seconds_high


def test_the_crossing_is_not_extrapolated_beyond_ten_windows() -> None:
    """A clean ramp that would reach the limit in 30 windows predicts nothing yet."""
    ramp = [200.0 + 0.01 * i for i in range(60)]
    gap_steps = (253.0 - ramp[-1]) / 0.01
    assert gap_steps > 10 * 60
    assert _fed(ramp).time_to_threshold(253.0, above=True, horizon_s=1e6) is None
