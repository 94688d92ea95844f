"""A tiny bucketed histogram: the poll loop records read durations here, metrics read them.

Pure and cheap (a bisect and three additions per observation), so the hot path never touches
the metrics library; :mod:`gridedge.ops.metrics` turns it into a Prometheus histogram at
scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

POLL_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (seconds) for read durations: from a simulated meter to a slow RTU bus."""


@dataclass(slots=True)
class Histogram:
    """Counts of observations per bucket, plus their sum.

    Attributes:
        bounds: ascending upper bounds; a value equal to a bound falls in that bucket.
        counts: observations per bucket (not cumulative); the last entry is above every bound.
        total: sum of every observation.
        count: number of observations.
    """

    bounds: tuple[float, ...] = POLL_BUCKETS_S
    counts: list[int] = field(init=False)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if list(self.bounds) != sorted(set(self.bounds)):
            raise ValueError(f"bounds must be strictly ascending, got {self.bounds}")
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        """Record one observation."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= bound)`` pairs, ending with ``(inf, count)``."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out
