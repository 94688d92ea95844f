"""Configuration: one TOML file read into frozen, typed values, and rendered back for ``check``.

Every invalid value or unknown key raises :class:`~gridedge.errors.ConfigError` naming its dotted
key path. ``config.example.toml`` documents every option. :func:`dump_toml` prints the effective
configuration, secrets redacted, in a form that reads back to an equal config.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from gridedge.analytics.settings import AnalyticsConfig, parse_analytics
from gridedge.drivers import BUILTIN_DRIVERS_DIR, Driver, load_drivers
from gridedge.errors import ConfigError, DriverError
from gridedge.forward.settings import UpstreamConfig, parse_upstreams
from gridedge.links.settings import LinkConfig, MeterConfig, SimulatedLinkConfig, parse_meters
from gridedge.log import LogFormat, LogLevel
from gridedge.ops.settings import HttpConfig, parse_http
from gridedge.outbox.settings import OnFull, OutboxConfig, Synchronous, parse_outbox
from gridedge.tomlread import ID_RE, ID_RULE, Table, load_toml

__all__ = [
    "Config",
    "GatewayConfig",
    "LinkConfig",
    "LogConfig",
    "MeterConfig",
    "OnFull",
    "OutboxConfig",
    "SimulatedLinkConfig",
    "Synchronous",
    "load_config",
    "parse_config",
]


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


def load_config(path: Path) -> Config:
    """Read and validate a config file; relative paths in it resolve against its folder."""
    data = load_toml(path)
    return parse_config(data, source=str(path), base_dir=path.resolve().parent)


def parse_config(data: Mapping[str, Any], *, source: str | None, base_dir: Path) -> Config:
    """Validate a parsed TOML document (see :func:`load_config`)."""
    root = Table(data, "", source)
    gateway = _gateway(root.table("gateway"), base_dir)
    log = _log(root.table("log"))
    outbox = parse_outbox(root.table("outbox"), base_dir)
    http = parse_http(root.table("http"), base_dir)
    dirs = [BUILTIN_DRIVERS_DIR]
    if gateway.drivers_dir is not None:
        dirs.append(gateway.drivers_dir)
    try:
        drivers = load_drivers(dirs)
    except DriverError as exc:
        if exc.source is None and gateway.drivers_dir is not None:
            raise ConfigError("gateway.drivers_dir", exc.problem, source) from None
        raise
    meters = parse_meters(root, drivers)
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
        if not ID_RE.match(value):
            raise t.fail(key, f"expected {ID_RULE}, got {value!r}")
    drivers_dir = t.string("drivers_dir", None)
    t.finish()
    return GatewayConfig(gw_id, site, base_dir / drivers_dir if drivers_dir else None)


def _log(t: Table) -> LogConfig:
    cfg = LogConfig(
        t.choice("level", LogLevel, LogLevel.INFO), t.choice("format", LogFormat, LogFormat.AUTO)
    )
    t.finish()
    return cfg


# --- rendering back to TOML (``gridedge check``) ----------------------------------------
#
# The effective configuration with every default filled in, in a form that can be read back.
# Dataclass field metadata steers it: ``hidden`` fields are left out, and so is an empty
# ``tables`` field (an array of tables with no entry), ``secret`` values are replaced by
# ``"<redacted>"``, ``flatten`` writes a nested value's fields into its parent table, and
# ``first`` puts a field at the top of its table.

REDACTED = "<redacted>"


def dump_toml(obj: Any) -> str:
    """Render a dataclass instance (the root table) as TOML text."""
    out: list[str] = []
    _table(obj, "", out, array=False)
    return "\n".join(out).strip() + "\n"


def _is_table(value: Any) -> bool:
    return is_dataclass(value) and not isinstance(value, type)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, tuple | list) and bool(value) and all(_is_table(v) for v in value)


def _entries(obj: Any) -> list[tuple[str, Any, Field[Any]]]:
    """The (key, value, field) triples of a table, flattened and ordered."""
    result: list[tuple[str, Any, Field[Any]]] = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("hidden") or (f.metadata.get("tables") and not value):
            continue
        if f.metadata.get("flatten"):
            result.extend(_entries(value))
        elif f.metadata.get("first"):
            result.insert(0, (f.name, value, f))
        else:
            result.append((f.name, value, f))
    return result


def _table(obj: Any, path: str, out: list[str], *, array: bool) -> None:
    entries = _entries(obj)
    scalars = [(k, v, f) for k, v, f in entries if not (_is_table(v) or _is_table_array(v))]
    nested = [(k, v) for k, v, _ in entries if _is_table(v) or _is_table_array(v)]
    if path:
        out.append("")
        out.append(f"[[{path}]]" if array else f"[{path}]")
    for key, value, f in scalars:
        if value is None:
            continue
        shown = REDACTED if f.metadata.get("secret") else value
        out.append(f"{key} = {_scalar(shown)}")
    for key, value in nested:
        sub = f"{path}.{key}" if path else key
        if _is_table(value):
            _table(value, sub, out, array=False)
        else:
            for item in value:
                _table(item, sub, out, array=True)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return json.dumps(str(value.value))
    if isinstance(value, Path | str):
        return json.dumps(str(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):  # free-form parameters (a River model's): an inline table
        return "{" + ", ".join(f"{json.dumps(k)} = {_scalar(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot render {type(value).__name__} as TOML")
