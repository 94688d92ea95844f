"""``gridedge bench``: capacity measured on the machine it runs on, printed as one JSON object.

Each section saturates one stage with more offered load than it can take and reports what went
through. Keys are fixed (see the README) so scripts can read them; no figure is asserted here.
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridedge.config import Config, parse_config

PIPELINE_METERS = 200
PIPELINE_INTERVAL_S = 0.02
"""200 meters every 20 ms offer 10,000 samples/s: more than one core takes, so the figure is
the pipeline's capacity, not the offered rate."""


def run_bench(
    *, only: str | None = None, seconds: float = 10.0, drain_backlog: int | None = None
) -> dict[str, Any]:
    """Run every section (or ``only`` one) for about ``seconds`` each; ``drain`` runs until its
    backlog (default 1,000,000 samples) is delivered."""
    from gridedge.bench.analytics import bench_analytics
    from gridedge.bench.forward import DRAIN_BACKLOG, bench_drain, bench_forward
    from gridedge.bench.modbus import bench_modbus

    backlog = drain_backlog or DRAIN_BACKLOG

    sections: dict[str, Callable[[float], dict[str, Any]]] = {
        "pipeline": bench_pipeline,
        "modbus": bench_modbus,
        "analytics": bench_analytics,
        "forward": bench_forward,
        "drain": lambda s: bench_drain(s, backlog=backlog),
    }
    result: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(terse=True),
        }
    }
    for name, section in sections.items():
        if only in (None, name):
            result[name] = section(seconds)
    return result


def simulated_load_config(
    folder: Path, *, meters: int, interval_s: float, **sections: object
) -> Config:
    """A config for bench runs: ``meters`` simulated SDM630s every ``interval_s``, an outbox
    in ``folder``, HTTP and analytics off; ``sections`` adds or replaces top-level tables."""
    doc: dict[str, object] = {
        "gateway": {"id": "bench", "site": "bench"},
        "outbox": {"path": "outbox.sqlite3", "max_bytes": 4 * 1024**3},
        "http": {"enabled": False},
        "analytics": {"enabled": False},
        "meters": [
            {
                "id": "sim",
                "driver": "eastron-sdm630",
                "count": meters,
                "interval_s": interval_s,
                "link": {"type": "simulated", "seed": 1},
            }
        ],
        **sections,
    }
    return parse_config(doc, source="<bench>", base_dir=folder)


def bench_pipeline(seconds: float) -> dict[str, Any]:
    """Simulated meters -> poll loops -> outbox (analytics off)."""
    from gridedge import daemon
    from gridedge.outbox.store import read_stats

    with tempfile.TemporaryDirectory(prefix="gridedge-bench-") as tmp:
        config = simulated_load_config(
            Path(tmp), meters=PIPELINE_METERS, interval_s=PIPELINE_INTERVAL_S
        )
        runtime = daemon.Runtime()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        asyncio.run(
            daemon.run(config, shutdown_trigger=lambda: asyncio.sleep(seconds), runtime=runtime)
        )
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        stats = read_stats(config.outbox.path)
        values = sum(s.values for s in runtime.meters.values())
        samples = sum(s.samples for s in runtime.meters.values())
    if stats.rows < samples:  # status envelopes may add rows; fewer means samples went missing
        raise RuntimeError(f"bench: {samples} samples polled but only {stats.rows} rows stored")
    return {
        "meters": PIPELINE_METERS,
        "channels_per_sample": round(values / samples, 1) if samples else 0,
        "seconds": round(wall, 2),
        "channel_values_per_s": round(values / wall),
        "samples_per_s": round(samples / wall),
        "cpu_s_per_1k_values": round(cpu / values * 1000, 5) if values else None,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "outbox_bytes_per_value": round(stats.file_bytes / values, 2) if values else None,
    }


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
