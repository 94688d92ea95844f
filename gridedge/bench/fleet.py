"""The ``fleet`` section of ``gridedge bench``: many simulated meters through the analytics stage
in accelerated time, with the process's memory over simulated time.

``meters`` simulated SDM630 meters (5,000 by default; random faults at the simulator's default
rate) are read every ``interval_s`` (10 s) of simulated time for ``minutes`` (30) simulated
minutes; each reading goes through the daemon's analytics stage
(:class:`~gridedge.analytics.stage.AnalyticsSink`, default settings) as one ``put``, made
together with the calls of the other meters due within the same linger (the daemon spreads the
meters over their interval: 50 calls at a time for 5,000 meters at 10 s), in front of a sink that
drops what it is handed (the outbox has its own section). Figures:

* ``rss_mb``: the process's resident memory every ``report_every_min`` simulated minutes
  (``rss_mb_start`` once the simulators exist, before any analytics), and ``peak_rss_mb``;
* ``stage_cpu_s_per_sim_s``: CPU seconds the stage spent per simulated second: the share of
  one core the stage would take in real time (0.25 is 25 %);
* ``sim_cpu_s_per_sim_s``: the same for the simulators (not part of a real gateway);
* ``stage_us_per_value``: stage CPU per channel value.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

from gridedge.model import Record, Sample

FLEET_METERS = 5000
FLEET_MINUTES = 30.0
INTERVAL_S = 10.0
DRIVER = "eastron-sdm630"
START_TS = 1767605400.0  # Monday 2026-01-05 09:30 UTC


def _rss_mb() -> float:
    """The resident memory of this process now (Linux), else its peak."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 1e6
    except OSError:
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


class _Drop:
    async def put(self, records: Sequence[Record]) -> None:
        del records


async def _run(meters: int, minutes: float, report_every_min: float) -> dict[str, Any]:
    from gridedge.analytics.settings import AnalyticsConfig
    from gridedge.analytics.stage import AnalyticsSink, driver_limits
    from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_drivers
    from gridedge.simulator.faults import FaultPlan
    from gridedge.simulator.physics import MeterSimulator, SimulationParams

    driver = load_drivers([BUILTIN_DRIVERS_DIR])[DRIVER]
    names = [f"m{i:05d}" for i in range(meters)]
    sims = [
        MeterSimulator(name, driver, SimulationParams(), FaultPlan(), seed)
        for seed, name in enumerate(names)
    ]
    rss_start = _rss_mb()
    # Accelerated time: the calls of one linger are gathered as in the daemon, without its wait.
    together = max(1, round(meters / INTERVAL_S * AnalyticsConfig().linger_s))
    stage_config = AnalyticsConfig(linger_s=1e-4)
    stage = AnalyticsSink(_Drop(), stage_config, driver_limits([(n, driver) for n in names]))
    rounds = int(minutes * 60.0 / INTERVAL_S)
    every = max(1, int(report_every_min * 60.0 / INTERVAL_S))
    rss: dict[str, float] = {}
    sim_cpu = 0.0
    wall0 = time.perf_counter()
    for k in range(rounds):
        ts = START_TS + k * INTERVAL_S
        due: list[Sample] = []
        for name, sim in zip(names, sims, strict=True):
            t0 = time.process_time()
            values = sim.step(ts)
            sim_cpu += time.process_time() - t0
            if values is not None:
                due.append(Sample(name, ts, values))
        for i in range(0, len(due), together):
            await asyncio.gather(*(stage.put([s]) for s in due[i : i + together]))
        if (k + 1) % every == 0:
            rss[f"{(k + 1) * INTERVAL_S / 60.0:g}"] = round(_rss_mb(), 1)
    wall = time.perf_counter() - wall0
    simulated_s = rounds * INTERVAL_S
    stats = stage.stats
    return {
        "meters": meters,
        "channels_per_meter": len(driver.channels),
        "interval_s": INTERVAL_S,
        "simulated_minutes": minutes,
        "values": stats.values,
        "rss_mb_start": round(rss_start, 1),
        "rss_mb": rss,
        "peak_rss_mb": round(max(_peak_rss_mb(), *rss.values(), rss_start), 1),
        "stage_cpu_s": round(stats.seconds, 2),
        "stage_cpu_s_per_sim_s": round(stats.seconds / simulated_s, 4),
        "stage_us_per_value": round(stats.seconds / max(1, stats.values) * 1e6, 2),
        "sim_cpu_s_per_sim_s": round(sim_cpu / simulated_s, 4),
        "wall_s": round(wall, 1),
        "alerts_raised": dict(stats.alerts_raised),
    }


def bench_fleet(
    seconds: float,
    *,
    meters: int = FLEET_METERS,
    minutes: float = FLEET_MINUTES,
    report_every_min: float = 5.0,
) -> dict[str, Any]:
    """Run ``meters`` simulated meters through the analytics stage for ``minutes`` simulated
    minutes (``seconds`` is not used: the section runs until its simulated time is up).
    """
    del seconds
    return asyncio.run(_run(meters, minutes, report_every_min))
