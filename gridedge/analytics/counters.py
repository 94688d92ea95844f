"""What the detectors see of a counter (an energy register): its increase per second, not the
reading, which only ever grows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gridedge.analytics.calibrate import Floats, Index
from gridedge.channels import CHANNELS

COUNTERS = frozenset(n for n, info in CHANNELS.items() if "energy" in info.quantity)
"""Channels that only ever count up."""


class CounterRates:
    """The previous reading and its time of every counter channel of one device."""

    __slots__ = ("_counter", "_last", "any")

    def __init__(self) -> None:
        self._counter = np.zeros(0, bool)
        self._last = np.zeros((2, 0))  # a counter's previous reading and its time
        self.any = False
        """Whether any channel is a counter (else :meth:`seen` need not be called)."""

    def grow(self, names: Sequence[str]) -> None:
        """Add channels that appeared later."""
        self._counter = np.concatenate([self._counter, [n in COUNTERS for n in names]])
        self.any = bool(self._counter.any())
        self._last = np.concatenate([self._last, np.full((2, len(names)), np.nan)], axis=1)

    def seen(self, ts: float, values: Floats, sel: Index) -> Floats:
        """What the detectors see: the reading, or a counter's increase per second."""
        last = self._last
        before, before_ts = last[0, sel], last[1, sel]  # views when ``sel`` is a slice
        dt = ts - before_ts
        valid = ~np.isnan(before) & (dt > 0.0)
        rate = np.where(valid, (values - before) / np.where(valid, dt, 1.0), 0.0)
        last[0, sel], last[1, sel] = values, ts
        return np.where(self._counter[sel], rate, values)
