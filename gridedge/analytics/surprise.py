"""A calibration histogram for one stream of distances: the scalar counterpart of
:class:`~gridedge.analytics.calibrate.SurpriseBank`.

Device-level statistics (the multivariate detector's T² and SPE, a River model's score) come
one per sample, where a plain Python histogram costs a few microseconds and numpy's per-call
overhead would cost tens; it reports the same ``-log10`` tail probability, so a surprise of
:data:`~gridedge.analytics.calibrate.SURPRISE_HALF` means the same rarity on both.
"""

from __future__ import annotations

import math


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
