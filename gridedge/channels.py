"""The canonical channel vocabulary shared by every driver, the simulator and the analytics.

Drivers map a meter model's registers onto these names and units, so that consumers never depend
on the meter model. Single-phase meters use the ``_l1`` channels. A driver may add a
vendor-specific channel whose name starts with ``x_``; it is carried through unchanged.

Inverters (SunSpec models 101-103, 111-113) reuse the meter names for their AC side, seen from
the inverter: ``active_power`` is what it feeds in (negative while it draws), ``energy_export``
its lifetime AC yield. Their DC side is ``dc_current``, ``dc_voltage``, ``dc_power``; the
temperatures are ``temperature_cabinet``, ``temperature_heatsink``, ``temperature_transformer``
and ``temperature_other``. DC strings (SunSpec model 160, one block per MPPT input) are numbered
from 1: ``dc_current_s1``, ``dc_voltage_s1``, ``dc_power_s1``, ``dc_energy_s1``,
``temperature_s1`` up to :data:`MAX_DC_STRINGS`. Storage (model 124) reports
``battery_state_of_charge``, ``battery_voltage`` and ``battery_charge_power_max``.
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

MAX_DC_STRINGS = 16
"""DC strings (MPPT inputs) with canonical names: ``dc_power_s1`` .. ``dc_power_s16``."""


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
    _add_inverter(table)
    return table


def _add_inverter(table: dict[str, ChannelInfo]) -> None:
    table["dc_current"] = ChannelInfo("A", "dc_current", 0.01, "inverter DC input current")
    table["dc_voltage"] = ChannelInfo("V", "dc_voltage", 0.1, "inverter DC input voltage")
    table["dc_power"] = ChannelInfo("W", "dc_power", 1.0, "inverter DC input power")
    for where in ("cabinet", "heatsink", "transformer", "other"):
        table[f"temperature_{where}"] = ChannelInfo(
            "°C", "temperature", 0.1, f"inverter {where} temperature"
        )
    for n in range(1, MAX_DC_STRINGS + 1):
        table[f"dc_current_s{n}"] = ChannelInfo("A", "dc_current", 0.01, f"DC string {n} current")
        table[f"dc_voltage_s{n}"] = ChannelInfo("V", "dc_voltage", 0.1, f"DC string {n} voltage")
        table[f"dc_power_s{n}"] = ChannelInfo("W", "dc_power", 1.0, f"DC string {n} power")
        table[f"dc_energy_s{n}"] = ChannelInfo("kWh", "energy", 0.001, f"DC string {n} energy")
        table[f"temperature_s{n}"] = ChannelInfo(
            "°C", "temperature", 0.1, f"DC string {n} module temperature"
        )
    table["battery_state_of_charge"] = ChannelInfo(
        "%", "state_of_charge", 0.1, "battery charge, percent of its rated capacity"
    )
    table["battery_voltage"] = ChannelInfo("V", "dc_voltage", 0.1, "battery (internal) voltage")
    table["battery_charge_power_max"] = ChannelInfo(
        "W", "dc_power", 1.0, "battery setpoint for maximum charge power"
    )


CHANNELS: MappingProxyType[str, ChannelInfo] = MappingProxyType(_build())
"""Every canonical channel name, with its unit and quantity."""


def is_known(name: str) -> bool:
    """Return True for canonical names and vendor-specific ``x_`` names."""
    return name in CHANNELS or (name.startswith(VENDOR_PREFIX) and len(name) > len(VENDOR_PREFIX))
