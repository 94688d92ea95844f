"""Append to an outbox until killed, printing each committed batch's last seq on stdout.

Used by ``test_outbox_crash.py``, which kills this process with SIGKILL mid-stream::

    python tests/integration/outbox_writer.py DBPATH {normal|full}

Four appenders run concurrently so that group commits are in flight when the kill lands. A
printed seq is committed: it is printed only after ``append`` returned. Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import structlog

from gridedge.config import OutboxConfig, Synchronous
from gridedge.model import Envelope, Sample
from gridedge.outbox.store import Outbox, open_outbox

APPENDERS = 4
BATCH = 20


async def append_forever(outbox: Outbox, appender: int) -> None:
    """Append batches of ten-value samples and report the seq committed after each."""
    n = 0
    while True:
        batch = [
            Envelope.of_sample(
                Sample(
                    device=f"m{appender}",
                    ts=time.time(),
                    values={f"ch{k}": 230.0 + n + k / 10 for k in range(10)},
                )
            )
            for n in range(n, n + BATCH)
        ]
        await outbox.append(batch)
        print(outbox.last_committed_seq, flush=True)


async def main(path: Path, synchronous: Synchronous) -> None:
    config = OutboxConfig(path=path, synchronous=synchronous, commit_interval_s=0.002)
    async with open_outbox(config) as outbox, asyncio.TaskGroup() as group:
        for appender in range(APPENDERS):
            group.create_task(append_forever(outbox, appender))


if __name__ == "__main__":
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(main(Path(sys.argv[1]), Synchronous(sys.argv[2])))
