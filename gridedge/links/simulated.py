"""A link to a simulated meter, for development, demos, benchmarks and tests."""

from __future__ import annotations

import time
from collections.abc import Callable

from gridedge.errors import DeviceUnreachableError
from gridedge.log import get_logger
from gridedge.simulator.faults import FaultEvent
from gridedge.simulator.physics import MeterSimulator

_log = get_logger("simulator")


class SimulatedLink:
    """Reads a :class:`~gridedge.simulator.physics.MeterSimulator` at the clock's time.

    Args:
        device: the meter's device id.
        simulator: the simulated meter.
        clock: wall-clock UTC epoch seconds; replaced in tests to step time by hand.
    """

    def __init__(
        self, device: str, simulator: MeterSimulator, clock: Callable[[], float] = time.time
    ) -> None:
        self._device = device
        self._simulator = simulator
        self._clock = clock

    @property
    def device(self) -> str:
        """The meter's device id."""
        return self._device

    async def read(self) -> dict[str, float]:
        """Read every canonical channel of the simulated meter.

        Raises:
            DeviceUnreachableError: the meter is in a simulated dropout.
        """
        values = self._simulator.step(self._clock())
        if values is None:
            raise DeviceUnreachableError(self._device, "no answer (simulated dropout)")
        return values


def log_fault(event: FaultEvent) -> None:
    """Log a simulated fault as it starts (``simulator.fault``); usable as ``on_fault``."""
    _log.info(
        "simulator.fault",
        device=event.device,
        kind=event.kind.value,
        start_ts=event.start_ts,
        end_ts=event.end_ts,
        channels=list(event.channels),
        magnitude=event.magnitude,
    )
