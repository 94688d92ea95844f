"""Outbox size on disk against ``max_bytes``: database + WAL + shm, sampled after every append.

For each cap, producers append ten-value samples until the outbox has been pruned to its
bound several times over (``--turns`` times the cap in bodies), with a forwarder-like reader
paging through it. Prints one JSON object, per cap: the largest disk footprint seen and its
ratio to the cap, the largest WAL, envelopes stored and dropped::

    python bench/outbox_disk.py [--caps-mib 1,4,16,64,256] [--turns 3] [--on-full drop_oldest]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import structlog

from gridedge.config import OnFull, OutboxConfig
from gridedge.model import Envelope, Sample
from gridedge.outbox.files import disk_bytes, side_file
from gridedge.outbox.store import Outbox, open_outbox

MIB = 1024 * 1024
BATCH = 20


def samples(n: int, device: str) -> list[Envelope]:
    """``BATCH`` ten-value samples."""
    ts = time.time()
    return [
        Envelope.of_sample(
            Sample(
                device=device,
                ts=ts,
                values={f"ch{k}": 230.0 + (n + i + k) % 97 / 7 for k in range(10)},
            )
        )
        for i in range(BATCH)
    ]


async def reader(outbox: Outbox, stop: asyncio.Event) -> None:
    """Page through the outbox like a forwarder that never acknowledges (keeps readers busy)."""
    cursor = 0
    while not stop.is_set():
        chunk = await outbox.read_after(cursor, 500)
        cursor = chunk[-1].seq or cursor if chunk else 0
        await asyncio.sleep(0.05)  # a forwarder reads in chunks, not in a busy loop


async def one_cap(cap: int, turns: int, on_full: OnFull, folder: Path) -> dict[str, object]:
    """Fill one outbox of ``cap`` bytes ``turns`` times over; the peak footprint."""
    path = folder / f"outbox-{cap}.sqlite3"
    config = OutboxConfig(path=path, max_bytes=cap, on_full=on_full, commit_interval_s=0.0)
    peak = peak_wal = 0
    written = 0
    stop = asyncio.Event()
    async with open_outbox(config, upstreams=["never"]) as outbox:
        task = asyncio.create_task(reader(outbox, stop))
        n = 0
        while written < turns * cap:
            batch = samples(n, f"m{n % 7}")
            n += BATCH
            written += sum(len(json.dumps(e.body, separators=(",", ":"))) for e in batch)
            await outbox.append(batch)
            peak = max(peak, disk_bytes(path))
            wal = side_file(path, "-wal")
            peak_wal = max(peak_wal, wal.stat().st_size if wal.exists() else 0)
        stop.set()
        await task
        stats = await outbox.stats()
    return {
        "cap_bytes": cap,
        "peak_disk_bytes": peak,
        "peak_ratio": round(peak / cap, 4),
        "peak_wal_bytes": peak_wal,
        "rows": stats.rows,
        "dropped": dict(stats.dropped),
    }


async def main(caps: list[int], turns: int, on_full: OnFull) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        return {"caps": [await one_cap(cap, turns, on_full, Path(tmp)) for cap in caps]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caps-mib", default="1,4,16,64,256")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--on-full", default="drop_oldest", choices=[p.value for p in OnFull])
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    caps = [int(float(c) * MIB) for c in args.caps_mib.split(",")]
    print(json.dumps(asyncio.run(main(caps, args.turns, OnFull(args.on_full))), indent=2))
