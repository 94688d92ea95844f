"""Configuration: one TOML file read into frozen, typed values.

Every invalid value or unknown key raises :class:`~gridedge.errors.ConfigError` naming its dotted
key path. ``config.example.toml`` documents every option.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from gridedge.analytics.settings import AnalyticsConfig, parse_analytics
from gridedge.drivers import BUILTIN_DRIVERS_DIR, Driver, load_drivers
from gridedge.errors import ConfigError, DriverError
from gridedge.forward.settings import UpstreamConfig, parse_upstreams
from gridedge.http_config import HttpConfig, parse_http
from gridedge.linkconfig import (
    BusCheck,
    LinkType,
    ModbusLinkConfig,
    check_count,
    nth_link,
    parse_modbus_link,
)
from gridedge.log import LogFormat, LogLevel
from gridedge.simulator.faults import FaultKind, FaultPlan, ScheduledFault
from gridedge.simulator.physics import LoadProfile, SimulationParams
from gridedge.tomlread import Table, load_toml


class OnFull(StrEnum):
    """What the outbox does when it reaches ``max_bytes``."""

    DROP_OLDEST = "drop_oldest"
    """Delete the oldest envelopes (counted as dropped) to make room for new ones."""
    DROP_NEWEST = "drop_newest"
    """Keep what is stored; refuse new envelopes (counted as dropped) until there is room."""


class Synchronous(StrEnum):
    """SQLite ``synchronous`` setting: how hard a commit is pushed to the disk."""

    NORMAL = "normal"
    """Safe against a crash of the process; a power cut may lose the last commits (WAL)."""
    FULL = "full"
    """Every commit survives a power cut too, at the cost of an fsync per commit."""


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """The local store-and-forward queue."""

    path: Path = Path("gridedge-outbox.sqlite3")
    max_bytes: int = 256 * 1024 * 1024
    max_age_s: float = 30 * 86400.0
    on_full: OnFull = OnFull.DROP_OLDEST
    synchronous: Synchronous = Synchronous.NORMAL
    commit_interval_s: float = 0.2
    max_batch: int = 5000
    max_pending: int = 100_000


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Who this gateway is."""

    id: str = "gridedge"
    site: str = "site"
    drivers_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Log level and rendering."""

    level: LogLevel = LogLevel.INFO
    format: LogFormat = LogFormat.AUTO


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


@dataclass(frozen=True, slots=True)
class Config:
    """The whole, validated configuration."""

    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    log: LogConfig = field(default_factory=LogConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    meters: tuple[MeterConfig, ...] = field(default=(), metadata={"tables": True})
    # Loaded driver models by id; not part of the printed configuration.
    drivers: Mapping[str, Driver] = field(default_factory=dict, metadata={"hidden": True})
    source: str | None = field(default=None, metadata={"hidden": True})
    upstreams: tuple[UpstreamConfig, ...] = field(default=(), metadata={"tables": True})
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)


_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ID_RULE = "1-64 letters, digits, '_', '.', '-' (no '/', '+', '#': ids become MQTT topic levels)"


def load_config(path: Path) -> Config:
    """Read and validate a config file; relative paths in it resolve against its folder."""
    data = load_toml(path)
    return parse_config(data, source=str(path), base_dir=path.resolve().parent)


def parse_config(data: Mapping[str, Any], *, source: str | None, base_dir: Path) -> Config:
    """Validate a parsed TOML document (see :func:`load_config`)."""
    root = Table(data, "", source)
    gateway = _gateway(root.table("gateway"), base_dir)
    log = _log(root.table("log"))
    outbox = _outbox(root.table("outbox"), base_dir)
    http = parse_http(root.table("http"))
    dirs = [BUILTIN_DRIVERS_DIR]
    if gateway.drivers_dir is not None:
        dirs.append(gateway.drivers_dir)
    try:
        drivers = load_drivers(dirs)
    except DriverError as exc:
        if exc.source is None and gateway.drivers_dir is not None:
            raise ConfigError("gateway.drivers_dir", exc.problem, source) from None
        raise
    meters = _meters(root, drivers)
    upstreams = parse_upstreams(root, gateway.id, base_dir)
    analytics = parse_analytics(root.table("analytics"))
    root.finish()
    return Config(
        gateway, log, outbox, http, meters, drivers, source, upstreams, analytics=analytics
    )


def _gateway(t: Table, base_dir: Path) -> GatewayConfig:
    gw_id = t.string("id", "gridedge")
    site = t.string("site", "site")
    for key, value in (("id", gw_id), ("site", site)):
        if not _ID_RE.match(value):
            raise t.fail(key, f"expected {_ID_RULE}, got {value!r}")
    drivers_dir = t.string("drivers_dir", None)
    t.finish()
    return GatewayConfig(gw_id, site, base_dir / drivers_dir if drivers_dir else None)


def _log(t: Table) -> LogConfig:
    cfg = LogConfig(
        t.choice("level", LogLevel, LogLevel.INFO), t.choice("format", LogFormat, LogFormat.AUTO)
    )
    t.finish()
    return cfg


def _outbox(t: Table, base_dir: Path) -> OutboxConfig:
    d = OutboxConfig()
    cfg = OutboxConfig(
        path=base_dir / t.string("path", str(d.path)),
        max_bytes=t.integer("max_bytes", d.max_bytes, min=64 * 1024),
        max_age_s=t.number("max_age_s", d.max_age_s, positive=True),
        on_full=t.choice("on_full", OnFull, d.on_full),
        synchronous=t.choice("synchronous", Synchronous, d.synchronous),
        commit_interval_s=t.number("commit_interval_s", d.commit_interval_s, min=0.0, max=10.0),
        max_batch=t.integer("max_batch", d.max_batch, min=1),
        max_pending=t.integer("max_pending", d.max_pending, min=1),
    )
    t.finish()
    return cfg


def _meters(root: Table, drivers: Mapping[str, Driver]) -> tuple[MeterConfig, ...]:
    meters: list[MeterConfig] = []
    first_seen: dict[str, str] = {}
    buses = BusCheck()
    for t in root.tables("meters"):
        for meter in _meter(t, drivers):
            if meter.id in first_seen:
                raise t.fail("id", f"duplicate meter id {meter.id!r} (also {first_seen[meter.id]})")
            first_seen[meter.id] = t.path
            if not isinstance(meter.link, SimulatedLinkConfig):
                buses.add(meter.id, meter.link, t)
            meters.append(meter)
    return tuple(meters)


def _meter(t: Table, drivers: Mapping[str, Driver]) -> list[MeterConfig]:
    meter_id = t.string("id")
    if not _ID_RE.match(meter_id):
        raise t.fail("id", f"expected {_ID_RULE}, got {meter_id!r}")
    driver_id = t.string("driver")
    if driver_id not in drivers:
        known = ", ".join(sorted(drivers)) or "none"
        raise t.fail("driver", f"unknown driver {driver_id!r}; available: {known}")
    driver = drivers[driver_id]
    interval_s = t.number("interval_s", 10.0, min=0.01)
    if interval_s <= 0:
        raise t.fail("interval_s", f"expected a number greater than 0, got {interval_s}")
    offline_after = t.integer("offline_after", 3, min=1)
    max_backoff_s = t.number("max_backoff_s", max(60.0, interval_s), min=interval_s)
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
        rated_current_a=t.number("rated_current_a", None, positive=True),
    )
    seed = t.integer("seed", 0, min=0)
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
        at_s=t.number("at_s", min=0.0),
        duration_s=t.number("duration_s", 60.0, min=0.0),
        magnitude=t.number("magnitude", None),
        channel=channel,
        phase=phase,
    )
    t.finish()
    return fault
