"""Aggregates and report-by-exception: fewer bytes over a slow uplink.

:class:`WindowAggregator` keeps, per device and window length (1 and 15 minutes by default),
the min, max, mean, last value and count of every channel, and emits one ``aggregate`` envelope
per device when a window closes (when the first sample of a later window arrives). Windows are
aligned to the epoch, so every gateway cuts them at the same instants.

:class:`Deadband` implements report-by-exception: a channel's raw value is passed on only when it
moved by more than the deadband since the value last passed on, or ``max_silence_s`` passed.
"""

from __future__ import annotations

from collections.abc import Mapping

from gridedge.model import Envelope, Kind

# Per channel: [min, max, sum, count, last].
_Stats = list[float]


class WindowAggregator:
    """Windows of one length for one device."""

    __slots__ = ("_device", "_start", "_stats", "_window_s")

    def __init__(self, device: str, window_s: float) -> None:
        self._device = device
        self._window_s = window_s
        self._start: float | None = None
        self._stats: dict[str, _Stats] = {}

    def add(self, ts: float, values: Mapping[str, float]) -> Envelope | None:
        """Count one sample; returns the envelope of the window it closed, if any."""
        w = self._window_s
        start = ts - ts % w
        closed = None
        if start != self._start:
            if self._start is not None and self._stats:
                closed = self._envelope()
            self._start = start
            self._stats = {}
        stats = self._stats
        for ch, v in values.items():
            st = stats.get(ch)
            if st is None:
                stats[ch] = [v, v, v, 1.0, v]
                continue
            if v < st[0]:
                st[0] = v
            elif v > st[1]:
                st[1] = v
            st[2] += v
            st[3] += 1.0
            st[4] = v
        return closed

    def flush(self) -> Envelope | None:
        """The envelope of the open window (for an orderly stop), or None."""
        if self._start is None or not self._stats:
            return None
        env = self._envelope()
        self._start, self._stats = None, {}
        return env

    def _envelope(self) -> Envelope:
        assert self._start is not None
        channels = {ch: _summary(st) for ch, st in self._stats.items()}
        end = self._start + self._window_s
        body = {"window_s": self._window_s, "start": self._start, "end": end, "channels": channels}
        return Envelope(kind=Kind.AGGREGATE, device=self._device, ts=end, body=body)


def _summary(st: _Stats) -> dict[str, float]:
    return {"min": st[0], "max": st[1], "mean": st[2] / st[3], "last": st[4], "count": int(st[3])}


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
