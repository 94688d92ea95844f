"""Online statistical anomaly detectors: every channel of a device at once, a score in [0, 1]
per value.

Each score uses only the values before it (nothing file-wide), and adapts to slow drift and
daily cycles. The state of all of a device's channels lives in numpy arrays of fixed size, and
one sample updates them all with one vector operation per step. :class:`DetectorBank` looks at
each value four ways:

* ``level``: distance from an exponentially weighted mean, in units of the weighted standard
  deviation, over a long horizon (``long_samples``): big departures from the usual range;
* ``seasonal``: distance from the value usually seen at this time of day (a profile of
  ``seasonal_bins`` bins, each a moving average over days), in units of the typical residual:
  a missing peak or a flat day;
* ``step``: the change since the previous value against the typical change: spikes and jumps;
* ``persistence``: a short moving average of the level distance: a moderate shift that lasts.

Raw distances mean different things on different signals, so each one is calibrated by its own
history (:class:`~gridedge.analytics.calibrate.SurpriseBank`: a decaying histogram of past
distances) as ``-log10`` of its tail probability (3 means "one in a thousand"). The channel's
surprise is the largest of the four, mapped to [0, 1) by ``s / (s + 3)`` (0.5 = one in a
thousand). Post-processing (:class:`HoldoffBank`) keeps one anomaly from firing again and again: a
score counts only if it beats every score of about the last ``holdoff_samples``, and once a score
reaches the alert threshold the following ones are halved for ``holdoff_samples`` values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridedge.analytics.calibrate import SURPRISE_HALF, Floats, Index, SurpriseBank, pad

DAY_S = 86400.0
_VIEWS = 4  # level, step, seasonal, persistence
_TINY = 1e-150
"""Deviations at or below this count as none: a distance over them could overflow."""


@dataclass(frozen=True, slots=True)
class DetectorParams:
    """Tuning of :class:`DetectorBank`; every length counts values, not seconds.

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




class DetectorBank:
    """The default online detector of every channel of one device (see the module docstring).

    Args:
        params: the tuning.
        channels: how many channels the device has (``grow`` adds more).
    """

    __slots__ = (
        "_a_long",
        "_a_short",
        "_a_step",
        "_bins",
        "_cells",
        "_p",
        "_profile",
        "_settle",
        "_state",
        "_surprise",
        "_young",
    )

    # Rows of _state: values seen, level, variance, previous value, variance of the change,
    # persistence average, typical seasonal residual.
    _N, _LEVEL, _VAR, _PREV, _STEP_VAR, _PERSIST, _RESID = range(7)

    def __init__(self, params: DetectorParams | None, channels: int) -> None:
        p = params if params is not None else DetectorParams()
        self._p = p
        self._a_long = 1.0 / p.long_samples
        self._a_step = 1.0 / p.step_samples
        self._a_short = 1.0 / p.short_samples
        self._bins = p.seasonal_bins
        self._settle = min(p.warmup_samples // 2, 100)
        self._state = np.zeros((7, channels))
        self._state[[self._STEP_VAR, self._RESID]] = -1.0
        # Per time-of-day bin: the mean (float32 is ample for a profile) and whether the bin has
        # seen no, one, or at least two values (only "at least two" makes a residual count).
        self._profile = np.zeros((max(1, p.seasonal_bins), channels), np.float32)
        self._cells = np.zeros((max(1, p.seasonal_bins), channels), np.uint8)
        self._surprise = SurpriseBank(_VIEWS, channels, p.calibration_samples)
        self._young = True

    def grow(self, extra: int) -> None:
        """Make room for ``extra`` more channels."""
        fresh = np.zeros((7, extra))
        fresh[[self._STEP_VAR, self._RESID]] = -1.0
        self._state = np.concatenate([self._state, fresh], axis=1)
        self._profile = pad(self._profile, extra, 0.0)
        self._cells = pad(self._cells, extra, 0)
        self._surprise.grow(extra)
        self._young = True

    def update(self, ts: float, values: Floats, sel: Index, cols: npt.NDArray[np.intp]) -> Floats:
        """Score ``values`` (of channels ``sel``, indices ``cols``) in [0, 1) against the past,
        then learn them; a channel's first ``warmup_samples`` values score 0.
        """
        st = self._state
        n = st[self._N, sel] + 1.0
        st[self._N, sel] = n
        young = self._young
        # Level: distance from the long mean in deviations.
        level, var = st[self._LEVEL, sel], st[self._VAR, sel]
        e = values - level
        z_level = np.abs(e) / _safe_sd(var)
        a = np.maximum(1.0 / n, self._a_long)
        level = level + a * e
        var = var + a * (e * e - var)
        # Step: the change since the previous value against the typical change.
        d = values - st[self._PREV, sel]
        dd = d * d
        step_var = st[self._STEP_VAR, sel]
        a = np.maximum(1.0 / n, self._a_step)
        if young:
            first, unset = n == 1.0, step_var < 0.0
            var = np.where(n > 2.0, var, np.where(first, 0.0, e * e))
            level = np.where(first, values, level)
            z_step = np.where(unset, 0.0, np.abs(d) / _safe_sd(np.maximum(step_var, 0.0)))
            step_var = np.where(unset, dd, step_var + a * (dd - step_var))
            step_var = np.where(first, -1.0, step_var)
            self._young = bool((st[self._N] <= max(2, self._p.warmup_samples)).any())
        else:
            z_step = np.abs(d) / _safe_sd(step_var)
            step_var = step_var + a * (dd - step_var)
        st[self._LEVEL, sel], st[self._VAR, sel], st[self._PREV, sel] = level, var, values
        st[self._STEP_VAR, sel] = step_var
        z_season = self._seasonal(ts, values, sel)
        persist = st[self._PERSIST, sel]
        persist = persist + self._a_short * (np.log1p(z_level) - persist)
        st[self._PERSIST, sel] = persist
        distances = np.stack((z_level, z_step, z_season, np.expm1(persist)))
        if not young:
            s = self._surprise.update(distances, sel, cols).max(axis=0)
            return s / (s + SURPRISE_HALF)
        # The first deviations rest on a handful of values: not worth learning.
        learn = n > self._settle
        out = np.zeros(len(n))
        if learn.any():
            sub = cols[learn]
            s = self._surprise.update(distances[:, learn], sub, sub).max(axis=0)
            out[learn] = np.where(n[learn] > self._p.warmup_samples, s / (s + SURPRISE_HALF), 0.0)
        return out

    def _seasonal(self, ts: float, values: Floats, sel: Index) -> Floats:
        """Distance from this time of day's usual value, in typical residuals (then learnt)."""
        if not self._bins:
            return np.zeros(len(values))
        b = int((ts % DAY_S) / DAY_S * self._bins)
        mean, cells = self._profile[b, sel], self._cells[b, sel]
        st = self._state
        resid = st[self._RESID, sel]
        r = values - mean
        ar = np.abs(r)
        counted = (cells >= 2) & (resid > _TINY)
        z = ar / np.where(counted, resid, np.inf)
        empty = cells == 0
        learnt = np.where(resid < 0.0, ar, resid + 0.002 * (ar - resid))
        st[self._RESID, sel] = np.where(empty, resid, learnt)
        self._profile[b, sel] = np.where(empty, values, mean + self._p.seasonal_rate * r)
        self._cells[b, sel] = np.minimum(cells + 1, 2)
        return z


def _safe_sd(var: Floats) -> Floats:
    """The standard deviation, infinite where there is none (yet): a distance over it is 0."""
    sd = np.sqrt(var)
    return np.where(sd > _TINY, sd, np.inf)


class HoldoffBank:
    """Repeat suppression after a detection, so one anomaly yields one detection, per channel.

    A score counts only when it beats every raw score of about the last ``samples`` values of
    its channel (else it becomes 0): the maxima of blocks of ``samples / 10`` values are kept in
    a ring of eleven, so the window is ``samples`` to ``1.1 * samples`` values long. After a raw
    score reaches ``threshold``, the next ``samples`` are halved.
    """

    __slots__ = ("_block", "_count", "_quiet", "_ring", "_samples", "_slots", "_threshold")

    BLOCKS = 10

    def __init__(self, samples: int, threshold: float, channels: int) -> None:
        window = max(1, samples)
        self._block = -(-window // self.BLOCKS)
        self._slots = -(-window // self._block) + 1
        self._ring = np.full((self._slots, channels), -1.0, np.float32)
        self._count = np.zeros(channels, np.int64)
        self._quiet = np.zeros(channels, np.int64)
        self._samples = samples
        self._threshold = threshold

    def grow(self, extra: int) -> None:
        """Make room for ``extra`` more channels."""
        self._ring = pad(self._ring, extra, -1.0)
        self._count = pad(self._count, extra, 0)
        self._quiet = pad(self._quiet, extra, 0)

    def update(self, raw: Floats, sel: Index, cols: npt.NDArray[np.intp]) -> Floats:
        """The suppressed scores for the raw scores of channels ``sel``."""
        ring = self._ring
        recent = ring[:, sel].max(axis=0)
        score = np.where(raw > recent, raw, 0.0)
        count = self._count[sel]
        slot = (count // self._block) % self._slots
        ring[slot, cols] = np.maximum(ring[slot, cols], raw)
        count = count + 1
        self._count[sel] = count
        after = (count // self._block) % self._slots
        moved = after != slot
        if moved.any():
            ring[after[moved], cols[moved]] = -1.0
        quiet = self._quiet[sel]
        halved = quiet > 0
        if halved.any() or (raw >= self._threshold).any():
            score = np.where(halved, score * 0.5, score)
            quiet = np.where(halved, quiet - 1, np.where(raw >= self._threshold, self._samples, 0))
            self._quiet[sel] = quiet
        return score
