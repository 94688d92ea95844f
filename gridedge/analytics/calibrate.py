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

import math
from typing import TypeVar

import numpy as np
import numpy.typing as npt

_T = TypeVar("_T", bound=np.generic)
_SKIP = 255
"""A pending bin that holds no value (the channel was missing from that sample)."""

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

    __slots__ = (
        "_floor",
        "_folds",
        "_grow",
        "_npend",
        "_pending",
        "_rows",
        "_seen",
        "_settled",
        "_span",
        "_tails",
        "_top",
        "_w",
    )

    WIDTH = 0.22
    """Bin width in ``log1p(distance)``. Coarse is enough: an alert needs a distance beyond
    the top of the distribution (which is interpolated within its bin), so the bins only shape
    the scores of common values."""
    BINS = 36
    """Bins: distances up to ``expm1(BINS * WIDTH)`` (about 2,700) are told apart, so a
    repeated huge outlier (a phase lost again) is no surprise twice."""
    BEYOND = 3.0
    RECUT = 64
    """Values between two refreshes of the top of each distribution."""
    FOLD = 16
    """Values learnt in one batch: a score never waits for them, it just does not count the
    last few values yet."""
    _RESCALE_AT = 1e30
    _PRIOR = 1e-30
    """Mass at the bottom of an empty histogram: a first lookup divides by it, not by 0."""

    def __init__(self, views: int, channels: int, memory: int) -> None:
        # One zero bin beyond the last: the tail above the last bin, so lookups need no branch.
        self._tails = np.zeros((views, self.BINS + 1, channels), np.float32)
        self._tails[:, 0, :] = self._PRIOR
        self._w = np.ones(channels)
        self._seen = np.zeros(channels)
        # Per view and channel, in log1p(distance): where the tail falls below the floor.
        self._top = np.zeros((views, channels), np.float32)
        self._grow = 1.0 / (1.0 - 1.0 / memory)
        self._floor = 0.5 / memory
        # Updates after which every channel has seen ``memory`` values (then the floor is
        # fixed); a channel added later restarts the count.
        self._settled = memory
        self._folds = 0
        self._pending = np.full((self.FOLD, views, channels), _SKIP, np.uint8)
        self._npend = 0
        self._rows = np.arange(views).reshape(-1, 1)
        self._span = self.BINS * self.WIDTH

    @classmethod
    def _bases(cls, views: int, channels: int) -> npt.NDArray[np.intp]:
        """Flat index of bin 0 of each view and channel in the tails array."""
        rows = np.arange(views).reshape(-1, 1) * (cls.BINS + 1) * channels
        return rows + np.arange(channels).reshape(1, -1)

    def grow(self, extra: int) -> None:
        """Make room for ``extra`` more channels (a channel that appeared later)."""
        views = self._tails.shape[0]
        fresh = np.zeros((views, self.BINS + 1, extra), np.float32)
        fresh[:, 0, :] = self._PRIOR
        self._tails = np.concatenate([self._tails, fresh], axis=-1)
        self._settled = self._folds * self.FOLD + round(1.0 / (1.0 - 1.0 / self._grow))
        self._pending = pad(self._pending, extra, _SKIP)
        self._w = pad(self._w, extra, 1.0)
        self._seen = pad(self._seen, extra, 0.0)
        self._top = pad(self._top, extra, 0.0)

    def update(
        self,
        distances: Floats,
        sel: Index,
        cols: npt.NDArray[np.intp],
        quiet: int = -1,
        learn_quiet: bool = True,
    ) -> Floats:
        """The surprise of each distance (``views`` x channels ``sel``), then learn them.

        ``cols`` holds the channel indices of ``sel`` (``sel`` itself when it is an array).
        View ``quiet`` (none when negative) scores 0 this time and, unless ``learn_quiet``,
        is not learnt either (a view whose distance does not mean anything yet).
        """
        tails = self._tails
        lx = np.log1p(distances)
        pos = lx * (1.0 / self.WIDTH)
        i = np.minimum(pos, self.BINS - 1).astype(np.intp)
        rows = self._rows
        at = tails[rows, i, cols]
        above = tails[rows, i + 1, cols]
        # Linear within the bin; beyond the last bin the fraction goes negative: rarer than any.
        p = (above + ((i + 1) - pos) * (at - above)) / tails[:, 0, sel]
        floor: Floats | float = self._floor
        if self._folds * self.FOLD < self._settled:
            floor = np.maximum(self._floor, 0.5 / np.maximum(self._seen[sel], 1.0))
        s: Floats = np.log10(np.maximum(p, floor))
        np.negative(s, out=s)
        rare = p < floor
        if rare.any():
            beyond = np.maximum(lx - self._top[:, sel], 0.0)
            s += np.where(rare, self.BEYOND * beyond, 0.0)
        # Learn: the bin goes to the pending batch; every FOLD values the batch's weights are
        # added to every tail sum at or below their bins (one pass for the whole batch).
        pending = self._pending[self._npend]
        pending[:, sel] = i
        if quiet >= 0:
            s[quiet] = 0.0
            if not learn_quiet:
                pending[quiet, sel] = _SKIP
        self._top[:, sel] = np.maximum(self._top[:, sel], np.minimum(lx, self._span))
        self._npend += 1
        if self._npend == self.FOLD:
            self._fold()
        return s

    def _fold(self) -> None:
        """Add the pending batch to the histograms (each value at the weight of the newest)."""
        pending = self._pending
        bins, tails = self.BINS, self._tails
        views, _, channels = tails.shape
        present = (pending[:, 0, :] != _SKIP).sum(axis=0)
        weights = np.broadcast_to(self._w.astype(np.float32), pending.shape) * (pending != _SKIP)
        flat = np.minimum(pending, bins).astype(np.intp) * channels + self._bases(views, channels)
        counts = np.bincount(flat.ravel(), weights.ravel(), views * (bins + 1) * channels)
        counts = counts.reshape(views, bins + 1, channels)
        tails += np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]
        self._w *= self._grow**present
        self._seen += present
        pending[:] = _SKIP
        self._npend = 0
        self._folds += 1
        if self._folds % (self.RECUT // self.FOLD) == 0:
            if self._w.max(initial=0.0) > self._RESCALE_AT:
                self._rescale()
            self._recut()

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
        cols = np.arange(tails.shape[2]).reshape(1, -1)
        at, above = tails[self._rows, j, cols], tails[self._rows, j + 1, cols]
        drop = at - above
        inside = (at - rare[:, 0, :]) / np.where(drop > 0.0, drop, 1.0)
        top = (j + np.clip(inside, 0.0, 1.0)) * self.WIDTH
        self._top = top.astype(np.float32)


def pad(a: npt.NDArray[_T], extra: int, fill: float) -> npt.NDArray[_T]:
    """``a`` with ``extra`` more channels (the last axis) set to ``fill``."""
    shape = (*a.shape[:-1], extra)
    return np.concatenate([a, np.full(shape, fill, a.dtype)], axis=-1)


def corrected(score: float, channels: int, samples_per_alarm: float = 1000.0) -> float:
    """A device's best detector score, discounted for the channels and the samples looked at.

    With many channels, one of them is rare by chance far more often than any single one, and
    with many samples a week, a one-in-a-thousand value comes many times a week. Subtracting
    ``log10(channels)`` (a Bonferroni correction) and ``log10(samples_per_alarm / 1000)`` from
    the surprise makes 0.5 mean "one device sample in ``samples_per_alarm`` on normal data":
    the false-alarm budget. One channel at one alarm per 1000 samples is left unchanged.
    """
    if score <= 0.0 or score >= 1.0:
        return score
    discount = max(
        0.0, math.log10(max(1, channels)) + math.log10(max(1.0, samples_per_alarm)) - 3.0
    )
    if discount == 0.0:
        return score
    s = SURPRISE_HALF * score / (1.0 - score) - discount
    return s / (s + SURPRISE_HALF) if s > 0.0 else 0.0


def uncorrected(score: float, channels: int, samples_per_alarm: float = 1000.0) -> float:
    """The channel score that :func:`corrected` turns into ``score`` (its inverse, for scores
    in (0, 1)).
    """
    discount = max(
        0.0, math.log10(max(1, channels)) + math.log10(max(1.0, samples_per_alarm)) - 3.0
    )
    s = SURPRISE_HALF * score / (1.0 - score) + discount
    return s / (s + SURPRISE_HALF)
