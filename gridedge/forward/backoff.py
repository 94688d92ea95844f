"""Pacing, pure: reconnect backoff with jitter, and the drain rate limit.

Neither sleeps nor reads a clock by itself: callers pass the time and do the waiting, so both
are tested without time passing.
"""

from __future__ import annotations

import random

HEALTHY_S = 10.0
"""A connection that stayed up this long was healthy: losing it starts the backoff afresh."""


class Backoff:
    """Capped exponential backoff with "full jitter", and a quick first retry.

    The first failure after a reset waits a random time in ``[min_s/2, min_s]``: a gateway whose
    healthy connection dropped is back within about a second of its broker. The n-th
    consecutive failure after that waits a random time in ``[0, d]`` where
    ``d = min(max_s, min_s * 2**n)``: thousands of gateways that lost the same broker at the
    same moment spread their attempts over the whole interval instead of arriving together
    (with "equal jitter", ``[d/2, d]``, half of every interval is empty and they bunch), and
    the mean wait for a broker that is back is about a third of ``max_s``.

    Args:
        min_s: nominal delay after the first failure.
        max_s: cap of the nominal delay.
        rng: source of jitter (seed it in tests).
    """

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(f"expected 0 < min_s <= max_s, got {min_s}, {max_s}")
        self.min_s = min_s
        self.max_s = max_s
        self._rng = rng if rng is not None else random.Random()
        self.failures = 0

    def nominal(self) -> float:
        """The upper end of the next delay."""
        # Capping the exponent first keeps 2**n finite after very many failures.
        exponent = min(self.failures, 64)
        return min(self.max_s, self.min_s * 2.0**exponent)

    def next_delay(self) -> float:
        """The wait before the next attempt; counts one more failure."""
        nominal = self.nominal()
        self.failures += 1
        if self.failures == 1:
            return nominal / 2 + self._rng.random() * nominal / 2
        return self._rng.random() * nominal

    def reset(self) -> None:
        """Forget the failures (after a connection that worked)."""
        self.failures = 0


class RateLimit:
    """At most ``rate`` units per second on average, with bursts of up to one second's worth.

    A debt-based token bucket: ``take`` always succeeds and may leave the bucket negative (a
    message bigger than a second's worth still goes out); ``delay`` says how long to wait until
    the bucket is no longer in debt. A rate of 0 means no limit.
    """

    def __init__(self, rate: float, now: float) -> None:
        if rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        self.rate = rate
        self._tokens = rate
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = max(self._at, now)

    def delay(self, now: float) -> float:
        """Seconds to wait before the next ``take``; 0 when it may go now."""
        if self.rate == 0:
            return 0.0
        self._refill(now)
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def take(self, units: float, now: float) -> None:
        """Spend ``units``."""
        if self.rate == 0:
            return
        self._refill(now)
        self._tokens -= units
