"""``gridedge bench``: capacity measured on the machine it runs on, printed as one JSON object.

Each section saturates one stage with more offered load than it can take and reports what went
through. Keys are fixed (see the README) so scripts can read them; no figure is asserted here.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

from gridedge.bench.soak import SoakPlan

ON_REQUEST = frozenset({"reconnect", "farm", "fleet"})
"""Sections that run only when named with ``--only`` (minutes long, or a farm of processes)."""


def run_bench(
    *,
    only: str | None = None,
    seconds: float | None = None,
    drain_backlog: int | None = None,
    meters: int | None = None,
    connections: int | None = None,
    headroom: bool = False,
    farm_engine: str = "pymodbus",
    farm_batch_scope: str = "device",
    soak: SoakPlan | None = None,
    fleet_meters: int | None = None,
    fleet_minutes: float | None = None,
) -> dict[str, Any]:
    """Run every section (or ``only`` one) for about ``seconds`` each (default 10; ``farm``:
    30 per run); ``drain`` runs until its backlog (default 1,000,000 samples) is delivered.
    ``meters``, ``connections``, ``headroom``, ``farm_engine`` and ``farm_batch_scope`` shape
    the ``farm`` section.
    ``soak`` runs only when asked for by name: its ``plan`` (default :class:`SoakPlan`) sets
    its length, minutes
    rather than seconds. ``fleet`` (minutes long, only when named) runs ``fleet_meters`` meters
    (5,000) for ``fleet_minutes`` simulated minutes (30).
    """
    from gridedge.bench.analytics import bench_analytics
    from gridedge.bench.farm import FARM_CONNECTIONS, FARM_METERS, bench_farm
    from gridedge.bench.fleet import FLEET_METERS, FLEET_MINUTES, bench_fleet
    from gridedge.bench.forward import DRAIN_BACKLOG, bench_drain, bench_forward
    from gridedge.bench.modbus import bench_modbus
    from gridedge.bench.pipeline import bench_pipeline
    from gridedge.bench.reconnect import bench_reconnect
    from gridedge.bench.wire import bench_wire

    backlog = drain_backlog or DRAIN_BACKLOG

    sections: dict[str, Callable[[float], dict[str, Any]]] = {
        "pipeline": bench_pipeline,
        "modbus": bench_modbus,
        "analytics": bench_analytics,
        "forward": bench_forward,
        "drain": lambda s: bench_drain(s, backlog=backlog),
        "wire": bench_wire,
        "reconnect": bench_reconnect,
        "fleet": lambda s: bench_fleet(
            s, meters=fleet_meters or FLEET_METERS, minutes=fleet_minutes or FLEET_MINUTES
        ),
    }
    farm_seconds = seconds
    seconds = 10.0 if seconds is None else seconds
    result: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(terse=True),
        }
    }
    for name, section in sections.items():
        if only == name or (only is None and name not in ON_REQUEST):
            result[name] = section(seconds)
    if only == "soak":
        from gridedge.bench.soak import run_soak

        result["soak"] = run_soak(soak or SoakPlan())
    if only == "farm":
        result["farm"] = bench_farm(
            farm_seconds,
            meters=meters or FARM_METERS,
            connections=connections or FARM_CONNECTIONS,
            headroom=headroom,
            engine=farm_engine,
            batch_scope=farm_batch_scope,
        )
    return result
