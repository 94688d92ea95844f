"""Calibration of raw distances into rarity, for every view and channel of a device at once.

A raw distance (deviations from a mean, from the previous value, from the daily profile) means
different things on different signals, so each view of each channel is calibrated by its own
history: :class:`SurpriseBank` keeps a decaying histogram of ``log1p(distance)`` per view and
channel and reports how rare the current distance is, as ``-log10`` of its tail probability
(3 means "one in a thousand"). Beyond the largest distances still holding a share of the mass,
the tail probability keeps falling by 1000 per unit of ``log1p(distance)``, so bigger outliers
still rank higher.

The histograms are stored as tail sums (``tails[v, i, c]`` is the mass at or above bin ``i``):
a lookup is one gather, learning a value adds its weight to the bins at or below it (one
vector operation for the whole device), and the "top" of the distribution (where the tail
falls below the rarity floor) is a count. Old counts fade by growing the weight of new ones
(``memory`` values), rescaled long before float32 runs out of range.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt

_T = TypeVar("_T", bound=np.generic)

SURPRISE_HALF = 3.0
"""The surprise (``-log10`` tail probability) that maps to a score of 0.5."""

Floats = npt.NDArray[np.float64]
Index = slice | npt.NDArray[np.intp]
"""Which channels a sample carries: every one (``slice(None)``) or their indices."""


class SurpriseBank:
    """How rare each non-negative distance is among the previous ones of its view and channel.

    Args:
        views: distances scored per channel (rows of the ``update`` argument).
        channels: channels of the device.
        memory: values after which an old count has faded to ``1/e`` of a new one.
    """

    __slots__ = ("_ar", "_floor", "_grow", "_learned", "_seen", "_tails", "_top", "_views", "_w")

    WIDTH = 0.125
    """Bin width in ``log1p(distance)``."""
    BINS = 40
    """Bins: distances up to ``expm1(BINS * WIDTH)`` (about 150) are told apart."""
    BEYOND = 3.0
    RECUT = 64
    """Values between two refreshes of the top of each distribution."""
    _RESCALE_AT = 1e30

    def __init__(self, views: int, channels: int, memory: int) -> None:
        self._views = views
        # One zero bin beyond the last: the tail above the last bin, so lookups need no branch.
        self._tails = np.zeros((views, self.BINS + 1, channels), np.float32)
        self._w = np.ones(channels)
        self._seen = np.zeros(channels)
        self._top = np.zeros((views, channels), np.float32)
        self._grow = 1.0 / (1.0 - 1.0 / memory)
        self._floor = 0.5 / memory
        self._learned = 0
        self._ar = np.arange(self.BINS + 1).reshape(1, -1, 1)

    def grow(self, extra: int) -> None:
        """Make room for ``extra`` more channels (a channel that appeared later)."""
        self._tails = pad(self._tails, extra, 0.0)
        self._w = pad(self._w, extra, 1.0)
        self._seen = pad(self._seen, extra, 0.0)
        self._top = pad(self._top, extra, 0.0)

    def update(self, distances: Floats, sel: Index, cols: npt.NDArray[np.intp]) -> Floats:
        """The surprise of each distance (``views`` x channels ``sel``), then learn them.

        ``cols`` holds the channel indices of ``sel`` (``sel`` itself when it is an array).
        """
        tails = self._tails
        lx = np.log1p(distances)
        pos = lx * (1.0 / self.WIDTH)
        i = np.minimum(pos, self.BINS - 1).astype(np.intp)
        rows = np.arange(self._views).reshape(-1, 1)
        at = tails[rows, i, cols]
        above = tails[rows, i + 1, cols]
        total = tails[:, 0, sel]
        frac = np.clip(i + 1 - pos, 0.0, 1.0)
        seen = self._seen[sel]
        floor = np.maximum(self._floor, 0.5 / np.maximum(seen, 1.0))
        known = total > 0.0
        p = (above + frac * (at - above)) / np.where(known, total, 1.0)
        beyond = np.maximum(lx - self._top[:, sel] * self.WIDTH, 0.0)
        rare = p < floor
        s = np.where(rare, self.BEYOND * beyond - np.log10(floor), -np.log10(np.where(rare, 1, p)))
        s = np.where(known, s, 0.0)
        # Learn: the weight goes to every tail sum at or below the value's bin.
        w = self._w[sel]
        tails[:, :, sel] += (self._ar <= i[:, None, :]) * w.astype(np.float32)
        self._top[:, sel] = np.maximum(self._top[:, sel], np.minimum(pos, self.BINS))
        self._seen[sel] = seen + 1.0
        w *= self._grow
        self._w[sel] = w
        if w.max(initial=0.0) > self._RESCALE_AT:
            self._rescale()
        self._learned += 1
        if self._learned % self.RECUT == 0:
            self._recut()
        return s

    def _rescale(self) -> None:
        big = self._w > self._RESCALE_AT
        self._tails[:, :, big] /= self._w[big].astype(np.float32)
        self._w[big] = 1.0

    def _recut(self) -> None:
        """Refresh the top of each distribution: where its tail falls below the rarity floor
        (old outliers fade out of it, so they do not dull the surprise of new ones for ever),
        interpolated within the bin.
        """
        tails = self._tails
        rare = (self._floor * tails[:, 0, :])[:, None, :]
        count = (tails >= rare).sum(axis=1)
        j = np.clip(count - 1, 0, self.BINS - 1)
        rows = np.arange(self._views).reshape(-1, 1)
        cols = np.arange(tails.shape[2]).reshape(1, -1)
        at, above = tails[rows, j, cols], tails[rows, j + 1, cols]
        drop = at - above
        inside = (at - rare[:, 0, :]) / np.where(drop > 0.0, drop, 1.0)
        top = j + np.clip(inside, 0.0, 1.0)
        self._top = np.where(tails[:, 0, :] > 0.0, top, 0.0).astype(np.float32)


def pad(a: npt.NDArray[_T], extra: int, fill: float) -> npt.NDArray[_T]:
    """``a`` with ``extra`` more channels (the last axis) set to ``fill``."""
    shape = (*a.shape[:-1], extra)
    return np.concatenate([a, np.full(shape, fill, a.dtype)], axis=-1)
