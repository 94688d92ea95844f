"""Rules: plain checks that need no learning, each with the score it contributes.

* ``limit``: the value is outside the driver's physical range (``Channel.min``/``max``) or a
  configured one;
* ``band``: a supply voltage outside its normal band around nominal (EN 50160: +-10 %), or a
  current above the meter's rated current (``overload``): a fault of the supply or the load
  that no learning is needed to recognise;
* ``rate``: the value changed faster than ``max_rate_per_s``;
* ``flatline``: a channel that used to move repeated exactly the same non-zero value for
  ``flatline_samples`` readings, and for half again as long as any earlier run of repeats (a
  stuck sensor or a frozen register; a signal that plateaus by nature is left alone);
* ``dropout``: the gap since the device's previous sample is more than ``dropout_factor`` times
  its usual interval (missed polls).
"""

from __future__ import annotations

from dataclasses import dataclass

LIMIT_SCORE = 1.0
BAND_SCORE = 0.85
RATE_SCORE = 0.95
FLATLINE_SCORE = 0.9
DROPOUT_SCORE = 0.9


@dataclass(frozen=True, slots=True)
class RuleParams:
    """The rules of one channel; None or 0 turns a rule off."""

    min: float | None = None
    max: float | None = None
    max_rate_per_s: float | None = None
    flatline_samples: int = 0
    band_min: float | None = None
    band_max: float | None = None


class ChannelRules:
    """Limit, rate-of-change and flatline rules of one channel."""

    __slots__ = (
        "_band_max",
        "_band_min",
        "_longest",
        "_max",
        "_min",
        "_moved",
        "_prev",
        "_prev_ts",
        "_rate",
        "_repeats",
        "_stuck",
    )

    def __init__(self, params: RuleParams) -> None:
        self._min = params.min
        self._max = params.max
        self._rate = params.max_rate_per_s
        self._stuck = params.flatline_samples
        self._band_min = params.band_min
        self._band_max = params.band_max
        self._prev: float | None = None
        self._prev_ts = 0.0
        self._repeats = 0
        self._longest = 0
        self._moved = False

    def check(self, ts: float, value: float) -> tuple[str, float] | None:
        """The rule that fires on ``value`` (the strongest one) and its score, or None."""
        hit: tuple[str, float] | None = None
        if (self._min is not None and value < self._min) or (
            self._max is not None and value > self._max
        ):
            hit = ("limit", LIMIT_SCORE)
        elif self._band_min is not None and value < self._band_min:
            hit = ("band", BAND_SCORE)
        elif self._band_max is not None and value > self._band_max:
            hit = ("band" if self._band_min is not None else "overload", BAND_SCORE)
        prev = self._prev
        if prev is not None:
            if value == prev:
                self._repeats += 1
            else:
                if self._repeats > self._longest:
                    self._longest = self._repeats
                self._repeats = 0
                self._moved = True
            rate = self._rate
            if hit is None and rate is not None and ts > self._prev_ts:
                too_fast = abs(value - prev) / (ts - self._prev_ts) > rate
                hit = ("rate", RATE_SCORE) if too_fast else None
            if (
                hit is None
                and self._stuck
                and self._moved
                and value != 0.0
                and self._repeats >= self._stuck
                and self._repeats > 1.5 * self._longest
            ):
                hit = ("flatline", FLATLINE_SCORE)
        self._prev = value
        self._prev_ts = ts
        return hit


class DropoutRule:
    """Notices gaps between a device's samples that are much longer than usual."""

    __slots__ = ("_factor", "_interval", "_last")

    def __init__(self, factor: float) -> None:
        self._factor = factor
        self._interval = 0.0
        self._last: float | None = None

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
        if self._factor > 0 and gap > self._factor * usual:
            return gap
        # Follow changes of the poll interval slowly, and only with gaps that were not dropouts.
        self._interval = usual + 0.05 * (gap - usual)
        return None
