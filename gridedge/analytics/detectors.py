"""Online statistical anomaly detectors: one per channel, a score in [0, 1] per value.

Each score uses only the values before it (nothing file-wide), costs a few microseconds, and
adapts to slow drift and daily cycles. :class:`ChannelDetector` looks at a value four ways:

* ``level``: distance from an exponentially weighted mean, in units of the weighted standard
  deviation, over a long horizon (``long_samples``): big departures from the usual range;
* ``seasonal``: distance from the value usually seen at this time of day (a profile of
  ``seasonal_bins`` bins, each a moving average over days), in units of the typical residual:
  a missing peak or a flat day;
* ``step``: the change since the previous value against the typical change: spikes and jumps;
* ``persistence``: a short moving average of the level distance: a moderate shift that lasts.

Raw distances mean different things on different signals, so each one is calibrated by its own
history: :class:`Surprise` keeps a decaying histogram of past distances and reports how rare the
current one is, as ``-log10`` of its tail probability (3 means "one in a thousand"). The channel's
surprise is the largest of the four, mapped to [0, 1) by ``s / (s + 3)`` (0.5 = one in a
thousand). Post-processing (:class:`Holdoff`) keeps one anomaly from firing again and again: a
score counts only if it beats every score of the last ``holdoff_samples``, and once a score
reaches the alert threshold the following ones are halved for ``holdoff_samples`` values.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol

DAY_S = 86400.0
SURPRISE_HALF = 3.0
"""The surprise (``-log10`` tail probability) that maps to a score of 0.5."""


class Detector(Protocol):
    """Anything that turns one channel's values into anomaly scores in [0, 1]."""

    def update(self, ts: float, value: float) -> float:
        """Score ``value`` (taken at ``ts``, UTC seconds) against the past, then learn it."""
        ...


@dataclass(frozen=True, slots=True)
class DetectorParams:
    """Tuning of :class:`ChannelDetector`; every length counts values, not seconds.

    Attributes:
        long_samples: horizon of the level mean and deviation.
        step_samples: horizon of the typical change between values.
        short_samples: horizon of the persistence average.
        seasonal_bins: time-of-day bins of the daily profile (0 turns the profile off).
        seasonal_rate: how fast a bin follows new days (0..1).
        calibration_samples: memory of the surprise histograms.
        warmup_samples: values scored 0 while the detector learns.
        holdoff_samples: length of the repeat suppression after a detection.
        alert_threshold: the score that counts as a detection for the hold-off.
        false_alerts_per_week: the false-alarm budget of one device: its detector score is
            discounted so that, on normal data, a score of 0.5 is this rare per week (see
            :func:`~gridedge.analytics.engine.corrected`).
    """

    long_samples: int = 6000
    step_samples: int = 1000
    short_samples: int = 10
    seasonal_bins: int = 48
    seasonal_rate: float = 0.3
    calibration_samples: int = 5000
    warmup_samples: int = 300
    holdoff_samples: int = 100
    alert_threshold: float = 0.5
    false_alerts_per_week: float = 0.25


class Surprise:
    """How rare a non-negative value is among the previous ones: ``-log10`` tail probability.

    A histogram of ``log1p(value)`` in fixed bins whose old counts fade (``memory`` values);
    fading is done by growing the weight of new counts instead of shrinking the old ones.
    Beyond the largest value seen, the tail probability keeps falling by 1000 per unit of
    ``log1p(value)``, so bigger outliers still rank higher.
    """

    __slots__ = ("_bins", "_cut", "_cut_at", "_floor", "_grow", "_seen", "_top", "_total", "_w")

    WIDTH = 0.05
    BINS = 160
    BEYOND = 3.0

    def __init__(self, memory: int) -> None:
        self._bins = [0.0] * self.BINS
        self._w = 1.0
        self._grow = 1.0 / (1.0 - 1.0 / memory)
        self._total = 0.0
        self._seen = 0
        self._floor = 0.5 / memory
        self._top = 0
        # Bins below _cut hold the bulk (>= 20 % of the mass above them): no need to sum.
        self._cut = 0
        self._cut_at = 0

    def update(self, value: float) -> float:
        """The surprise of ``value``, then count it."""
        x = math.log1p(value) / self.WIDTH
        i = int(x)
        if i >= self.BINS:
            i = self.BINS - 1
        bins = self._bins
        if self._total <= 0.0:
            s = 0.0
        elif i < self._cut:
            s = 0.5
        else:
            p = (sum(bins[i + 1 :]) + (i + 1 - x) * bins[i]) / self._total
            floor = max(self._floor, 0.5 / self._seen)
            if p < floor:
                beyond = math.log1p(value) - self._top * self.WIDTH
                s = -math.log10(floor) + (self.BEYOND * beyond if beyond > 0.0 else 0.0)
            else:
                s = -math.log10(p)
        bins[i] += self._w
        self._total += self._w
        self._w *= self._grow
        self._seen += 1
        if i + 1 > self._top:
            self._top = i + 1
        if self._w > 1e100:
            self._rescale()
        if self._seen >= self._cut_at:
            self._recut()
        return s

    def _rescale(self) -> None:
        scale = 1.0 / self._w
        self._bins = [b * scale for b in self._bins]
        self._total *= scale
        self._w = 1.0

    def _recut(self) -> None:
        """Refresh, every 64 values, the bin above which 20 % of the mass lies, and the top: the
        highest bin still holding a share of the mass worth counting (old outliers fade out of
        it, so they do not dull the surprise of new ones for ever).
        """
        self._cut_at = self._seen + 64
        above = 0.0
        limit = 0.2 * self._total
        rare = self._floor * self._total
        top = -1
        for i in range(self.BINS - 1, -1, -1):
            above += self._bins[i]
            if top < 0 and above >= rare:
                top = i + 1
            if above >= limit:
                self._cut = i
                self._top = max(top, i + 1)
                return
        self._cut = 0
        self._top = max(top, 1)


class ChannelDetector:
    """The default online detector of one channel (see the module docstring)."""

    __slots__ = (
        "_a_long",
        "_a_short",
        "_a_step",
        "_bins",
        "_level",
        "_n",
        "_p",
        "_persist",
        "_prev",
        "_profile",
        "_resid",
        "_s_level",
        "_s_persist",
        "_s_season",
        "_s_step",
        "_settle",
        "_step_var",
        "_var",
    )

    def __init__(self, params: DetectorParams | None = None) -> None:
        p = params if params is not None else DetectorParams()
        self._p = p
        self._a_long = 1.0 / p.long_samples
        self._a_step = 1.0 / p.step_samples
        self._a_short = 1.0 / p.short_samples
        self._bins = p.seasonal_bins
        self._settle = min(p.warmup_samples // 2, 100)
        self._n = 0
        self._level = 0.0
        self._var = 0.0
        self._prev = 0.0
        self._step_var = -1.0
        self._persist = 0.0
        # Per bin: [mean, days seen]; None until the bin sees its first value.
        self._profile: list[list[float] | None] = [None] * p.seasonal_bins
        self._resid = -1.0
        memory = p.calibration_samples
        self._s_level, self._s_step = Surprise(memory), Surprise(memory)
        self._s_season, self._s_persist = Surprise(memory), Surprise(memory)

    def update(self, ts: float, value: float) -> float:
        """Score ``value`` in [0, 1) against the past, then learn it (warm-up scores 0)."""
        self._n += 1
        n = self._n
        if n == 1:
            self._level = self._prev = value
            self._seasonal(ts, value)
            return 0.0
        z_level = self._update_level(value, n)
        z_step = self._update_step(value, n)
        z_season = self._seasonal(ts, value) if self._bins else 0.0
        self._persist += self._a_short * (math.log1p(z_level) - self._persist)
        if n <= self._settle:
            return 0.0  # the first deviations rest on a handful of values: not worth learning
        s = self._s_level.update(z_level)
        s2 = self._s_step.update(z_step)
        s3 = self._s_season.update(z_season)
        s4 = self._s_persist.update(math.expm1(self._persist))
        if s2 > s:
            s = s2
        if s3 > s:
            s = s3
        if s4 > s:
            s = s4
        if n <= self._p.warmup_samples:
            return 0.0
        return s / (s + SURPRISE_HALF)

    def _update_level(self, value: float, n: int) -> float:
        e = value - self._level
        var = self._var
        z = abs(e) / math.sqrt(var) if var > 0.0 else 0.0
        a = 1.0 / n if n * self._a_long < 1.0 else self._a_long
        self._level += a * e
        self._var = var + a * (e * e - var) if n > 2 else e * e
        return z

    def _update_step(self, value: float, n: int) -> float:
        d = value - self._prev
        self._prev = value
        dd = d * d
        var = self._step_var
        if var < 0.0:
            self._step_var = dd
            return 0.0
        z = abs(d) / math.sqrt(var) if var > 0.0 else 0.0
        a = 1.0 / n if n * self._a_step < 1.0 else self._a_step
        self._step_var = var + a * (dd - var)
        return z

    def _seasonal(self, ts: float, value: float) -> float:
        if not self._bins:
            return 0.0
        b = int((ts % DAY_S) / DAY_S * self._bins)
        cell = self._profile[b]
        if cell is None:
            self._profile[b] = [value, 1.0]
            return 0.0
        r = value - cell[0]
        resid = self._resid
        z = abs(r) / resid if cell[1] >= 2.0 and resid > 0.0 else 0.0
        self._resid = abs(r) if resid < 0.0 else resid + 0.002 * (abs(r) - resid)
        cell[0] += self._p.seasonal_rate * r
        cell[1] += 1.0
        return z


class Holdoff:
    """Repeat suppression after a detection, so one anomaly yields one detection.

    A score counts only when it beats every raw score of the last ``samples`` values (else it
    becomes 0); after a raw score reaches ``threshold``, the next ``samples`` are halved.
    """

    __slots__ = ("_quiet", "_recent", "_samples", "_threshold")

    def __init__(self, samples: int, threshold: float) -> None:
        self._recent: deque[float] = deque(maxlen=max(1, samples))
        self._samples = samples
        self._threshold = threshold
        self._quiet = 0

    def update(self, raw: float) -> float:
        """The suppressed score for ``raw``."""
        recent = self._recent
        score = raw if not recent or raw > max(recent) else 0.0
        recent.append(raw)
        if self._quiet:
            self._quiet -= 1
            return score * 0.5
        if raw >= self._threshold:
            self._quiet = self._samples
        return score
