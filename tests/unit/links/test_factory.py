"""open_links: one bus object per physical bus, simulated links for simulated meters."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from gridedge.config import parse_config
from gridedge.links.factory import open_links
from gridedge.links.modbus.link import ModbusLink
from gridedge.links.simulated import SimulatedLink


def _meter(meter_id: str, link: dict[str, Any]) -> dict[str, Any]:
    return {"id": meter_id, "driver": "eastron-sdm630", "link": link}


async def test_meters_on_one_bus_share_it_and_other_buses_get_their_own(tmp_path: Path) -> None:
    """Two units on host a share one bus object; host b gets another; nothing connects yet."""
    doc = {
        "meters": [
            _meter("a1", {"type": "modbus-tcp", "host": "127.0.0.1", "port": 9, "unit_id": 1}),
            _meter("a2", {"type": "modbus-tcp", "host": "127.0.0.1", "port": 9, "unit_id": 2}),
            _meter("b1", {"type": "rtu-over-tcp", "host": "127.0.0.2", "port": 9}),
            _meter("sim", {"type": "simulated", "seed": 4}),
        ]
    }
    config = parse_config(doc, source="t.toml", base_dir=tmp_path)
    async with AsyncExitStack() as stack:
        links = await open_links(config.meters, config.drivers, stack)
        a1, a2, b1 = links["a1"], links["a2"], links["b1"]
        assert isinstance(a1, ModbusLink)
        assert isinstance(a2, ModbusLink)
        assert isinstance(b1, ModbusLink)
        assert a1.bus is a2.bus
        assert a1.bus is not b1.bus
        assert (a1.unit_id, a2.unit_id) == (1, 2)
        assert a1.bus.name == "127.0.0.1:9"
        assert isinstance(links["sim"], SimulatedLink)
        assert {link.device for link in links.values()} == {"a1", "a2", "b1", "sim"}
