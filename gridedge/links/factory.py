"""Turn the configured meters into links, sharing one bus per physical Modbus bus."""

from __future__ import annotations

from contextlib import AsyncExitStack

from gridedge.config import Config, MeterConfig, SimulatedLinkConfig
from gridedge.links import Link
from gridedge.links.modbus import ModbusBus, open_modbus_bus
from gridedge.links.modbuslink import ModbusLink
from gridedge.links.simulated import SimulatedLink, log_fault
from gridedge.simulator.physics import MeterSimulator


async def open_links(config: Config, stack: AsyncExitStack) -> dict[str, Link]:
    """One link per configured meter, by meter id.

    Meters on the same bus (``host:port`` or serial port) share one :class:`ModbusBus`, entered
    on ``stack`` so the connection closes when the stack unwinds. Nothing connects here: the
    first read does, so a bus that is down at start-up only makes its meters go offline.
    """
    buses: dict[str, ModbusBus] = {}
    links: dict[str, Link] = {}
    for meter in config.meters:
        link = meter.link
        if isinstance(link, SimulatedLinkConfig):
            links[meter.id] = _simulated(meter, link, config)
            continue
        bus = buses.get(link.bus)
        if bus is None:
            bus = buses[link.bus] = await stack.enter_async_context(open_modbus_bus(link))
        links[meter.id] = ModbusLink(
            meter.id,
            config.drivers[meter.driver],
            bus,
            unit_id=link.unit_id,
            timeout_s=link.timeout_s,
            retries=link.retries,
        )
    return links


def _simulated(meter: MeterConfig, link: SimulatedLinkConfig, config: Config) -> SimulatedLink:
    driver = config.drivers[meter.driver]
    sim = MeterSimulator(meter.id, driver, link.params, link.faults, link.seed, on_fault=log_fault)
    return SimulatedLink(meter.id, sim)
