"""Prometheus metrics: the only module that imports prometheus_client.

Nothing on a hot path calls into Prometheus. :class:`Metrics` owns its own registry with one
custom collector that reads the daemon's :class:`~gridedge.ops.runtime.Runtime` when scraped:
the poll loops' :class:`~gridedge.poll.MeterState`, the outbox, each forwarder's
:class:`~gridedge.forward.state.UpstreamState` and the analytics stage's
:class:`~gridedge.analytics.stage.AnalyticsStats`, all typed.

The README lists every metric.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from gridedge import __version__
from gridedge.ops.health import outbox_stats
from gridedge.ops.readings import reading_families
from gridedge.outbox.schema import DropReason, OutboxStats

if TYPE_CHECKING:
    from gridedge.analytics.stage import AnalyticsStats
    from gridedge.forward.state import UpstreamState
    from gridedge.links.modbus.stats import BusStats
    from gridedge.ops.runtime import OutboxView, Runtime
    from gridedge.poll import MeterState

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The Content-Type of :meth:`Metrics.exposition` (Prometheus text format)."""


class Metrics:
    """A registry describing one running gateway; serve :meth:`exposition` as ``/metrics``.

    Args:
        runtime: the live state to describe.
        clock: wall-clock seconds, for ages.
        process: also export the process' CPU time, memory and file descriptors.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        clock: Callable[[], float] = time.time,
        process: bool = True,
        readings: bool = False,
    ) -> None:
        self._runtime = runtime
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = _RuntimeCollector(runtime, clock, readings=readings)
        self.registry.register(self._collector)
        if process:
            ProcessCollector(registry=self.registry)

    async def refresh(self, timeout_s: float = 2.0) -> None:
        """Read what needs I/O (the outbox's statistics) ahead of :meth:`exposition`."""
        self._collector.stats = await outbox_stats(self._runtime, timeout_s)

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return bytes(_generate_latest(self.registry))


class _RuntimeCollector:
    """Builds every gridedge metric family from the runtime at collection time."""

    def __init__(
        self, runtime: Runtime, clock: Callable[[], float], *, readings: bool = False
    ) -> None:
        self._runtime = runtime
        self._readings = readings
        self._clock = clock
        self.stats: OutboxStats | None = None

    def collect(self) -> Iterator[Metric]:
        runtime = self._runtime
        build = InfoMetricFamily("gridedge_build", "gridedge version running.")
        build.add_metric([], {"version": __version__})
        yield build
        yield from _meter_families(list(runtime.meters.values()))
        yield from _bus_families([runtime.buses[b] for b in sorted(runtime.buses)])
        if runtime.outbox is not None:
            yield from _outbox_families(runtime.outbox, self.stats, self._clock())
        yield from _upstream_families(runtime.upstreams)
        yield from _analytics_families(runtime.analytics)
        if self._readings:
            yield from _reading_families(list(runtime.meters.values()), self._clock())


def _meter_families(meters: list[MeterState]) -> Iterator[Metric]:
    label = ["device"]
    counters: tuple[tuple[str, str, Callable[[MeterState], int]], ...] = (
        ("gridedge_polls_total", "Read attempts per meter.", lambda m: m.polls),
        ("gridedge_samples_total", "Samples stored per meter.", lambda m: m.samples),
        ("gridedge_channel_values_total", "Channel values stored per meter.", lambda m: m.values),
        (
            "gridedge_poll_overruns_total",
            "Ticks skipped because a read overran.",
            lambda m: m.overruns,
        ),
        (
            "gridedge_poll_flaps_total",
            "Reads that failed right after a good one (each flap of a flapping link).",
            lambda m: m.flaps,
        ),
    )
    for name, doc, read in counters:
        family = CounterMetricFamily(name, doc, labels=label)
        for m in meters:
            family.add_metric([m.device], read(m))
        yield family
    errors = CounterMetricFamily(
        "gridedge_poll_errors_total", "Failed reads per meter and kind.", labels=["device", "kind"]
    )
    online = GaugeMetricFamily("gridedge_meter_online", "1 while a meter answers.", labels=label)
    last = GaugeMetricFamily(
        "gridedge_meter_last_success_timestamp_seconds",
        "Wall-clock time of the last successful read.",
        labels=label,
    )
    duration = HistogramMetricFamily(
        "gridedge_poll_duration_seconds", "Time to read a meter (success or failure).", labels=label
    )
    for m in meters:
        for kind, n in sorted(m.errors.items()):
            errors.add_metric([m.device, kind], n)
        online.add_metric([m.device], 1.0 if m.online else 0.0)
        if m.last_success_ts is not None:
            last.add_metric([m.device], m.last_success_ts)
        buckets = [(_le(b), float(n)) for b, n in m.read_seconds.cumulative()]
        duration.add_metric([m.device], buckets, m.read_seconds.total)
    yield from (errors, online, last, duration)


def _bus_families(buses: list[BusStats]) -> Iterator[Metric]:
    label = ["bus"]
    counters: tuple[tuple[str, str, Callable[[BusStats], int]], ...] = (
        ("gridedge_modbus_requests_total", "Modbus requests sent per bus.", lambda b: b.requests),
        (
            "gridedge_modbus_sent_bytes_total",
            "Request bytes written per bus.",
            lambda b: b.bytes_sent,
        ),
        (
            "gridedge_modbus_received_bytes_total",
            "Bytes received per bus, valid or not.",
            lambda b: b.bytes_received,
        ),
    )
    for name, doc, read in counters:
        family = CounterMetricFamily(name, doc, labels=label)
        for b in buses:
            family.add_metric([b.bus], read(b))
        yield family
    errors = CounterMetricFamily(
        "gridedge_modbus_errors_total",
        "Failed Modbus reads per bus and kind.",
        labels=["bus", "kind"],
    )
    duration = HistogramMetricFamily(
        "gridedge_modbus_request_duration_seconds",
        "Time from a Modbus request to its answer or failure.",
        labels=label,
    )
    for b in buses:
        for kind, n in sorted(b.errors.items()):
            errors.add_metric([b.bus, kind], n)
        buckets = [(_le(bound), float(n)) for bound, n in b.request_seconds.cumulative()]
        duration.add_metric([b.bus], buckets, b.request_seconds.total)
    yield from (errors, duration)


def _outbox_families(outbox: OutboxView, stats: OutboxStats | None, now: float) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "gridedge_outbox_healthy",
        "1 while the last outbox commit succeeded.",
        1 if outbox.healthy else 0,
    )
    yield CounterMetricFamily(
        "gridedge_outbox_appended_envelopes_total",
        "Envelopes stored by this process.",
        outbox.appended_total,
    )
    yield CounterMetricFamily(
        "gridedge_outbox_commits_total", "Outbox write transactions.", outbox.commits_total
    )
    yield GaugeMetricFamily(
        "gridedge_outbox_pending_envelopes", "Envelopes waiting for a commit.", outbox.pending
    )
    dropped = CounterMetricFamily(
        "gridedge_outbox_dropped_envelopes_total",
        "Envelopes dropped over the outbox file's life, by reason.",
        labels=["reason"],
    )
    totals = outbox.dropped_total
    for reason in DropReason:
        dropped.add_metric([reason.value], totals.get(reason.value, 0))
    yield dropped
    yield _labelled(
        CounterMetricFamily,
        "gridedge_outbox_dropped_unsent_envelopes_total",
        "Dropped envelopes an upstream had not received.",
        "upstream",
        outbox.dropped_unsent_total,
    )
    if stats is not None:
        yield from _stats_families(stats, now)


def _stats_families(stats: OutboxStats, now: float) -> Iterator[Metric]:
    yield GaugeMetricFamily("gridedge_outbox_envelopes", "Envelopes stored.", stats.rows)
    yield GaugeMetricFamily("gridedge_outbox_bytes", "Stored envelope bytes.", stats.bytes)
    yield GaugeMetricFamily(
        "gridedge_outbox_file_bytes", "Outbox database and WAL size on disk.", stats.file_bytes
    )
    yield _labelled(
        GaugeMetricFamily,
        "gridedge_outbox_backlog_envelopes",
        "Stored envelopes an upstream has not acknowledged.",
        "upstream",
        stats.backlog,
    )
    ages = {
        name: 0.0 if ts is None else max(0.0, now - ts)
        for name, ts in stats.oldest_unsent_ts.items()
    }
    yield _labelled(
        GaugeMetricFamily,
        "gridedge_outbox_oldest_unsent_age_seconds",
        "Age of the oldest envelope an upstream has not acknowledged (0 when none).",
        "upstream",
        ages,
    )


_UpstreamField = Callable[["UpstreamState"], float | None]
_Family = type[CounterMetricFamily] | type[GaugeMetricFamily]


def _upstream_families(upstreams: Mapping[str, UpstreamState]) -> Iterator[Metric]:
    fields: tuple[tuple[_Family, str, str, _UpstreamField], ...] = (
        (
            GaugeMetricFamily,
            "gridedge_upstream_connected",
            "1 while connected.",
            lambda u: float(u.connected),
        ),
        (
            CounterMetricFamily,
            "gridedge_upstream_publishes_total",
            "Envelopes published (re-sends included).",
            lambda u: u.published,
        ),
        (
            CounterMetricFamily,
            "gridedge_upstream_acks_total",
            "Envelopes the broker acknowledged.",
            lambda u: u.acked,
        ),
        (
            CounterMetricFamily,
            "gridedge_upstream_reconnects_total",
            "Reconnects.",
            lambda u: u.reconnects,
        ),
        (
            GaugeMetricFamily,
            "gridedge_upstream_last_publish_timestamp_seconds",
            "Wall-clock time of the last acknowledged publish.",
            lambda u: u.last_publish_ts,
        ),
    )
    for cls, name, doc, read in fields:
        values = {
            upstream: value
            for upstream, state in upstreams.items()
            if (value := read(state)) is not None
        }
        yield _labelled(cls, name, doc, "upstream", values)
    yield _quarantined_family(upstreams)


def _quarantined_family(upstreams: Mapping[str, UpstreamState]) -> Metric:
    family = CounterMetricFamily(
        "gridedge_upstream_quarantined_envelopes",
        "Envelopes the broker refused (MQTT 5 reason code), kept aside in the outbox.",
        labels=["upstream", "reason"],
    )
    for upstream, state in sorted(upstreams.items()):
        for reason, count in sorted(state.quarantined.items()):
            family.add_metric([upstream, reason], float(count))
    return family


def _analytics_families(analytics: AnalyticsStats | None) -> Iterator[Metric]:
    if analytics is None:
        return
    yield _labelled(
        CounterMetricFamily,
        "gridedge_alerts_raised_total",
        "Alerts raised, by severity.",
        "severity",
        analytics.alerts_raised,
    )
    yield _labelled(
        GaugeMetricFamily,
        "gridedge_alerts_active",
        "Alerts currently active, by severity.",
        "severity",
        analytics.alerts_active,
    )
    yield GaugeMetricFamily(
        "gridedge_analytics_seconds_per_value",
        "Analytics processing time per channel value (recent average).",
        analytics.seconds_per_value,
    )
    yield CounterMetricFamily(
        "gridedge_analytics_cpu_seconds",
        "CPU seconds the analytics have spent since start.",
        analytics.seconds,
    )
    yield CounterMetricFamily(
        "gridedge_analytics_values",
        "Channel values the analytics have analysed since start.",
        analytics.values,
    )


def _reading_families(meters: list[MeterState], now: float) -> Iterator[Metric]:
    for family in reading_families(meters, now):
        cls = CounterMetricFamily if family.metric.counter else GaugeMetricFamily
        # prometheus_client appends _total to counter names itself.
        name = (
            family.metric.name.removesuffix("_total")
            if family.metric.counter
            else (family.metric.name)
        )
        labels = ["device", "phase"] if family.samples and family.samples[0][1] else ["device"]
        out = cls(name, family.metric.help, labels=labels)
        for device, phase, value in family.samples:
            out.add_metric([device, phase] if len(labels) == 2 else [device], value)
        yield out


def _labelled(
    cls: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    doc: str,
    label: str,
    values: Mapping[str, float | int],
) -> Metric:
    family = cls(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], float(value))
    return family


def _le(bound: float) -> str:
    """A bucket bound as Prometheus writes it."""
    return "+Inf" if math.isinf(bound) else repr(bound)
