"""Meter drivers: one TOML file per meter model, loaded into typed, validated values.

A driver maps a meter model's Modbus registers onto the canonical channel vocabulary
(:mod:`gridedge.channels`). The file format is described in the README ("Adding a driver") and
in the header of every shipped driver file. :func:`load_drivers` reads whole folders, so a
user's own folder can add models or override a built-in one by reusing its id.
"""

from gridedge.drivers.loader import BUILTIN_DRIVERS_DIR, load_driver, load_drivers
from gridedge.drivers.types import (
    Channel,
    Computed,
    ComputeOp,
    DataType,
    Driver,
    Nominal,
    Order,
    RegisterTable,
    SunSpecModel,
)

__all__ = [
    "BUILTIN_DRIVERS_DIR",
    "Channel",
    "ComputeOp",
    "Computed",
    "DataType",
    "Driver",
    "Nominal",
    "Order",
    "RegisterTable",
    "SunSpecModel",
    "load_driver",
    "load_drivers",
]
