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

Each channel also keeps its *jumpiness*: a short average of ``log1p`` of its change over its
typical change (each capped); channels that keep jumping are oscillating
(:attr:`DetectorBank.jumpiest`: a device's second largest, as a load moves current and powers
together).

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
JUMP_CAP = 20.0
"""The largest step distance one value adds to a channel's jumpiness."""
JUMP_HYSTERESIS = 0.4
"""How much lower the jumpiness may fall while the device's detector alert is active."""
_JUMP_RATE = 0.25  # weight of the newest step in the jumpiness: about four values
_JUMP_CLIP = 4.0  # a change counts at most this many typical changes into the typical change
_VIEWS = 4  # level, step, seasonal, persistence
_SEASON_VIEW = 2
_MUTE, _LEARNT, _SCORED = range(3)  # phases of the seasonal view
# The surprise update's quiet and learn_quiet arguments in each phase.
_QUIET = {_MUTE: (_SEASON_VIEW, False), _LEARNT: (_SEASON_VIEW, True), _SCORED: (-1, True)}
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
        jump_level: the jumpiness at which a channel counts as oscillating (its device's
            detector score reaches 0.5); 0 turns this off.
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
    jump_level: float = 2.0


def jump_score(jumpiness: float, level: float) -> float:
    """The detector score of a channel's jumpiness: 0 below ``level`` (or when it is 0), 0.5
    at it, and rising by a surprise of 10 per unit above it.
    """
    if level <= 0.0 or jumpiness < level:
        return 0.0
    s = SURPRISE_HALF + 10.0 * (jumpiness - level)
    return s / (s + SURPRISE_HALF)


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
        "_a_two",
        "_bins",
        "_complete",
        "_jump_cap",
        "_jump_floor",
        "_jumps",
        "_p",
        "_profile",
        "_season_n",
        "_settle",
        "_since",
        "_state",
        "_surprise",
        "_young",
        "jumpiest",
    )

    # Rows of _state: level, previous value (the "mean" of the step view), variance of the
    # value, variance of the change, persistence average, typical seasonal residual, values
    # seen. Level and step sit side by side so one operation updates both.
    _LEVEL, _PREV, _VAR, _STEP_VAR, _PERSIST, _RESID, _N = range(7)
    _ROWS = 7

    def __init__(self, params: DetectorParams | None, channels: int) -> None:
        p = params if params is not None else DetectorParams()
        self._p = p
        self._a_long = 1.0 / p.long_samples
        self._a_step = 1.0 / p.step_samples
        self._a_short = 1.0 / p.short_samples
        self._a_two = np.array([[self._a_long], [self._a_step]])
        self._bins = p.seasonal_bins
        # Per time-of-day bin: every channel has a value in it (the steady case).
        self._complete = np.zeros(max(1, p.seasonal_bins), bool)
        self._settle = min(p.warmup_samples // 2, 100)
        self._state = np.zeros((self._ROWS, channels))
        self._state[[self._STEP_VAR, self._RESID]] = -1.0
        self._jump_cap = float(np.log1p(JUMP_CAP))
        self._jump_floor = p.jump_level - JUMP_HYSTERESIS if p.jump_level > 0.0 else np.inf
        # Jumpiness and typical absolute change of every channel.
        self._jumps = np.zeros((2, channels))
        self.jumpiest = (0.0, -1)
        """The second largest jumpiness among the channels of the latest ``update`` and its
        position in that update's values (0.0 and -1 with fewer than two channels)."""
        # Per time-of-day bin: the mean (float32 is ample for a profile; NaN until the bin sees
        # its channel's first value).
        self._profile = np.full((max(1, p.seasonal_bins), channels), np.nan, np.float32)
        # Per bin: the day of its first value (that day compares with minutes before, not days).
        self._since = np.full(max(1, p.seasonal_bins), np.inf)
        self._season_n = 0  # samples compared with an earlier day
        self._surprise = SurpriseBank(_VIEWS, channels, p.calibration_samples)
        self._young = True

    def grow(self, extra: int) -> None:
        """Make room for ``extra`` more channels."""
        fresh = np.zeros((self._ROWS, extra))
        self._jumps = pad(self._jumps, extra, 0.0)
        fresh[[self._STEP_VAR, self._RESID]] = -1.0
        self._state = np.concatenate([self._state, fresh], axis=1)
        self._profile = pad(self._profile, extra, np.nan)
        self._surprise.grow(extra)
        self._complete[:] = False
        self._young = True

    def update(self, ts: float, values: Floats, sel: Index, cols: npt.NDArray[np.intp]) -> Floats:
        """Score ``values`` (of channels ``sel``, indices ``cols``) in [0, 1) against the past,
        then learn them; a channel's first ``warmup_samples`` values score 0.
        """
        if not self._young:
            return self._steady(ts, values, sel, cols)
        st = self._state
        n = st[self._N, sel] + 1.0
        st[self._N, sel] = n
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
        first, unset = n == 1.0, step_var < 0.0
        var = np.where(n > 2.0, var, np.where(first, 0.0, e * e))
        level = np.where(first, values, level)
        z_step = np.where(unset, 0.0, np.abs(d) / _safe_sd(np.maximum(step_var, 0.0)))
        step_var = np.where(unset, dd, step_var + a * (dd - step_var))
        step_var = np.where(first, -1.0, step_var)
        self._young = bool((st[self._N] <= max(2, self._p.warmup_samples)).any())
        st[self._LEVEL, sel], st[self._VAR, sel], st[self._PREV, sel] = level, var, values
        st[self._STEP_VAR, sel] = step_var
        z_season = np.zeros(len(values))
        phase = self._seasonal(ts, values, sel, z_season) if self._bins else _MUTE
        persist = st[self._PERSIST, sel]
        persist = persist + self._a_short * (np.log1p(z_level) - persist)
        st[self._PERSIST, sel] = persist
        self._jumpiness(np.where(first, 0.0, np.abs(d)), n, sel, n > self._p.warmup_samples)
        distances = np.stack((z_level, z_step, z_season, np.expm1(persist)))
        # The first deviations rest on a handful of values: not worth learning.
        learn = n > self._settle
        out = np.zeros(len(n))
        if learn.any():
            sub = cols[learn]
            s = self._surprise.update(distances[:, learn], sub, sub, *_QUIET[phase]).max(axis=0)
            out[learn] = np.where(n[learn] > self._p.warmup_samples, s / (s + SURPRISE_HALF), 0.0)
        return out

    def _steady(self, ts: float, values: Floats, sel: Index, cols: npt.NDArray[np.intp]) -> Floats:
        """``update`` once every channel is past its warm-up: the same arithmetic, fewer
        operations (level and step side by side, distances written in place).
        """
        st = self._state
        n = st[self._N, sel] + 1.0
        st[self._N, sel] = n
        means = st[0:2, sel]  # level, previous value
        e = values - means
        ae = np.abs(e)
        var = st[2:4, sel]
        sd = np.sqrt(var)
        z = np.zeros((_VIEWS, len(values)))
        np.divide(ae, sd, out=z[0:2], where=sd > _TINY)
        a = np.maximum(1.0 / n, self._a_two)
        moved = means + a * e
        moved[1] = values
        st[0:2, sel] = moved
        st[2:4, sel] = var + a * (e * e - var)
        phase = self._seasonal(ts, values, sel, z[2]) if self._bins else _MUTE
        persist = st[self._PERSIST, sel]
        persist += self._a_short * (np.log1p(z[0]) - persist)
        st[self._PERSIST, sel] = persist
        np.expm1(persist, out=z[3])
        self._jumpiness(ae[1], n, sel, None)
        s: Floats = self._surprise.update(z, sel, cols, *_QUIET[phase]).max(axis=0)
        return s / (s + SURPRISE_HALF)

    def _jumpiness(
        self, change: Floats, n: Floats, sel: Index, ready: npt.NDArray[np.bool_] | None
    ) -> None:
        """Learn each channel's jumpiness from its absolute ``change``; note the second largest
        (of the channels past their warm-up: ``ready``, None for all, the steady state).
        """
        jumps = self._jumps
        jump, typical = jumps[0, sel], jumps[1, sel]
        # A channel that never moved has no typical change: its first change counts capped.
        z = np.log1p(change / (typical + _TINY))
        jump = jump + _JUMP_RATE * (np.minimum(z, self._jump_cap) - jump)
        jumps[0, sel] = jump
        if ready is None:  # steady: past the first values, a big change counts bounded
            jumps[1, sel] = typical + self._a_step * (
                np.minimum(change, _JUMP_CLIP * typical) - typical
            )
        else:
            a = np.maximum(1.0 / n, self._a_step)
            bounded = np.where(n > 10.0, np.minimum(change, _JUMP_CLIP * typical), change)
            jumps[1, sel] = typical + a * (bounded - typical)
            jump = np.where(ready, jump, 0.0)
        # Only a jumpy channel can be the second jumpiest past the lowest level that counts.
        if len(jump) < 2 or jump.max() < self._jump_floor:
            self.jumpiest = (0.0, -1)
            return
        k = int(np.argpartition(jump, -2)[-2])
        self.jumpiest = (float(jump[k]), k)

    def _seasonal(self, ts: float, values: Floats, sel: Index, out: Floats) -> int:
        """Distance from this time of day's usual value (in residuals) into ``out``; phase."""
        day = ts // DAY_S
        b = int((ts % DAY_S) / DAY_S * self._bins)
        mean = self._profile[b, sel]
        st = self._state
        resid = st[self._RESID, sel]
        r = values - mean
        if self._since[b] >= day:  # the bin's first day (or a clock that went back)
            learnt = mean + self._p.seasonal_rate * r
            self._profile[b, sel] = np.where(np.isnan(mean), values, learnt)
            self._since[b] = min(self._since[b], day)
            return _MUTE
        n = self._season_n = self._season_n + 1
        rate = max(1.0 / n, 0.002)
        ar = np.abs(r)
        if self._complete[b]:
            np.divide(ar, resid, out=out, where=resid > _TINY)
            st[self._RESID, sel] = np.where(resid < 0.0, ar, resid + rate * (ar - resid))
            self._profile[b, sel] = mean + self._p.seasonal_rate * r
        else:
            empty = np.isnan(mean)
            np.divide(ar, resid, out=out, where=~empty & (resid > _TINY))
            ar = np.where(empty, 0.0, ar)
            learnt = np.where(resid < 0.0, ar, resid + rate * (ar - resid))
            st[self._RESID, sel] = np.where(empty, resid, learnt)
            self._profile[b, sel] = np.where(empty, values, mean + self._p.seasonal_rate * r)
            self._complete[b] = not np.isnan(self._profile[b]).any()
        if n <= self._settle:  # then learnt; scored from the bin's third day
            return _MUTE
        young = n <= self._settle + self._p.warmup_samples or self._since[b] >= day - 1.0
        return _LEARNT if young else _SCORED


def _safe_sd(var: Floats) -> Floats:
    """The standard deviation, infinite where there is none (yet): a distance over it is 0."""
    sd = np.sqrt(var)
    return np.where(sd > _TINY, sd, np.inf)


class HoldoffBank:
    """Repeat suppression after a detection, so one anomaly yields one detection, per channel.

    A score counts only when it beats every raw score of its channel in about the last
    ``samples`` samples of the device (else it becomes 0): the maxima of blocks of
    ``samples / 10`` samples are kept in a ring of eleven, so the window is ``samples`` to
    ``1.1 * samples`` samples long. After a raw score reaches ``threshold``, the next
    ``samples`` scores of that channel are halved.
    """

    __slots__ = (
        "_block",
        "_count",
        "_quiet",
        "_quieting",
        "_ring",
        "_samples",
        "_slot",
        "_slots",
        "_threshold",
    )

    BLOCKS = 10

    def __init__(self, samples: int, threshold: float, channels: int) -> None:
        window = max(1, samples)
        self._block = -(-window // self.BLOCKS)
        self._slots = -(-window // self._block) + 1
        # Scores need no more than float16 to be compared with each other.
        self._ring = np.full((self._slots, channels), -1.0, np.float16)
        self._quiet = np.zeros(channels, np.int16)
        self._quieting = False
        self._count = 0
        self._slot = 0
        self._samples = min(samples, np.iinfo(np.int16).max)
        self._threshold = threshold

    def grow(self, extra: int) -> None:
        """Make room for ``extra`` more channels."""
        self._ring = pad(self._ring, extra, -1.0)
        self._quiet = pad(self._quiet, extra, 0)

    def update(self, raw: Floats, sel: Index, threshold: float | None = None) -> Floats:
        """The suppressed scores for the raw scores of channels ``sel``; ``threshold`` replaces
        the raw score that starts the halving (a device passes the one its alerts start at).
        """
        ring = self._ring
        score: Floats = raw * (raw > ring[:, sel].max(axis=0))
        slot = self._slot
        ring[slot, sel] = np.maximum(ring[slot, sel], raw)
        self._count += 1
        if self._count % self._block == 0:
            self._slot = (slot + 1) % self._slots
            ring[self._slot] = -1.0
        loud = raw >= (self._threshold if threshold is None else threshold)
        if self._quieting or loud.any():
            quiet = self._quiet[sel]
            halved = quiet > 0
            score = np.where(halved, score * 0.5, score)
            quiet = np.where(halved, quiet - 1, np.where(loud, self._samples, 0))
            self._quiet[sel] = quiet
            self._quieting = bool(self._quiet.any())
        return score


class ChannelDetector:
    """The default detector of one stream of values: a :class:`DetectorBank` of one channel,
    for scoring outside a device (River pipelines, tools).

    Args:
        params: the tuning (the defaults when None).
    """

    __slots__ = ("_bank",)

    _ONE = np.zeros(1, np.intp)

    def __init__(self, params: DetectorParams | None = None) -> None:
        self._bank = DetectorBank(params, 1)

    def update(self, ts: float, value: float) -> float:
        """The score of ``value`` at ``ts`` in [0, 1), then learn it."""
        one = self._ONE
        return float(self._bank.update(ts, np.array([value]), one, one)[0])
