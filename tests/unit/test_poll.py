"""The poll loop: drift-free schedule, backoff, offline/online transitions, partial samples."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence

import pytest
import structlog

from gridedge.errors import DeviceFaultError, DeviceUnreachableError, LinkError
from gridedge.model import Envelope, Kind, Quality, Record, to_envelope
from gridedge.poll import (
    SETTLE_READS,
    MeterState,
    Schedule,
    _next_tick,
    phase_for,
    poll_forever,
    spread_phases,
)


class ScriptedLink:
    """A link that answers from a script: a dict is a reading, an exception is raised."""

    def __init__(self, script: list[dict[str, float] | LinkError]) -> None:
        self.script = script
        self.reads = 0
        self.progress = asyncio.Event()

    @property
    def device(self) -> str:
        return "m1"

    async def read(self) -> dict[str, float]:
        step = self.script[min(self.reads, len(self.script) - 1)]
        self.reads += 1
        self.progress.set()
        if isinstance(step, LinkError):
            raise step
        return step


class ListSink:
    """Collects what the poll loop stores."""

    def __init__(self, progress: asyncio.Event) -> None:
        self.envelopes: list[Envelope] = []
        self.progress = progress

    async def put(self, records: Sequence[Record]) -> None:
        self.envelopes.extend(to_envelope(r) for r in records)
        self.progress.set()


async def _run_until(
    link: ScriptedLink,
    schedule: Schedule,
    done: Callable[[ListSink], bool],
    channels: int | Callable[[], int] = 2,
) -> tuple[ListSink, MeterState]:
    sink, state = ListSink(link.progress), MeterState("m1")
    task = asyncio.create_task(poll_forever(link, schedule, sink, state, channels=channels))
    async with asyncio.timeout(10):
        while not done(sink):
            link.progress.clear()
            await link.progress.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return sink, state


def test_next_tick_is_one_interval_on_when_reads_are_fast() -> None:
    """A read that ends inside its interval leaves the schedule untouched."""
    state = MeterState("m")
    assert _next_tick(7, Schedule(interval_s=1.0), state, elapsed_s=7.3) == 8
    assert state.overruns == 0


def test_next_tick_skips_and_counts_overrun_ticks() -> None:
    """A read that took 3.5 intervals skips the missed ticks and counts them."""
    state = MeterState("m")
    assert _next_tick(0, Schedule(interval_s=1.0), state, elapsed_s=3.5) == 4
    assert state.overruns == 3


def test_schedule_does_not_accumulate_float_drift() -> None:
    """After a million ticks of 0.1 s the next tick is still exactly one on."""
    state = MeterState("m")
    tick = 1_000_000
    assert _next_tick(tick, Schedule(interval_s=0.1), state, elapsed_s=tick * 0.1) == tick + 1


def test_backoff_doubles_once_offline_and_is_capped() -> None:
    """Below offline_after the interval holds; beyond it waits double up to max_backoff_s."""
    schedule = Schedule(interval_s=1.0, offline_after=3, max_backoff_s=10.0)
    assert [schedule.backoff_s(n) for n in range(7)] == [1.0, 1.0, 1.0, 2.0, 4.0, 8.0, 10.0]


def test_phase_is_stable_and_inside_the_interval() -> None:
    """The per-device offset is deterministic and within [0, interval)."""
    assert phase_for("meter-7", 10.0) == phase_for("meter-7", 10.0)
    phases = {phase_for(f"meter-{i}", 10.0) for i in range(100)}
    assert all(0.0 <= p < 10.0 for p in phases)
    assert len(phases) > 90


async def test_samples_carry_values_and_quality() -> None:
    """A full reading is a good sample; a reading missing channels is partial."""
    link = ScriptedLink([{"a": 1.0, "b": 2.0}, {"a": 1.0}])
    sink, state = await _run_until(
        link, Schedule(interval_s=0.001), lambda s: len(s.envelopes) >= 2
    )
    samples = [e for e in sink.envelopes if e.kind is Kind.SAMPLE]
    assert samples[0].body == {"values": {"a": 1.0, "b": 2.0}, "quality": Quality.GOOD.value}
    assert samples[1].body["quality"] == Quality.PARTIAL.value
    assert state.values >= 3


async def test_completeness_is_asked_of_the_link_after_each_read() -> None:
    """A link that learns its channel count while reading (SunSpec discovery) is asked after
    each read: the same two values are partial while it expects three, good once it expects two.
    """
    link = ScriptedLink([{"a": 1.0, "b": 2.0}])
    asked: list[int] = []

    def expected() -> int:
        asked.append(link.reads)
        return 3 if len(asked) == 1 else 2

    def three_samples(sink: ListSink) -> bool:
        return sum(e.kind is Kind.SAMPLE for e in sink.envelopes) >= 3

    sink, _ = await _run_until(link, Schedule(interval_s=0.001), three_samples, channels=expected)
    assert asked[:3] == [1, 2, 3]  # once after each read
    qualities = [e.body["quality"] for e in sink.envelopes if e.kind is Kind.SAMPLE]
    assert qualities[:3] == [Quality.PARTIAL.value, Quality.GOOD.value, Quality.GOOD.value]


async def test_meter_goes_offline_then_online_with_status_envelopes() -> None:
    """Three failures mark the meter offline once; the next answer marks it online again."""
    timeout = DeviceUnreachableError("m1", "no answer")
    link = ScriptedLink([timeout, timeout, timeout, timeout, {"a": 1.0, "b": 2.0}])
    schedule = Schedule(interval_s=0.001, offline_after=3, max_backoff_s=0.004)
    sink, state = await _run_until(link, schedule, _has_sample)
    statuses = [e.body["state"] for e in sink.envelopes if e.kind is Kind.STATUS]
    assert statuses == ["offline", "online"]
    assert state.errors["timeout"] == 4
    assert state.online


def _has_sample(sink: ListSink) -> bool:
    return any(e.kind is Kind.SAMPLE for e in sink.envelopes)


async def test_repeated_failures_are_logged_once() -> None:
    """Twenty failures in a row produce one warning, and recovery one info event."""
    fault = DeviceFaultError("m1", code=2, address=0)
    link = ScriptedLink([*([fault] * 20), {"a": 1.0, "b": 2.0}])
    schedule = Schedule(interval_s=0.001, offline_after=100)
    with structlog.testing.capture_logs() as logs:
        _, state = await _run_until(link, schedule, lambda _: link.reads > 20 + SETTLE_READS)
    warnings = [e for e in logs if e["event"] == "poll.failed" and e["log_level"] == "warning"]
    recovered = [e for e in logs if e["event"] == "poll.recovered"]
    assert len(warnings) == 1
    assert len(recovered) == 1
    assert recovered[0]["failures"] == 20
    assert state.errors["exception"] == 20


async def test_a_flapping_link_is_one_outage_in_the_log_and_every_flap_is_counted() -> None:
    """Answer, fail, answer, fail ...: one warning, one recovery once it holds, flaps counted."""
    good, cut = {"a": 1.0, "b": 2.0}, DeviceUnreachableError("m1", "connection reset")
    script: list[dict[str, float] | LinkError] = [good, cut, good, cut, good, good, cut]
    link = ScriptedLink([*script, *([good] * SETTLE_READS)])
    schedule = Schedule(interval_s=0.001, offline_after=100)
    with structlog.testing.capture_logs() as logs:
        _, state = await _run_until(link, schedule, lambda _: link.reads > len(link.script))
    warnings = [e for e in logs if e["event"] == "poll.failed" and e["log_level"] == "warning"]
    recovered = [e for e in logs if e["event"] == "poll.recovered"]
    assert len(warnings) == 1
    assert [(e["failures"], e["flaps"]) for e in recovered] == [(3, 2)]
    assert state.flaps == 3  # every good-to-failed turn, the outage's first included
    assert state.errors["timeout"] == 3


async def test_a_link_that_holds_after_a_flap_starts_a_new_outage_with_its_own_warning() -> None:
    """Two outages separated by enough good reads are two warnings and two recoveries."""
    good, cut = {"a": 1.0, "b": 2.0}, DeviceUnreachableError("m1", "connection reset")
    link = ScriptedLink([cut, *([good] * SETTLE_READS), cut, *([good] * SETTLE_READS)])
    schedule = Schedule(interval_s=0.001, offline_after=100)
    with structlog.testing.capture_logs() as logs:
        _, state = await _run_until(link, schedule, lambda _: link.reads > len(link.script))
    warnings = [e for e in logs if e["event"] == "poll.failed" and e["log_level"] == "warning"]
    recovered = [e for e in logs if e["event"] == "poll.recovered"]
    assert len(warnings) == 2
    assert [(e["failures"], e["flaps"]) for e in recovered] == [(1, 0), (1, 0)]
    assert state.flaps == 1  # the first read failed before any good one: not a flap


def test_meters_on_one_bus_are_spread_evenly_over_their_interval() -> None:
    """Fifty meters made by ``count`` get phases 0.2 s apart, not the same instant."""
    meters = [(f"m-{i:02d}", "10.0.0.5:502", 10.0) for i in range(1, 51)]
    meters += [("other", "/dev/ttyUSB0", 10.0)]
    phases = spread_phases(meters)
    bus = sorted(phases[f"m-{i:02d}"] for i in range(1, 51))
    gaps = [b - a for a, b in itertools.pairwise(bus)]
    assert min(gaps) == pytest.approx(0.2)
    assert max(gaps) == pytest.approx(0.2)
    assert all(0.0 <= p < 10.0 for p in phases.values())
    assert phases == spread_phases(reversed(meters))  # stable, whatever the config order
