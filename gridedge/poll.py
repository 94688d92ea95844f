"""The poll loop: one per meter, on a drift-free monotonic schedule.

Reading ``k`` of a meter is due at ``start + phase + k * interval`` on the monotonic clock, so
the schedule never drifts however long each read takes; a read that overruns skips the ticks it
missed (counted) instead of bunching up. Each sample is stamped with the wall-clock UTC time at
which its read went out: on a shared Modbus bus, when its first request was sent after waiting
for the bus (:class:`~gridedge.links.TimedLink`), otherwise when the read was due.

Isolation: a loop contains whatever goes wrong in its own meter's attempt. A ``LinkError`` is a
field fault (counted by kind); any other exception from the link, its decoder, the simulator,
the analytics or a sink is counted as ``internal``, logged once with its type and message (the
traceback at DEBUG), and the meter is retried on the usual backoff while every other meter keeps
its schedule. Only an ``OutboxError`` ends the loop, and with it the daemon: without the outbox
nothing can be kept. Values that are not finite never leave the loop: they are dropped from the
sample (which is then partial) and counted as ``nonfinite``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gridedge.errors import LinkError, OutboxError
from gridedge.histogram import Histogram
from gridedge.links import Link, TimedLink
from gridedge.log import FailureStreak, get_logger
from gridedge.model import MeterStatus, Quality, Record, Sample, Sink

_log = get_logger("poll")

SETTLE_READS = 3
"""Good reads in a row that end an outage in the log: a link that flaps (answers once or twice,
then fails again) is one outage, one warning and one recovery with the number of flaps."""


@dataclass
class MeterState:
    """What the poll loop knows about one meter; read by metrics, health and status lines."""

    device: str
    online: bool = True
    polls: int = 0
    samples: int = 0
    values: int = 0
    overruns: int = 0
    # Times a read failed right after a good one: every flap of a flapping link, counted even
    # though the log reports one outage for all of them.
    flaps: int = 0
    consecutive_failures: int = 0
    last_success_ts: float | None = None
    errors: Counter[str] = field(default_factory=Counter)
    # Event-loop time at which the current attempt (read, then store) began; None between
    # attempts. Lets the watchdog tell a loop stuck mid-attempt from one waiting for its tick.
    busy_since: float | None = None
    read_seconds: Histogram = field(default_factory=Histogram)
    # The channel values of the last successful read (for readings metrics and status pages).
    last_values: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When to read a meter.

    Attributes:
        interval_s: time between reads while the meter answers.
        phase_s: offset of this meter's ticks, so many meters do not all fire at once.
        offline_after: consecutive failures after which the meter counts as offline.
        max_backoff_s: longest wait between attempts to reach an offline meter.
    """

    interval_s: float
    phase_s: float = 0.0
    offline_after: int = 3
    max_backoff_s: float = 60.0

    def backoff_s(self, failures: int) -> float:
        """How long to wait after ``failures`` consecutive failures (doubling when offline)."""
        if failures < self.offline_after:
            return self.interval_s
        doublings = min(failures - self.offline_after + 1, 30)
        return min(self.interval_s * 2.0**doublings, max(self.max_backoff_s, self.interval_s))


def phase_for(device: str, interval_s: float) -> float:
    """A stable per-device offset in [0, interval) that spreads meters over the interval."""
    digest = 0
    for ch in device.encode():
        digest = (digest * 131 + ch) % 1_000_003
    return (digest / 1_000_003) * interval_s


async def poll_forever(
    link: Link,
    schedule: Schedule,
    sink: Sink,
    state: MeterState,
    *,
    channels: int | Callable[[], int],
    wallclock: Callable[[], float] = time.time,
) -> None:
    """Read ``link`` on ``schedule`` and hand each sample to ``sink``, until cancelled.

    Args:
        link: the meter.
        schedule: interval, phase and backoff.
        sink: stores samples and status changes.
        state: updated in place after every attempt.
        channels: how many channels a complete sample has (fewer makes it partial), or how to
            ask the link after each read (SunSpec discovery learns it from the device).
        wallclock: source of sample timestamps (UTC epoch seconds).
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    streak = FailureStreak(_log, "poll", settle=SETTLE_READS, device=link.device)
    internal = FailureStreak(_log, "poll.internal", device=link.device)
    start = loop.time() + schedule.phase_s
    tick = 0
    timed = link if isinstance(link, TimedLink) else None  # checked once: it costs microseconds
    while True:
        await asyncio.sleep(max(0.0, start + tick * schedule.interval_s - loop.time()))
        ts = wallclock()
        state.polls += 1
        state.busy_since = loop.time()
        try:
            stored = await _attempt(link, timed, ts, schedule, sink, state, streak, channels)
        except OutboxError:
            raise
        except Exception as exc:
            # Contained to this meter: the other loops must keep polling whatever went wrong.
            await _internal(exc, ts, schedule, sink, state, internal)
        else:
            if stored:
                internal.succeeded()
        state.busy_since = None
        if task is not None and task.cancelling():
            # The attempt swallowed a cancellation (Python 3.11's asyncio.wait_for, used inside
            # pymodbus, returns a response that arrives together with the cancel): honour it,
            # or the daemon's stop would wait for this loop forever.
            raise asyncio.CancelledError
        tick = _next_tick(tick, schedule, state, elapsed_s=loop.time() - start)


async def _attempt(
    link: Link,
    timed: TimedLink | None,
    ts: float,
    schedule: Schedule,
    sink: Sink,
    state: MeterState,
    streak: FailureStreak,
    channels: int | Callable[[], int],
) -> bool:
    """One read of the meter, stored; a ``LinkError`` is handled here, anything else raised.

    Returns:
        whether a sample was stored.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        values = await link.read()
    except LinkError as exc:
        state.read_seconds.observe(loop.time() - started)
        if state.consecutive_failures == 0 and state.last_success_ts is not None:
            state.flaps += 1
        await _failed(exc.kind, exc.detail, ts, schedule, sink, state, streak)
        return False
    state.read_seconds.observe(loop.time() - started)
    expected = channels() if callable(channels) else channels
    if timed is not None:
        # Stamped when the read went out on the bus, not when it was due: a read that waited
        # for its neighbours on a shared bus is not moved back in time.
        ts = timed.read_ts or ts
    await _succeeded(values, ts, sink, state, streak, expected)
    return True


def _next_tick(tick: int, schedule: Schedule, state: MeterState, *, elapsed_s: float) -> int:
    """The next tick: one interval on, or later when backing off or when the read overran."""
    interval = schedule.interval_s
    wait = schedule.backoff_s(state.consecutive_failures)
    # The small tolerance keeps float rounding from skipping a tick that is due right now.
    by_backoff = max(tick + 1, math.ceil((tick * interval + wait) / interval - 1e-6))
    by_clock = math.ceil(elapsed_s / interval - 1e-6)
    if by_clock > by_backoff:
        state.overruns += by_clock - by_backoff
    return max(by_backoff, by_clock)


async def _succeeded(
    values: dict[str, float],
    ts: float,
    sink: Sink,
    state: MeterState,
    streak: FailureStreak,
    channels: int,
) -> None:
    values = _finite(values, state)
    quality = Quality.GOOD if len(values) >= channels else Quality.PARTIAL
    records: list[Record] = [Sample(state.device, ts, values, quality)]
    if not state.online:
        state.online = True
        records.append(MeterStatus(state.device, ts, online=True))
        _log.info("meter.online", device=state.device)
    streak.succeeded()
    state.consecutive_failures = 0
    await sink.put(records)
    state.samples += 1
    state.values += len(values)
    state.last_success_ts = ts
    state.last_values = values


def _finite(values: dict[str, float], state: MeterState) -> dict[str, float]:
    """``values`` without the ones that are not finite numbers (counted as ``nonfinite``)."""
    kept = {
        name: float(v)
        for name, v in values.items()
        if isinstance(v, int | float) and math.isfinite(v)
    }
    if len(kept) != len(values):
        state.errors["nonfinite"] += len(values) - len(kept)
    return kept


async def _failed(
    kind: str,
    detail: str,
    ts: float,
    schedule: Schedule,
    sink: Sink,
    state: MeterState,
    streak: FailureStreak,
) -> None:
    state.errors[kind] += 1
    state.consecutive_failures += 1
    streak.failed(kind, detail=detail)
    if state.online and state.consecutive_failures >= schedule.offline_after:
        state.online = False
        _log.warning("meter.offline", device=state.device, failures=state.consecutive_failures)
        await sink.put([MeterStatus(state.device, ts, online=False, error=kind)])


async def _internal(
    exc: Exception,
    ts: float,
    schedule: Schedule,
    sink: Sink,
    state: MeterState,
    streak: FailureStreak,
) -> None:
    """Count and log an unexpected exception of one attempt; the meter backs off like a failure."""
    detail = f"{type(exc).__name__}: {exc}"[:200]
    _log.debug("poll.internal.traceback", device=state.device, exc_info=exc)
    try:
        await _failed("internal", detail, ts, schedule, sink, state, streak)
    except OutboxError:
        raise
    except Exception as again:
        # The offline status could not be stored either; the count and the log still stand.
        _log.debug("poll.internal.status_failed", device=state.device, error=repr(again)[:200])


def spread_phases(meters: Iterable[tuple[str, str, float]]) -> dict[str, float]:
    """A phase per meter that spreads the meters of each bus evenly over their interval.

    ``meters`` are ``(device, bus, interval_s)``. On one bus the i-th of n meters (by id) is due
    ``i / n`` of its interval after the first, so they take turns at the bus lock instead of
    queueing for it at one instant (ids made by ``count`` differ only in a suffix, which
    :func:`phase_for` alone would hash to nearly the same phase). Each bus as a whole is offset
    by :func:`phase_for` of its name, so separate buses do not start together either.
    """
    by_bus: dict[str, list[tuple[str, float]]] = {}
    for device, bus, interval_s in meters:
        by_bus.setdefault(bus, []).append((device, interval_s))
    phases: dict[str, float] = {}
    for bus, members in by_bus.items():
        members.sort()
        for i, (device, interval_s) in enumerate(members):
            offset = phase_for(bus, interval_s)
            phases[device] = (offset + interval_s * i / len(members)) % interval_s
    return phases
