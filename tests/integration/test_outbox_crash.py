"""The outbox after kill -9: every commit a writer saw is there, and the file is intact."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
import structlog

from gridedge.config import OutboxConfig, Synchronous
from gridedge.model import Envelope, Kind
from gridedge.outbox.store import open_outbox
from tests.helpers import integrity

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("outbox_writer.py")
REPORTS_BEFORE_KILL = 200
DEADLINE_S = 60.0


def ten_values(envelope: Envelope) -> bool:
    """Whether a sample envelope carries the writer's ten channel values."""
    values = envelope.body["values"]
    return isinstance(values, dict) and len(values) == 10


async def run_writer_and_kill(db: Path, synchronous: Synchronous, log: Path) -> list[int]:
    """Start the writer, read its reports until enough arrived, SIGKILL it; all reports."""
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WRITER),
            str(db),
            synchronous.value,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=dict(os.environ, PYTHONPATH=pythonpath),
        )
    assert proc.stdout is not None
    reported: list[int] = []
    try:
        async with asyncio.timeout(DEADLINE_S):
            while len(reported) < REPORTS_BEFORE_KILL:
                line = await proc.stdout.readline()
                if not line:
                    raise AssertionError(f"writer exited early; its log is {log}")
                reported.append(int(line))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
        # Lines printed before the kill landed report commits too.
        async with asyncio.timeout(DEADLINE_S):
            reported += [int(line) for line in (await proc.stdout.read()).split()]
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return reported


@pytest.mark.parametrize("synchronous", [Synchronous.NORMAL, Synchronous.FULL])
async def test_every_reported_commit_survives_kill_9(
    tmp_path: Path, synchronous: Synchronous
) -> None:
    """After SIGKILL mid-stream, reported seqs are stored, seqs are 1..max, seq continues."""
    db = tmp_path / "outbox.sqlite3"
    reported = await run_writer_and_kill(db, synchronous, tmp_path / "writer.log")
    assert db.with_name(db.name + "-wal").exists()  # a killed writer leaves its WAL behind
    with structlog.testing.capture_logs() as logs:
        async with open_outbox(OutboxConfig(path=db, synchronous=synchronous)) as outbox:
            stored = await outbox.read_after(0, 10_000_000)
            await outbox.append([Envelope(kind=Kind.STATUS, device="gw", ts=0.0)])
            continued = outbox.last_committed_seq
    assert any(e["event"] == "outbox.checked" for e in logs)  # the WAL made reopening check
    seqs = [e.seq for e in stored]
    assert seqs == list(range(1, len(seqs) + 1))
    assert set(reported) <= set(seqs)
    assert all(e.kind is Kind.SAMPLE and ten_values(e) for e in stored)
    assert continued == len(seqs) + 1
    assert integrity(db) == "ok"
