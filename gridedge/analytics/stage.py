"""The analytics stage of the daemon: a sink in front of the outbox sink.

For every sample envelope from a poll loop, :class:`AnalyticsSink` runs the analytics and puts
the sample together with its alert, forecast and aggregate envelopes into the outbox in the same
``put`` call, so nothing is reported as handled before it is stored. With report-by-exception
on, a sample envelope carries only the channels that moved beyond their deadband (and is left
out when none did); its aggregates still cover every value.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from gridedge.analytics.engine import Analytics, Limits
from gridedge.analytics.settings import AnalyticsConfig
from gridedge.config import Config
from gridedge.drivers import Driver
from gridedge.model import Envelope, Kind, Quality, Sample
from gridedge.poll import SampleSink


def driver_limits(meters: Sequence[tuple[str, Driver]]) -> dict[str, Limits]:
    """Physical limits of every channel of every meter, from its driver."""
    return {
        device: {ch.name: (ch.min, ch.max) for ch in driver.channels} for device, driver in meters
    }


class AnalyticsSink:
    """Runs the analytics on each sample, then hands everything to ``inner``.

    State for metrics: ``alerts_raised`` and ``alerts_active`` by severity, ``seconds_per_value``
    (recent CPU time of the analytics per channel value); ``values`` and ``seconds`` are totals.
    """

    def __init__(
        self,
        inner: SampleSink,
        config: AnalyticsConfig,
        limits: Mapping[str, Limits] | None = None,
    ) -> None:
        self._inner = inner
        self.analytics = Analytics(config, limits)
        self.values = 0
        self.seconds = 0.0
        self._recent = 0.0

    @property
    def alerts_raised(self) -> Mapping[str, int]:
        """Alerts raised since start, by severity."""
        return self.analytics.alerts_raised

    @property
    def alerts_active(self) -> Mapping[str, int]:
        """Alerts active now, by severity."""
        return self.analytics.alerts_active

    @property
    def seconds_per_value(self) -> float:
        """CPU seconds the analytics spend per channel value (a moving average over calls)."""
        return self._recent

    def process(self, envelopes: list[Envelope]) -> list[Envelope]:
        """The envelopes to store for what a poll loop produced (synchronous part)."""
        out: list[Envelope] = []
        values_before = self.values
        t0 = time.process_time()
        for env in envelopes:
            if env.kind is not Kind.SAMPLE:
                out.append(env)
                continue
            values = env.body.get("values")
            if not isinstance(values, dict):
                out.append(env)
                continue
            quality = Quality(str(env.body.get("quality", Quality.GOOD.value)))
            result = self.analytics.process(Sample(env.device, env.ts, values, quality))
            self.values += len(values)
            if result.report is None:
                out.append(env)
            elif result.report:
                body = {"values": result.report, "quality": quality.value}
                out.append(Envelope(kind=Kind.SAMPLE, device=env.device, ts=env.ts, body=body))
            out.extend(result.envelopes)
        spent = time.process_time() - t0
        self.seconds += spent
        if values_before != self.values:
            per_value = spent / (self.values - values_before)
            first = values_before == 0
            self._recent = per_value if first else self._recent + 0.01 * (per_value - self._recent)
        return out

    async def put(self, envelopes: list[Envelope]) -> None:
        """Analyse, then store the sample and whatever the analytics produced in one call."""
        await self._inner.put(self.process(envelopes))

    async def flush(self) -> None:
        """Store the aggregates of every open window; called once polling has stopped."""
        envelopes = self.analytics.flush()
        if envelopes:
            await self._inner.put(envelopes)


def analytics_sink(inner: SampleSink, config: Config) -> AnalyticsSink:
    """The daemon's analytics stage for ``config``, in front of ``inner``."""
    meters = [(m.id, config.drivers[m.driver]) for m in config.meters]
    return AnalyticsSink(inner, config.analytics, driver_limits(meters))
