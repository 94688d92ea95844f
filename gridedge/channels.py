"""The canonical channel vocabulary shared by every driver, the simulator and the analytics.

Drivers map a meter model's registers onto these names and units, so that consumers never depend
on the meter model. Single-phase meters use the ``_l1`` channels. A driver may add a
vendor-specific channel whose name starts with ``x_``; it is carried through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """What a canonical channel measures.

    Attributes:
        unit: the canonical unit; a driver's scaling must produce values in it.
        quantity: the physical quantity, shared by the per-phase and total channels.
        resolution: the step a typical meter reports in; the simulator rounds to it.
        description: one line for listings and docs.
    """

    unit: str
    quantity: str
    resolution: float
    description: str


VENDOR_PREFIX = "x_"


def _build() -> dict[str, ChannelInfo]:
    table: dict[str, ChannelInfo] = {}
    phases = ("l1", "l2", "l3")
    for p in phases:
        n = p[1]
        table[f"voltage_{p}"] = ChannelInfo("V", "voltage", 0.01, f"phase {n} to neutral voltage")
        table[f"current_{p}"] = ChannelInfo("A", "current", 0.001, f"phase {n} current")
        table[f"active_power_{p}"] = ChannelInfo("W", "active_power", 0.1, f"phase {n} power")
        table[f"reactive_power_{p}"] = ChannelInfo(
            "var", "reactive_power", 0.1, f"phase {n} reactive power"
        )
        table[f"apparent_power_{p}"] = ChannelInfo(
            "VA", "apparent_power", 0.1, f"phase {n} apparent power"
        )
        table[f"power_factor_{p}"] = ChannelInfo("", "power_factor", 0.0001, f"phase {n} PF")
        table[f"thd_voltage_{p}"] = ChannelInfo("%", "thd_voltage", 0.01, f"phase {n} voltage THD")
        table[f"thd_current_{p}"] = ChannelInfo("%", "thd_current", 0.01, f"phase {n} current THD")
    for a, b in (("l1", "l2"), ("l2", "l3"), ("l3", "l1")):
        table[f"voltage_{a}_{b}"] = ChannelInfo(
            "V", "voltage_ll", 0.01, f"line {a[1]} to line {b[1]} voltage"
        )
    table["current_n"] = ChannelInfo("A", "current", 0.001, "neutral current")
    table["active_power"] = ChannelInfo("W", "active_power", 0.1, "total active power")
    table["reactive_power"] = ChannelInfo("var", "reactive_power", 0.1, "total reactive power")
    table["apparent_power"] = ChannelInfo("VA", "apparent_power", 0.1, "total apparent power")
    table["power_factor"] = ChannelInfo("", "power_factor", 0.0001, "total power factor")
    table["frequency"] = ChannelInfo("Hz", "frequency", 0.001, "supply frequency")
    table["energy_import"] = ChannelInfo("kWh", "energy", 0.001, "imported active energy")
    table["energy_export"] = ChannelInfo("kWh", "energy", 0.001, "exported active energy")
    table["reactive_energy_import"] = ChannelInfo(
        "kvarh", "reactive_energy", 0.001, "imported reactive energy"
    )
    table["reactive_energy_export"] = ChannelInfo(
        "kvarh", "reactive_energy", 0.001, "exported reactive energy"
    )
    table["active_power_demand"] = ChannelInfo(
        "W", "active_power", 0.1, "total active power demand (meter's demand period)"
    )
    table["temperature"] = ChannelInfo("°C", "temperature", 0.1, "meter or equipment temperature")
    return table


CHANNELS: MappingProxyType[str, ChannelInfo] = MappingProxyType(_build())
"""Every canonical channel name, with its unit and quantity."""


def is_known(name: str) -> bool:
    """Return True for canonical names and vendor-specific ``x_`` names."""
    return name in CHANNELS or (name.startswith(VENDOR_PREFIX) and len(name) > len(VENDOR_PREFIX))
