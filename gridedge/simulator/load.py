"""The load of a simulated site: daily curves, weekday and weekend shapes, switched loads, a
seasonal drift and a slow random walk, kept inside the meter's rating.

:class:`LoadModel` gives the load relative to the rated current at each step. Normal operation
never exceeds :data:`MAX_NORMAL_LOAD` of the rating: a real installation is protected by a
breaker sized to it, so a reading above the meter's rated current is a fault, not normal load.
The curve is squeezed smoothly towards that ceiling (:func:`soft_cap`) rather than clipped, so
a busy day keeps its shape.
"""

from __future__ import annotations

import math
import random
from enum import StrEnum

DAY_S = 86400.0
YEAR_S = 365.25 * DAY_S
MAX_NORMAL_LOAD = 0.85
"""Highest relative load of normal operation, before the phase imbalance (at most +10 %)."""
_THURSDAY = 3  # 1970-01-01, counting Monday as 0
_TABLE_STEP_S = 300.0
# Time constant (s) and stationary standard deviation of the load's random walk.
_TAU_WALK_S, _SIGMA_WALK = 7200.0, 0.06
_SEASONAL_AMPLITUDE = 0.08  # more load in winter (heating, lighting)
_SWITCHED_LOADS = 3  # appliances or machines that switch on and off: load steps


class LoadProfile(StrEnum):
    """The shape of a meter's daily load curve."""

    RESIDENTIAL = "residential"
    """Morning and evening peaks, low at night; a later, flatter morning at weekends."""
    COMMERCIAL = "commercial"
    """Weekday office hours with a lunch dip; low at night and at weekends."""
    INDUSTRIAL = "industrial"
    """Two day shifts on a high base load; lower at weekends."""
    FLAT = "flat"
    """Constant apart from the random walk, switched loads and the seasons."""


def _bump(hour: float, centre: float, width: float) -> float:
    """A Gaussian bump on the 24 h circle."""
    d = (hour - centre + 12.0) % 24.0 - 12.0
    return math.exp(-0.5 * (d / width) ** 2)


def _ramp(hour: float, start: float, end: float) -> float:
    """0 before ``start``, 1 after ``end``, smooth in between."""
    x = min(1.0, max(0.0, (hour - start) / (end - start)))
    return x * x * (3.0 - 2.0 * x)


def _shape(profile: LoadProfile, hour: float, weekend: bool) -> float:
    """Relative load at a local hour, before normalisation."""
    if profile is LoadProfile.RESIDENTIAL:
        if weekend:
            return (
                0.4
                + 0.5 * _bump(hour, 10.0, 2.0)
                + 0.3 * _bump(hour, 14.0, 3.0)
                + _bump(hour, 19.5, 2.2)
            )
        morning, evening = _bump(hour, 7.5, 1.2), _bump(hour, 19.5, 2.0)
        return 0.35 + 0.6 * morning + 0.2 * _bump(hour, 13.0, 2.5) + 1.1 * evening
    if profile is LoadProfile.COMMERCIAL:
        if weekend:
            return 0.25 + 0.05 * _bump(hour, 12.0, 3.0)
        office = _ramp(hour, 7.0, 9.0) - _ramp(hour, 17.0, 20.0)
        return 0.25 + 0.75 * office - 0.08 * _bump(hour, 12.5, 0.7)
    if profile is LoadProfile.INDUSTRIAL:
        shifts = _ramp(hour, 5.5, 6.5) - _ramp(hour, 21.5, 22.5)
        handover = sum(_bump(hour, h, 0.3) for h in (6.0, 14.0, 22.0))
        return (0.75 + 0.25 * shifts - 0.08 * handover) * (0.8 if weekend else 1.0)
    return 1.0


def _tables(profile: LoadProfile) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Weekday and weekend curves at 5 min steps, scaled to a weekly mean of 1."""
    n = int(DAY_S / _TABLE_STEP_S)
    hours = [i * _TABLE_STEP_S / 3600.0 for i in range(n + 1)]
    weekday = [_shape(profile, h, weekend=False) for h in hours]
    weekend = [_shape(profile, h, weekend=True) for h in hours]
    mean = (5.0 * sum(weekday[:n]) + 2.0 * sum(weekend[:n])) / (7.0 * n)
    return tuple(v / mean for v in weekday), tuple(v / mean for v in weekend)


_PROFILES = {profile: _tables(profile) for profile in LoadProfile}


def soft_cap(x: float, cap: float) -> float:
    """``x`` unchanged up to 70 % of ``cap``, then bent smoothly so it never reaches ``cap``."""
    knee = 0.7 * cap
    if x <= knee:
        return x
    room = cap - knee
    return cap - room * math.exp(-(x - knee) / room)


def is_weekend(local_ts: float) -> bool:
    """Whether the local epoch seconds ``local_ts`` fall on a Saturday or Sunday."""
    return (int(local_ts // DAY_S) + _THURSDAY) % 7 >= 5


class LoadModel:
    """The relative load of one site over time (deterministic for a seed and a sequence of
    timestamps).

    Args:
        profile: the daily curve.
        load_fraction: mean load relative to the rated current, before the ceiling.
        utc_offset_h: offset of the site's local time.
        rng: the model's own random source.
    """

    def __init__(
        self, profile: LoadProfile, load_fraction: float, utc_offset_h: float, rng: random.Random
    ) -> None:
        self._weekday, self._weekend = _PROFILES[profile]
        self._fraction = load_fraction
        self._offset_s = utc_offset_h * 3600.0
        self._rng = rng
        self._walk = rng.gauss(0.0, _SIGMA_WALK)
        # Switched loads: (size relative to the mean load, mean seconds on, mean seconds off).
        self._switched = [
            (rng.uniform(0.03, 0.12), rng.uniform(600.0, 7200.0), rng.uniform(1800.0, 14400.0))
            for _ in range(_SWITCHED_LOADS)
        ]
        self._on = [rng.random() < 0.3 for _ in range(_SWITCHED_LOADS)]
        self._toggle_at = [math.nan] * _SWITCHED_LOADS
        self._last_ts = math.nan
        self._a, self._b, self._dt = 0.0, 0.0, math.nan

    def local_second(self, ts: float) -> float:
        """The local second of the day at ``ts``."""
        return (ts + self._offset_s) % DAY_S

    def at(self, ts: float) -> float:
        """Advance to ``ts`` (never earlier than the last call) and return the relative load."""
        dt = 0.0 if math.isnan(self._last_ts) else max(0.0, ts - self._last_ts)
        self._last_ts = ts
        if dt != self._dt:
            self._dt = dt
            self._a = math.exp(-dt / _TAU_WALK_S)
            self._b = _SIGMA_WALK * math.sqrt(1.0 - self._a * self._a)
        self._walk = self._a * self._walk + self._b * self._rng.gauss()
        local = ts + self._offset_s
        table = self._weekend if is_weekend(local) else self._weekday
        x = (local % DAY_S) / _TABLE_STEP_S
        i = min(int(x), len(table) - 2)  # float modulo can return the full period
        shape = table[i] + (table[i + 1] - table[i]) * (x - i)
        season = 1.0 + _SEASONAL_AMPLITUDE * math.cos(2.0 * math.pi * (ts / YEAR_S - 0.04))
        load = self._fraction * shape * season * (1.0 + self._walk + self._steps(ts))
        return soft_cap(max(0.01, load), MAX_NORMAL_LOAD)

    def _steps(self, ts: float) -> float:
        """The switched loads that are on at ``ts``, relative to the mean load."""
        total = 0.0
        rng = self._rng
        for k, (size, mean_on, mean_off) in enumerate(self._switched):
            due = self._toggle_at[k]
            if math.isnan(due):
                due = self._toggle_at[k] = ts + rng.expovariate(1.0 / mean_off)
            while due <= ts:
                self._on[k] = not self._on[k]
                due += rng.expovariate(1.0 / (mean_on if self._on[k] else mean_off))
            self._toggle_at[k] = due
            if self._on[k]:
                total += size
        return total


def seasonal_ambient_c(ts: float) -> float:
    """The seasonal offset of the ambient temperature at ``ts``: warmer in summer, +-8 C."""
    return -8.0 * math.cos(2.0 * math.pi * (ts / YEAR_S - 0.04))
