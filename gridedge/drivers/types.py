"""The typed values a driver file becomes: tables, data types, channels, computed channels."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class RegisterTable(StrEnum):
    """The four Modbus data tables."""

    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"
    DISCRETE = "discrete"


class DataType(StrEnum):
    """How a channel's raw value is stored in registers (or bits, for ``bool``)."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BOOL = "bool"

    @property
    def registers(self) -> int:
        """How many 16-bit registers (or bits, for bool) one value occupies."""
        return _REGISTERS[self]

    @property
    def is_float(self) -> bool:
        """True for the IEEE 754 types."""
        return self in (DataType.FLOAT32, DataType.FLOAT64)


_REGISTERS = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
    DataType.BOOL: 1,
}


class Order(StrEnum):
    """Byte order within a register, or word order across registers."""

    BIG = "big"
    LITTLE = "little"


@dataclass(frozen=True, slots=True)
class Channel:
    """One value a meter model reports.

    ``value = raw * scale + offset`` (and times ``10 ** sf`` when ``scale_factor_address`` names
    a SunSpec-style scale-factor register), in the canonical unit of ``name``.

    ``na`` lists "not available" sentinels: raw bit patterns, written as the unsigned integer
    the registers hold in big-endian order (``0x8000`` for an int16, ``0xFFFFFFFF`` for a
    uint32), or NaN for any NaN of a float type. A channel whose registers hold one is left out
    of the sample (which the poll loop then marks partial), and so is a channel whose scale
    factor register holds the SunSpec sentinel ``0x8000``.
    """

    name: str
    unit: str
    table: RegisterTable
    address: int
    type: DataType
    scale: float = 1.0
    offset: float = 0.0
    byte_order: Order = Order.BIG
    word_order: Order = Order.BIG
    scale_factor_address: int | None = None
    min: float | None = None
    max: float | None = None
    na: tuple[int, ...] = ()
    na_nan: bool = False

    @property
    def count(self) -> int:
        """Registers (or bits) occupied, starting at ``address``."""
        return self.type.registers


class ComputeOp(StrEnum):
    """How a computed channel combines its two operands."""

    SUM = "sum"
    DIFFERENCE = "difference"


@dataclass(frozen=True, slots=True)
class Computed:
    """A channel derived from two register channels: ``a + b`` or ``a - b``.

    It is missing whenever either operand is (a sentinel, a decode error, a failed read).
    """

    name: str
    unit: str
    op: ComputeOp
    operands: tuple[str, str]
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True)
class SunSpecModel:
    """Where a SunSpec driver's addresses assume its model to be.

    Attributes:
        model: the SunSpec model id the channels belong to.
        header_address: the address of the model's ID register that every channel address
            assumes; discovery shifts them to wherever the device has the model.
    """

    model: int
    header_address: int


@dataclass(frozen=True, slots=True)
class Nominal:
    """The ratings a meter model is built for; the simulator sizes its load from these."""

    voltage_v: float = 230.0
    frequency_hz: float = 50.0
    current_a: float = 100.0


@dataclass(frozen=True, slots=True)
class Driver:
    """A validated meter model."""

    id: str
    manufacturer: str
    model: str
    phases: int
    source: str
    nominal: Nominal
    channels: tuple[Channel, ...]
    max_registers_per_request: int = 100
    max_gap_registers: int = 10
    path: Path | None = None
    aliases: tuple[str, ...] = ()
    """Other names the same hardware is sold under (``"Kostal KEM-P"``)."""
    computed: tuple[Computed, ...] = ()
    sunspec: SunSpecModel | None = None

    def channel(self, name: str) -> Channel:
        """The channel called ``name`` (KeyError when the driver has none)."""
        for ch in self.channels:
            if ch.name == name:
                return ch
        raise KeyError(name)

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Channel names in file order, computed channels last."""
        return tuple(ch.name for ch in self.channels) + tuple(c.name for c in self.computed)
