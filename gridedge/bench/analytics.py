"""The ``analytics`` section of ``gridedge bench``: CPU per channel value and memory with and
without River.

``us_per_value`` is the CPU time of the daemon's analytics stage (rules, detectors, alerts,
aggregates; default settings) per channel value, measured on one simulated SDM630 meter (38
channels) whose samples go through :class:`~gridedge.analytics.stage.AnalyticsSink` into a real
outbox one ``put`` at a time, after a warm-up; ``stage_us_per_value`` adds the outbox's share of
the wall time. ``us_per_value_gathered`` is the same for a site whose stage gathers 50 meters'
samples per linger (5,000 meters at 10 s over the default 100 ms) and analyses them back to back.
``bytes_per_channel`` is the memory the analytics hold per analysed channel (traced allocations,
20 devices of 38 channels, after 1,200 samples each, default settings), and
``bytes_per_channel_growth_after_warmup`` how much of it came during the second 600 (the state
is fixed when a device is created, so about 0). Readings are simulated beforehand. RSS is
measured in fresh interpreters, so one figure does not carry the other's imports:
``rss_mb_without_river`` after loading and running the default analytics, ``rss_mb_river_base``
with ``river.base`` imported too (all the River adapter loads up front), ``rss_mb_with_river``
after doing the same with every River model configured. ``us_per_value_with_multivariate``
is ``us_per_value`` with the multivariate detector on (it is off by default).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from gridedge.model import Record, Sample

BENCH_METERS = 10
BENCH_DRIVER = "eastron-sdm630"
GATHERED_METERS = 50
"""Meters whose samples the stage gathers in one linger: 5,000 meters at 10 s over 100 ms."""

_RSS_SCRIPT = """
import json, resource, sys, time
t0 = time.perf_counter()
from gridedge.analytics.engine import Analytics
from gridedge.analytics.settings import AnalyticsConfig, RiverModel
from gridedge.model import Sample
models = tuple(RiverModel) if sys.argv[1] == "river" else ()
if sys.argv[1] == "river_base":
    import gridedge.analytics.river_models  # the adapter: river.base only
analytics = Analytics(AnalyticsConfig(river_models=models))
analytics.process(Sample("m", 1.7e9, {"a": 0.0, "b": 0.0}))  # River loads with the first model
import_s = time.perf_counter() - t0
for i in range(1, 600):
    analytics.process(Sample("m", 1.7e9 + i, {"a": i % 7 * 1.0, "b": (i * 13) % 11 * 1.0}))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rss_mb = peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
try:  # Linux: ru_maxrss counts the parent's peak at the fork, VmHWM only this program's
    with open("/proc/self/status") as status:
        rss_mb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
except (OSError, StopIteration):
    pass
print(json.dumps({"rss_mb": rss_mb, "import_s": import_s}))
"""


def _readings(samples: int, meters: int = BENCH_METERS) -> list[Sample]:
    from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_drivers
    from gridedge.simulator.faults import FaultPlan
    from gridedge.simulator.physics import MeterSimulator, SimulationParams

    driver = load_drivers([BUILTIN_DRIVERS_DIR])[BENCH_DRIVER]
    sims = [
        MeterSimulator(f"m{i}", driver, SimulationParams(), FaultPlan(rate_per_hour=2.0), i)
        for i in range(meters)
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


def _one_meter(samples: int) -> list[Sample]:
    from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_drivers
    from gridedge.simulator.faults import FaultPlan
    from gridedge.simulator.physics import MeterSimulator, SimulationParams

    driver = load_drivers([BUILTIN_DRIVERS_DIR])[BENCH_DRIVER]
    sim = MeterSimulator("m0", driver, SimulationParams(), FaultPlan(rate_per_hour=0.5), 1)
    out = []
    for k in range(samples):
        values = sim.step(1.767e9 + 10.0 * k)
        if values is not None:
            out.append(Sample("m0", 1.767e9 + 10.0 * k, values))
    return out


def _bytes_per_channel(samples: Sequence[Sample], devices: int = 20) -> tuple[float, float]:
    """Traced memory of the analytics per analysed channel after ``samples`` (fed to each of
    ``devices`` devices, so memory shared by all of them counts once, not per device), and how
    much it grew over the second half of them (bytes per channel: the state is fixed once a
    device exists, whatever it sees).
    """
    import gc
    import tracemalloc

    from gridedge.analytics.engine import Analytics
    from gridedge.analytics.settings import AnalyticsConfig

    half = len(samples) // 2
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        analytics = Analytics(AnalyticsConfig())
        names = [f"d{i}" for i in range(devices)]
        for sample in samples[:half]:
            for name in names:
                analytics.process(Sample(name, sample.ts, sample.values))
        gc.collect()
        warm = tracemalloc.get_traced_memory()[0]
        for sample in samples[half:]:
            for name in names:
                analytics.process(Sample(name, sample.ts, sample.values))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    channels = devices * len(samples[-1].values)
    return (held - before) / channels, (held - warm) / channels


async def _stage_through_outbox(
    samples: Sequence[Sample], warm: int, multivariate: bool = False, gathered: bool = False
) -> tuple[float, float, int]:
    """(analytics CPU s, wall s, values) of the timed samples through the stage into an
    outbox: one ``put`` at a time, or (``gathered``) the samples of one timestamp as
    concurrent calls, as the poll loops of that many meters make them within one linger.
    """
    import tempfile
    from itertools import groupby
    from pathlib import Path

    from gridedge.analytics.multivariate import MultivariateParams
    from gridedge.analytics.settings import AnalyticsConfig
    from gridedge.analytics.stage import AnalyticsSink, driver_limits
    from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_drivers
    from gridedge.outbox.settings import OutboxConfig
    from gridedge.outbox.sink import OutboxSink
    from gridedge.outbox.store import open_outbox

    driver = load_drivers([BUILTIN_DRIVERS_DIR])[BENCH_DRIVER]
    devices = sorted({s.device for s in samples})
    if gathered:
        rounds = [list(group) for _, group in groupby(samples, key=lambda s: s.ts)]
    else:
        rounds = [[s] for s in samples]
    with tempfile.TemporaryDirectory(prefix="gridedge-bench-") as tmp:
        # No commit delay (each put waits for its commit) and no expiry of the old readings.
        path = Path(tmp) / "outbox.sqlite3"
        config = OutboxConfig(path=path, max_age_s=1e12, commit_interval_s=0.0)
        async with open_outbox(config) as outbox:
            analytics = AnalyticsConfig(
                multivariate=MultivariateParams(enabled=multivariate),
                linger_s=0.001 if gathered else 0.0,
            )
            limits = driver_limits([(d, driver) for d in devices])
            stage = AnalyticsSink(OutboxSink(outbox), analytics, limits)
            for together in rounds[:warm]:
                await asyncio.gather(*(stage.put([s]) for s in together))
            cpu0, values0 = stage.stats.seconds, stage.stats.values
            wall0 = time.perf_counter()
            for together in rounds[warm:]:
                await asyncio.gather(*(stage.put([s]) for s in together))
            wall = time.perf_counter() - wall0
    return stage.stats.seconds - cpu0, wall, stage.stats.values - values0


def bench_analytics(seconds: float) -> dict[str, Any]:
    """Measure the analytics stage's CPU per value and its memory with and without River."""
    from gridedge.analytics.settings import AnalyticsConfig
    from gridedge.analytics.stage import AnalyticsSink, driver_limits
    from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_drivers

    without, base, with_river = _fresh("plain"), _fresh("river_base"), _fresh("river")
    driver = load_drivers([BUILTIN_DRIVERS_DIR])[BENCH_DRIVER]
    limits = driver_limits([(f"m{i}", driver) for i in range(BENCH_METERS)])
    samples = max(500, int(seconds * 200))
    envelopes = _readings(samples)
    stage = AnalyticsSink(_NullSink(), AnalyticsConfig(), limits)
    wall0 = time.perf_counter()
    for env in envelopes:
        stage.process([env])
    wall = time.perf_counter() - wall0
    one = _one_meter(max(2000, int(seconds * 400)))
    warm = len(one) // 2
    cpu, stage_wall, timed = asyncio.run(_stage_through_outbox(one, warm))
    cpu_mv, _, timed_mv = asyncio.run(_stage_through_outbox(one, warm, multivariate=True))
    site = _readings(max(200, int(seconds * 20)), GATHERED_METERS)
    cpu_g, _, timed_g = asyncio.run(
        _stage_through_outbox(site, len(site) // GATHERED_METERS // 2, gathered=True)
    )
    per_channel, growth = _bytes_per_channel(one[:1200])
    return {
        "us_per_value": round(cpu / timed * 1e6, 2),
        "us_per_value_with_multivariate": round(cpu_mv / timed_mv * 1e6, 2),
        "us_per_value_gathered": round(cpu_g / timed_g * 1e6, 2),
        "stage_us_per_value": round(stage_wall / timed * 1e6, 2),
        "bytes_per_channel": round(per_channel),
        "bytes_per_channel_growth_after_warmup": round(growth, 1),
        "channels": len(one[-1].values),
        "meters": BENCH_METERS,
        "values": stage.stats.values,
        "us_per_value_10_meters": round(stage.stats.seconds / stage.stats.values * 1e6, 2),
        "values_per_s": round(stage.stats.values / wall) if wall else None,
        "alerts_raised": dict(stage.stats.alerts_raised),
        "rss_mb_without_river": round(without["rss_mb"], 1),
        "rss_mb_river_base": round(base["rss_mb"], 1),
        "rss_mb_with_river": round(with_river["rss_mb"], 1),
        "import_s_without_river": round(without["import_s"], 3),
        "import_s_river_base": round(base["import_s"], 3),
        "import_s_with_river": round(with_river["import_s"], 3),
    }


class _NullSink:
    async def put(self, records: Sequence[Record]) -> None:
        del records
