"""Short-horizon forecasts and time-to-threshold, per configured channel.

Two cheap online forecasters run side by side and each horizon uses the one with the lower
recent absolute error (measured online, when the forecast's time comes):

* a damped Holt trend (level, trend, damping ``phi``): good on smooth signals that drift;
* the last value plus the daily profile's expected change until the target time, plus the
  damped trend of the deseasonalised signal: good on signals with a daily cycle.

:meth:`Forecaster.time_to_threshold` extends a robust straight line (a Theil-Sen slope over the
last ``slope_samples`` values) to find when a limit will be crossed, with a confidence: the
probability, given the forecaster's error and the slope's uncertainty, that the value is past
the limit at the end of the horizon. It needs evidence: a full window of history, a slope at
least ``min_slope_z`` of its standard errors away from zero (never a flat signal), and it looks
no further ahead than ``max_extrapolation`` times the window it rests on; the crossing time
carries its interval (from the slope's uncertainty). Damped trends flatten out, so they never
reach a distant limit; a straight line is the honest extrapolation for "when", the confidence
says how sure.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class TrendParams:
    """Smoothing of the forecasters."""

    alpha: float = 0.6
    beta: float = 0.05
    phi: float = 0.9
    seasonal_bins: int = 48
    seasonal_rate: float = 0.1
    error_rate: float = 0.02
    slope_samples: int = 60
    min_slope_z: float = 4.0
    max_extrapolation: float = 10.0


@dataclass(frozen=True, slots=True)
class Crossing:
    """A predicted limit crossing."""

    seconds: float
    steps: int
    value: float
    confidence: float
    seconds_low: float
    """The earliest likely crossing (slope plus two standard errors)."""
    seconds_high: float | None
    """The latest likely crossing (slope minus two standard errors); None when that slope no
    longer reaches the limit."""


class Forecaster:
    """Forecasts of one channel at fixed horizons, counted in samples."""

    def __init__(self, horizons: tuple[int, ...], params: TrendParams | None = None) -> None:
        self._p = params if params is not None else TrendParams()
        self.horizons = horizons
        self._n = 0
        self._level = 0.0
        self._trend = 0.0
        self._s_level = 0.0
        self._s_trend = 0.0
        self._prev_ts: float | None = None
        self.interval_s = 0.0
        self._profile: list[float | None] = [None] * self._p.seasonal_bins
        self.last = 0.0
        self.error1 = 0.0
        # Per horizon: pending (due sample number, plain forecast, seasonal forecast), and the
        # recent mean absolute error of each forecaster.
        self._pending: dict[int, deque[tuple[int, float, float]]] = {h: deque() for h in horizons}
        self._mae: dict[int, list[float]] = {h: [0.0, 0.0] for h in horizons}
        self._window: deque[float] = deque(maxlen=max(8, self._p.slope_samples))

    def update(self, ts: float, value: float) -> None:
        """Learn one value."""
        self._n += 1
        self._score_pending(value)
        if self._prev_ts is not None and ts > self._prev_ts:
            gap = ts - self._prev_ts
            self.interval_s = (
                gap if self.interval_s <= 0 else self.interval_s + 0.1 * (gap - self.interval_s)
            )
        self._prev_ts = ts
        p = self._p
        bin_ = self._bin(ts)
        cell = self._profile[bin_]
        cell = value if cell is None else cell + p.seasonal_rate * (value - cell)
        self._profile[bin_] = cell
        deseason = value - cell
        if self._n == 1:
            self._level, self._s_level = value, deseason
        else:
            err = abs(value - (self._level + p.phi * self._trend))
            self.error1 = err if self._n == 2 else self.error1 + p.error_rate * (err - self.error1)
            self._level, self._trend = _holt(self._level, self._trend, value, p)
            self._s_level, self._s_trend = _holt(self._s_level, self._s_trend, deseason, p)
        self.last = value
        self._ts = ts
        self._window.append(value)
        for h in self.horizons:
            self._pending[h].append((self._n + h, self._plain(h), self._seasonal(h)))

    def _score_pending(self, value: float) -> None:
        a = self._p.error_rate
        for h, queue in self._pending.items():
            while queue and queue[0][0] <= self._n:
                due, plain, seasonal = queue.popleft()
                if due == self._n:
                    mae = self._mae[h]
                    mae[0] += a * (abs(value - plain) - mae[0])
                    mae[1] += a * (abs(value - seasonal) - mae[1])

    def _damp(self, h: int) -> float:
        phi = self._p.phi
        return phi * (1.0 - phi**h) / (1.0 - phi) if phi < 1.0 else float(h)

    def _plain(self, h: int) -> float:
        return self._level + self._damp(h) * self._trend

    def _seasonal(self, h: int) -> float:
        now = self._profile[self._bin(self._ts)]
        later = self._profile[self._bin(self._ts + h * self.interval_s)]
        change = later - now if later is not None and now is not None else 0.0
        return (
            self.last
            + change
            + (self._s_level - (self.last - (now or 0.0)))
            + (self._damp(h) * self._s_trend)
        )

    def _bin(self, ts: float) -> int:
        return int((ts % DAY_S) / DAY_S * self._p.seasonal_bins)

    def forecast(self, h: int) -> float:
        """The forecast ``h`` samples ahead (``h`` one of the configured horizons)."""
        mae = self._mae[h]
        return self._seasonal(h) if mae[1] < mae[0] else self._plain(h)

    def robust_line(self) -> tuple[float, float, float] | None:
        """(value now, slope per sample, slope deviation) over the last ``slope_samples``.

        The slope is the median of differences half a window apart (a Theil-Sen estimate on
        evenly spaced points, in linear time); the value now is the median of the window's
        points carried forward along it. Spikes move neither.
        """
        w = self._window
        n = len(w)
        if n < 8:
            return None
        lag = n // 2
        slopes = sorted((w[i + lag] - w[i]) / lag for i in range(n - lag))
        slope = slopes[len(slopes) // 2]
        now = sorted(w[i] + (n - 1 - i) * slope for i in range(n))[n // 2]
        mad = sorted(abs(s - slope) for s in slopes)[len(slopes) // 2]
        return now, slope, 1.4826 * mad / math.sqrt(len(slopes))

    def time_to_threshold(self, limit: float, *, above: bool, horizon_s: float) -> Crossing | None:
        """When the robust trend line crosses ``limit`` within ``horizon_s``, or None.

        None without evidence: before a full window of history, when the slope is within
        ``min_slope_z`` standard errors of zero, or when the crossing lies beyond
        ``max_extrapolation`` windows ahead. The confidence is the chance that the value is past
        the limit at the end of the horizon, given the one-step error (grown with the square
        root of the steps) and the uncertainty of the slope (grown with the steps).
        """
        p = self._p
        if len(self._window) < max(8, p.slope_samples) or self.interval_s <= 0:
            return None
        line = self.robust_line()
        if line is None:
            return None
        now, slope, slope_sd = line
        if abs(slope) <= p.min_slope_z * slope_sd or slope == 0.0:
            return None
        if (slope < 0.0) if above else (slope > 0.0):
            return None
        reach = p.max_extrapolation * len(self._window)
        steps = max(1, min(int(horizon_s / self.interval_s), int(reach), 1_000_000))
        gap = limit - now
        k = max(1, math.ceil(gap / slope))
        if k > steps:
            return None
        end = now + steps * slope
        sd = math.hypot(1.25 * self.error1 * math.sqrt(steps), steps * slope_sd) + 1e-12
        z = (end - limit) / sd if above else (limit - end) / sd
        confidence = 0.5 * math.erfc(-z / math.sqrt(2.0))
        fast = slope + math.copysign(2.0 * slope_sd, slope)
        slow = slope - math.copysign(2.0 * slope_sd, slope)
        low = max(1, math.ceil(gap / fast)) * self.interval_s
        high = max(1, math.ceil(gap / slow)) * self.interval_s if slow * slope > 0.0 else None
        return Crossing(k * self.interval_s, k, now + k * slope, confidence, low, high)


def _holt(level: float, trend: float, value: float, p: TrendParams) -> tuple[float, float]:
    new_level = p.alpha * value + (1.0 - p.alpha) * (level + p.phi * trend)
    new_trend = p.beta * (new_level - level) + (1.0 - p.beta) * p.phi * trend
    return new_level, new_trend
