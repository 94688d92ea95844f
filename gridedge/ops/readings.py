"""Meter readings as Prometheus metric families (opt-in: ``[http] readings = true``).

Names follow Prometheus' naming guide: base units in the name (volts, amperes, watts, hertz,
joules, celsius, ratios), ``_total`` on the energy counters, and the phase as a label
(``l1``, ``l2``, ``l3``, ``n``, ``l1_l2`` ..., or ``total`` for whole-meter values: filter
``phase!="total"`` before summing phases). Energy in kWh is exported in joules (x 3.6e6),
power factor and THD as ratios. Vendor-specific ``x_`` channels are not exported: their
units are the driver's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from gridedge.channels import CHANNELS
from gridedge.poll import MeterState

_PHASE = re.compile(r"_(l[123]_l[123]|l[123]|n)$")


@dataclass(frozen=True, slots=True)
class ReadingMetric:
    """How one channel quantity is exported."""

    name: str
    help: str
    factor: float = 1.0
    counter: bool = False


# quantity -> metric; the channel's own name picks the metric for energy (import vs export).
_BY_QUANTITY: Mapping[str, ReadingMetric] = {
    "voltage": ReadingMetric("gridedge_meter_voltage_volts", "Phase to neutral voltage."),
    "voltage_ll": ReadingMetric("gridedge_meter_line_voltage_volts", "Line to line voltage."),
    "current": ReadingMetric("gridedge_meter_current_amperes", "Current."),
    "active_power": ReadingMetric("gridedge_meter_active_power_watts", "Active power."),
    "reactive_power": ReadingMetric(
        "gridedge_meter_reactive_power_volt_amperes_reactive", "Reactive power."
    ),
    "apparent_power": ReadingMetric(
        "gridedge_meter_apparent_power_volt_amperes", "Apparent power."
    ),
    "power_factor": ReadingMetric("gridedge_meter_power_factor_ratio", "Power factor."),
    "frequency": ReadingMetric("gridedge_meter_frequency_hertz", "Supply frequency."),
    "temperature": ReadingMetric("gridedge_meter_temperature_celsius", "Temperature."),
    "thd_voltage": ReadingMetric(
        "gridedge_meter_voltage_thd_ratio", "Voltage total harmonic distortion.", 0.01
    ),
    "thd_current": ReadingMetric(
        "gridedge_meter_current_thd_ratio", "Current total harmonic distortion.", 0.01
    ),
}
_BY_CHANNEL: Mapping[str, ReadingMetric] = {
    "energy_import": ReadingMetric(
        "gridedge_meter_active_energy_import_joules_total", "Imported active energy.", 3.6e6, True
    ),
    "energy_export": ReadingMetric(
        "gridedge_meter_active_energy_export_joules_total", "Exported active energy.", 3.6e6, True
    ),
    "reactive_energy_import": ReadingMetric(
        "gridedge_meter_reactive_energy_import_var_seconds_total",
        "Imported reactive energy.",
        3.6e6,
        True,
    ),
    "reactive_energy_export": ReadingMetric(
        "gridedge_meter_reactive_energy_export_var_seconds_total",
        "Exported reactive energy.",
        3.6e6,
        True,
    ),
    "active_power_demand": ReadingMetric(
        "gridedge_meter_active_power_demand_watts", "Active power demand (the meter's period)."
    ),
}


def metric_of(channel: str) -> tuple[ReadingMetric, str] | None:
    """The metric and phase label of a canonical channel, None for channels not exported."""
    info = CHANNELS.get(channel)
    if info is None:
        return None
    metric = _BY_CHANNEL.get(channel) or _BY_QUANTITY.get(info.quantity)
    if metric is None:
        return None
    match = _PHASE.search(channel)
    return metric, match.group(1) if match else "total"


@dataclass(slots=True)
class ReadingFamily:
    """One metric's samples, gathered before they are handed to the metrics library."""

    metric: ReadingMetric
    samples: list[tuple[str, str, float]]  # device, phase, value


def reading_families(meters: Sequence[MeterState], now: float) -> Iterator[ReadingFamily]:
    """Every exported reading of every meter, grouped by metric, plus each reading's age."""
    families: dict[str, ReadingFamily] = {}
    for meter in meters:
        for channel, value in meter.last_values.items():
            found = metric_of(channel)
            if found is None:
                continue
            metric, phase = found
            family = families.setdefault(metric.name, ReadingFamily(metric, []))
            family.samples.append((meter.device, phase, value * metric.factor))
    yield from families.values()
    age = ReadingMetric(
        "gridedge_meter_last_reading_age_seconds", "Seconds since the meter's last reading."
    )
    yield ReadingFamily(
        age,
        [
            (m.device, "", max(0.0, now - m.last_success_ts))
            for m in meters
            if m.last_success_ts is not None
        ],
    )
