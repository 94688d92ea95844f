"""A fake register bus and small drivers for the Modbus unit tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gridedge.drivers import BUILTIN_DRIVERS_DIR, Channel, DataType, Driver, Nominal, RegisterTable
from gridedge.drivers import load_drivers as _load_drivers
from gridedge.errors import LinkError

Source = Callable[[int, RegisterTable, int, int], list[int]]


@dataclass
class Call:
    """One request the fake bus received."""

    unit_id: int
    table: RegisterTable
    address: int
    count: int


@dataclass
class FakeBus:
    """A bus that answers from ``source``, or raises the next scripted error first."""

    source: Source
    errors: list[LinkError | None] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "fake"

    async def read(
        self,
        device: str,
        unit_id: int,
        table: RegisterTable,
        address: int,
        count: int,
        *,
        timeout_s: float,
    ) -> list[int]:
        self.calls.append(Call(unit_id, table, address, count))
        if self.errors:
            error = self.errors.pop(0)
            if error is not None:
                raise error
        return list(self.source(unit_id, table, address, count))


def builtin(driver_id: str) -> Driver:
    """A driver shipped in drivers/."""
    return _load_drivers([BUILTIN_DRIVERS_DIR])[driver_id]


def sunspec_style() -> Driver:
    """Holding-register int16 values with common scale-factor registers, in two blocks."""

    def ch(name: str, unit: str, address: int, sf: int, dtype: DataType) -> Channel:
        return Channel(
            name=name,
            unit=unit,
            table=RegisterTable.HOLDING,
            address=address,
            type=dtype,
            scale_factor_address=sf,
        )

    return Driver(
        id="test-sunspec",
        manufacturer="Test",
        model="SF",
        phases=1,
        source="tests",
        nominal=Nominal(),
        channels=(
            ch("voltage_l1", "V", 40010, 40012, DataType.INT16),
            ch("frequency", "Hz", 40011, 40013, DataType.UINT16),
            ch("active_power", "W", 40100, 40012, DataType.INT16),
            ch("energy_import", "kWh", 40101, 40103, DataType.UINT32),
        ),
        max_registers_per_request=50,
        max_gap_registers=0,
    )
