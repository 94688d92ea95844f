"""A bounded in-memory history per meter and channel, and the alerts seen since start.

Each meter keeps a ring of at most ``points`` time stamps (float64) and, per channel, a ring of
values and one of anomaly scores (float32 each, NaN where a sample lacked the channel). A new
point is kept only once ``window_s / points`` seconds have passed since the last kept one, so the
ring always spans the whole window whatever the poll interval; the score of a kept point is the
highest score seen since the previous one, so a short spike is never thinned away.

Memory: ``points * 8`` bytes per channel plus ``points * 8`` per meter, with no growth after the
ring is full (720 points: 5.8 KB per channel; a 3-phase meter with 30 channels about 180 KB).

:class:`HistorySink` feeds it: it stands in front of the outbox sink and records what it passes
on only after the outbox has taken it, so the page never shows a reading that was not stored.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from gridedge.model import Envelope, Kind, Record, Sample, Sink

_NAN = math.nan


@dataclass(frozen=True, slots=True)
class Series:
    """Points of one channel, oldest first."""

    ts: list[float]
    values: list[float | None]
    scores: list[float | None]


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


class MeterHistory:
    """The ring of one meter.

    Args:
        points: capacity of the ring.
        step_s: the least time between two kept points.
    """

    __slots__ = (
        "_head",
        "_pending",
        "_scores",
        "_ts",
        "_values",
        "count",
        "last",
        "last_scores",
        "last_ts",
        "points",
        "step_s",
    )

    def __init__(self, points: int, step_s: float) -> None:
        self.points = points
        self.step_s = step_s
        self._ts = array("d", [_NAN]) * points
        self._values: dict[str, array[float]] = {}
        self._scores: dict[str, array[float]] = {}
        self._pending: dict[str, float] = {}
        self._head = 0
        self.count = 0
        self.last: dict[str, float] = {}
        self.last_scores: dict[str, float] = {}
        self.last_ts: float | None = None

    def add(self, ts: float, values: Mapping[str, float], scores: Mapping[str, float]) -> bool:
        """Record one sample; returns whether it became a point of the ring."""
        self.last.update(values)
        self.last_scores.update(scores)
        self.last_ts = ts if self.last_ts is None else max(ts, self.last_ts)
        pending = self._pending
        for name, s in scores.items():
            pending[name] = max(s, pending.get(name, 0.0))
        if self.count and ts - self._ts[(self._head - 1) % self.points] < self.step_s:
            return False
        i = self._head
        self._ts[i] = ts
        for name in self._values.keys() | values.keys() | pending.keys():
            self._ring(self._values, name)[i] = values.get(name, _NAN)
            self._ring(self._scores, name)[i] = pending.get(name, _NAN)
        pending.clear()
        self._head = (i + 1) % self.points
        self.count = min(self.count + 1, self.points)
        return True

    def _ring(self, rings: dict[str, array[float]], name: str) -> array[float]:
        ring = rings.get(name)
        if ring is None:
            ring = rings[name] = array("f", [_NAN]) * self.points
            # The other rings of this meter have a slot for the channel too.
            other = self._scores if rings is self._values else self._values
            if name not in other:
                other[name] = array("f", [_NAN]) * self.points
        return ring

    def _indices(self) -> Iterator[int]:
        start = (self._head - self.count) % self.points
        return ((start + k) % self.points for k in range(self.count))

    def channels(self) -> list[str]:
        """Channels with a point or a current value, sorted."""
        return sorted(self._values.keys() | self.last.keys())

    def series(self, channel: str, since: float | None = None) -> Series:
        """The points of ``channel`` newer than ``since`` (all when None), oldest first."""
        values = self._values.get(channel)
        scores = self._scores.get(channel)
        out = Series([], [], [])
        if values is None or scores is None:
            return out
        for i in self._indices():
            t = self._ts[i]
            if since is not None and t <= since:
                continue
            out.ts.append(round(t, 3))
            out.values.append(_finite(values[i]))
            out.scores.append(_finite(scores[i]))
        return out

    def nbytes(self) -> int:
        """Bytes held by the rings' buffers (the part that scales with ``points``)."""
        rings = [self._ts, *self._values.values(), *self._scores.values()]
        return sum(r.itemsize * len(r) for r in rings)


@dataclass(frozen=True, slots=True)
class AlertView:
    """An alert as the page shows it."""

    device: str
    channel: str
    rule: str
    severity: str
    state: str
    value: float
    score: float
    since: float
    ts: float

    def as_json(self) -> dict[str, object]:
        """The JSON object of this alert."""
        return {
            "device": self.device,
            "channel": self.channel,
            "rule": self.rule,
            "severity": self.severity,
            "state": self.state,
            "value": _finite(self.value),
            "score": _finite(self.score),
            "since": self.since,
            "ts": self.ts,
        }


@dataclass(slots=True)
class AlertBoard:
    """Alerts active now, and the last ``recent`` raised or cleared events."""

    recent_max: int = 100
    active: dict[tuple[str, str, str], AlertView] = field(default_factory=dict)
    recent: deque[AlertView] = field(default_factory=deque)

    def update(self, env: Envelope) -> None:
        """Take one ``alert`` envelope."""
        body = env.body
        key = (env.device, str(body.get("channel", "")), str(body.get("rule", "")))
        raised = body.get("state") == "raised"
        since = env.ts if raised else float(_number(body.get("since"), env.ts))
        view = AlertView(
            device=key[0],
            channel=key[1],
            rule=key[2],
            severity=str(body.get("severity", "")),
            state="raised" if raised else "cleared",
            value=_number(body.get("value"), _NAN),
            score=_number(body.get("score"), _NAN),
            since=since,
            ts=env.ts,
        )
        if raised:
            self.active[key] = view
        else:
            self.active.pop(key, None)
        self.recent.append(view)
        while len(self.recent) > self.recent_max:
            self.recent.popleft()


def _number(x: object, default: float) -> float:
    return float(x) if isinstance(x, int | float) else default


class History:
    """Every meter's ring, created on its first sample.

    Args:
        window_s: how far back the rings reach.
        points: capacity of each ring.
    """

    def __init__(self, window_s: float, points: int) -> None:
        self.window_s = window_s
        self.points = points
        self.meters: dict[str, MeterHistory] = {}
        self.alerts = AlertBoard()

    def meter(self, device: str) -> MeterHistory:
        """The ring of ``device`` (created empty when new)."""
        ring = self.meters.get(device)
        if ring is None:
            ring = self.meters[device] = MeterHistory(self.points, self.window_s / self.points)
        return ring

    def nbytes(self) -> int:
        """Bytes held by every ring's buffers."""
        return sum(m.nbytes() for m in self.meters.values())


class HistorySink:
    """Passes records to ``inner``; once stored, records samples and alerts in ``history``.

    Attributes:
        scores: the latest anomaly score per channel, by device (the analytics stage's, when
            it runs; empty otherwise).
    """

    def __init__(self, inner: Sink, history: History) -> None:
        self._inner = inner
        self._history = history
        self.scores: Mapping[str, Mapping[str, float]] = {}

    async def put(self, records: Sequence[Record]) -> None:
        """Store ``records``, then remember them."""
        await self._inner.put(records)
        history = self._history
        for record in records:
            if isinstance(record, Sample):
                scores = self.scores.get(record.device, {})
                history.meter(record.device).add(record.ts, record.values, scores)
            elif isinstance(record, Envelope) and record.kind is Kind.ALERT:
                history.alerts.update(record)
