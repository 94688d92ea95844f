"""Turn the configured meters into links, sharing one bus per physical Modbus bus."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack

from gridedge.drivers import Driver
from gridedge.errors import DriverError
from gridedge.links import Link
from gridedge.links.modbus.bus import ModbusBus, open_modbus_bus
from gridedge.links.modbus.link import ModbusLink
from gridedge.links.modbus.stats import BusStats
from gridedge.links.modbus.sunspec import SunSpecLink
from gridedge.links.settings import MeterConfig, SimulatedLinkConfig
from gridedge.links.simulated import SimulatedLink, log_fault
from gridedge.simulator.physics import MeterSimulator


async def open_links(
    meters: Sequence[MeterConfig],
    drivers: Mapping[str, Driver],
    stack: AsyncExitStack,
    bus_stats: dict[str, BusStats] | None = None,
) -> dict[str, Link]:
    """One link per configured meter, by meter id.

    Meters on the same bus (``host:port`` or serial port) share one :class:`ModbusBus`, entered
    on ``stack`` so the connection closes when the stack unwinds. Nothing connects here: the
    first read does, so a bus that is down at start-up only makes its meters go offline. Each
    bus's counters are registered in ``bus_stats`` (by bus identity) when given.
    """
    buses: dict[str, ModbusBus] = {}
    links: dict[str, Link] = {}
    for meter in meters:
        link = meter.link
        if isinstance(link, SimulatedLinkConfig):
            links[meter.id] = _simulated(meter, link, drivers[meter.driver])
            continue
        bus = buses.get(link.bus)
        if bus is None:
            bus = buses[link.bus] = await stack.enter_async_context(open_modbus_bus(link))
            if bus_stats is not None:
                bus_stats[link.bus] = bus.stats
        driver = drivers[meter.driver]
        if link.sunspec:
            if driver.sunspec is None:
                raise DriverError(
                    f"meters.{meter.id}.driver",
                    f"sunspec = true needs a SunSpec driver ([sunspec] table), not {driver.id}",
                )
            links[meter.id] = SunSpecLink(
                meter.id,
                driver,
                bus,
                unit_id=link.unit_id,
                timeout_s=link.timeout_s,
                retries=link.retries,
                base=link.sunspec_base,
                index=link.sunspec_index,
            )
            continue
        links[meter.id] = ModbusLink(
            meter.id,
            driver,
            bus,
            unit_id=link.unit_id,
            timeout_s=link.timeout_s,
            retries=link.retries,
        )
    return links


def _simulated(meter: MeterConfig, link: SimulatedLinkConfig, driver: Driver) -> SimulatedLink:
    sim = MeterSimulator(meter.id, driver, link.params, link.faults, link.seed, on_fault=log_fault)
    return SimulatedLink(meter.id, sim)
