"""Rules: plain checks that need no learning, each with the score it contributes.

:class:`RuleBank` checks every channel of a device at once (one vector operation per rule).

* ``limit``: the value is outside the driver's physical range (``Channel.min``/``max``) or a
  configured one;
* ``band``: a supply voltage outside its normal band around nominal (EN 50160: +-10 %), or a
  current above the meter's rated current (``overload``): a fault of the supply or the load
  that no learning is needed to recognise;
* ``rate``: the value changed faster than ``max_rate_per_s``;
* ``flatline``: a channel that used to move repeats exactly the same non-zero value (a stuck
  sensor or a frozen register) for a run that its own rate of repeats makes rarer than one in
  ``10 ** FLATLINE_SURPRISE`` (two or three readings of a channel that never repeats, dozens
  of one that often does), or when the channels repeating at once are that rare together (a
  frozen meter, from its first repeat); or for ``flatline_samples`` readings and half again as
  long as any earlier run (a signal that plateaus by nature is left alone);
* ``dropout``: the gap since the device's previous sample is more than ``dropout_factor`` times
  its usual interval (missed polls), and gaps that long are rare for this device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridedge.analytics.calibrate import Floats, Index
from gridedge.channels import CHANNELS

LIMIT_SCORE = 1.0
BAND_SCORE = 0.85
RATE_SCORE = 0.95
FLATLINE_SCORE = 0.9
DROPOUT_SCORE = 0.9
FLATLINE_SURPRISE = 8.0
"""``-log10`` of the chance of a run of repeats (by the channel's rate of repeats) that fires."""
REPEAT_MEMORY = 2000
"""Readings over which a channel's rate of repeats is learnt; its floor is one in this."""
_JOINT_SURPRISE = 2.0 * FLATLINE_SURPRISE  # several channels repeating at once: a frozen meter


@dataclass(frozen=True, slots=True)
class RuleParams:
    """The rules of one channel; None or 0 turns a rule off."""

    min: float | None = None
    max: float | None = None
    max_rate_per_s: float | None = None
    flatline_samples: int = 0
    band_min: float | None = None
    band_max: float | None = None


RULES = ("", "limit", "band", "overload", "rate", "flatline")
"""Rule names by the code :meth:`RuleBank.check` returns (0: no rule fired)."""
_SCORES = np.array([0.0, LIMIT_SCORE, BAND_SCORE, BAND_SCORE, RATE_SCORE, FLATLINE_SCORE])


class RuleBank:
    """Limit, band, rate-of-change and flatline rules of every channel of one device."""

    __slots__ = ("_checks", "_floor", "_limits", "_moved", "_primed", "_rated", "_state")

    # Rows of _limits: min, max, band min, band max, max rate, flatline samples (inf: off), and
    # the narrowest range of the four bounds (a value inside it breaks no range rule).
    _MIN, _MAX, _BAND_MIN, _BAND_MAX, _RATE, _FLAT, _LOW, _HIGH = range(8)
    # Rows of _state: previous value, its time, repeats of it, longest earlier run of repeats,
    # the rate of repeats (with a prior of one in two).
    _PREV, _PREV_TS, _REPEATS, _LONGEST, _SAME_RATE = range(5)
    _ROWS = 5
    _WARM = 100
    """Samples the rates of repeats need before they can call a run rare."""

    def __init__(self, params: Sequence[RuleParams]) -> None:
        self._limits = np.zeros((8, 0))
        self._state = np.zeros((self._ROWS, 0))
        self._floor = 1.0 / REPEAT_MEMORY
        self._checks = 0  # samples checked: the rates of repeats learn as a mean of as many
        self._moved = np.zeros(0, bool)
        self._primed = False
        self._rated = False
        self.grow(params)

    def grow(self, params: Sequence[RuleParams]) -> None:
        """Add the rules of channels that appeared later."""
        extra = np.array([_limit_row(p) for p in params]).reshape(-1, 8).T
        self._limits = np.concatenate([self._limits, extra], axis=1)
        fresh = np.zeros((self._ROWS, len(params)))
        fresh[self._PREV] = np.nan
        fresh[self._SAME_RATE] = 0.5
        self._state = np.concatenate([self._state, fresh], axis=1)
        self._moved = np.concatenate([self._moved, np.zeros(len(params), bool)])
        self._primed = False
        self._rated = bool((self._limits[self._RATE] < np.inf).any())

    def check(
        self, ts: float, values: Floats, sel: Index
    ) -> tuple[npt.NDArray[np.intp], Floats] | None:
        """The rule that fires on each value (the strongest; a code into :data:`RULES`) and its
        score, for channels ``sel``; None when no rule fires on any of them.
        """
        lim = self._limits
        st = self._state
        prev = st[self._PREV, sel]
        repeats, longest = st[self._REPEATS, sel], st[self._LONGEST, sel]
        same = values == prev
        changed = ~same
        if not self._primed:
            changed &= ~np.isnan(prev)
            self._primed = not np.isnan(st[self._PREV]).any()
        longest = np.maximum(longest, repeats * changed)
        repeats = (repeats + 1.0) * same
        moved = self._moved[sel] | changed
        self._moved[sel] = moved
        st[self._REPEATS, sel], st[self._LONGEST, sel] = repeats, longest
        rare = self._rare_runs(sel, same & (values != 0.0), moved, repeats)
        ranged = ((values < lim[self._LOW, sel]) | (values > lim[self._HIGH, sel])).any()
        stuck = rare is not None or ((repeats >= lim[self._FLAT, sel]) & moved).any()
        fired = None
        if ranged or stuck or self._rated:
            fired = self._fired(ts, values, sel, moved, repeats, longest, rare)
        st[self._PREV, sel], st[self._PREV_TS, sel] = values, ts
        return fired

    def _rare_runs(
        self,
        sel: Index,
        repeating: npt.NDArray[np.bool_],
        moved: npt.NDArray[np.bool_],
        repeats: Floats,
    ) -> npt.NDArray[np.bool_] | None:
        """Which of the ``repeating`` channels that ``moved`` before are in a run too rare for
        their rate of repeats (alone, or together with the others repeating now); None when
        none is. Then learns the rate.
        """
        st = self._state
        self._checks += 1
        rate = st[self._SAME_RATE, sel]
        st[self._SAME_RATE, sel] = rate + (repeating - rate) / min(self._checks + 2, REPEAT_MEMORY)
        repeating = repeating & moved
        if self._checks <= self._WARM or not repeating.any():
            return None
        cost = np.where(repeating, -np.log10(np.maximum(rate, self._floor)), 0.0)
        rare = (cost * repeats >= FLATLINE_SURPRISE) | (
            (cost > 0.0) & (cost.sum() >= _JOINT_SURPRISE)
        )
        return rare if rare.any() else None

    def _fired(
        self,
        ts: float,
        values: Floats,
        sel: Index,
        moved: npt.NDArray[np.bool_],
        repeats: Floats,
        longest: Floats,
        rare: npt.NDArray[np.bool_] | None,
    ) -> tuple[npt.NDArray[np.intp], Floats] | None:
        """The codes and scores of ``check`` (state not yet moved on to ``values``)."""
        lim = self._limits[:, sel]
        prev = self._state[self._PREV, sel]
        dt = ts - self._state[self._PREV_TS, sel]
        code = np.where((values < lim[0]) | (values > lim[1]), 1, 0)
        code = np.where((code == 0) & (values < lim[2]), 2, code)
        over = (code == 0) & (values > lim[3])
        code = np.where(over, np.where(lim[2] > -np.inf, 2, 3), code)
        timed = ~np.isnan(prev) & (dt > 0.0)
        too_fast = timed & (np.abs(values - prev) > lim[4] * np.where(timed, dt, 1.0))
        code = np.where((code == 0) & too_fast, 4, code)
        flat = moved & (values != 0.0) & (repeats >= lim[5]) & (repeats > 1.5 * longest)
        if rare is not None:
            flat |= rare & (lim[5] < np.inf)  # a channel whose flatline rule is on
        code = np.where((code == 0) & flat, 5, code)
        if not code.any():
            return None
        return code, _SCORES[code]


def _limit_row(p: RuleParams) -> tuple[float, ...]:
    inf = np.inf
    return (
        p.min if p.min is not None else -inf,
        p.max if p.max is not None else inf,
        p.band_min if p.band_min is not None else -inf,
        p.band_max if p.band_max is not None else inf,
        p.max_rate_per_s if p.max_rate_per_s is not None else inf,
        float(p.flatline_samples) if p.flatline_samples > 0 else inf,
        max(p.min if p.min is not None else -inf, p.band_min if p.band_min is not None else -inf),
        min(p.max if p.max is not None else inf, p.band_max if p.band_max is not None else inf),
    )


GAP_MEMORY = 2000
"""Gaps over which a device's rate of long gaps is learnt (a decaying count)."""
GAP_PRIOR = 1000.0
"""Regular gaps assumed before any was seen, so a new device's first long gap counts."""
GAP_RARITY = 0.005
"""A long gap is a dropout only while gaps at least as long are rarer than this among the
device's gaps: a source that is irregular by nature (one in ten gaps long) stops alerting."""
_GAP_BINS = 40
_BINS_PER_OCTAVE = 4.0


class DropoutRule:
    """Notices gaps between a device's samples that are much longer than usual, and rarer than
    the device's own long gaps.

    A gap over ``factor`` usual intervals is a candidate; it counts as a dropout while gaps at
    least as long (in quarter-octave bins of gap over usual interval) make up less than
    :data:`GAP_RARITY` of the last :data:`GAP_MEMORY` or so gaps. Memory is fixed: one
    decaying count per bin.
    """

    __slots__ = ("_factor", "_interval", "_last", "_long", "_total", "_weight")

    def __init__(self, factor: float) -> None:
        self._factor = factor
        self._interval = 0.0
        self._last: float | None = None
        self._long = [0.0] * _GAP_BINS
        self._total = GAP_PRIOR
        # Decay by growing the weight of new gaps instead of shrinking every count.
        self._weight = 1.0

    @property
    def interval_s(self) -> float:
        """The device's usual interval between samples (0 until two samples were seen)."""
        return self._interval

    def check(self, ts: float) -> float | None:
        """The gap in seconds when it counts as a dropout, else None."""
        last = self._last
        self._last = ts
        if last is None or ts <= last:
            return None
        gap = ts - last
        usual = self._interval
        if usual <= 0.0:
            self._interval = gap
            return None
        weight = self._weight = self._weight * _GROWTH
        self._total += weight
        if weight > 1e12:
            self._rescale()
        if self._factor <= 0 or gap <= self._factor * usual:
            # Follow changes of the poll interval slowly, and only with gaps that were not long.
            self._interval = usual + 0.05 * (gap - usual)
            return None
        octaves = math.log2(gap / (self._factor * usual))
        index = min(int(octaves * _BINS_PER_OCTAVE), _GAP_BINS - 1)
        longer = sum(self._long[index:])
        self._long[index] += self._weight
        return gap if longer < GAP_RARITY * self._total else None

    def _rescale(self) -> None:
        scale = 1.0 / self._weight
        self._long = [c * scale for c in self._long]
        self._total *= scale
        self._weight = 1.0


_GROWTH = 1.0 / (1.0 - 1.0 / GAP_MEMORY)


def supply_band(
    channel: str, nominal: float | None, band: float
) -> tuple[float | None, float | None]:
    """The normal operating range of a voltage (nominal +- ``band``, EN 50160) or current
    (up to the rated current) channel; (None, None) for the others or without a nominal.
    """
    info = CHANNELS.get(channel)
    if nominal is None or info is None or band <= 0.0:
        return None, None
    if info.quantity in ("voltage", "voltage_ll"):
        return (1.0 - band) * nominal, (1.0 + band) * nominal
    if info.quantity == "current":
        return None, nominal
    return None, None
