"""Meters sharing a slow Modbus TCP bus: each sample is stamped when its read went out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from gridedge.drivers import RegisterTable
from gridedge.links.modbus.bus import open_modbus_bus
from gridedge.links.modbus.emulator import Emulator, EmulatorSettings
from gridedge.links.modbus.link import ModbusLink
from gridedge.links.modbus.server import serve_modbus
from gridedge.links.modbus.settings import ModbusTcpLinkConfig, TcpEndpoint
from gridedge.model import Record, Sample
from gridedge.poll import MeterState, Schedule, poll_forever, spread_phases
from tests.helpers import until
from tests.unit.links.modbus.fakes import builtin

pytestmark = pytest.mark.integration

ANSWER_S = 0.15
"""How long the server takes per request: a slow serial gateway."""


class _Samples:
    def __init__(self) -> None:
        self.samples: list[Sample] = []

    async def put(self, records: Sequence[Record]) -> None:
        self.samples.extend(r for r in records if isinstance(r, Sample))


async def test_a_read_that_waited_for_the_bus_is_stamped_when_it_went_out() -> None:
    """Two meters due at the same instant on one slow bus: the second is stamped when its
    first request went out, after the server answered the first meter's, not when both were due.
    """
    driver = builtin("eastron-sdm630")
    emulator = Emulator(EmulatorSettings(driver=driver, unit_ids=(1, 2)), clock=time.time)
    answered: dict[int, float] = {}

    def slow(unit_id: int, table: RegisterTable, address: int, count: int) -> list[int]:
        time.sleep(ANSWER_S)  # blocks the loop like a slow line: nothing else moves meanwhile
        answered.setdefault(unit_id, time.time())
        return list(emulator.read(unit_id, table, address, count))

    sink = _Samples()
    async with serve_modbus(slow, TcpEndpoint("127.0.0.1", 0)) as where:
        config = ModbusTcpLinkConfig(host="127.0.0.1", port=int(where.rpartition(":")[2]))
        async with open_modbus_bus(config) as bus:
            links = [
                ModbusLink(f"m{u}", driver, bus, unit_id=u, timeout_s=5.0, retries=0)
                for u in (1, 2)
            ]
            due = time.time()
            tasks = [
                asyncio.create_task(
                    poll_forever(
                        link,
                        Schedule(interval_s=30.0, phase_s=0.0),
                        sink,
                        MeterState(link.device),
                        channels=len(driver.channel_names),
                    )
                )
                for link in links
            ]
            try:
                await until(lambda: len(sink.samples) >= 2, 20, "a sample of each meter")
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    first, second = sorted(sink.samples[:2], key=lambda s: s.ts)
    first_unit = int(first.device[1:])
    assert first.ts >= due
    # The bus takes one request at a time (the meters' requests interleave): the second
    # meter's first request went out once the server had answered the first meter's first.
    assert second.ts >= answered[first_unit]
    assert second.ts - first.ts >= ANSWER_S


def test_meters_on_one_bus_spread_evenly_by_position_and_buses_apart() -> None:
    """Four meters on a bus take a quarter of the interval each; another bus is offset."""
    meters = [(f"m{i}", "10.0.0.1:502", 10.0) for i in range(4)]
    meters += [("n0", "10.0.0.2:502", 10.0)]
    phases = spread_phases(meters)
    bus_a = sorted(phases[f"m{i}"] for i in range(4))
    gaps = [(b - a) % 10.0 for a, b in zip(bus_a, bus_a[1:] + bus_a[:1], strict=True)]
    assert gaps == pytest.approx([2.5] * 4)
