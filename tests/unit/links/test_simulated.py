"""The simulated link: readings at the clock's time, dropouts as unreachable, fault logging."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from gridedge.errors import DeviceUnreachableError
from gridedge.links import Link
from gridedge.links.simulated import SimulatedLink, log_fault
from gridedge.simulator.faults import FaultEvent, FaultKind, ScheduledFault
from tests.unit.simulator.fixtures import START_TS, simulator


def _clock(stamps: list[float]) -> Callable[[], float]:
    """A clock that returns ``stamps`` one call at a time."""
    it = iter(stamps)
    return lambda: next(it)


async def test_read_returns_the_simulator_reading_at_the_clock_time() -> None:
    """Each read steps the simulator to the clock's current time."""
    stamps = [START_TS, START_TS + 10.0, START_TS + 25.0]
    link: Link = SimulatedLink("m1", simulator(), clock=_clock(stamps))
    twin = simulator()
    for ts in stamps:
        assert await link.read() == twin.step(ts)
    assert link.device == "m1"


async def test_read_raises_device_unreachable_during_a_dropout() -> None:
    """A simulated dropout surfaces as DeviceUnreachableError naming the device."""
    dropout = ScheduledFault(FaultKind.DROPOUT, at_s=10.0, duration_s=10.0)
    stamps = [START_TS, START_TS + 10.0, START_TS + 20.0, START_TS + 30.0]
    link = SimulatedLink("meter-7", simulator(faults=(dropout,)), clock=_clock(stamps))
    assert await link.read()
    for _ in range(2):
        with pytest.raises(DeviceUnreachableError) as info:
            await link.read()
        assert info.value.device == "meter-7"
        assert "dropout" in str(info.value)
    assert await link.read()


def test_log_fault_logs_the_event_fields_at_info() -> None:
    """log_fault writes one simulator.fault event carrying the ground truth."""
    event = FaultEvent("m1", FaultKind.SAG, 100.0, 160.0, ("voltage_l1",), 0.3)
    with capture_logs() as logs:
        log_fault(event)
    assert logs == [
        {
            "event": "simulator.fault",
            "log_level": "info",
            "component": "simulator",
            "device": "m1",
            "kind": "sag",
            "start_ts": 100.0,
            "end_ts": 160.0,
            "channels": ["voltage_l1"],
            "magnitude": 0.3,
        }
    ]
