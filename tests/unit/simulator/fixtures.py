"""Drivers and helpers for the simulator tests."""

from __future__ import annotations

from gridedge.channels import CHANNELS
from gridedge.drivers import Channel, DataType, Driver, Nominal, RegisterTable
from gridedge.simulator.faults import FaultEvent, FaultPlan, ScheduledFault
from gridedge.simulator.physics import MeterSimulator, SimulationParams

START_TS = 1767571200.0
"""Monday 2026-01-05 00:00:00 UTC."""
DAY_S = 86400.0

Reading = dict[str, float]


def make_driver(names: tuple[str, ...], phases: int, driver_id: str) -> Driver:
    """A float32 input-register driver reporting ``names``, addresses 2 apart."""
    channels = tuple(
        Channel(
            name=name,
            unit=CHANNELS[name].unit if name in CHANNELS else "",
            table=RegisterTable.INPUT,
            address=2 * i,
            type=DataType.FLOAT32,
        )
        for i, name in enumerate(names)
    )
    return Driver(
        id=driver_id,
        manufacturer="Test",
        model=driver_id,
        phases=phases,
        source="tests",
        nominal=Nominal(),
        channels=channels,
    )


THREE_PHASE = make_driver(tuple(CHANNELS), 3, "test-3p")
SINGLE_PHASE_NAMES = (
    *(n for n, info in CHANNELS.items() if n.endswith("_l1") and info.quantity != "voltage_ll"),
    "active_power",
    "reactive_power",
    "apparent_power",
    "power_factor",
    "frequency",
    "energy_import",
    "energy_export",
    "reactive_energy_import",
    "reactive_energy_export",
)
SINGLE_PHASE = make_driver(SINGLE_PHASE_NAMES, 1, "test-1p")


def simulator(
    driver: Driver = THREE_PHASE,
    *,
    seed: int = 1,
    params: SimulationParams | None = None,
    plan: FaultPlan | None = None,
    faults: tuple[ScheduledFault, ...] = (),
    events: list[FaultEvent] | None = None,
) -> MeterSimulator:
    """A simulated meter; ``faults`` is a shortcut for a plan with only a schedule."""
    if plan is None:
        plan = FaultPlan(schedule=faults)
    on_fault = events.append if events is not None else None
    return MeterSimulator("m1", driver, params or SimulationParams(), plan, seed, on_fault)


def times(count: int, interval_s: float = 10.0, start: float = START_TS) -> list[float]:
    """``count`` timestamps ``interval_s`` apart from ``start``."""
    return [start + k * interval_s for k in range(count)]


def run(sim: MeterSimulator, stamps: list[float]) -> list[Reading | None]:
    """Step ``sim`` through ``stamps``."""
    return [sim.step(ts) for ts in stamps]


def readings(sim: MeterSimulator, stamps: list[float]) -> list[Reading]:
    """Step ``sim`` through ``stamps``, which must all be answered."""
    out = run(sim, stamps)
    answered = [r for r in out if r is not None]
    assert len(answered) == len(out), "unexpected dropout"
    return answered
