"""The daemon: open the outbox, start one poll loop per meter, stop gracefully on request.

``run(config, shutdown_trigger=...)`` is the whole lifecycle; tests stop it with an event, the
command line with SIGTERM/SIGINT. SIGHUP does not reload the configuration: it is logged
(``daemon.sighup_ignored``) and otherwise ignored, so it can no longer end the daemon without its
graceful stop. Resources are entered on one ``AsyncExitStack`` (outbox first, so it is the last
to close and flushes whatever the loops handed it), activities run in one ``TaskGroup``. Each
poll loop contains its own meter's failures (see :mod:`gridedge.poll`); an exception that does
end an activity (the outbox failing, or a bug in this wiring) ends ``run`` with it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack

from gridedge import __version__
from gridedge.analytics.stage import AnalyticsSink, driver_limits
from gridedge.config import Config, MeterConfig, SimulatedLinkConfig
from gridedge.forward.forwarder import start_forwarders
from gridedge.forward.settings import enabled_names
from gridedge.links import Link
from gridedge.links.factory import open_links
from gridedge.links.modbus.sunspec import SunSpecLink
from gridedge.log import get_logger
from gridedge.model import Sink
from gridedge.ops.health import fleet_report
from gridedge.ops.runtime import Runtime
from gridedge.ops.status.board import status_board
from gridedge.ops.systemd import Notifier
from gridedge.ops.watchdog import supervise_forever
from gridedge.outbox.sink import OutboxSink
from gridedge.outbox.store import open_outbox
from gridedge.poll import MeterState, Schedule, poll_forever, spread_phases
from gridedge.signals import signal_trigger

__all__ = ["STOP_TIMEOUT_S", "Runtime", "run"]

_log = get_logger("daemon")

STOP_TIMEOUT_S = 5.0
"""Upper bound on a graceful stop once shutdown is requested."""


async def run(
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    runtime: Runtime | None = None,
) -> None:
    """Run the gateway until ``shutdown_trigger`` returns (default: SIGTERM or SIGINT).

    Args:
        config: the validated configuration.
        shutdown_trigger: awaited while the gateway runs; when it returns, the gateway stops.
        runtime: filled with live state as the gateway runs (for callers that watch it).
    """
    notifier = Notifier()
    runtime = runtime if runtime is not None else Runtime()
    async with AsyncExitStack() as stack:
        stack.callback(notifier.close)
        if shutdown_trigger is None:
            shutdown_trigger = signal_trigger(stack, on_hangup=_hangup)
        outbox = await stack.enter_async_context(
            open_outbox(config.outbox, upstreams=enabled_names(config.upstreams))
        )
        runtime.outbox = outbox
        board = runtime.status = status_board(
            config.gateway.id, config.meters, config.drivers, config.http
        )
        # The history rings serve the status page alone: without HTTP they cost memory for nothing.
        sink: Sink = board.wrap(OutboxSink(outbox)) if config.http.enabled else OutboxSink(outbox)
        analytics: AnalyticsSink | None = None
        if config.analytics.enabled:
            meters = [(m.id, config.drivers[m.driver]) for m in config.meters]
            shortest = min((m.interval_s for m in config.meters), default=None)
            limits = driver_limits(meters)
            analytics = AnalyticsSink(sink, config.analytics, limits, shortest_interval_s=shortest)
            sink = analytics
            runtime.analytics = analytics.stats
            board.use_scores(analytics.scores)
        links = await open_links(config.meters, config.drivers, stack, runtime.buses)
        if config.http.enabled:
            # aiohttp and the Prometheus client load only when they serve (about 16 MB RSS).
            from gridedge.ops.http import serve_http
            from gridedge.ops.metrics import Metrics

            metrics = Metrics(runtime, readings=config.http.readings)
            await stack.enter_async_context(serve_http(config.http, runtime, metrics))
        async with asyncio.TaskGroup() as tg:
            tasks = _start_polling(tg, config, links, sink, runtime.meters)
            forwarders = start_forwarders(
                tg,
                config.upstreams,
                site=config.gateway.site,
                gateway=config.gateway.id,
                outbox=outbox,
                states=runtime.upstreams,
                meters=[(m.id, config.drivers[m.driver]) for m in config.meters],
                health=functools.partial(_fleet_report, runtime, started=time.time()),
                version=__version__,
            )
            tasks = [*tasks, *forwarders]
            supervisor = tg.create_task(supervise_forever(notifier, runtime), name="watchdog")
            _log.info(
                "daemon.started",
                gateway=config.gateway.id,
                meters=len(config.meters),
                outbox=str(config.outbox.path),
            )
            notifier.send(READY=1, STATUS=f"{len(config.meters)} meters polling")
            await shutdown_trigger()
            _log.info("daemon.stopping")
            notifier.send(STOPPING=1)
            supervisor.cancel()
            for task in tasks:
                task.cancel()
        if analytics is not None:
            # Polling has stopped: partial aggregate windows go in before the outbox closes.
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await analytics.flush()
    _log.info("daemon.stopped")


async def _fleet_report(runtime: Runtime, *, started: float) -> bytes:
    return await fleet_report(runtime, started=started, version=__version__, now=time.time())


def _bus_of(meter: MeterConfig) -> str:
    """The physical bus a meter is read over; simulated meters share one CPU, not a bus."""
    link = meter.link
    return "simulated" if isinstance(link, SimulatedLinkConfig) else link.bus


def _hangup() -> None:
    _log.warning(
        "daemon.sighup_ignored",
        reason="configuration reload is not supported; restart the service to apply changes",
    )


def _start_polling(
    tg: asyncio.TaskGroup,
    config: Config,
    links: dict[str, Link],
    sink: Sink,
    states: dict[str, MeterState],
) -> Sequence[asyncio.Task[None]]:
    tasks = []
    phases = spread_phases((m.id, _bus_of(m), m.interval_s) for m in config.meters)
    for meter in config.meters:
        state = states.setdefault(meter.id, MeterState(meter.id))
        schedule = Schedule(
            interval_s=meter.interval_s,
            phase_s=phases[meter.id],
            offline_after=meter.offline_after,
            max_backoff_s=meter.max_backoff_s,
        )
        link = links[meter.id]
        # A complete sample has every channel the meter really has: computed ones included,
        # and under SunSpec discovery only those of the model instance found.
        channels: int | Callable[[], int] = len(config.drivers[meter.driver].channel_names)
        if isinstance(link, SunSpecLink):
            channels = link.complete_channels
        coro = poll_forever(link, schedule, sink, state, channels=channels)
        tasks.append(tg.create_task(coro, name=f"poll:{meter.id}"))
    return tasks
