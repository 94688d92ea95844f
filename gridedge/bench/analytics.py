"""The ``analytics`` section of ``gridedge bench``: CPU per channel value and memory with and
without River.

``us_per_value`` is the CPU time of the whole analytics stage (rules, detectors, alerts,
aggregates; default settings) per channel value, over readings of simulated SDM630 meters made
beforehand. Memory is measured in fresh interpreters, so one figure does not carry the other's
imports: ``rss_mb_without_river`` after loading and running the default analytics,
``rss_mb_with_river`` after doing the same with every River model configured.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from gridedge.model import Record, Sample

BENCH_METERS = 10
BENCH_DRIVER = "eastron-sdm630"

_RSS_SCRIPT = """
import json, resource, sys, time
t0 = time.perf_counter()
from gridedge.analytics.engine import Analytics
from gridedge.analytics.settings import AnalyticsConfig, RiverModel
from gridedge.model import Sample
models = tuple(RiverModel) if sys.argv[1] == "river" else ()
analytics = Analytics(AnalyticsConfig(river_models=models))
import_s = time.perf_counter() - t0
for i in range(600):
    analytics.process(Sample("m", 1.7e9 + i, {"a": i % 7 * 1.0, "b": (i * 13) % 11 * 1.0}))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rss_mb": peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024,
                  "import_s": import_s}))
"""


def _readings(samples: int) -> list[Sample]:
    from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_drivers
    from gridedge.simulator.faults import FaultPlan
    from gridedge.simulator.physics import MeterSimulator, SimulationParams

    driver = load_drivers([BUILTIN_DRIVERS_DIR])[BENCH_DRIVER]
    sims = [
        MeterSimulator(f"m{i}", driver, SimulationParams(), FaultPlan(rate_per_hour=2.0), i)
        for i in range(BENCH_METERS)
    ]
    out = []
    for k in range(samples):
        ts = 1.767e9 + 10.0 * k
        for i, sim in enumerate(sims):
            values = sim.step(ts)
            if values is not None:
                out.append(Sample(f"m{i}", ts, values))
    return out


def _fresh(mode: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result: dict[str, float] = json.loads(proc.stdout)
    return result


def bench_analytics(seconds: float) -> dict[str, Any]:
    """Measure the analytics stage's CPU per value and its memory with and without River."""
    from gridedge.analytics.settings import AnalyticsConfig
    from gridedge.analytics.stage import AnalyticsSink, driver_limits
    from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_drivers

    driver = load_drivers([BUILTIN_DRIVERS_DIR])[BENCH_DRIVER]
    limits = driver_limits([(f"m{i}", driver) for i in range(BENCH_METERS)])
    samples = max(500, int(seconds * 200))
    envelopes = _readings(samples)
    stage = AnalyticsSink(_NullSink(), AnalyticsConfig(), limits)
    wall0 = time.perf_counter()
    for env in envelopes:
        stage.process([env])
    wall = time.perf_counter() - wall0
    without, with_river = _fresh("plain"), _fresh("river")
    return {
        "meters": BENCH_METERS,
        "values": stage.stats.values,
        "us_per_value": round(stage.stats.seconds / stage.stats.values * 1e6, 2),
        "values_per_s": round(stage.stats.values / wall) if wall else None,
        "alerts_raised": dict(stage.stats.alerts_raised),
        "rss_mb_without_river": round(without["rss_mb"], 1),
        "rss_mb_with_river": round(with_river["rss_mb"], 1),
        "import_s_without_river": round(without["import_s"], 3),
        "import_s_with_river": round(with_river["import_s"], 3),
    }


class _NullSink:
    async def put(self, records: Sequence[Record]) -> None:
        del records
