"""What the status page knows beyond the runtime: identity, meter metadata and history."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gridedge.drivers import Driver
from gridedge.links.settings import MeterConfig
from gridedge.model import Sink
from gridedge.ops.settings import HttpConfig
from gridedge.ops.status.history import History, HistorySink


@dataclass(frozen=True, slots=True)
class MeterInfo:
    """What the configuration says about one meter."""

    id: str
    driver: str
    interval_s: float
    units: Mapping[str, str]


@dataclass(slots=True)
class StatusBoard:
    """What the status page needs beyond the runtime: identity, meter metadata and history.

    Attributes:
        gateway: the gateway id.
        started_ts: wall-clock time the daemon started.
        meters: configured meters by id, in configuration order.
        history: the rings and the alert board.
        sink: the sink that feeds ``history`` (the daemon puts it in front of the outbox).
    """

    gateway: str
    started_ts: float
    meters: dict[str, MeterInfo]
    history: History
    sink: HistorySink | None = field(default=None)

    def wrap(self, inner: Sink) -> HistorySink:
        """A sink in front of ``inner`` that feeds this board's history."""
        self.sink = HistorySink(inner, self.history)
        return self.sink

    def use_scores(self, scores: Mapping[str, Mapping[str, float]]) -> None:
        """Record these latest anomaly scores per device (the analytics stage's) with samples."""
        if self.sink is not None:
            self.sink.scores = scores


def status_board(
    gateway: str,
    meters: Sequence[MeterConfig],
    drivers: Mapping[str, Driver],
    http: HttpConfig,
    *,
    started_ts: float | None = None,
) -> StatusBoard:
    """A board for these meters, with an empty history sized by ``[http]``."""
    infos = {
        m.id: MeterInfo(
            m.id, m.driver, m.interval_s, {c.name: c.unit for c in drivers[m.driver].channels}
        )
        for m in meters
    }
    history = History(http.history_s, http.history_points)
    started = time.time() if started_ts is None else started_ts
    return StatusBoard(gateway, started, infos, history)
