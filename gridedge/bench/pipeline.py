"""``pipeline`` section: simulated meters -> poll loops -> outbox, beyond what one core takes."""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gridedge.bench.load import simulated_load_config

PIPELINE_METERS = 200
PIPELINE_INTERVAL_S = 0.02
"""200 meters every 20 ms offer 10,000 samples/s: more than one core takes, so the figure is
the pipeline's capacity, not the offered rate."""


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
