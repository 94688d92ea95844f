"""Holding a detector alert while its fault lasts.

A detector notices a change; it then adapts to the new level, and the hold-off damps repeated
scores, so on its own the alert would clear while a sag, a drift or an overheating goes on.
:class:`Hold` asks the other question: is the evidence channel *still different from the
baseline before the change*? Every analysed channel keeps a :class:`Reference`: a short moving
average of its value and the typical deviation of values around it. When the device's detector
alert is raised, the evidence channel's reference (from the values before the change) is frozen
as the baseline; while a short average of the distance from that baseline stays beyond
``tolerance`` deviations, the alert is held. A second baseline follows the signal slowly
(``1 / adapt_samples`` per value), so a change that turns out to be the new normal releases the
alert in the end; a return to the frozen baseline releases it at once.
"""

from __future__ import annotations

import math

REFERENCE_SAMPLES = 30
"""Memory of a channel's reference level and deviation."""
_SHORT = 0.35  # weight of the newest distance in the held average (about three values)


class Reference:
    """A channel's recent level and the typical deviation around it (values before now)."""

    __slots__ = ("before", "dev", "dev_before", "level", "n")

    def __init__(self) -> None:
        self.level = self.before = math.nan
        self.dev = self.dev_before = 0.0
        self.n = 0

    def update(self, value: float) -> None:
        """Learn one value (``before`` and ``dev_before`` keep the state it was scored on)."""
        self.before, self.dev_before = self.level, self.dev
        self.n += 1
        if self.n == 1:
            self.level = value
            return
        a = 1.0 / min(self.n, REFERENCE_SAMPLES)
        e = value - self.level
        self.dev += a * (abs(e) - self.dev)
        self.level += a * e


class Hold:
    """Whether a raised detector alert's evidence channel is still away from its baseline.

    Args:
        tolerance: how many typical deviations from the baseline count as still different.
        adapt_samples: how slowly the baseline follows the signal while held.
    """

    __slots__ = ("_a", "_base", "_channel", "_dist", "_frozen", "_near", "_tol", "_tolerance")

    def __init__(self, tolerance: float = 4.0, adapt_samples: int = 720) -> None:
        self._tolerance = tolerance
        self._a = 1.0 / adapt_samples
        self._channel: str | None = None
        self._base = self._frozen = 0.0
        self._tol = 0.0
        self._dist = self._near = 0.0

    @property
    def channel(self) -> str | None:
        """The channel being watched, or None."""
        return self._channel

    def start(self, channel: str, reference: Reference) -> None:
        """Freeze ``reference`` as it was before its latest value as the baseline of ``channel``."""
        self._channel = channel
        self._base = self._frozen = reference.before
        floor = 1e-3 * abs(reference.before) + 1e-9  # a meter's resolution, roughly
        self._tol = self._tolerance * max(reference.dev_before, floor)
        self._dist = self._near = 0.0

    def stop(self) -> None:
        """Stop watching (the alert cleared)."""
        self._channel = None

    def update(self, value: float) -> bool:
        """Learn the watched channel's new value; True while it is still away from baseline."""
        self._dist += _SHORT * (abs(value - self._base) - self._dist)
        self._near += _SHORT * (abs(value - self._frozen) - self._near)
        self._base += self._a * (value - self._base)
        # Released when back at the baseline before the change, or at the slowly adapted one.
        return self._dist > self._tol and self._near > self._tol
