"""Is the gateway doing its job? The rule behind ``/health``, kept pure so it can be tested.

The gateway's job is to read its meters and keep every reading in the outbox; delivering it
upstream is the outbox's business and may wait for a link that is down for days. So:

- **failing** (HTTP 503): meters are configured and every one of them is offline; or the outbox
  is not open, or its last commit failed (nothing new can be kept).
- **degraded** (HTTP 200): some meters are offline, an upstream is not connected, an upstream
  has a backlog and its cursor has not moved for its ``stall_after_s`` (connected or not: a
  broker that answers pings but no publishes looks connected), or the outbox statistics could
  not be read.
- **ok** (HTTP 200): everything else.

A broker that cannot be reached is degraded, not failing: restarting the gateway cannot fix the
network, and the outbox is there to ride it out (watch ``gridedge_outbox_oldest_unsent_age_seconds``
for that).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from gridedge.errors import OutboxError
from gridedge.outbox.schema import OutboxStats

if TYPE_CHECKING:
    from gridedge.forward.state import UpstreamState
    from gridedge.ops.runtime import Runtime
    from gridedge.poll import MeterState


class Status(StrEnum):
    """The verdict of :func:`assess`."""

    OK = "ok"
    DEGRADED = "degraded"
    FAILING = "failing"


@dataclass(frozen=True, slots=True)
class Health:
    """A verdict with its reasons and a JSON-ready report of every component."""

    status: Status
    problems: tuple[str, ...]
    report: Mapping[str, object]

    @property
    def http_status(self) -> int:
        """503 when failing, else 200."""
        return 503 if self.status is Status.FAILING else 200


async def outbox_stats(runtime: Runtime, timeout_s: float) -> OutboxStats | None:
    """The outbox's statistics, or None when it is not open or cannot be read in time."""
    outbox = runtime.outbox
    if outbox is None:
        return None
    try:
        async with asyncio.timeout(timeout_s):
            return await outbox.stats()
    except (OutboxError, TimeoutError):
        return None


def assess(runtime: Runtime, stats: OutboxStats | None, now: float) -> Health:
    """Judge the gateway from its runtime state (see the module docstring for the rule).

    Args:
        runtime: the live state.
        stats: the outbox's statistics, None when they could not be read.
        now: wall-clock seconds, for ages.
    """
    failing: list[str] = []
    degraded: list[str] = []
    meters = list(runtime.meters.values())
    offline = [m.device for m in meters if not m.online]
    if meters and len(offline) == len(meters):
        failing.append("every meter is offline")
    elif offline:
        degraded.append("meters offline: " + ", ".join(sorted(offline)))
    outbox = runtime.outbox
    if outbox is None:
        failing.append("the outbox is not open")
    elif not outbox.healthy:
        failing.append(f"the outbox cannot be written: {outbox.last_error}")
    elif stats is None:
        degraded.append("the outbox statistics cannot be read")
    down = [name for name, up in runtime.upstreams.items() if not up.connected]
    if down:
        degraded.append("upstreams not connected: " + ", ".join(sorted(down)))
    stalled = [name for name, up in runtime.upstreams.items() if _stalled(up, stats, now)]
    if stalled:
        degraded.append("upstreams making no progress: " + ", ".join(sorted(stalled)))
    status = Status.FAILING if failing else Status.DEGRADED if degraded else Status.OK
    problems = (*failing, *degraded)
    report: dict[str, object] = {
        "status": status.value,
        "problems": list(problems),
        "meters": {m.device: _meter(m, now) for m in meters},
        "outbox": _outbox(runtime, stats, now),
        "upstreams": {n: _upstream(up, stats, now) for n, up in runtime.upstreams.items()},
    }
    return Health(status, problems, report)


def _meter(m: MeterState, now: float) -> dict[str, object]:
    return {
        "online": m.online,
        "last_success": _iso(m.last_success_ts),
        "last_success_age_s": None if m.last_success_ts is None else _age(now, m.last_success_ts),
        "consecutive_failures": m.consecutive_failures,
        "polls": m.polls,
        "samples": m.samples,
    }


def _outbox(runtime: Runtime, stats: OutboxStats | None, now: float) -> dict[str, object]:
    outbox = runtime.outbox
    if outbox is None:
        return {"healthy": False, "error": "not open"}
    out: dict[str, object] = {
        "healthy": outbox.healthy,
        "error": outbox.last_error,
        "pending": outbox.pending,
        "dropped": outbox.dropped_total,
    }
    if stats is not None:
        out["envelopes"] = stats.rows
        out["bytes"] = stats.bytes
        out["backlog"] = dict(stats.backlog)
        out["oldest_unsent_age_s"] = {
            name: None if ts is None else _age(now, ts)
            for name, ts in stats.oldest_unsent_ts.items()
        }
    return out


def _upstream(up: UpstreamState, stats: OutboxStats | None, now: float) -> dict[str, object]:
    return {
        "connected": up.connected,
        "last_publish": _iso(up.last_publish_ts),
        "last_error": up.last_error,
        "published": up.published,
        "acked": up.acked,
        "backlog": _backlog(up, stats),
        "last_progress_age_s": None if up.progress_ts is None else _age(now, up.progress_ts),
        "quarantined": dict(up.quarantined),
    }


def _backlog(up: UpstreamState, stats: OutboxStats | None) -> int:
    backlog = stats.backlog.get(up.name) if stats is not None else None
    return backlog if backlog is not None else up.backlog


def _stalled(up: UpstreamState, stats: OutboxStats | None, now: float) -> bool:
    """A backlog, and no cursor move for ``stall_after_s`` (since the backlog began)."""
    if up.progress_ts is None or _backlog(up, stats) == 0:
        return False
    return now - up.progress_ts >= up.stall_after_s


def _age(now: float, ts: float) -> float:
    return round(max(0.0, now - ts), 3)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


async def fleet_report(runtime: Runtime, *, started: float, version: str, now: float) -> bytes:
    """The retained ``health`` message a gateway publishes upstream, for fleets behind NAT.

    The ``/health`` report, plus what a central side needs to see at a glance: version,
    uptime, meters online out of configured, and each upstream's backlog and oldest unsent age.
    """
    stats = await outbox_stats(runtime, 2.0)
    verdict = assess(runtime, stats, now)
    meters = list(runtime.meters.values())
    summary: dict[str, object] = {
        "ts": _iso(now),
        "version": version,
        "uptime_s": round(max(0.0, now - started), 1),
        "meters_online": sum(1 for m in meters if m.online),
        "meters_total": len(meters),
    }
    if stats is not None:
        summary["backlog"] = dict(stats.backlog)
        summary["oldest_unsent_age_s"] = {
            name: None if ts is None else _age(now, ts)
            for name, ts in stats.oldest_unsent_ts.items()
        }
    return json.dumps({**verdict.report, **summary}, separators=(",", ":")).encode()
