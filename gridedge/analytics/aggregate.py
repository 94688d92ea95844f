"""Aggregates and report-by-exception: fewer bytes over a slow uplink.

:class:`WindowBank` keeps, per device and window length (1 and 15 minutes by default), the
min, max, mean, last value and count of every channel (one array for all of them), and emits one ``aggregate`` envelope
per device when a window closes (when the first sample of a later window arrives). Windows are
aligned to the epoch, so every gateway cuts them at the same instants.

:class:`Deadband` implements report-by-exception: a channel's raw value is passed on only when it
moved by more than the deadband since the value last passed on, or ``max_silence_s`` passed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gridedge.analytics.calibrate import Floats, Index
from gridedge.model import Envelope, Kind

class WindowBank:
    """Windows of one length for one device, every channel in one array.

    Args:
        device: the device the envelopes are for.
        window_s: the window length.
        names: the device's channel names by index (the list grows with the device).
    """

    __slots__ = ("_device", "_names", "_start", "_stats", "_window_s")

    # Rows of _stats: min, max, sum, count, last.
    _MIN, _MAX, _SUM, _COUNT, _LAST = range(5)

    def __init__(self, device: str, window_s: float, names: list[str]) -> None:
        self._device = device
        self._window_s = window_s
        self._names = names
        self._start: float | None = None
        self._stats = self._empty(len(names))

    @classmethod
    def _empty(cls, channels: int) -> Floats:
        stats = np.zeros((5, channels))
        stats[cls._MIN], stats[cls._MAX] = np.inf, -np.inf
        return stats

    def grow(self, extra: int) -> None:
        """Make room for ``extra`` more channels."""
        self._stats = np.concatenate([self._stats, self._empty(extra)], axis=1)

    def add(self, ts: float, values: Floats, sel: Index) -> Envelope | None:
        """Count one sample's values (of channels ``sel``); returns the envelope of the window
        it closed, if any.
        """
        w = self._window_s
        start = ts - ts % w
        closed = None
        st = self._stats
        if start != self._start:
            if self._start is not None:
                closed = self._envelope()
            self._start = start
            st[:] = self._empty(st.shape[1])
        st[self._MIN, sel] = np.minimum(st[self._MIN, sel], values)
        st[self._MAX, sel] = np.maximum(st[self._MAX, sel], values)
        st[self._SUM, sel] += values
        st[self._COUNT, sel] += 1.0
        st[self._LAST, sel] = values
        return closed

    def flush(self) -> Envelope | None:
        """The envelope of the open window (for an orderly stop), or None."""
        if self._start is None:
            return None
        env = self._envelope()
        self._start = None
        self._stats[:] = self._empty(self._stats.shape[1])
        return env

    def _envelope(self) -> Envelope | None:
        assert self._start is not None
        st = self._stats
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
        end = self._start + self._window_s
        body = {"window_s": self._window_s, "start": self._start, "end": end, "channels": channels}
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
