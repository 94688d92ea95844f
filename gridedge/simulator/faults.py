"""Fault injection for simulated meters: what can go wrong, when, and the recorded ground truth.

A :class:`FaultPlan` says which faults a meter suffers: a Poisson stream of random ones and an
explicit schedule. A :class:`FaultTimeline` turns the plan into active faults step by step and
records every fault as a :class:`FaultEvent`, the ground truth that anomaly detectors are scored
against. :mod:`gridedge.simulator.effects` applies active faults to the physics and readings.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from gridedge.channels import CHANNELS


class FaultKind(StrEnum):
    """The kinds of fault a simulated meter can suffer."""

    SPIKE = "spike"
    """One reading of one channel is an outlier (value times ``1 + magnitude``)."""
    SAG = "sag"
    """Supply voltage dips to ``1 - magnitude`` of its value on some phases."""
    SWELL = "swell"
    """Supply voltage rises to ``1 + magnitude`` of its value on some phases."""
    DRIFT = "drift"
    """A sensor error on one channel grows by ``magnitude`` (a fraction) per hour."""
    OSCILLATION = "oscillation"
    """A channel is modulated by a sine of relative amplitude ``magnitude``."""
    FLATLINE = "flatline"
    """A channel (or, with no channel, the whole meter) repeats its last value."""
    DROPOUT = "dropout"
    """The meter does not answer."""
    PHASE_LOSS = "phase_loss"
    """One phase loses its supply: near-zero voltage, no current."""
    OVERHEATING = "overheating"
    """The temperature rises by ``magnitude`` °C per hour on top of the thermal model."""


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    """A fault at a fixed time, relative to the meter's first step.

    Attributes:
        kind: what goes wrong.
        at_s: seconds after the meter's first step.
        duration_s: how long it lasts; 0 for a spike hits exactly one reading.
        magnitude: kind-specific size (see :class:`FaultKind`); None takes the kind's default.
        channel: target channel of a spike, drift, flatline or oscillation; None lets the
            simulator choose (for a flatline: every channel, a stuck meter). A channel the
            meter does not report is recorded in the ground truth but changes nothing.
        phase: 1..3 for sag, swell and phase loss; None means every phase for sag and swell
            and a random phase for phase loss.
    """

    kind: FaultKind
    at_s: float
    duration_s: float
    magnitude: float | None = None
    channel: str | None = None
    phase: int | None = None

    def __post_init__(self) -> None:
        if self.at_s < 0 or self.duration_s < 0:
            raise ValueError(f"{self.kind} fault: at_s and duration_s must not be negative")
        if self.phase is not None and not 1 <= self.phase <= 3:
            raise ValueError(f"{self.kind} fault: phase must be 1, 2 or 3, got {self.phase}")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Which faults one simulated meter suffers.

    Attributes:
        rate_per_hour: mean number of random faults per hour (a Poisson process).
        kinds: the kinds random faults are drawn from, uniformly.
        schedule: faults at fixed times, in addition to the random ones.
        default_magnitudes: random faults take their kind's default magnitude (see
            :data:`DEFAULT_MAGNITUDE`) instead of one drawn from a range; used to score
            detection at known fault sizes.
    """

    rate_per_hour: float = 0.0
    kinds: tuple[FaultKind, ...] = tuple(FaultKind)
    schedule: tuple[ScheduledFault, ...] = ()
    default_magnitudes: bool = field(default=False, metadata={"hidden": True})  # bench only

    def __post_init__(self) -> None:
        if not self.rate_per_hour >= 0:
            raise ValueError(f"rate_per_hour must not be negative, got {self.rate_per_hour}")


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """Ground truth: one fault that happened to one meter.

    Attributes:
        device: the meter's device id.
        kind: what went wrong.
        start_ts: UTC epoch seconds when the fault began (for a spike: the reading it hit).
        end_ts: UTC epoch seconds when it ended; readings in ``[start_ts, end_ts]`` show it.
        channels: the channels it affects directly; empty for a dropout (every channel).
        magnitude: the kind-specific size that was applied.
    """

    device: str
    kind: FaultKind
    start_ts: float
    end_ts: float
    channels: tuple[str, ...]
    magnitude: float


DEFAULT_MAGNITUDE: dict[FaultKind, float] = {
    FaultKind.SPIKE: 2.0,
    FaultKind.SAG: 0.3,
    FaultKind.SWELL: 0.15,
    FaultKind.DRIFT: 0.05,
    FaultKind.OSCILLATION: 0.2,
    FaultKind.FLATLINE: 0.0,
    FaultKind.DROPOUT: 0.0,
    FaultKind.PHASE_LOSS: 1.0,
    FaultKind.OVERHEATING: 15.0,
}
"""The magnitude a fault gets when none is given."""

# Ranges random faults draw from. Durations are drawn log-uniformly so that short events stay
# common, as they are on real networks (most sags last well under a minute).
_RANDOM_MAGNITUDE: dict[FaultKind, tuple[float, float]] = {
    FaultKind.SPIKE: (1.0, 4.0),
    FaultKind.SAG: (0.1, 0.5),
    FaultKind.SWELL: (0.05, 0.2),
    FaultKind.DRIFT: (0.02, 0.1),
    FaultKind.OSCILLATION: (0.1, 0.4),
    FaultKind.FLATLINE: (0.0, 0.0),
    FaultKind.DROPOUT: (0.0, 0.0),
    FaultKind.PHASE_LOSS: (1.0, 1.0),
    FaultKind.OVERHEATING: (5.0, 30.0),
}
RANDOM_DURATION_S: dict[FaultKind, tuple[float, float]] = {
    FaultKind.SPIKE: (0.0, 0.0),
    FaultKind.SAG: (2.0, 180.0),
    FaultKind.SWELL: (2.0, 180.0),
    FaultKind.DRIFT: (1800.0, 6 * 3600.0),
    FaultKind.OSCILLATION: (60.0, 900.0),
    FaultKind.FLATLINE: (60.0, 900.0),
    FaultKind.DROPOUT: (60.0, 900.0),
    FaultKind.PHASE_LOSS: (120.0, 3600.0),
    FaultKind.OVERHEATING: (1200.0, 3 * 3600.0),
}
"""The range random faults of each kind draw their duration from, in seconds."""

# Default targets when a fault names no channel, in order of preference.
_TARGETS: dict[FaultKind, tuple[str, ...]] = {
    FaultKind.SPIKE: ("current_l1", "current_l2", "current_l3", "active_power_l1", "active_power"),
    FaultKind.DRIFT: ("voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2"),
    FaultKind.OSCILLATION: ("current_l1", "current_l2", "current_l3", "active_power"),
}
_PHASE_QUANTITIES = ("current", "active_power", "reactive_power", "apparent_power")
_TOTALS = ("active_power", "reactive_power", "apparent_power")
_LINE_VOLTAGES = tuple(c for c, info in CHANNELS.items() if info.quantity == "voltage_ll")


@dataclass(frozen=True, slots=True)
class ActiveFault:
    """A fault realised for one meter, with everything needed to apply it at each step.

    Attributes:
        event: its ground truth.
        phases: zero-based phases it acts on (sag, swell, phase loss, load oscillation).
        channel: target of a reading-level fault; None for the whole meter, or for none.
        physical: True when an oscillation modulates the load rather than one reading.
        period_s: period of an oscillation.
        residual_v: voltage left on a lost phase.
    """

    event: FaultEvent
    phases: tuple[int, ...]
    channel: str | None
    physical: bool = False
    period_s: float = 60.0
    residual_v: float = 0.0

    @property
    def kind(self) -> FaultKind:
        """The fault's kind."""
        return self.event.kind


class FaultTimeline:
    """Turns a :class:`FaultPlan` into the faults active at each step of one meter.

    Args:
        device: the meter's device id, copied into every event.
        channels: the channels the meter reports.
        phases: 1 or 3.
        plan: the faults to inject.
        rng: the timeline's own random source, so that faults never shift the physics noise.
        on_fault: called once with each fault's event when it starts.

    Raises:
        ValueError: a scheduled fault names a phase the meter does not have.
    """

    def __init__(
        self,
        device: str,
        channels: Sequence[str],
        phases: int,
        plan: FaultPlan,
        rng: random.Random,
        on_fault: Callable[[FaultEvent], None] | None,
    ) -> None:
        for fault in plan.schedule:
            if fault.phase is not None and fault.phase > phases:
                raise ValueError(
                    f"{device}: {fault.kind} on phase {fault.phase} of a {phases}-phase meter"
                )
        self._device = device
        self._channels = tuple(channels)
        self._phases = phases
        self._rng = rng
        self._on_fault = on_fault
        self._rate_per_s = plan.rate_per_hour / 3600.0 if plan.kinds else 0.0
        self._kinds = plan.kinds
        self._default_magnitudes = plan.default_magnitudes
        self._pending = sorted(plan.schedule, key=lambda f: f.at_s)
        self._t0 = math.nan
        self._next_random_s = math.inf
        self._next_due = -math.inf
        self._active: list[ActiveFault] = []
        self.events: list[FaultEvent] = []
        """Every fault started so far, in order of start."""

    def advance(self, ts: float) -> list[ActiveFault]:
        """Start the faults due by ``ts`` and return those that act on the reading at ``ts``."""
        if ts >= self._next_due:
            self._start_due(ts)
        if not self._active:
            return self._active
        self._active = [f for f in self._active if f.event.end_ts >= ts]
        return self._active

    def _start_due(self, ts: float) -> None:
        if math.isnan(self._t0):
            self._t0 = ts
            self._next_random_s = self._gap()
        while self._pending and self._t0 + self._pending[0].at_s <= ts:
            self._start(self._pending.pop(0), ts)
        while self._t0 + self._next_random_s <= ts:
            self._start(self._draw(self._next_random_s), ts)
            self._next_random_s = round(self._next_random_s + self._gap(), 3)
        next_scheduled = self._pending[0].at_s if self._pending else math.inf
        self._next_due = self._t0 + min(next_scheduled, self._next_random_s)

    def _gap(self) -> float:
        if self._rate_per_s <= 0:
            return math.inf
        # Rounded to the millisecond so that written ground truth round-trips exactly.
        return round(self._rng.expovariate(self._rate_per_s), 3)

    def _draw(self, at_s: float) -> ScheduledFault:
        rng = self._rng
        kind = rng.choice(self._kinds)
        lo, hi = RANDOM_DURATION_S[kind]
        duration = round(math.exp(rng.uniform(math.log(lo), math.log(hi))), 3) if hi else 0.0
        lo, hi = _RANDOM_MAGNITUDE[kind]
        magnitude = round(rng.uniform(lo, hi), 4)
        if self._default_magnitudes:
            magnitude = DEFAULT_MAGNITUDE[kind]
        if kind is FaultKind.DRIFT and rng.random() < 0.5:
            magnitude = -magnitude  # sensors drift both ways
        channel = None
        if kind is FaultKind.FLATLINE and rng.random() < 0.5:
            channel = rng.choice(self._channels) if self._channels else None
        phase = None
        if kind in (FaultKind.SAG, FaultKind.SWELL) and rng.random() < 0.5:
            phase = rng.randrange(self._phases) + 1
        return ScheduledFault(kind, at_s, duration, magnitude, channel, phase)

    def _start(self, fault: ScheduledFault, ts: float) -> None:
        kind = fault.kind
        magnitude = DEFAULT_MAGNITUDE[kind] if fault.magnitude is None else fault.magnitude
        # A spike hits the first reading at or after its time; other faults follow the clock.
        start = ts if kind is FaultKind.SPIKE else self._t0 + fault.at_s
        phases = self._fault_phases(fault)
        channel = self._target(fault)
        physical, period_s, residual_v = False, 60.0, 0.0
        if kind is FaultKind.OSCILLATION:
            period_s = self._rng.uniform(20.0, 120.0)
            physical, phases = self._load_phases(channel)
        elif kind is FaultKind.PHASE_LOSS:
            residual_v = self._rng.uniform(0.5, 3.0)  # voltage induced by the live phases
        channels = self._affected(kind, channel, phases, physical)
        event = FaultEvent(self._device, kind, start, start + fault.duration_s, channels, magnitude)
        self.events.append(event)
        if self._on_fault is not None:
            self._on_fault(event)
        if event.end_ts >= ts:
            self._active.append(ActiveFault(event, phases, channel, physical, period_s, residual_v))

    def _fault_phases(self, fault: ScheduledFault) -> tuple[int, ...]:
        if fault.phase is not None:
            return (fault.phase - 1,)
        if fault.kind is FaultKind.PHASE_LOSS:
            return (self._rng.randrange(self._phases),)
        return tuple(range(self._phases))

    def _target(self, fault: ScheduledFault) -> str | None:
        if fault.channel is not None or fault.kind not in _TARGETS:
            return fault.channel
        present = [c for c in _TARGETS[fault.kind] if c in self._channels]
        if present:
            return self._rng.choice(present)
        return self._rng.choice(self._channels) if self._channels else None

    def _load_phases(self, channel: str | None) -> tuple[bool, tuple[int, ...]]:
        """Whether an oscillation of ``channel`` modulates the load, and on which phases."""
        if channel in _TOTALS:
            return True, tuple(range(self._phases))
        for p in range(self._phases):
            if any(channel == f"{q}_l{p + 1}" for q in _PHASE_QUANTITIES):
                return True, (p,)
        return False, ()

    def _affected(
        self, kind: FaultKind, channel: str | None, hit: tuple[int, ...], physical: bool
    ) -> tuple[str, ...]:
        """The channels a fault changes directly, in the driver's order."""
        if kind is FaultKind.DROPOUT:
            return ()
        if kind is FaultKind.FLATLINE and channel is None:
            return self._channels
        names = [f"l{p + 1}" for p in hit]
        if kind is FaultKind.OVERHEATING:
            wanted = {"temperature"}
        elif physical:
            wanted = {f"{q}_{n}" for q in _PHASE_QUANTITIES for n in names}
            wanted |= {*_TOTALS, "current_n"}
        elif kind in (FaultKind.SAG, FaultKind.SWELL, FaultKind.PHASE_LOSS):
            wanted = {f"voltage_{n}" for n in names}
            if self._phases > 1:
                wanted |= {c for c in _LINE_VOLTAGES if any(n in c for n in names)}
            if kind is FaultKind.PHASE_LOSS:
                wanted |= {f"{q}_{n}" for q in _PHASE_QUANTITIES for n in names}
        else:
            wanted = {channel} if channel is not None else set()
        return tuple(c for c in self._channels if c in wanted)
