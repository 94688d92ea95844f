"""The poll loop contains one meter's failures of any kind; only the outbox failing ends it."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Sequence

import pytest
import structlog

from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_driver
from gridedge.errors import OutboxError
from gridedge.links.simulated import SimulatedLink
from gridedge.model import MeterStatus, Quality, Record, Sample
from gridedge.poll import MeterState, Schedule, poll_forever
from gridedge.simulator.faults import FaultPlan
from gridedge.simulator.physics import MeterSimulator, SimulationParams

Step = dict[str, float] | Exception


class ScriptLink:
    """Answers from a script: a dict is a reading, an exception is raised; the last repeats."""

    def __init__(self, device: str, script: Sequence[Step]) -> None:
        self._device = device
        self.script = list(script)
        self.reads = 0

    @property
    def device(self) -> str:
        return self._device

    async def read(self) -> dict[str, float]:
        step = self.script[min(self.reads, len(self.script) - 1)]
        self.reads += 1
        if isinstance(step, Exception):
            raise step
        return dict(step)


class RecordingSink:
    """Keeps every record; raises ``fail(record)`` when that returns an exception."""

    def __init__(self, fail: Callable[[Record], Exception | None] = lambda _: None) -> None:
        self.records: list[Record] = []
        self.fail = fail
        self.changed = asyncio.Event()

    async def put(self, records: Sequence[Record]) -> None:
        self.changed.set()
        for record in records:
            exc = self.fail(record)
            if exc is not None:
                raise exc
        self.records.extend(records)

    def samples(self, device: str) -> list[Sample]:
        return [r for r in self.records if isinstance(r, Sample) and r.device == device]


FAST = Schedule(interval_s=0.001, offline_after=3, max_backoff_s=0.004)


async def _poll_until(
    links: Sequence[ScriptLink],
    sink: RecordingSink,
    done: Callable[[], bool],
    schedule: Schedule = FAST,
) -> dict[str, MeterState]:
    states = {link.device: MeterState(link.device) for link in links}
    tasks = [
        asyncio.create_task(poll_forever(link, schedule, sink, states[link.device], channels=2))
        for link in links
    ]
    try:
        async with asyncio.timeout(10):
            while not done():
                if any(t.done() for t in tasks):
                    break
                sink.changed.clear()
                await sink.changed.wait()
        for task in tasks:
            if task.done():
                task.result()  # re-raises what ended a loop
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return states


async def test_an_unexpected_link_exception_is_counted_and_the_meter_recovers() -> None:
    """A link raising a non-LinkError is counted as internal, and the next good read is stored."""
    link = ScriptLink("bad", [ZeroDivisionError("float division"), {"a": 1.0, "b": 2.0}])
    sink = RecordingSink()
    with structlog.testing.capture_logs() as logs:
        states = await _poll_until([link], sink, lambda: bool(sink.samples("bad")))
    assert states["bad"].errors["internal"] == 1
    failed = [e for e in logs if e["event"] == "poll.internal.failed"]
    assert len(failed) == 1
    assert failed[0]["log_level"] == "warning"
    assert failed[0]["detail"] == "ZeroDivisionError: float division"
    assert "exc_info" not in failed[0]
    assert [e["event"] for e in logs].count("poll.internal.recovered") == 1


async def test_a_meter_that_always_raises_does_not_slow_its_neighbour() -> None:
    """One loop raising ValueError on every read leaves another loop polling on schedule."""
    bad = ScriptLink("bad", [ValueError("cannot convert float NaN to integer")])
    good = ScriptLink("good", [{"a": 1.0, "b": 2.0}])
    sink = RecordingSink()
    with structlog.testing.capture_logs() as logs:
        states = await _poll_until([bad, good], sink, lambda: len(sink.samples("good")) >= 50)
    assert len(sink.samples("good")) >= 50
    assert states["bad"].errors["internal"] >= 1
    assert not states["bad"].online
    warnings = [e for e in logs if e["event"] == "poll.internal.failed"]
    assert sum(e["log_level"] == "warning" for e in warnings) == 1
    offline = [r for r in sink.records if isinstance(r, MeterStatus) and r.device == "bad"]
    assert [(s.online, s.error) for s in offline] == [(False, "internal")]


async def test_a_sink_exception_other_than_the_outbox_is_contained() -> None:
    """An analytics-like ValueError from the sink on a sample fails that attempt only."""
    calls = {"n": 0}

    def fail(record: Record) -> Exception | None:
        if isinstance(record, Sample):
            calls["n"] += 1
            if calls["n"] <= 2:
                return ValueError("cannot convert float NaN to integer")
        return None

    link = ScriptLink("m", [{"a": 1.0, "b": 2.0}])
    sink = RecordingSink(fail)
    states = await _poll_until([link], sink, lambda: bool(sink.samples("m")))
    assert states["m"].errors["internal"] == 2
    assert sink.samples("m")[0].values == {"a": 1.0, "b": 2.0}


async def test_an_outbox_failure_ends_the_loop() -> None:
    """OutboxError is the one failure that is not contained: nothing could be kept without it."""
    link = ScriptLink("m", [{"a": 1.0, "b": 2.0}])
    sink = RecordingSink(lambda _: OutboxError("disk I/O error"))
    with pytest.raises(OutboxError):
        await _poll_until([link], sink, lambda: False)


async def test_an_outbox_failure_while_storing_an_offline_status_ends_the_loop() -> None:
    """Even on the failure path (storing the offline status) OutboxError still ends the loop."""
    link = ScriptLink("m", [RuntimeError("simulator overflow")])
    sink = RecordingSink(lambda r: OutboxError("full") if isinstance(r, MeterStatus) else None)
    with pytest.raises(OutboxError):
        await _poll_until([link], sink, lambda: False)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_non_finite_values_are_dropped_counted_and_make_the_sample_partial(
    bad: float,
) -> None:
    """A NaN or infinite channel value never reaches the sink; the rest of the sample does."""
    link = ScriptLink("m", [{"a": bad, "b": 2.0}])
    sink = RecordingSink()
    states = await _poll_until([link], sink, lambda: len(sink.samples("m")) >= 3)
    for sample in sink.samples("m"):
        assert sample.values == {"b": 2.0}
        assert sample.quality is Quality.PARTIAL
    assert states["m"].errors["nonfinite"] >= 3


async def test_cancellation_is_not_contained() -> None:
    """Cancelling a loop mid-read ends it; the containment never swallows CancelledError."""
    started = asyncio.Event()

    class Hanging:
        device = "m"

        async def read(self) -> dict[str, float]:
            started.set()
            await asyncio.Event().wait()
            return {}

    task = asyncio.create_task(
        poll_forever(Hanging(), FAST, RecordingSink(), MeterState("m"), channels=1)
    )
    async with asyncio.timeout(5):
        await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_simulator_overflowing_on_its_rating_is_contained() -> None:
    """A simulated meter rated 1e308 A overflows on every read; its neighbour keeps polling."""
    driver = load_driver(BUILTIN_DRIVERS_DIR / "eastron-sdm630.toml")
    absurd = SimulationParams(rated_current_a=1e308)
    broken = SimulatedLink("broken", MeterSimulator("broken", driver, absurd, FaultPlan(), 1))
    healthy = SimulatedLink("ok", MeterSimulator("ok", driver, SimulationParams(), FaultPlan(), 2))
    sink = RecordingSink()
    states = {d: MeterState(d) for d in ("broken", "ok")}
    channels = len(driver.channels)
    tasks = [
        asyncio.create_task(poll_forever(link, FAST, sink, states[link.device], channels=channels))
        for link in (broken, healthy)
    ]
    try:
        async with asyncio.timeout(10):
            while len(sink.samples("ok")) < 20:
                sink.changed.clear()
                await sink.changed.wait()
        assert not any(task.done() for task in tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert states["broken"].errors["internal"] >= 1
    assert not sink.samples("broken")


async def test_a_cancellation_swallowed_inside_a_read_still_ends_the_loop() -> None:
    """A link that eats CancelledError (as Python 3.11's wait_for can) cannot keep it polling."""
    started = asyncio.Event()
    swallowed: list[bool] = []

    class Swallowing:
        device = "m"

        async def read(self) -> dict[str, float]:
            started.set()
            if swallowed:
                await asyncio.Event().wait()  # a second cancel goes through (bounded test)
            # The response "arrived together with" the cancel, which is dropped.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
            swallowed.append(True)
            return {"a": 1.0}

    task = asyncio.create_task(
        poll_forever(Swallowing(), FAST, RecordingSink(), MeterState("m"), channels=1)
    )
    async with asyncio.timeout(5):
        await started.wait()
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    try:
        assert swallowed == [True]
        assert task.cancelled()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
