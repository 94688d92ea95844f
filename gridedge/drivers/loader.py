"""Reading and validating driver files (the format is in the README, "Adding a driver")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gridedge.drivers.keys import (
    check_name,
    read_aliases,
    read_computed,
    read_na,
    read_sunspec,
    read_unit,
)
from gridedge.drivers.types import Channel, DataType, Driver, Nominal, Order, RegisterTable
from gridedge.errors import DriverError
from gridedge.tomlread import Table, load_toml

# --- loading -------------------------------------------------------------------------------


def _builtin_drivers_dir() -> Path:
    # A wheel carries the driver files inside the package (pyproject's force-include puts them
    # in gridedge/_drivers); a source checkout keeps them in the top-level drivers/ folder.
    package = Path(__file__).resolve().parent.parent
    packaged = package / "_drivers"
    if packaged.is_dir():
        return packaged
    return package.parent / "drivers"


BUILTIN_DRIVERS_DIR: Path = _builtin_drivers_dir()
"""The folder holding the driver files shipped with gridedge."""

_MAX_ADDRESS = 65535
_BIT_TABLES = frozenset({RegisterTable.COIL, RegisterTable.DISCRETE})


@dataclass(frozen=True, slots=True)
class _ModbusDefaults:
    """The ``[modbus]`` table: defaults for every channel plus the request limits."""

    byte_order: Order
    word_order: Order
    table: RegisterTable
    max_registers: int
    max_gap: int


def load_driver(path: Path) -> Driver:
    """Read and validate one driver file.

    Args:
        path: a ``<id>.toml`` file.

    Returns:
        The validated driver, remembering ``path``.

    Raises:
        DriverError: the file is missing, not TOML, or invalid; ``path`` of the error is the
            dotted key (``channels.voltage_l1.type``) and ``source`` the file.
    """
    root = Table(load_toml(path, DriverError), source=str(path), error=DriverError)
    head = root.table("driver", required=True)
    driver_id: str = head.string("id")
    if driver_id != path.stem:
        raise head.fail("id", f"must equal the file name {path.stem!r}, got {driver_id!r}")
    manufacturer: str = head.string("manufacturer")
    model: str = head.string("model")
    source: str = head.string("source")
    phases: int = head.integer("phases")
    if phases not in (1, 3):
        raise head.fail("phases", f"expected 1 or 3, got {phases}")
    aliases = read_aliases(head)
    head.finish()
    nominal = _read_nominal(root.table("nominal", required=True))
    modbus = _read_modbus(root.table("modbus"))
    channels = _read_channels(root.table("channels", required=True), modbus, phases)
    computed = read_computed(root.table("computed"), channels, phases)
    sunspec = read_sunspec(root.table("sunspec"))
    root.finish()
    return Driver(
        id=driver_id,
        manufacturer=manufacturer,
        model=model,
        phases=phases,
        source=source,
        nominal=nominal,
        channels=channels,
        max_registers_per_request=modbus.max_registers,
        max_gap_registers=modbus.max_gap,
        path=path,
        aliases=aliases,
        computed=computed,
        sunspec=sunspec,
    )


def load_drivers(dirs: Sequence[Path]) -> dict[str, Driver]:
    """Load every ``*.toml`` driver in ``dirs``, keyed by id.

    A later folder wins over an earlier one for the same id: that is how a user's own folder,
    listed after :data:`BUILTIN_DRIVERS_DIR`, overrides a built-in model.

    Raises:
        DriverError: a folder does not exist (``source`` is None, the problem names the
            folder), or a file in it is invalid.
    """
    drivers: dict[str, Driver] = {}
    for folder in dirs:
        if not folder.is_dir():
            raise DriverError("", f"driver folder not found: {folder}")
        for path in sorted(folder.glob("*.toml")):
            driver = _load_unchanged(path)
            drivers[driver.id] = driver
    return drivers


# Drivers read before, by path and content: every config check reads the whole built-in
# library (45 files, about 0.1 s to parse) though it rarely changes within one process.
_read_before: dict[tuple[Path, bytes], Driver] = {}
_READ_BEFORE_MAX = 256


def _load_unchanged(path: Path) -> Driver:
    """:func:`load_driver`, answered from memory for a file whose bytes were read before."""
    try:
        key = (path, path.read_bytes())
    except OSError:
        return load_driver(path)  # it names the problem
    driver = _read_before.get(key)
    if driver is None:
        driver = load_driver(path)
        if len(_read_before) >= _READ_BEFORE_MAX:
            _read_before.clear()
        _read_before[key] = driver
    return driver


def _read_nominal(section: Table) -> Nominal:
    nominal = Nominal(
        voltage_v=section.number("voltage_v", positive=True),
        frequency_hz=section.number("frequency_hz", min=45.0, max=65.0),
        current_a=section.number("current_a", positive=True),
    )
    section.finish()
    return nominal


def _read_modbus(section: Table) -> _ModbusDefaults:
    defaults = _ModbusDefaults(
        byte_order=section.choice("byte_order", Order, Order.BIG),
        word_order=section.choice("word_order", Order, Order.BIG),
        table=section.choice("default_table", RegisterTable, RegisterTable.HOLDING),
        # 125 is the Modbus limit for reading registers (function codes 3 and 4).
        max_registers=section.integer("max_registers_per_request", 100, min=1, max=125),
        max_gap=section.integer("max_gap_registers", 10, min=0),
    )
    section.finish()
    return defaults


def _read_channels(section: Table, modbus: _ModbusDefaults, phases: int) -> tuple[Channel, ...]:
    channels = tuple(_read_channel(name, spec, modbus, phases) for name, spec in section.items())
    if not channels:
        raise section.fail("", "a driver needs at least one channel")
    _check_overlaps(channels, section)
    return channels


def _read_channel(name: str, spec: Table, modbus: _ModbusDefaults, phases: int) -> Channel:
    check_name(name, spec, phases)
    dtype: DataType = spec.choice("type", DataType)
    table: RegisterTable = spec.choice("table", RegisterTable, modbus.table)
    _check_type_fits(spec, dtype, table, modbus)
    address: int = spec.integer("address", min=0, max=_MAX_ADDRESS)
    if address + dtype.registers - 1 > _MAX_ADDRESS:
        raise spec.fail(
            "address", f"{dtype.value} at {address} runs past the last address {_MAX_ADDRESS}"
        )
    scale: float = spec.number("scale", 1.0)
    if scale == 0:
        raise spec.fail("scale", "must not be 0")
    low: float | None = spec.number("min", None)
    high: float | None = spec.number("max", None)
    if low is not None and high is not None and low >= high:
        raise spec.fail("max", f"must be greater than min ({low}), got {high}")
    na, na_nan = read_na(spec, dtype)
    channel = Channel(
        name=name,
        unit=read_unit(name, spec),
        table=table,
        address=address,
        type=dtype,
        scale=scale,
        offset=spec.number("offset", 0.0),
        byte_order=spec.choice("byte_order", Order, modbus.byte_order),
        word_order=spec.choice("word_order", Order, modbus.word_order),
        scale_factor_address=_read_scale_factor(spec, table, address, dtype),
        min=low,
        max=high,
        na=na,
        na_nan=na_nan,
    )
    spec.finish()
    return channel


def _check_type_fits(
    spec: Table, dtype: DataType, table: RegisterTable, modbus: _ModbusDefaults
) -> None:
    if dtype is DataType.BOOL and table not in _BIT_TABLES:
        raise spec.fail(
            "type", f"'bool' is read from table 'coil' or 'discrete', not {table.value!r}"
        )
    if dtype is not DataType.BOOL and table in _BIT_TABLES:
        raise spec.fail(
            "type", f"table {table.value!r} holds single bits: use 'bool', not {dtype.value!r}"
        )
    if dtype.registers > modbus.max_registers:
        raise spec.fail(
            "type",
            f"{dtype.value} needs {dtype.registers} registers, more than "
            f"modbus.max_registers_per_request ({modbus.max_registers})",
        )


def _read_scale_factor(
    spec: Table, table: RegisterTable, address: int, dtype: DataType
) -> int | None:
    sf: int | None = spec.integer("scale_factor_address", None, min=0, max=_MAX_ADDRESS)
    if sf is None:
        return None
    if table in _BIT_TABLES:
        raise spec.fail(
            "scale_factor_address", f"table {table.value!r} has no scale-factor registers"
        )
    if address <= sf < address + dtype.registers:
        raise spec.fail("scale_factor_address", "points inside the channel's own registers")
    return sf


def _check_overlaps(channels: tuple[Channel, ...], section: Table) -> None:
    # Sorted by table and address, a channel overlaps an earlier one exactly when it starts
    # before the furthest end seen so far in its table; the stable sort blames the later one.
    reach: Channel | None = None
    for ch in sorted(channels, key=lambda c: (c.table, c.address)):
        if (
            reach is not None
            and reach.table == ch.table
            and ch.address < reach.address + reach.count
        ):
            raise DriverError(
                f"{section.key_path(ch.name)}.address",
                f"registers {ch.address}..{ch.address + ch.count - 1} overlap channel "
                f"{reach.name!r} ({reach.address}..{reach.address + reach.count - 1}) "
                f"in table {ch.table.value!r}",
                section.source,
            )
        if (
            reach is None
            or reach.table != ch.table
            or ch.address + ch.count > reach.address + reach.count
        ):
            reach = ch
