"""Aggregates and report-by-exception: fewer bytes over a slow uplink.

:class:`WindowBank` keeps, per device and window length (1 and 15 minutes by default), the
min, max, mean, last value and count of every channel (one array for all of them), and emits
one ``aggregate`` envelope per device when a window closes (when the first sample of a later
window arrives). Windows are aligned to the epoch, so every gateway cuts them at the same
instants.

:class:`Deadband` implements report-by-exception: a channel's raw value is passed on only when it
moved by more than the deadband since the value last passed on, or ``max_silence_s`` passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gridedge.analytics.calibrate import Floats, Index
from gridedge.model import Envelope, Kind


class WindowBank:
    """The windows of every configured length for one device, every channel in one array.

    Args:
        device: the device the envelopes are for.
        windows_s: the window lengths.
        names: the device's channel names by index (the list grows with the device).
    """

    __slots__ = ("_device", "_names", "_starts", "_stats", "_windows_s")

    # Rows of _stats (per window): min, max, sum, count, last.
    _MIN, _MAX, _SUM, _COUNT, _LAST = range(5)

    def __init__(self, device: str, windows_s: Sequence[float], names: list[str]) -> None:
        self._device = device
        self._windows_s = tuple(windows_s)
        self._names = names
        self._starts: list[float | None] = [None] * len(self._windows_s)
        self._stats = np.zeros((len(self._windows_s), 5, len(names)))
        for w in range(len(self._windows_s)):
            self._reset(w)

    def _reset(self, w: int) -> None:
        st = self._stats[w]
        st[:] = 0.0
        st[self._MIN], st[self._MAX] = np.inf, -np.inf

    def grow(self, extra: int) -> None:
        """Make room for ``extra`` more channels."""
        fresh = np.zeros((len(self._windows_s), 5, extra))
        fresh[:, self._MIN], fresh[:, self._MAX] = np.inf, -np.inf
        self._stats = np.concatenate([self._stats, fresh], axis=2)

    def add(self, ts: float, values: Floats, sel: Index) -> list[Envelope]:
        """Count one sample's values (of channels ``sel``); returns the envelopes of the
        windows it closed.
        """
        closed = []
        starts = self._starts
        for w, length in enumerate(self._windows_s):
            start = ts - ts % length
            if start != starts[w]:
                if starts[w] is not None and (env := self._envelope(w)) is not None:
                    closed.append(env)
                starts[w] = start
                self._reset(w)
        if not self._windows_s:
            return closed
        st = self._stats
        low, high = st[:, self._MIN, sel], st[:, self._MAX, sel]
        if isinstance(sel, slice):  # views: update in place
            np.minimum(low, values, out=low)
            np.maximum(high, values, out=high)
        else:
            st[:, self._MIN, sel] = np.minimum(low, values)
            st[:, self._MAX, sel] = np.maximum(high, values)
        st[:, self._SUM, sel] += values
        st[:, self._COUNT, sel] += 1.0
        st[:, self._LAST, sel] = values
        return closed

    def flush(self) -> list[Envelope]:
        """The envelopes of the open windows (for an orderly stop)."""
        out = []
        for w, start in enumerate(self._starts):
            if start is not None and (env := self._envelope(w)) is not None:
                out.append(env)
            self._starts[w] = None
            self._reset(w)
        return out

    def _envelope(self, w: int) -> Envelope | None:
        start = self._starts[w]
        assert start is not None
        st = self._stats[w]
        counted = np.flatnonzero(st[self._COUNT] > 0.0)
        if not len(counted):
            return None
        lo, hi, total, count, last = st[:, counted].tolist()
        channels = {
            self._names[c]: {
                "min": lo[k],
                "max": hi[k],
                "mean": total[k] / count[k],
                "last": last[k],
                "count": int(count[k]),
            }
            for k, c in enumerate(counted.tolist())
        }
        length = self._windows_s[w]
        end = start + length
        body = {"window_s": length, "start": start, "end": end, "channels": channels}
        return Envelope(kind=Kind.AGGREGATE, device=self._device, ts=end, body=body)


class Deadband:
    """Report-by-exception for one device's raw samples."""

    __slots__ = ("_bands", "_default", "_last", "_max_silence_s")

    def __init__(self, default: float, bands: Mapping[str, float], max_silence_s: float) -> None:
        self._default = default
        self._bands = dict(bands)
        self._max_silence_s = max_silence_s
        self._last: dict[str, tuple[float, float]] = {}

    def filter(self, ts: float, values: Mapping[str, float]) -> dict[str, float]:
        """The channels of a sample worth reporting (possibly none)."""
        out: dict[str, float] = {}
        last = self._last
        for ch, v in values.items():
            prev = last.get(ch)
            band = self._bands.get(ch, self._default)
            if prev is None or abs(v - prev[0]) > band or ts - prev[1] >= self._max_silence_s:
                out[ch] = v
                last[ch] = (v, ts)
        return out
