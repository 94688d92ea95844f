"""The ``[http]`` section: where the HTTP endpoint listens, and who may read it.

Kept apart from :mod:`gridedge.ops.http` so that reading a config never imports the HTTP library.

The endpoint is read-only and bound to loopback by default. Bound to any other address it
requires a credential: ``token_file`` names a file whose first line is the token, which a client
sends as ``Authorization: Bearer <token>`` or as the password of HTTP basic authentication (any
user name); a config that opens the endpoint without one is refused, unless it says
``require_token = false`` (a container whose port is published to the host's loopback only).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from gridedge.errors import ConfigError
from gridedge.tomlread import Table

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9108
DEFAULT_HISTORY_S = 3600.0
DEFAULT_HISTORY_POINTS = 720


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The HTTP endpoint serving ``/metrics``, ``/health``, the status page and its API.

    Attributes:
        enabled: whether to listen at all.
        host: address to bind; loopback unless a scraper or browser on another machine needs it.
        port: TCP port; 0 picks a free one (logged as ``http.listening``).
        readings: also export every meter's latest readings as ``gridedge_meter_*`` gauges.
        token_file: a file whose first line is the credential; required off loopback.
        require_token: false lets a non-loopback host go without a token (containers).
        history_s: how far back the status page's plots reach.
        history_points: points kept per channel over ``history_s`` (memory: 8 bytes each).
    """

    enabled: bool = True
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    readings: bool = False
    token_file: Path | None = None
    require_token: bool = True
    history_s: float = DEFAULT_HISTORY_S
    history_points: int = DEFAULT_HISTORY_POINTS

    @property
    def loopback(self) -> bool:
        """Whether ``host`` is reachable from this machine only."""
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_http(t: Table, base_dir: Path | None = None) -> HttpConfig:
    """Read the ``[http]`` table (absent: the defaults); relative paths resolve in ``base_dir``."""
    token = t.string("token_file", None)
    cfg = HttpConfig(
        enabled=t.boolean("enabled", True),
        host=t.string("host", DEFAULT_HOST),
        port=t.integer("port", DEFAULT_PORT, min=0, max=65535),
        readings=t.boolean("readings", False),
        token_file=None if token is None else (base_dir or Path()) / token,
        require_token=t.boolean("require_token", True),
        history_s=t.number("history_s", DEFAULT_HISTORY_S, min=60.0, max=7 * 86400.0),
        history_points=t.integer("history_points", DEFAULT_HISTORY_POINTS, min=10, max=100_000),
    )
    if any(ch.isspace() for ch in cfg.host):
        raise t.fail("host", f"expected an address without spaces, got {cfg.host!r}")
    if cfg.enabled and not cfg.loopback and cfg.token_file is None and cfg.require_token:
        raise t.fail(
            "host",
            f"{cfg.host!r} is reachable from other machines; set token_file to require a "
            "credential, or listen on 127.0.0.1",
        )
    if cfg.token_file is not None:
        try:
            read_token(cfg.token_file)
        except ConfigError as exc:
            raise t.fail("token_file", exc.problem) from None
    t.finish()
    return cfg


def read_token(path: Path) -> str:
    """The first line of ``path``, stripped.

    Raises:
        ConfigError: the file cannot be read or its first line is empty.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError("http.token_file", f"cannot read {path}: {reason}") from None
    lines = text.splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise ConfigError("http.token_file", f"{path}: the first line is empty")
    return token
