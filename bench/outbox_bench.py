"""Outbox append throughput: envelopes/s through group commit, and bytes per stored value.

Concurrent producers (think poll loops) build ten-value sample envelopes and append them; the
timed part includes building the envelopes and their JSON. Prints one JSON object::

    python bench/outbox_bench.py [--envelopes N] [--producers P] [--batch B] [--values V]
                                 [--synchronous normal|full]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import structlog

from gridedge.config import OutboxConfig, Synchronous
from gridedge.model import Envelope, Sample
from gridedge.outbox.store import Outbox, open_outbox, read_stats


async def produce(outbox: Outbox, producer: int, calls: int, batch: int, values: int) -> None:
    """Append ``calls`` batches of samples with ``values`` channels each."""
    for call in range(calls):
        ts = time.time()
        await outbox.append(
            [
                Envelope.of_sample(
                    Sample(
                        device=f"meter-{producer:03d}",
                        ts=ts,
                        values={
                            f"ch{k:02d}": 230.0 + (call * batch + n + k) % 97 / 7
                            for k in range(values)
                        },
                    )
                )
                for n in range(batch)
            ]
        )


async def bench(args: argparse.Namespace, path: Path) -> dict[str, object]:
    config = OutboxConfig(path=path, synchronous=Synchronous(args.synchronous), max_bytes=4 << 30)
    calls = args.envelopes // (args.producers * args.batch)
    total = calls * args.producers * args.batch
    async with open_outbox(config) as outbox:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for producer in range(args.producers):
                group.create_task(produce(outbox, producer, calls, args.batch, args.values))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        commits = outbox.commits_total
    stats = read_stats(path)
    assert stats.rows == total, (stats.rows, total)
    return {
        "envelopes": total,
        "values_per_envelope": args.values,
        "producers": args.producers,
        "envelopes_per_append": args.batch,
        "synchronous": args.synchronous,
        "seconds": round(wall, 3),
        "envelopes_per_s": round(total / wall),
        "channel_values_per_s": round(total * args.values / wall),
        "cpu_s_per_1k_envelopes": round(cpu / total * 1000, 5),
        "commits": commits,
        "envelopes_per_commit": round(total / commits, 1),
        "body_bytes_per_envelope": round(stats.bytes / total, 1),
        "file_bytes_per_envelope": round(stats.file_bytes / total, 1),
        "file_bytes_per_value": round(stats.file_bytes / (total * args.values), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envelopes", type=int, default=200_000)
    parser.add_argument("--producers", type=int, default=64)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--values", type=int, default=10)
    parser.add_argument("--synchronous", choices=[s.value for s in Synchronous], default="normal")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    with tempfile.TemporaryDirectory(prefix="gridedge-outbox-bench-") as tmp:
        result = asyncio.run(bench(args, Path(tmp) / "outbox.sqlite3"))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
