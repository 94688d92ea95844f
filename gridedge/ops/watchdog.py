"""Keep systemd told: WATCHDOG pings while the poll loops make progress, and readable STATUS.

A poll loop is either waiting for its next tick (nothing wrong, however long the wait: an
offline meter backs off for a minute) or inside an attempt: reading the meter, then storing the
sample. The gateway counts as stalled when some attempt has been running for a whole watchdog
window and not a single attempt, of any meter, finished during the last tick: a locked or dead
outbox, a hung link. Then WATCHDOG=1 is withheld and systemd, after ``WatchdogSec``, restarts the
service. A healthy gateway pings at every tick: half of ``WATCHDOG_USEC`` or more often.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from gridedge.log import get_logger
from gridedge.ops.health import outbox_stats
from gridedge.ops.systemd import Notifier
from gridedge.outbox.schema import OutboxStats
from gridedge.poll import MeterState

if TYPE_CHECKING:
    from gridedge.ops.runtime import Runtime

_log = get_logger("watchdog")

STATUS_INTERVAL_S = 5.0
"""Longest time between two looks at the gateway (status line, watchdog verdict)."""


class Progress:
    """Tells poll loops that move from loops stuck inside an attempt.

    Args:
        meters: the poll loops' live states (read at every check, so meters added later count).
    """

    def __init__(self, meters: Mapping[str, MeterState]) -> None:
        self._meters = meters
        self._finished = _finished(meters.values())

    def stalled(self, now: float, window_s: float) -> int:
        """How many loops are stuck (0: the gateway makes progress) since the last check.

        Args:
            now: the event loop's clock (what ``MeterState.busy_since`` is measured on).
            window_s: how long an attempt may run before it counts as stuck.
        """
        meters = list(self._meters.values())
        finished = _finished(meters)
        moved = finished > self._finished
        self._finished = finished
        if moved:
            return 0
        return sum(1 for m in meters if m.busy_since is not None and now - m.busy_since >= window_s)


def _finished(meters: Iterable[MeterState]) -> int:
    """Attempts that ran to the end, over every meter (an attempt counts in ``polls`` at start)."""
    return sum(m.polls - (m.busy_since is not None) for m in meters)


def status_line(runtime: Runtime, stats: OutboxStats | None, stalled: int = 0) -> str:
    """A line for ``systemctl status``: ``3 meters online, backlog 120, broker up``."""
    meters = list(runtime.meters.values())
    online = sum(1 for m in meters if m.online)
    if not meters:
        parts = ["no meters"]
    elif online == len(meters):
        parts = [f"{len(meters)} meter{'s' if len(meters) != 1 else ''} online"]
    else:
        parts = [f"{online}/{len(meters)} meters online"]
    if stalled:
        parts.append(f"polling stalled ({stalled} waiting)")
    if runtime.outbox is not None and not runtime.outbox.healthy:
        parts.append("outbox failing")
    upstreams = runtime.upstreams
    if stats is not None:
        if stats.backlog:
            parts.append(f"backlog {max(stats.backlog.values())}")
        else:
            parts.append(f"outbox {stats.rows} envelopes")
    if len(upstreams) == 1:
        (state,) = upstreams.values()
        parts.append("broker up" if state.connected else "broker down")
    elif upstreams:
        up = sum(1 for s in upstreams.values() if s.connected)
        parts.append(f"{up}/{len(upstreams)} brokers up")
    return ", ".join(parts)


async def supervise_forever(notifier: Notifier, runtime: Runtime) -> None:
    """Send WATCHDOG=1 while the gateway makes progress and STATUS when it changes.

    Returns at once when no supervisor listens (``NOTIFY_SOCKET`` unset); else runs until
    cancelled.
    """
    if not notifier.enabled:
        return
    watchdog_s = notifier.watchdog_interval_s()
    tick_s = min(watchdog_s or STATUS_INTERVAL_S, STATUS_INTERVAL_S)
    window_s = watchdog_s or tick_s
    loop = asyncio.get_running_loop()
    progress = Progress(runtime.meters)
    shown = ""
    was_stalled = 0
    while True:
        await asyncio.sleep(tick_s)  # a period, not synchronisation
        stalled = progress.stalled(loop.time(), window_s)
        if watchdog_s is not None and not stalled:
            notifier.send(WATCHDOG=1)
        if stalled and not was_stalled:
            _log.warning("poll.stalled", waiting=stalled, window_s=window_s)
        elif was_stalled and not stalled:
            _log.info("poll.resumed")
        was_stalled = stalled
        line = status_line(runtime, await outbox_stats(runtime, min(1.0, tick_s)), stalled)
        if line != shown:
            notifier.send(STATUS=line)
            shown = line
