"""The HTTP endpoint: ``/metrics`` and ``/health``; the only module that imports aiohttp.

Bound to 127.0.0.1:9108 unless ``[http]`` says otherwise. ``/metrics`` is the Prometheus text
exposition of :class:`~gridedge.ops.metrics.Metrics`; ``/health`` is the JSON report of
:func:`~gridedge.ops.health.assess`, with status 200 while the gateway does its job and 503 when it
does not.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from aiohttp import web

from gridedge.errors import ConfigError
from gridedge.log import get_logger
from gridedge.ops.health import assess, outbox_stats
from gridedge.ops.metrics import CONTENT_TYPE, Metrics
from gridedge.ops.settings import HttpConfig

if TYPE_CHECKING:
    from gridedge.ops.runtime import Runtime

_log = get_logger("http")

_STATS_TIMEOUT_S = 2.0  # a scrape or health probe never waits longer on the outbox
_SHUTDOWN_TIMEOUT_S = 1.0  # open requests get this long once the daemon stops
_INDEX = "gridedge\n\n/metrics  Prometheus metrics\n/health   JSON health report\n"


def build_app(
    runtime: Runtime, metrics: Metrics, *, clock: Callable[[], float] = time.time
) -> web.Application:
    """The web application serving ``/``, ``/metrics`` and ``/health``."""

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=_INDEX)

    async def metrics_page(request: web.Request) -> web.Response:
        await metrics.refresh(_STATS_TIMEOUT_S)
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def health_page(request: web.Request) -> web.Response:
        health = assess(runtime, await outbox_stats(runtime, _STATS_TIMEOUT_S), clock())
        return web.json_response(
            health.report, status=health.http_status, dumps=lambda o: json.dumps(o, indent=2)
        )

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/health", health_page)
    return app


@asynccontextmanager
async def serve_http(
    config: HttpConfig, runtime: Runtime, metrics: Metrics
) -> AsyncIterator[tuple[str, int] | None]:
    """Serve the endpoint until the block exits.

    Yields:
        the bound ``(host, port)`` (the port is the real one when configured as 0), or None
        when ``[http] enabled = false``.

    Raises:
        ConfigError: the address cannot be bound (in use, not local, no permission).
    """
    if not config.enabled:
        yield None
        return
    runner = web.AppRunner(
        build_app(runtime, metrics), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        try:
            await site.start()
        except OSError as exc:
            where = f"{config.host}:{config.port}"
            raise ConfigError("http", f"cannot listen on {where}: {exc.strerror or exc}") from None
        host, port = runner.addresses[0][:2]
        _log.info("http.listening", host=host, port=port)
        yield str(host), int(port)
    finally:
        await runner.cleanup()
