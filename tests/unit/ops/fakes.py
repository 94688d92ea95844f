"""A fake of the outbox view and builders of real state objects, for the reporting tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from gridedge.analytics.stage import AnalyticsStats
from gridedge.errors import OutboxError
from gridedge.forward.state import UpstreamState
from gridedge.ops.runtime import Runtime
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


def upstream_state(name: str, **fields: object) -> UpstreamState:
    """A forwarder's real state object with some fields set."""
    state = UpstreamState(name, broker="127.0.0.1:1883", tls=False, connected=True)
    for key, value in fields.items():
        setattr(state, key, value)
    return state


def make_runtime(
    *meters: MeterState,
    outbox: FakeOutbox | None = None,
    upstreams: dict[str, UpstreamState] | None = None,
    analytics: AnalyticsStats | None = None,
) -> Runtime:
    """A runtime holding the given parts (a healthy empty outbox unless told otherwise)."""
    runtime = Runtime()
    runtime.meters.update({m.device: m for m in meters})
    runtime.outbox = outbox if outbox is not None else FakeOutbox()
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
