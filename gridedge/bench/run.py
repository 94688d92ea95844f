"""``gridedge bench``: capacity measured on the machine it runs on, printed as one JSON object.

Each section saturates one stage with more offered load than it can take and reports what went
through. Keys are fixed (see the README) so scripts can read them; no figure is asserted here.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any


def run_bench(
    *,
    only: str | None = None,
    seconds: float = 10.0,
    drain_backlog: int | None = None,
    fleet_meters: int | None = None,
    fleet_minutes: float | None = None,
) -> dict[str, Any]:
    """Run every section (or ``only`` one) for about ``seconds`` each; ``drain`` runs until its
    backlog (default 1,000,000 samples) is delivered. ``fleet`` (minutes long) runs only when
    named: ``fleet_meters`` meters (5,000) for ``fleet_minutes`` simulated minutes (30).
    """
    from gridedge.bench.analytics import bench_analytics
    from gridedge.bench.fleet import FLEET_METERS, FLEET_MINUTES, bench_fleet
    from gridedge.bench.forward import DRAIN_BACKLOG, bench_drain, bench_forward
    from gridedge.bench.modbus import bench_modbus
    from gridedge.bench.pipeline import bench_pipeline

    backlog = drain_backlog or DRAIN_BACKLOG

    sections: dict[str, Callable[[float], dict[str, Any]]] = {
        "pipeline": bench_pipeline,
        "modbus": bench_modbus,
        "analytics": bench_analytics,
        "forward": bench_forward,
        "drain": lambda s: bench_drain(s, backlog=backlog),
        "fleet": lambda s: bench_fleet(
            s, meters=fleet_meters or FLEET_METERS, minutes=fleet_minutes or FLEET_MINUTES
        ),
    }
    result: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(terse=True),
        }
    }
    for name, section in sections.items():
        if only == name or (only is None and name != "fleet"):
            result[name] = section(seconds)
    return result
