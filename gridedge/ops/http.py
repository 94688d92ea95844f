"""The HTTP endpoint: ``/metrics``, ``/health`` and the status page; the only aiohttp importer.

Bound to 127.0.0.1:9108 unless ``[http]`` says otherwise. ``/metrics`` is the Prometheus text
exposition of :class:`~gridedge.ops.metrics.Metrics`; ``/health`` is the JSON report of
:func:`~gridedge.ops.health.assess`, with status 200 while the gateway does its job and 503 when it
does not. ``/`` is the status page (files under ``status/static``) and ``/api/...`` the JSON it
polls (:mod:`~gridedge.ops.status.api`). Off loopback every path requires the configured token
(compared in constant time); without it the answer is 401.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gridedge.errors import ConfigError
from gridedge.log import get_logger
from gridedge.ops.health import assess, outbox_stats
from gridedge.ops.metrics import CONTENT_TYPE, Metrics
from gridedge.ops.settings import HttpConfig, read_token
from gridedge.ops.status import api

if TYPE_CHECKING:
    from gridedge.ops.runtime import Runtime

_log = get_logger("http")

_STATS_TIMEOUT_S = 2.0  # a scrape or health probe never waits longer on the outbox
_SHUTDOWN_TIMEOUT_S = 1.0  # open requests get this long once the daemon stops
STATIC_DIR = Path(__file__).parent / "status" / "static"
_NO_STORE = {"Cache-Control": "no-store"}


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (bearer, or basic password).

    Compared with :func:`hmac.compare_digest`, so the time taken says nothing about the token.
    """
    if header is None:
        return False
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        try:
            value = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    elif scheme != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


def _require(token: str) -> Middleware:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not authorized(request.headers.get("Authorization"), token):
            return web.json_response(
                {"error": "a credential is required (see [http] token_file)"},
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="gridedge", charset="UTF-8"'},
            )
        return await handler(request)

    return check


def build_app(
    runtime: Runtime,
    metrics: Metrics,
    *,
    clock: Callable[[], float] = time.time,
    token: str | None = None,
) -> web.Application:
    """The web application serving the page, its API, ``/metrics`` and ``/health``.

    Args:
        runtime: the live state.
        metrics: the metrics to expose.
        clock: wall-clock time, for ages.
        token: when set, every request must carry it (see :func:`authorized`).
    """

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers=_NO_STORE)

    async def metrics_page(request: web.Request) -> web.Response:
        await metrics.refresh(_STATS_TIMEOUT_S)
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def health_page(request: web.Request) -> web.Response:
        health = assess(runtime, await outbox_stats(runtime, _STATS_TIMEOUT_S), clock())
        return web.json_response(
            health.report, status=health.http_status, dumps=lambda o: json.dumps(o, indent=2)
        )

    app = web.Application(middlewares=[_require(token)] if token is not None else [])
    app.router.add_get("/", index)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/health", health_page)
    app.router.add_static("/static/", STATIC_DIR)
    _add_api(app, runtime, clock)
    return app


def _board(runtime: Runtime) -> api.StatusBoard:
    if runtime.status is None:
        raise web.HTTPServiceUnavailable(
            text='{"error": "the status board is not running"}', content_type="application/json"
        )
    return runtime.status


def _meter_id(request: web.Request, board: api.StatusBoard) -> str:
    device = request.match_info["id"]
    if device not in board.meters:
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"no meter {device!r}"}), content_type="application/json"
        )
    return device


def _since(request: web.Request) -> float | None:
    raw = request.query.get("since")
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"since: expected seconds since the epoch, got {raw!r}"}),
            content_type="application/json",
        ) from None


def _add_api(app: web.Application, runtime: Runtime, clock: Callable[[], float]) -> None:
    async def status(request: web.Request) -> web.Response:
        board = _board(runtime)
        stats = await outbox_stats(runtime, _STATS_TIMEOUT_S)
        now = clock()
        body = api.status_json(runtime, board, assess(runtime, stats, now), stats, now)
        return web.json_response(body, headers=_NO_STORE)

    async def meter(request: web.Request) -> web.Response:
        board = _board(runtime)
        body = api.meter_json(board, runtime, _meter_id(request, board), clock())
        return web.json_response(body, headers=_NO_STORE)

    async def series(request: web.Request) -> web.Response:
        board = _board(runtime)
        device = _meter_id(request, board)
        channel = request.query.get("channel", "")
        body = api.series_json(board, device, channel, _since(request))
        return web.json_response(body, headers=_NO_STORE)

    async def alerts(request: web.Request) -> web.Response:
        return web.json_response(api.alerts_json(_board(runtime)), headers=_NO_STORE)

    app.router.add_get("/api/status", status)
    app.router.add_get("/api/alerts", alerts)
    app.router.add_get("/api/meters/{id}", meter)
    app.router.add_get("/api/meters/{id}/series", series)


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
    token = read_token(config.token_file) if config.token_file is not None else None
    runner = web.AppRunner(
        build_app(runtime, metrics, token=token),
        access_log=None,
        shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
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
        if token is None and not config.loopback:
            _log.warning("http.unauthenticated", host=host, port=port, require_token=False)
        auth = "token" if token is not None else "none"
        _log.info("http.listening", host=host, port=port, auth=auth)
        yield str(host), int(port)
    finally:
        await runner.cleanup()
