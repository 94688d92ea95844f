"""The ``[[upstreams]]`` tables: one MQTT broker each, parsed into frozen values.

Secrets never live in the config text: a password is named by a file (``password_file``) or an
environment variable (``password_env``) and read only when connecting, so ``gridedge check``
has nothing to redact and no log line ever carries it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from gridedge.errors import ForwardError
from gridedge.forward.compression import Compression, available
from gridedge.tomlread import Table

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NAME_RULE = "1-64 letters, digits, '_', '.', '-'"
_TLS_KEYS = ("ca_file", "cert_file", "key_file")


class BatchLayout(StrEnum):
    """How a JSON message that carries several samples of one device lays them out."""

    COLUMNS = "columns"
    """One channel list, then a row of values per sample (see the README's payload section)."""
    OBJECTS = "objects"
    """One object per envelope, channel names repeated in each."""


class BatchScope(StrEnum):
    """Which envelopes one message may carry."""

    DEVICE = "device"
    """Envelopes of one device and kind, on that device's topic."""
    GATEWAY = "gateway"
    """Every device's samples, statuses and aggregates together, on the gateway's ``batch``
    topic (alerts keep their device topics)."""


class PayloadFormat(StrEnum):
    """How envelopes are written into MQTT messages."""

    JSON = "json"
    """gridedge's JSON objects (see the README's payload description)."""
    INFLUX = "influx"
    """InfluxDB line protocol, one line per envelope (for Telegraf's ``data_format = "influx"``)."""


class MqttProtocol(StrEnum):
    """The MQTT protocol version spoken to a broker."""

    V311 = "3.1.1"
    V5 = "5"


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """One upstream MQTT broker and how envelopes are forwarded to it.

    Attributes:
        name: the upstream's name: its cursor in the outbox, its log and metric label.
        host: broker host name or address; with TLS, the name its certificate must carry.
        port: broker port (default 8883 with TLS, 1883 without).
        tls: encrypt and authenticate the broker; false only when written explicitly.
        ca_file: PEM file of the CAs trusted for the broker; None: the system's CAs.
        cert_file: PEM client certificate for mutual TLS (may hold the key too).
        key_file: PEM private key of ``cert_file`` when it is a separate file.
        verify_hostname: check that the broker certificate names ``host`` (TLS only).
        username: MQTT user name, None for none.
        password_file: a file whose first line is the password.
        password_env: an environment variable holding the password.
        client_id: MQTT client id (default ``<gateway id>-<name>``).
        protocol: ``3.1.1`` or ``5``.
        keepalive_s: MQTT keepalive; the client pings when idle this long.
        persistent_session: ask the broker to keep the session across reconnects.
        session_expiry_s: how long the broker keeps a persistent session (MQTT 5 only; an
            MQTT 3.1.1 broker decides that itself).
        topic_prefix: first topic level(s) of every topic.
        qos: always 1 (at-least-once); present so the effective config states it.
        window: most messages published and not yet acknowledged (PUBACK) at once.
        max_batch_bytes: samples of one device are packed into one message up to this size.
        drain_rate: most envelopes per second while draining a backlog; 0 for no limit.
        connect_timeout_s: bound on TCP connect, TLS handshake and CONNACK.
        puback_timeout_s: a message unanswered this long ends the connection (a broker that
            answers pings but no publishes); default three keepalives.
        stall_after_s: a backlog whose cursor has not moved for this long makes ``/health``
            degraded.
        reconnect_min_s: first wait after a failed or lost connection.
        reconnect_max_s: cap of the wait, which doubles (with jitter) per failure.
        enabled: false keeps the table but neither forwards to it nor waits for it.
        format: ``json`` or ``influx`` (line protocol) for envelope messages.
        compression: ``none``, ``gzip`` or ``zstd`` for messages carrying several envelopes.
        batch_layout: ``columns`` or ``objects``, for JSON messages carrying several samples.
        batch_scope: ``device`` (one device's envelopes per message) or ``gateway`` (all
            devices' in one message, far fewer messages on a big site).
        home_assistant: publish Home Assistant MQTT discovery and a flat state topic per meter.
        discovery_prefix: Home Assistant's discovery prefix.
        health_interval_s: seconds between retained ``health`` messages of the gateway; 0 for
            none.
    """

    name: str
    host: str
    port: int
    tls: bool = True
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify_hostname: bool = True
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    client_id: str = ""
    protocol: MqttProtocol = MqttProtocol.V311
    keepalive_s: int = 60
    persistent_session: bool = False
    session_expiry_s: int = 86400
    topic_prefix: str = "gridedge"
    qos: int = 1
    window: int = 32
    max_batch_bytes: int = 65536
    drain_rate: float = 10000.0
    connect_timeout_s: float = 10.0
    puback_timeout_s: float = 180.0
    stall_after_s: float = 300.0
    reconnect_min_s: float = 1.0
    # Short enough that telemetry resumes within seconds of a broker's return after an
    # outage (the wait doubles per failure up to this), long enough not to hammer it.
    reconnect_max_s: float = 10.0
    enabled: bool = True
    format: PayloadFormat = PayloadFormat.JSON
    compression: Compression = Compression.NONE
    batch_layout: BatchLayout = BatchLayout.COLUMNS
    batch_scope: BatchScope = BatchScope.DEVICE
    home_assistant: bool = False
    discovery_prefix: str = "homeassistant"
    health_interval_s: float = 60.0

    @property
    def broker(self) -> str:
        """``host:port``, for logs and errors."""
        return f"{self.host}:{self.port}"


def parse_upstreams(root: Table, gateway_id: str, base_dir: Path) -> tuple[UpstreamConfig, ...]:
    """Read every ``[[upstreams]]`` table of the config root.

    Raises:
        ConfigError: an invalid value, an unknown key or a duplicate name, by dotted path.
    """
    upstreams: list[UpstreamConfig] = []
    seen: dict[str, str] = {}
    for t in root.tables("upstreams"):
        upstream = _upstream(t, gateway_id, base_dir)
        if upstream.name in seen:
            raise t.fail(
                "name", f"duplicate upstream name {upstream.name!r} (also {seen[upstream.name]})"
            )
        seen[upstream.name] = t.path
        upstreams.append(upstream)
    return tuple(upstreams)


def _upstream(t: Table, gateway_id: str, base_dir: Path) -> UpstreamConfig:
    d = UpstreamConfig("", "", 0)
    name = t.string("name")
    if not _NAME_RE.match(name):
        raise t.fail("name", f"expected {_NAME_RULE}, got {name!r}")
    tls = t.boolean("tls", True)
    keepalive_s = t.integer("keepalive_s", d.keepalive_s, min=5, max=65535)
    cfg = UpstreamConfig(
        name=name,
        host=t.string("host"),
        port=t.integer("port", 8883 if tls else 1883, min=1, max=65535),
        tls=tls,
        ca_file=_path(t, "ca_file", base_dir),
        cert_file=_path(t, "cert_file", base_dir),
        key_file=_path(t, "key_file", base_dir),
        verify_hostname=t.boolean("verify_hostname", True),
        username=t.string("username", None),
        password_file=_path(t, "password_file", base_dir),
        password_env=t.string("password_env", None),
        client_id=t.string("client_id", f"{gateway_id}-{name}"),
        protocol=t.choice("protocol", MqttProtocol, d.protocol),
        keepalive_s=keepalive_s,
        persistent_session=t.boolean("persistent_session", d.persistent_session),
        session_expiry_s=t.integer("session_expiry_s", d.session_expiry_s, min=0, max=2**32 - 1),
        topic_prefix=_topic_prefix(t),
        qos=t.integer("qos", 1, min=1, max=1),
        window=t.integer("window", d.window, min=1, max=1000),
        max_batch_bytes=t.integer("max_batch_bytes", d.max_batch_bytes, min=1024, max=1 << 26),
        drain_rate=t.number("drain_rate", d.drain_rate, min=0.0),
        connect_timeout_s=t.number("connect_timeout_s", d.connect_timeout_s, min=0.1, max=600),
        puback_timeout_s=t.number("puback_timeout_s", 3.0 * keepalive_s, min=0.1, max=86400),
        stall_after_s=t.number("stall_after_s", d.stall_after_s, min=1, max=30 * 86400),
        reconnect_min_s=t.number("reconnect_min_s", d.reconnect_min_s, min=0.01, max=3600),
        reconnect_max_s=t.number("reconnect_max_s", d.reconnect_max_s, min=0.01, max=86400),
        enabled=t.boolean("enabled", True),
        format=t.choice("format", PayloadFormat, d.format),
        compression=t.choice("compression", Compression, d.compression),
        batch_layout=t.choice("batch_layout", BatchLayout, d.batch_layout),
        batch_scope=t.choice("batch_scope", BatchScope, d.batch_scope),
        home_assistant=t.boolean("home_assistant", d.home_assistant),
        discovery_prefix=_discovery_prefix(t),
        health_interval_s=t.number("health_interval_s", d.health_interval_s, min=0.0, max=86400),
    )
    _check(t, cfg)
    t.finish()
    return cfg


def _discovery_prefix(t: Table) -> str:
    prefix = t.string("discovery_prefix", "homeassistant")
    if not prefix or any(c in prefix for c in "+#") or prefix.startswith("/"):
        raise t.fail("discovery_prefix", f"expected topic levels without + or #, got {prefix!r}")
    return str(prefix).rstrip("/")


def _check(t: Table, cfg: UpstreamConfig) -> None:
    """Rules that span several keys."""
    if not cfg.tls:
        for key in _TLS_KEYS:
            if t.has(key):
                raise t.fail(key, "only used with tls = true")
    if cfg.key_file is not None and cfg.cert_file is None:
        raise t.fail("key_file", "needs cert_file (the certificate of this key)")
    if cfg.password_file is not None and cfg.password_env is not None:
        raise t.fail("password_env", "set password_file or password_env, not both")
    has_password = cfg.password_file is not None or cfg.password_env is not None
    if has_password and cfg.username is None:
        raise t.fail("username", "required when a password is set")
    if len(cfg.client_id.encode()) > 65535:
        raise t.fail("client_id", "longer than MQTT allows (65535 bytes)")
    if not available(cfg.compression):
        raise t.fail("compression", "zstd needs the zstandard package: pip install gridedge[zstd]")
    if cfg.reconnect_max_s < cfg.reconnect_min_s:
        raise t.fail(
            "reconnect_max_s", f"expected at least reconnect_min_s ({cfg.reconnect_min_s})"
        )


def _path(t: Table, key: str, base_dir: Path) -> Path | None:
    value = t.string(key, None)
    return None if value is None else base_dir / value


def _topic_prefix(t: Table) -> str:
    prefix: str = t.string("topic_prefix", "gridedge")
    if any(c in prefix for c in "+#\0") or any(not level for level in prefix.split("/")):
        raise t.fail(
            "topic_prefix",
            f"expected topic levels without '+', '#' or empty levels, got {prefix!r}",
        )
    return prefix


def enabled_names(upstreams: Iterable[UpstreamConfig]) -> list[str]:
    """The names of the enabled upstreams: the outbox keeps envelopes until all have them."""
    return [u.name for u in upstreams if u.enabled]


def read_password(config: UpstreamConfig) -> str | None:
    """The password of ``config`` from its file or environment variable, None if it has none.

    Read at each connection attempt, so a rotated secret is picked up without a restart.

    Raises:
        ForwardError: the file cannot be read or the variable is not set (the message names the
            file or variable, never the value).
    """
    if config.password_file is not None:
        try:
            text = config.password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ForwardError(
                config.broker, f"cannot read password_file {config.password_file}: {exc.strerror}"
            ) from None
        return text.splitlines()[0] if text else ""
    if config.password_env is not None:
        value = os.environ.get(config.password_env)
        if value is None:
            raise ForwardError(
                config.broker, f"environment variable {config.password_env} is not set"
            )
        return value
    return None
