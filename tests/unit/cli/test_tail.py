"""``gridedge outbox tail`` prints what a real outbox stores, read-only, and follows it."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from gridedge.model import Envelope, Kind
from gridedge.outbox.settings import OutboxConfig
from gridedge.outbox.store import open_outbox
from tests.unit.cli.runner import run

T0 = 1_767_571_200.0


def _envelopes(start: int, count: int) -> list[Envelope]:
    return [
        Envelope(
            kind=Kind.ALERT if i % 3 == 0 else Kind.SAMPLE,
            device="m1",
            ts=T0 + i,
            body={"i": i},
            urgent=i % 3 == 0,
        )
        for i in range(start, start + count)
    ]


async def _store(path: Path, envelopes: list[Envelope]) -> None:
    async with open_outbox(OutboxConfig(path=path, commit_interval_s=0.0)) as outbox:
        await outbox.append(envelopes)


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


async def test_tail_prints_the_newest_envelopes_oldest_first(tmp_path: Path) -> None:
    """-n 4 prints the last four envelopes as JSON lines in seq order, with RFC 3339 times."""
    db = tmp_path / "outbox.sqlite3"
    await _store(db, _envelopes(0, 10))
    outcome = run(["outbox", "tail", "--path", str(db), "-n", "4"])
    assert outcome.status == 0, outcome.err
    rows = _lines(outcome.out)
    assert [r["seq"] for r in rows] == [7, 8, 9, 10]
    assert rows[-1]["body"] == {"i": 9}
    assert rows[-1]["ts"] == "2026-01-05T00:00:09Z"


async def test_tail_filters_by_kind_and_reads_the_config_outbox_path(tmp_path: Path) -> None:
    """--kind alert keeps only alerts; -c finds the file from outbox.path."""
    db = tmp_path / "outbox.sqlite3"
    await _store(db, _envelopes(0, 10))
    config = tmp_path / "gridedge.toml"
    config.write_text('[outbox]\npath = "outbox.sqlite3"\n')
    outcome = run(["outbox", "tail", "-c", str(config), "--kind", "alert", "-n", "100"])
    assert outcome.status == 0, outcome.err
    assert [r["body"] for r in _lines(outcome.out)] == [{"i": i} for i in (0, 3, 6, 9)]
    assert {r["kind"] for r in _lines(outcome.out)} == {"alert"}


async def test_tail_never_writes_to_the_outbox(tmp_path: Path) -> None:
    """Tailing leaves the outbox file's bytes and modification time untouched."""
    db = tmp_path / "outbox.sqlite3"
    await _store(db, _envelopes(0, 3))
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    assert run(["outbox", "tail", "--path", str(db)]).status == 0
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before


def _read_lines(stream: IO[bytes], n: int, deadline_s: float) -> list[dict[str, object]]:
    """The next ``n`` JSON lines of ``stream`` (the deadline bounds a test that fails)."""
    end = time.monotonic() + deadline_s
    rows: list[dict[str, object]] = []
    while len(rows) < n:
        assert time.monotonic() < end, f"only {len(rows)} of {n} lines in time"
        line = stream.readline()
        assert line, "tail ended early"
        rows.append(json.loads(line))
    return rows


def test_follow_prints_new_envelopes_until_sigint(tmp_path: Path) -> None:
    """--follow shows what the real outbox commits later, and ends with status 0 on SIGINT."""
    db = tmp_path / "outbox.sqlite3"
    asyncio.run(_store(db, _envelopes(0, 2)))
    # A runner started as a background job ignores SIGINT, and a child inherits that; the
    # command's own SIGINT handling is what this test is about, so the child starts without it.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gridedge",
                "outbox",
                "tail",
                "--path",
                str(db),
                "--follow",
                "--interval-s",
                "0.05",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    finally:
        signal.signal(signal.SIGINT, inherited)
    try:
        assert proc.stdout is not None
        assert [r["seq"] for r in _read_lines(proc.stdout, 2, 30)] == [1, 2]
        asyncio.run(_store(db, _envelopes(2, 3)))
        assert [r["seq"] for r in _read_lines(proc.stdout, 3, 30)] == [3, 4, 5]
        proc.send_signal(signal.SIGINT)
        try:
            status = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            lines = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            wchan = Path(f"/proc/{proc.pid}/wchan").read_text()
            raise AssertionError(
                f"SIGINT did not end tail --follow (parent: {signal.getsignal(signal.SIGINT)}, "
                f"blocked {signal.pthread_sigmask(signal.SIG_BLOCK, [])}); child in {wchan}: "
                + "; ".join(line for line in lines if line.startswith(("Sig", "State")))
            ) from None
        assert status == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
