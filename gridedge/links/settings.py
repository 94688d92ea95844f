"""Settings of the polled meters and how each is reached (``[[meters]]`` and their ``link``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gridedge.drivers import Driver
from gridedge.errors import ConfigError
from gridedge.links.modbus.settings import (
    BusCheck,
    LinkType,
    ModbusLinkConfig,
    check_count,
    nth_link,
    parse_modbus_link,
)
from gridedge.simulator.faults import FaultKind, FaultPlan, ScheduledFault
from gridedge.simulator.physics import LoadProfile, SimulationParams
from gridedge.tomlread import ID_RE, ID_RULE, Table

MAX_RATED_CURRENT_A = 100_000.0
"""Largest ``rated_current_a`` of a simulated meter: a big substation feeder, with room to spare."""
MAX_MAGNITUDE = 1000.0
"""Largest size of a scheduled fault (a factor, a fraction per hour or degrees per hour)."""
_DAY_S = 86400.0
_CENTURY_S = 100 * 365.25 * _DAY_S


@dataclass(frozen=True, slots=True)
class SimulatedLinkConfig:
    """A simulated meter: physics parameters, seed and fault injection."""

    seed: int = 0
    # Written flat into the [meters.link] table, as the file has it.
    params: SimulationParams = field(default_factory=SimulationParams, metadata={"flatten": True})
    faults: FaultPlan = field(default_factory=FaultPlan)
    type: LinkType = field(default=LinkType.SIMULATED, metadata={"first": True})


LinkConfig = SimulatedLinkConfig | ModbusLinkConfig
"""How one meter is reached; dispatched on the ``type`` key of ``[meters.link]``."""


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """One polled meter."""

    id: str
    driver: str
    link: LinkConfig
    interval_s: float = 10.0
    offline_after: int = 3
    max_backoff_s: float = 60.0


def parse_meters(root: Table, drivers: Mapping[str, Driver]) -> tuple[MeterConfig, ...]:
    """Every ``[[meters]]`` table, a ``count`` table expanded into its meters."""
    meters: list[MeterConfig] = []
    first_seen: dict[str, str] = {}
    buses = BusCheck()
    for t in root.tables("meters"):
        for meter in _meter(t, drivers):
            if meter.id in first_seen:
                raise t.fail("id", f"duplicate meter id {meter.id!r} (also {first_seen[meter.id]})")
            first_seen[meter.id] = t.path
            if not isinstance(meter.link, SimulatedLinkConfig):
                sunspec = drivers[meter.driver].sunspec
                model = None if sunspec is None else sunspec.model
                buses.add(meter.id, meter.link, t, model)
            meters.append(meter)
    return tuple(meters)


def _meter(t: Table, drivers: Mapping[str, Driver]) -> list[MeterConfig]:
    meter_id = t.string("id")
    if not ID_RE.match(meter_id):
        raise t.fail("id", f"expected {ID_RULE}, got {meter_id!r}")
    driver_id = t.string("driver")
    if driver_id not in drivers:
        known = ", ".join(sorted(drivers)) or "none"
        raise t.fail("driver", f"unknown driver {driver_id!r}; available: {known}")
    driver = drivers[driver_id]
    interval_s = t.number("interval_s", 10.0, min=0.01, max=_DAY_S)
    if interval_s <= 0:
        raise t.fail("interval_s", f"expected a number greater than 0, got {interval_s}")
    offline_after = t.integer("offline_after", 3, min=1)
    max_backoff_s = t.number(
        "max_backoff_s", max(60.0, interval_s), min=interval_s, max=max(_DAY_S, interval_s)
    )
    count = t.integer("count", 1, min=1, max=100_000)
    link = _link(t.table("link", required=True), driver)
    if not isinstance(link, SimulatedLinkConfig) and (problem := check_count(link, count)):
        raise t.fail("count", problem)
    t.finish()
    if count == 1:
        return [MeterConfig(meter_id, driver_id, link, interval_s, offline_after, max_backoff_s)]
    width = len(str(count))
    return [
        MeterConfig(
            f"{meter_id}-{i:0{width}d}",
            driver_id,
            _nth_link(link, i),
            interval_s,
            offline_after,
            max_backoff_s,
        )
        for i in range(1, count + 1)
    ]


def _link(t: Table, driver: Driver) -> LinkConfig:
    if t.choice("type", LinkType) is LinkType.SIMULATED:
        return _simulated_link(t, driver)
    return parse_modbus_link(t)


def _nth_link(link: LinkConfig, i: int) -> LinkConfig:
    """The link of meter ``i`` (from 1) of a ``count`` table: the next seed or unit id."""
    if isinstance(link, SimulatedLinkConfig):
        return SimulatedLinkConfig(link.seed + i, link.params, link.faults)
    return nth_link(link, i)


def _simulated_link(t: Table, driver: Driver) -> SimulatedLinkConfig:
    link_type = t.choice("type", LinkType)
    assert link_type is LinkType.SIMULATED
    d = SimulationParams()
    params = SimulationParams(
        profile=t.choice("profile", LoadProfile, d.profile),
        load_fraction=t.number("load_fraction", d.load_fraction, min=0.0, max=1.5),
        power_factor=t.number("power_factor", d.power_factor, min=0.5, max=1.0),
        utc_offset_h=t.number("utc_offset_h", d.utc_offset_h, min=-12.0, max=14.0),
        ambient_c=t.number("ambient_c", d.ambient_c, min=-40.0, max=60.0),
        rated_current_a=t.number("rated_current_a", None, positive=True, max=MAX_RATED_CURRENT_A),
    )
    seed = t.integer("seed", 0, min=0, max=2**32 - 1)
    faults = _faults(t.table("faults"), driver)
    t.finish()
    return SimulatedLinkConfig(seed, params, faults)


def _faults(t: Table, driver: Driver) -> FaultPlan:
    rate = t.number("rate_per_hour", 0.0, min=0.0, max=3600.0)
    kinds = t.strings("kinds", tuple(k.value for k in FaultKind))
    allowed = {k.value for k in FaultKind}
    for i, kind in enumerate(kinds):
        if kind not in allowed:
            names = ", ".join(sorted(allowed))
            raise ConfigError(
                f"{t.key_path('kinds')}[{i}]", f"expected one of {names}, got {kind!r}", t.source
            )
    schedule = tuple(_scheduled_fault(s, driver) for s in t.tables("schedule"))
    t.finish()
    return FaultPlan(rate, tuple(FaultKind(k) for k in kinds), schedule)


def _scheduled_fault(t: Table, driver: Driver) -> ScheduledFault:
    kind = t.choice("kind", FaultKind)
    channel = t.string("channel", None)
    if channel is not None and channel not in driver.channel_names:
        raise t.fail("channel", f"driver {driver.id!r} has no channel {channel!r}")
    phase = t.integer("phase", None, min=1, max=driver.phases)
    fault = ScheduledFault(
        kind=kind,
        at_s=t.number("at_s", min=0.0, max=_CENTURY_S),
        duration_s=t.number("duration_s", 60.0, min=0.0, max=_CENTURY_S),
        magnitude=t.number("magnitude", None, min=-MAX_MAGNITUDE, max=MAX_MAGNITUDE),
        channel=channel,
        phase=phase,
    )
    t.finish()
    return fault
