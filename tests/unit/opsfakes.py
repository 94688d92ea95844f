"""Stand-ins for the components the metrics, health and watchdog code reads from the runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from gridedge.daemon import Runtime
from gridedge.errors import OutboxError
from gridedge.outbox.store import Outbox
from gridedge.outbox.schema import OutboxStats
from gridedge.poll import MeterState

T0 = 1_700_000_000.0


@dataclass
class FakeOutbox:
    """The parts of an open outbox that reporting reads; ``stats_error`` makes stats() fail."""

    healthy: bool = True
    last_error: str | None = None
    pending: int = 0
    appended_total: int = 0
    commits_total: int = 0
    dropped_total: dict[str, int] = field(default_factory=dict)
    dropped_unsent_total: dict[str, int] = field(default_factory=dict)
    backlog: dict[str, int] = field(default_factory=dict)
    oldest_unsent_ts: dict[str, float | None] = field(default_factory=dict)
    rows: int = 0
    stats_error: bool = False

    async def stats(self) -> OutboxStats:
        if self.stats_error:
            raise OutboxError("cannot read outbox: disk I/O error")
        return OutboxStats(
            rows=self.rows,
            bytes=self.rows * 100,
            file_bytes=self.rows * 100 + 4096,
            first_seq=1 if self.rows else None,
            last_seq=self.rows or None,
            oldest_ts=T0 if self.rows else None,
            newest_ts=T0 if self.rows else None,
            dropped=dict(self.dropped_total),
            dropped_unsent=dict(self.dropped_unsent_total),
            delivered=0,
            cursors=dict.fromkeys(self.backlog, 0),
            backlog=dict(self.backlog),
            oldest_unsent_ts=dict(self.oldest_unsent_ts),
        )


@dataclass
class FakeUpstream:
    """A forwarder's published state, with the attribute names metrics and health read."""

    connected: bool = True
    published: int = 0
    acked: int = 0
    reconnects: int = 0
    backlog: int = 0
    oldest_unsent_ts: float | None = None
    last_publish_ts: float | None = None
    last_error: str | None = None


@dataclass
class FakeAnalytics:
    """The analytics stage's published state."""

    alerts_raised: dict[str, int] = field(default_factory=dict)
    alerts_active: dict[str, int] = field(default_factory=dict)
    seconds_per_value: float = 0.0


def make_runtime(
    *meters: MeterState,
    outbox: FakeOutbox | None = None,
    upstreams: dict[str, object] | None = None,
    analytics: object = None,
) -> Runtime:
    """A runtime holding the given parts (a healthy empty outbox unless told otherwise)."""
    runtime = Runtime()
    runtime.meters.update({m.device: m for m in meters})
    runtime.outbox = cast(Outbox, outbox if outbox is not None else FakeOutbox())
    runtime.upstreams.update(upstreams or {})
    runtime.analytics = analytics
    return runtime


def meter_state(device: str, *, online: bool = True, **fields: object) -> MeterState:
    """A meter's state with some fields set."""
    state = MeterState(device, online=online)
    for name, value in fields.items():
        setattr(state, name, value)
    return state


def parse_exposition(text: str) -> dict[str, float]:
    """Samples of a Prometheus text exposition, keyed by ``name{labels}`` as written."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples
