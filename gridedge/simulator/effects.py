"""What active faults do: to the physics of each phase, and to the readings a meter reports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gridedge.simulator.faults import ActiveFault, FaultKind


@dataclass(slots=True)
class PhaseEffects:
    """How active faults change the physics of each phase at one step."""

    voltage: list[float]
    """Supply voltage multiplier per phase."""
    current: list[float]
    """Current multiplier per phase."""
    lost: list[float]
    """Residual voltage of a lost phase, or 0.0 when the phase is live."""
    heating_c_per_h: float = 0.0


def phase_effects(active: Sequence[ActiveFault], ts: float) -> PhaseEffects:
    """Combine the physical effects of the active faults at ``ts``."""
    effects = PhaseEffects([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    for fault in active:
        kind = fault.kind
        magnitude = fault.event.magnitude
        if kind is FaultKind.SAG or kind is FaultKind.SWELL:
            factor = max(0.0, 1.0 - magnitude if kind is FaultKind.SAG else 1.0 + magnitude)
            for p in fault.phases:
                effects.voltage[p] *= factor
                # A mix of constant-impedance and constant-power loads: current follows the
                # voltage only partly.
                effects.current[p] *= 1.0 + 0.3 * (factor - 1.0)
        elif kind is FaultKind.PHASE_LOSS:
            for p in fault.phases:
                effects.lost[p] = fault.residual_v
        elif kind is FaultKind.OSCILLATION and fault.physical:
            factor = 1.0 + magnitude * _wave(fault, ts)
            for p in fault.phases:
                effects.current[p] *= factor
        elif kind is FaultKind.OVERHEATING:
            effects.heating_c_per_h += magnitude
    return effects


def distort_readings(active: Sequence[ActiveFault], values: dict[str, float], ts: float) -> None:
    """Apply the reading-level faults (spike, drift, oscillation of a reading) in place."""
    for fault in active:
        channel = fault.channel
        if channel is None or channel not in values:
            continue
        kind = fault.kind
        magnitude = fault.event.magnitude
        if kind is FaultKind.SPIKE:
            values[channel] *= 1.0 + magnitude
        elif kind is FaultKind.DRIFT:
            values[channel] *= 1.0 + magnitude * (ts - fault.event.start_ts) / 3600.0
        elif kind is FaultKind.OSCILLATION and not fault.physical:
            values[channel] *= 1.0 + magnitude * _wave(fault, ts)


def frozen_channels(active: Sequence[ActiveFault]) -> tuple[bool, set[str]]:
    """Which readings repeat their last value: (whole meter stuck, single stuck channels)."""
    stuck: set[str] = set()
    for fault in active:
        if fault.kind is FaultKind.FLATLINE:
            if fault.channel is None:
                return True, stuck
            stuck.add(fault.channel)
    return False, stuck


def _wave(fault: ActiveFault, ts: float) -> float:
    return math.sin(2.0 * math.pi * (ts - fault.event.start_ts) / fault.period_s)
