"""Watchdog verdicts, status lines, and the supervisor task talking to a real notify socket."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from gridedge.histogram import Histogram
from gridedge.model import Record
from gridedge.ops.systemd import Notifier
from gridedge.ops.watchdog import Progress, status_line, supervise_forever
from gridedge.poll import MeterState, Schedule, poll_forever
from tests.unit.ops.fakes import FakeOutbox, make_runtime, meter_state, upstream_state


def test_loops_waiting_for_their_next_tick_count_as_progress() -> None:
    """Meters between attempts (an offline one backing off too) never look stuck."""
    meters = {"a": meter_state("a", polls=3), "b": meter_state("b", online=False, polls=1)}
    progress = Progress(meters)
    assert progress.stalled(now=100.0, window_s=1.0) == 0


def test_an_attempt_running_a_whole_window_with_nothing_finishing_is_a_stall() -> None:
    """A loop stuck mid-attempt while no other attempt ends: a stall, counted per loop."""
    meters = {"a": meter_state("a", polls=3, busy_since=98.0), "b": meter_state("b", polls=2)}
    progress = Progress(meters)
    assert progress.stalled(now=99.5, window_s=2.0) == 0  # not running long enough yet
    assert progress.stalled(now=100.0, window_s=2.0) == 1


def test_any_attempt_finishing_since_the_last_check_is_progress() -> None:
    """A slow read on a bus with several meters is fine while other meters' attempts complete."""
    meters = {"a": meter_state("a", polls=3, busy_since=90.0), "b": meter_state("b", polls=2)}
    progress = Progress(meters)
    meters["b"].polls += 1
    assert progress.stalled(now=100.0, window_s=2.0) == 0
    assert progress.stalled(now=101.0, window_s=2.0) == 1


def test_status_line_reads_like_a_sentence() -> None:
    """Meters online, backlog and broker state in a few words for systemctl status."""
    outbox = FakeOutbox(rows=300, backlog={"cloud": 120})
    runtime = make_runtime(
        meter_state("a"),
        meter_state("b"),
        meter_state("c"),
        upstreams={"cloud": upstream_state("cloud")},
    )
    stats = asyncio.run(outbox.stats())
    assert status_line(runtime, stats) == "3 meters online, backlog 120, broker up"


def test_status_line_names_what_is_wrong() -> None:
    """Offline meters, a stall, a failing outbox and brokers down all show up."""
    runtime = make_runtime(
        meter_state("a"),
        meter_state("b", online=False),
        outbox=FakeOutbox(healthy=False),
        upstreams={"x": upstream_state("x", connected=False), "y": upstream_state("y")},
    )
    line = status_line(runtime, None, stalled=1)
    assert line == "1/2 meters online, polling stalled (1 waiting), outbox failing, 1/2 brokers up"


def test_status_line_without_upstreams_shows_what_is_stored() -> None:
    """With nowhere to forward, the line says how much the outbox holds."""
    runtime = make_runtime(meter_state("a"))
    stats = asyncio.run(FakeOutbox(rows=42).stats())
    assert status_line(runtime, stats) == "1 meter online, outbox 42 envelopes"


@contextmanager
def notify_socket() -> Iterator[socket.socket]:
    """A bound Unix datagram socket, as systemd provides for Type=notify services."""
    with tempfile.TemporaryDirectory(prefix="ge-") as folder:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(Path(folder) / "notify"))
        sock.setblocking(False)
        try:
            yield sock
        finally:
            sock.close()


async def next_matching(sock: socket.socket, text: str) -> str:
    """The next datagram containing ``text`` (others are skipped)."""
    loop = asyncio.get_running_loop()
    while True:
        message = (await loop.sock_recv(sock, 4096)).decode()
        if text in message:
            return message


async def test_supervisor_withholds_watchdog_while_stalled_and_resumes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """WATCHDOG=1 flows, stops while a loop is stuck (STATUS says so), then flows again."""
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    meters = meter_state("a", polls=1)
    runtime = make_runtime(meters)
    with notify_socket() as sock:
        notifier = Notifier(sock.getsockname())
        task = asyncio.create_task(supervise_forever(notifier, runtime))
        try:
            async with asyncio.timeout(10):
                await next_matching(sock, "WATCHDOG=1")
                meters.busy_since = asyncio.get_running_loop().time() - 1.0
                await next_matching(sock, "STATUS=1 meter online, polling stalled (1 waiting)")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):  # five ticks: none may ping
                    await next_matching(sock, "WATCHDOG=1")
            meters.busy_since = None
            async with asyncio.timeout(10):
                await next_matching(sock, "WATCHDOG=1")
        finally:
            task.cancel()
            notifier.close()


async def test_supervisor_returns_at_once_without_a_supervisor() -> None:
    """With no NOTIFY_SOCKET there is nobody to tell: the task ends immediately."""
    async with asyncio.timeout(1):
        await supervise_forever(Notifier(""), make_runtime())


class OneReading:
    """A link answering at once with one channel."""

    device = "m1"

    async def read(self) -> dict[str, float]:
        return {"frequency": 50.0}


class GateSink:
    """A sink that holds every store until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()
        self.stored = asyncio.Event()

    async def put(self, records: Sequence[Record]) -> None:
        del records
        self.waiting.set()
        await self.gate.wait()
        self.stored.set()


async def test_poll_loop_marks_attempts_busy_and_records_read_durations() -> None:
    """busy_since is set while an attempt stores its sample and cleared after; reads are timed."""
    state = MeterState("m1", read_seconds=Histogram(bounds=(1.0,)))
    sink = GateSink()
    task = asyncio.create_task(
        poll_forever(OneReading(), Schedule(interval_s=0.01), sink, state, channels=1)
    )
    try:
        async with asyncio.timeout(5):
            await sink.waiting.wait()
        assert state.busy_since is not None
        assert state.read_seconds.count == 1
        assert state.read_seconds.counts == [1, 0]
        sink.gate.set()
        async with asyncio.timeout(5):
            while state.samples < 2:
                sink.stored.clear()
                await sink.stored.wait()
    finally:
        task.cancel()
    assert state.read_seconds.count >= 2
