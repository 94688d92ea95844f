"""The analytics stage of the daemon: a sink in front of the outbox sink.

For every sample from a poll loop, :class:`AnalyticsSink` runs the analytics and passes the
sample together with its alert, forecast and aggregate envelopes on in the same ``put`` call to
the inner sink, and a poll loop's ``put`` returns only once that call has, so nothing is
reported as handled before it is stored. With report-by-exception on, a sample carries only the
channels that moved beyond their deadband (and is left out when none did); its aggregates still
cover every value.

The stage gathers what the poll loops hand it for ``linger_s`` (or until ``MAX_GATHERED``
calls wait) and analyses it back to back, then stores it in one call: between two samples
analysed one at a time, the loop's I/O work evicts the analytics' code and state from the CPU
caches, which nearly doubles their cost per value.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gridedge.analytics.engine import Analytics, ChannelLimits, Limits
from gridedge.analytics.settings import AnalyticsConfig
from gridedge.channels import CHANNELS
from gridedge.drivers import Driver
from gridedge.log import get_logger
from gridedge.model import Envelope, Kind, Record, Sample, Sink

_log = get_logger("analytics")

MAX_GATHERED = 512
"""Waiting ``put`` calls that make the stage analyse and store at once, not after the linger."""


def driver_limits(meters: Sequence[tuple[str, Driver]]) -> dict[str, Limits]:
    """Physical limits and nominal values of every channel of every meter, from its driver."""
    return {device: channel_limits(driver) for device, driver in meters}


def channel_limits(driver: Driver) -> Limits:
    """One driver's physical limits per channel, with the nominal voltage on voltage channels
    (line-to-line: times sqrt 3) and the rated current on current channels.
    """
    n = driver.nominal
    nominal = {"voltage": n.voltage_v, "voltage_ll": n.voltage_v * math.sqrt(3.0)}
    nominal["current"] = n.current_a
    out: dict[str, ChannelLimits] = {}
    for ch in driver.channels:
        info = CHANNELS.get(ch.name)
        rated = nominal.get(info.quantity) if info is not None else None
        if ch.name == "current_n":
            rated = None  # the neutral of an unbalanced or harmonic-rich load may exceed it
        out[ch.name] = ChannelLimits(ch.min, ch.max, rated)
    return out


def _log_alerts(envelopes: Sequence[Envelope]) -> None:
    """Raised alerts at WARNING, cleared ones at INFO: each lifecycle step is logged once."""
    for envelope in envelopes:
        if envelope.kind is not Kind.ALERT:
            continue
        body = envelope.body
        cleared = body.get("state") == "cleared"
        emit = _log.info if cleared else _log.warning
        emit(
            "alert.cleared" if cleared else "alert.raised",
            device=envelope.device,
            channel=body.get("channel"),
            rule=body.get("rule"),
            value=body.get("value"),
            severity=body.get("severity"),
            score=body.get("score"),
        )


@dataclass(slots=True)
class AnalyticsStats:
    """What the analytics stage reports while it runs (read by metrics).

    Attributes:
        alerts_raised: alerts raised since start, by severity.
        alerts_active: alerts active now, by severity.
        seconds_per_value: CPU seconds per channel value (a moving average over calls).
        values: channel values analysed since start.
        seconds: CPU seconds spent since start.
    """

    alerts_raised: Counter[str] = field(default_factory=Counter)
    alerts_active: Counter[str] = field(default_factory=Counter)
    seconds_per_value: float = 0.0
    values: int = 0
    seconds: float = 0.0


class AnalyticsSink:
    """Runs the analytics on each sample, then hands everything to ``inner``.

    Args:
        inner: the sink that stores.
        config: the ``[analytics]`` section.
        limits: physical limits per device and channel (from the drivers).
        shortest_interval_s: the shortest poll interval of the meters: the stage lingers a
            tenth of it at most.
    """

    def __init__(
        self,
        inner: Sink,
        config: AnalyticsConfig,
        limits: Mapping[str, Limits] | None = None,
        *,
        shortest_interval_s: float | None = None,
    ) -> None:
        self._inner = inner
        # A poll loop waits for its sample to be stored: the gathering may cost it a tenth of
        # its interval at most, or a fast meter would miss ticks.
        cap = shortest_interval_s / 10.0 if shortest_interval_s is not None else math.inf
        self._linger_s = min(config.linger_s, cap)
        self._gathered: list[tuple[Sequence[Record], asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._storing: set[asyncio.Task[None]] = set()
        self.analytics = Analytics(config, limits)
        self.stats = AnalyticsStats(self.analytics.alerts_raised, self.analytics.alerts_active)
        # The latest anomaly score per channel, by device (read by the status page).
        self.scores: dict[str, dict[str, float]] = {}

    def process(self, records: Sequence[Record]) -> list[Record]:
        """The records to store for what a poll loop produced (synchronous part)."""
        out: list[Record] = []
        stats = self.stats
        values_before = stats.values
        t0 = time.thread_time()
        for record in records:
            if not isinstance(record, Sample):
                out.append(record)
                continue
            result = self.analytics.process(record)
            self.scores[record.device] = result.channel_scores
            stats.values += len(record.values)
            if result.report is None:
                out.append(record)
            elif result.report:
                out.append(Sample(record.device, record.ts, result.report, record.quality))
            out.extend(result.envelopes)
            _log_alerts(result.envelopes)
        spent = time.thread_time() - t0
        stats.seconds += spent
        if values_before != stats.values:
            per_value = spent / (stats.values - values_before)
            recent = stats.seconds_per_value
            first = values_before == 0
            stats.seconds_per_value = per_value if first else recent + 0.01 * (per_value - recent)
        return out

    async def put(self, records: Sequence[Record]) -> None:
        """Analyse, then store the sample and whatever the analytics produced; returns once
        stored (gathered with other calls for ``linger_s`` first).
        """
        if self._linger_s <= 0.0:
            await self._inner.put(self.process(records))
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._gathered.append((records, done))
        if len(self._gathered) >= MAX_GATHERED:
            self._store_gathered()
        elif self._timer is None:
            self._timer = loop.call_later(self._linger_s, self._store_gathered)
        # A cancelled caller (the daemon stopping) leaves its records gathered: they are
        # analysed and stored all the same, by the timer or by ``flush``.
        await done

    def _store_gathered(self) -> None:
        """Analyse everything gathered, in order, and start storing it in one call."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        gathered, self._gathered = self._gathered, []
        if not gathered:
            return
        out: list[Record] = []
        waiting: list[asyncio.Future[None]] = []
        for records, done in gathered:
            try:
                out += self.process(records)
            except Exception as exc:  # a bug in the analytics: that caller's poll loop counts it
                if not done.done():
                    done.set_exception(exc)
                continue
            waiting.append(done)
        task = asyncio.get_running_loop().create_task(self._store(out, waiting))
        self._storing.add(task)
        task.add_done_callback(self._storing.discard)

    async def _store(self, records: list[Record], waiting: list[asyncio.Future[None]]) -> None:
        try:
            await self._inner.put(records)
        except asyncio.CancelledError:
            for done in waiting:
                done.cancel()
            raise
        except Exception as exc:  # an outbox failure reaches every caller, as it would have
            told = 0
            for done in waiting:
                if not done.done():
                    done.set_exception(exc)
                    told += 1
            if not told:  # its callers were cancelled (a stop): nobody else would say it
                _log.error("analytics.store_failed", records=len(records), error=repr(exc)[:200])
            return
        for done in waiting:
            if not done.done():
                done.set_result(None)

    async def flush(self) -> None:
        """Store what is gathered, then the aggregates of every open window; called once
        polling has stopped.
        """
        self._store_gathered()
        while self._storing:
            await asyncio.gather(*self._storing, return_exceptions=True)
        envelopes = self.analytics.flush()
        if envelopes:
            await self._inner.put(envelopes)
