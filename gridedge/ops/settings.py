"""The ``[http]`` section: where the metrics and health endpoint listens.

Kept apart from :mod:`gridedge.ops.http` so that reading a config never imports the HTTP library.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridedge.tomlread import Table

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9108


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The HTTP endpoint serving ``/metrics`` and ``/health``.

    Attributes:
        enabled: whether to listen at all.
        host: address to bind; loopback unless a scraper on another machine needs it.
        port: TCP port; 0 picks a free one (logged as ``http.listening``).
        readings: also export every meter's latest readings as ``gridedge_meter_*`` gauges.
    """

    enabled: bool = True
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    readings: bool = False


def parse_http(t: Table) -> HttpConfig:
    """Read the ``[http]`` table (absent: the defaults)."""
    cfg = HttpConfig(
        enabled=t.boolean("enabled", True),
        host=t.string("host", DEFAULT_HOST),
        port=t.integer("port", DEFAULT_PORT, min=0, max=65535),
        readings=t.boolean("readings", False),
    )
    if any(ch.isspace() for ch in cfg.host):
        raise t.fail("host", f"expected an address without spaces, got {cfg.host!r}")
    t.finish()
    return cfg
