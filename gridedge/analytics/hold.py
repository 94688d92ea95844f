"""Holding a detector alert while its fault lasts.

A detector notices a change; it then adapts to the new level, and the hold-off damps repeated
scores, so on its own the alert would clear while a sag, a drift or an overheating goes on.
:class:`Hold` asks the other question: is the evidence channel *still different from the
baseline before the change*? Every analysed channel keeps a reference (:class:`ReferenceBank`,
all of a device's channels in one array): a short moving
average of its value and the typical deviation of values around it. When the device's detector
alert is raised, the evidence channel's reference (from the values before the change) is frozen
as the baseline; while a short average of the distance from that baseline stays beyond
``tolerance`` deviations, the alert is held. A second baseline follows the signal slowly
(``1 / adapt_samples`` per value), so a change that turns out to be the new normal releases the
alert in the end; a return to the frozen baseline releases it at once.
"""

from __future__ import annotations

import math

import numpy as np

from gridedge.analytics.calibrate import Floats, Index

REFERENCE_SAMPLES = 30
"""Memory of a channel's reference level and deviation."""
_SHORT = 0.35  # weight of the newest distance in the held average (about three values)


class ReferenceBank:
    """Every channel's recent level and the typical deviation around it."""

    __slots__ = ("_state",)

    _LEVEL, _DEV, _N = range(3)

    def __init__(self, channels: int) -> None:
        self._state = np.zeros((3, channels))
        self._state[self._LEVEL] = np.nan

    def grow(self, extra: int) -> None:
        """Make room for ``extra`` more channels."""
        fresh = np.zeros((3, extra))
        fresh[self._LEVEL] = np.nan
        self._state = np.concatenate([self._state, fresh], axis=1)

    def level(self, channel: int) -> float:
        """The reference level of one channel."""
        return float(self._state[self._LEVEL, channel])

    def deviation(self, channel: int) -> float:
        """The typical deviation of one channel around its level."""
        return float(self._state[self._DEV, channel])

    def before(self, channel: int, latest: float) -> tuple[float, float]:
        """(level, deviation) of one channel before it learnt its ``latest`` value: the state
        that value was scored on (undoing the last step, so nothing is stored twice).
        """
        level, dev, n = self._state[:, channel].tolist()
        if n < 2.0:
            return math.nan, 0.0
        a = 1.0 / min(n, REFERENCE_SAMPLES)
        old = (level - a * latest) / (1.0 - a)
        return old, max(0.0, (dev - a * abs(latest - old)) / (1.0 - a))

    def update(self, values: Floats, sel: Index) -> None:
        """Learn one value of each channel ``sel``."""
        st = self._state
        level, dev = st[self._LEVEL, sel], st[self._DEV, sel]
        n = st[self._N, sel] + 1.0
        st[self._N, sel] = n
        a = 1.0 / np.minimum(n, REFERENCE_SAMPLES)
        e = values - level
        first = n == 1.0
        st[self._DEV, sel] = np.where(first, 0.0, dev + a * (np.abs(e) - dev))
        st[self._LEVEL, sel] = np.where(first, values, level + a * e)


class Hold:
    """Whether a raised detector alert's evidence channel is still away from its baseline.

    Args:
        tolerance: how many typical deviations from the baseline count as still different.
        adapt_samples: how slowly the baseline follows the signal while held.
    """

    __slots__ = (
        "_a",
        "_base",
        "_channel",
        "_dist",
        "_frozen",
        "_near",
        "_tol",
        "_tolerance",
        "held",
    )

    def __init__(self, tolerance: float = 4.0, adapt_samples: int = 720) -> None:
        self._tolerance = tolerance
        self._a = 1.0 / adapt_samples
        self._channel: str | None = None
        self._base = self._frozen = 0.0
        self._tol = 0.0
        self._dist = self._near = 0.0
        self.held = False
        """What the latest ``update`` returned (False after ``start`` and ``stop``)."""

    @property
    def channel(self) -> str | None:
        """The channel being watched, or None."""
        return self._channel

    def start(self, channel: str, before: float, dev_before: float) -> None:
        """Freeze a reference as it was before its latest value (level ``before``, deviation
        ``dev_before``) as the baseline of ``channel``.
        """
        self._channel = channel
        self._base = self._frozen = before
        floor = 1e-3 * abs(before) + 1e-9  # a meter's resolution, roughly
        self._tol = self._tolerance * max(dev_before, floor)
        self._dist = self._near = 0.0
        self.held = False

    def stop(self) -> None:
        """Stop watching (the alert cleared)."""
        self._channel = None
        self.held = False

    def update(self, value: float) -> bool:
        """Learn the watched channel's new value; True while it is still away from baseline."""
        self._dist += _SHORT * (abs(value - self._base) - self._dist)
        self._near += _SHORT * (abs(value - self._frozen) - self._near)
        self._base += self._a * (value - self._base)
        # Released when back at the baseline before the change, or at the slowly adapted one.
        back = abs(value - self._frozen) <= self._tol  # this value alone is back already
        self.held = self._dist > self._tol and self._near > self._tol and not back
        return self.held
