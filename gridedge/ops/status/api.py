"""The JSON the status page reads (``/api/...``), built from live state by pure functions.

- ``/api/status``: gateway id, version, uptime, health, server clock; every meter with its
  state and headline values; active alerts; every upstream with its backlog.
- ``/api/meters/<id>``: one meter's current values grouped by quantity, with units and scores.
- ``/api/meters/<id>/series?channel=...&since=...``: one channel's history (values and scores).
- ``/api/alerts``: active alerts and the most recent raised or cleared ones.

Times are wall-clock UTC seconds since the epoch; ages are seconds; absent values are null.
"""

from __future__ import annotations

import math

from gridedge import __version__
from gridedge.channels import CHANNELS
from gridedge.ops.health import Health
from gridedge.ops.runtime import Runtime
from gridedge.ops.status.board import MeterInfo, StatusBoard

__all__ = ["StatusBoard", "alerts_json", "meter_json", "series_json", "status_json"]
from gridedge.outbox.schema import OutboxStats
from gridedge.poll import MeterState

HEADLINE = ("voltage_l1", "current_l1", "active_power", "frequency", "energy_import")
"""Channels shown in the meter table, when a meter has them."""

_GROUPS = (
    ("voltage", "Voltages (L-N)"),
    ("voltage_ll", "Voltages (L-L)"),
    ("current", "Currents"),
    ("active_power", "Active power"),
    ("reactive_power", "Reactive power"),
    ("apparent_power", "Apparent power"),
    ("power_factor", "Power factor"),
    ("energy", "Energy"),
    ("reactive_energy", "Reactive energy"),
    ("frequency", "Frequency"),
    ("temperature", "Temperature"),
    ("thd_voltage", "Voltage THD"),
    ("thd_current", "Current THD"),
)
_OTHER = ("other", "Other")


def _num(x: float | None, digits: int = 3) -> float | None:
    if x is None or math.isnan(x) or math.isinf(x):
        return None
    return round(x, digits)


def _age(now: float, ts: float | None) -> float | None:
    return None if ts is None else round(max(0.0, now - ts), 3)


def _meter_row(
    info: MeterInfo, state: MeterState | None, board: StatusBoard, now: float
) -> dict[str, object]:
    ring = board.history.meters.get(info.id)
    last = ring.last if ring is not None else {}
    hist = state.read_seconds if state is not None else None
    latency_ms = hist.total / hist.count * 1000.0 if hist is not None and hist.count else None
    return {
        "id": info.id,
        "driver": info.driver,
        "interval_s": info.interval_s,
        "online": state.online if state is not None else False,
        "last_reading_ts": ring.last_ts if ring is not None else None,
        "last_reading_age_s": _age(now, ring.last_ts if ring is not None else None),
        "poll_latency_ms": _num(latency_ms, 2),
        "polls": state.polls if state is not None else 0,
        "errors": sum(state.errors.values()) if state is not None else 0,
        "errors_by_kind": dict(state.errors) if state is not None else {},
        "consecutive_failures": state.consecutive_failures if state is not None else 0,
        "headline": {
            ch: {"value": _num(last[ch]), "unit": info.units.get(ch, "")}
            for ch in HEADLINE
            if ch in last
        },
    }


def status_json(
    runtime: Runtime, board: StatusBoard, health: Health, stats: OutboxStats | None, now: float
) -> dict[str, object]:
    """The body of ``/api/status``."""
    upstreams = []
    for name, up in runtime.upstreams.items():
        backlog = stats.backlog.get(name) if stats is not None else None
        oldest = stats.oldest_unsent_ts.get(name) if stats is not None else None
        upstreams.append(
            {
                "name": name,
                "broker": up.broker,
                "connected": up.connected,
                "backlog": backlog if backlog is not None else up.backlog,
                "oldest_unsent_age_s": _age(now, oldest),
                "dropped_unsent": up.dropped_unsent,
                "acked": up.envelopes_acked,
                "last_error": up.last_error,
            }
        )
    outbox = runtime.outbox
    return {
        "gateway": board.gateway,
        "version": __version__,
        "started_ts": board.started_ts,
        "uptime_s": _age(now, board.started_ts),
        "now": round(now, 3),
        "health": {"status": health.status.value, "problems": list(health.problems)},
        "meters": [
            _meter_row(info, runtime.meters.get(mid), board, now)
            for mid, info in board.meters.items()
        ],
        "alerts": [a.as_json() for a in board.history.alerts.active.values()],
        "upstreams": upstreams,
        "outbox": {
            "healthy": outbox.healthy if outbox is not None else False,
            "dropped": dict(outbox.dropped_total) if outbox is not None else {},
            "envelopes": stats.rows if stats is not None else None,
            "bytes": stats.bytes if stats is not None else None,
        },
        "history": _history_json(board),
    }


def _history_json(board: StatusBoard) -> dict[str, object]:
    history = board.history
    channels = sum(len(m.channels()) for m in history.meters.values())
    nbytes = history.nbytes()
    return {
        "window_s": history.window_s,
        "points": history.points,
        "channels": channels,
        "bytes": nbytes,
        "bytes_per_channel": round(nbytes / channels) if channels else None,
    }


def group_of(channel: str) -> tuple[str, str]:
    """The group key and title of a channel (vendor channels go to "other")."""
    info = CHANNELS.get(channel)
    quantity = info.quantity if info is not None else ""
    for key, title in _GROUPS:
        if key == quantity:
            return key, title
    return _OTHER


def meter_json(board: StatusBoard, runtime: Runtime, device: str, now: float) -> dict[str, object]:
    """The body of ``/api/meters/<device>`` (``device`` must be on the board)."""
    info = board.meters[device]
    row = _meter_row(info, runtime.meters.get(device), board, now)
    ring = board.history.meters.get(device)
    grouped: dict[str, tuple[str, list[dict[str, object]]]] = {}
    names = ring.channels() if ring is not None else sorted(info.units)
    for name in names:
        key, title = group_of(name)
        value = ring.last.get(name) if ring is not None else None
        score = ring.last_scores.get(name) if ring is not None else None
        grouped.setdefault(key, (title, []))[1].append(
            {
                "name": name,
                "unit": info.units.get(name, ""),
                "value": _num(value, 4),
                "score": _num(score, 4),
            }
        )
    order = [k for k, _ in (*_GROUPS, _OTHER)]
    row["groups"] = [
        {"key": k, "title": grouped[k][0], "channels": grouped[k][1]} for k in order if k in grouped
    ]
    row["alerts"] = [
        a.as_json() for a in board.history.alerts.active.values() if a.device == device
    ]
    return row


def series_json(
    board: StatusBoard, device: str, channel: str, since: float | None
) -> dict[str, object]:
    """The body of ``/api/meters/<device>/series``."""
    info = board.meters[device]
    ring = board.history.meters.get(device)
    points = ring.series(channel, since) if ring is not None else None
    return {
        "device": device,
        "channel": channel,
        "unit": info.units.get(channel, ""),
        "window_s": board.history.window_s,
        "ts": points.ts if points is not None else [],
        "values": points.values if points is not None else [],
        "scores": points.scores if points is not None else [],
    }


def alerts_json(board: StatusBoard) -> dict[str, object]:
    """The body of ``/api/alerts``: active alerts, and recent events newest first."""
    alerts = board.history.alerts
    return {
        "active": [a.as_json() for a in alerts.active.values()],
        "recent": [a.as_json() for a in reversed(alerts.recent)],
    }
