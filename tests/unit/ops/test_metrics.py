"""Prometheus metrics: read from the runtime at scrape time, defensively for other components."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from gridedge.analytics.stage import AnalyticsStats
from gridedge.config import OutboxConfig
from gridedge.histogram import Histogram
from gridedge.model import Envelope, Kind
from gridedge.ops.metrics import Metrics
from gridedge.ops.runtime import Runtime
from gridedge.outbox.store import open_outbox
from tests.unit.ops.fakes import (
    T0,
    FakeOutbox,
    make_runtime,
    meter_state,
    parse_exposition,
    upstream_state,
)


async def scrape(runtime: Runtime, now: float = T0) -> dict[str, float]:
    metrics = Metrics(runtime, clock=lambda: now, process=False)
    await metrics.refresh()
    return parse_exposition(metrics.exposition().decode())


async def test_each_meter_has_its_counters_errors_and_online_state() -> None:
    """Polls, samples, values, errors by kind and the online flag appear per device."""
    a = meter_state("a", polls=5, samples=4, values=160, last_success_ts=T0)
    b = meter_state("b", online=False, polls=7, flaps=3, errors=Counter(timeout=6, crc=1))
    samples = await scrape(make_runtime(a, b))
    assert samples['gridedge_polls_total{device="a"}'] == 5
    assert samples['gridedge_samples_total{device="a"}'] == 4
    assert samples['gridedge_channel_values_total{device="a"}'] == 160
    assert samples['gridedge_meter_online{device="a"}'] == 1
    assert samples['gridedge_meter_online{device="b"}'] == 0
    assert samples['gridedge_poll_errors_total{device="b",kind="timeout"}'] == 6
    assert samples['gridedge_poll_errors_total{device="b",kind="crc"}'] == 1
    assert samples['gridedge_poll_flaps_total{device="b"}'] == 3
    assert samples['gridedge_poll_flaps_total{device="a"}'] == 0
    assert samples['gridedge_meter_last_success_timestamp_seconds{device="a"}'] == T0
    assert 'gridedge_meter_last_success_timestamp_seconds{device="b"}' not in samples
    assert samples['gridedge_build_info{version="0.1.0"}'] == 1


async def test_poll_duration_histogram_is_cumulative_with_sum_and_count() -> None:
    """Read durations recorded by the poll loop come out as Prometheus histogram buckets."""
    durations = Histogram(bounds=(0.01, 0.1, 1.0))
    for value in (0.005, 0.01, 0.05, 3.0):
        durations.observe(value)
    samples = await scrape(make_runtime(meter_state("a", read_seconds=durations)))
    bucket = 'gridedge_poll_duration_seconds_bucket{{device="a",le="{}"}}'
    assert samples[bucket.format("0.01")] == 2
    assert samples[bucket.format("0.1")] == 3
    assert samples[bucket.format("1.0")] == 3
    assert samples[bucket.format("+Inf")] == 4
    assert samples['gridedge_poll_duration_seconds_count{device="a"}'] == 4
    assert abs(samples['gridedge_poll_duration_seconds_sum{device="a"}'] - 3.065) < 1e-9


async def test_upstream_and_analytics_state_is_read_from_their_state_objects() -> None:
    """The forwarders' UpstreamState and the analytics stage's stats become metric families."""
    upstreams = {
        "cloud": upstream_state("cloud", published=10, acked=9, reconnects=2, last_publish_ts=T0),
        "backup": upstream_state("backup", connected=False),
    }
    analytics = AnalyticsStats(
        Counter(critical=3), Counter(critical=1, warning=2), 2.5e-5, values=4000, seconds=0.1
    )
    samples = await scrape(make_runtime(upstreams=upstreams, analytics=analytics))
    assert samples['gridedge_upstream_connected{upstream="cloud"}'] == 1
    assert samples['gridedge_upstream_connected{upstream="backup"}'] == 0
    assert samples['gridedge_upstream_publishes_total{upstream="cloud"}'] == 10
    assert samples['gridedge_upstream_acks_total{upstream="cloud"}'] == 9
    assert samples['gridedge_upstream_reconnects_total{upstream="cloud"}'] == 2
    assert samples['gridedge_upstream_last_publish_timestamp_seconds{upstream="cloud"}'] == T0
    assert 'gridedge_upstream_last_publish_timestamp_seconds{upstream="backup"}' not in samples
    assert samples['gridedge_alerts_raised_total{severity="critical"}'] == 3
    assert samples['gridedge_alerts_active{severity="warning"}'] == 2
    assert samples["gridedge_analytics_seconds_per_value"] == 2.5e-5
    assert samples["gridedge_analytics_cpu_seconds_total"] == 0.1
    assert samples["gridedge_analytics_values_total"] == 4000


async def test_no_analytics_and_a_fresh_upstream_leave_only_their_own_metrics_out() -> None:
    """Without analytics no alert metric appears; a never-acked upstream has no timestamp yet."""
    samples = await scrape(make_runtime(upstreams={"x": upstream_state("x", connected=False)}))
    assert samples['gridedge_upstream_connected{upstream="x"}'] == 0
    assert samples['gridedge_upstream_publishes_total{upstream="x"}'] == 0
    assert 'gridedge_upstream_last_publish_timestamp_seconds{upstream="x"}' not in samples
    assert not any(key.startswith("gridedge_alerts_") for key in samples)
    assert "gridedge_analytics_seconds_per_value" not in samples


async def test_outbox_state_drops_and_unreadable_stats() -> None:
    """Health, drops by reason (zero included) and pending come from memory; stats may fail."""
    outbox = FakeOutbox(healthy=False, pending=7, dropped_total={"expired": 4}, stats_error=True)
    samples = await scrape(make_runtime(outbox=outbox))
    assert samples["gridedge_outbox_healthy"] == 0
    assert samples["gridedge_outbox_pending_envelopes"] == 7
    assert samples['gridedge_outbox_dropped_envelopes_total{reason="expired"}'] == 4
    assert samples['gridedge_outbox_dropped_envelopes_total{reason="full"}'] == 0
    assert "gridedge_outbox_envelopes" not in samples


async def test_backlog_and_oldest_unsent_age_per_upstream_come_from_a_real_outbox(
    tmp_path: Path,
) -> None:
    """A real outbox with one upstream: what it acknowledged is retired, the rest is backlog."""
    config = OutboxConfig(path=tmp_path / "outbox.sqlite3", commit_interval_s=0.0)
    async with open_outbox(config, upstreams=["cloud"]) as outbox:
        envelopes = [
            Envelope(kind=Kind.SAMPLE, device="a", ts=T0 + i, body={"i": i}) for i in range(3)
        ]
        await outbox.append(envelopes)
        await outbox.set_cursor("cloud", 1)
        runtime = Runtime()
        runtime.outbox = outbox
        samples = await scrape(runtime, now=T0 + 61)
    assert samples["gridedge_outbox_envelopes"] == 2
    assert samples["gridedge_outbox_appended_envelopes_total"] == 3
    assert samples['gridedge_outbox_backlog_envelopes{upstream="cloud"}'] == 2
    assert samples['gridedge_outbox_oldest_unsent_age_seconds{upstream="cloud"}'] == 60
    assert samples["gridedge_outbox_bytes"] > 0


async def test_process_cpu_and_memory_are_exported() -> None:
    """The process collector adds CPU seconds and resident memory of this process."""
    metrics = Metrics(make_runtime())
    samples = parse_exposition(metrics.exposition().decode())
    assert samples["process_cpu_seconds_total"] > 0
    assert samples["process_resident_memory_bytes"] > 0


async def test_readings_are_exported_in_base_units_with_phase_labels_only_when_asked() -> None:
    """Volts per phase, joules for kWh energy counters, ratios for PF, and each reading's age."""
    meter = meter_state(
        "mains",
        last_success_ts=T0 - 4.0,
        last_values={
            "voltage_l1": 231.5,
            "voltage_l1_l2": 400.9,
            "active_power": 1500.0,
            "energy_import": 2.0,
            "power_factor": 0.95,
            "thd_current_l2": 12.0,
            "x_vendor_thing": 7.0,
        },
    )
    runtime = make_runtime(meter)
    metrics = Metrics(runtime, clock=lambda: T0, process=False, readings=True)
    await metrics.refresh()
    samples = parse_exposition(metrics.exposition().decode())
    assert samples['gridedge_meter_voltage_volts{device="mains",phase="l1"}'] == 231.5
    assert samples['gridedge_meter_line_voltage_volts{device="mains",phase="l1_l2"}'] == 400.9
    assert samples['gridedge_meter_active_power_watts{device="mains",phase="total"}'] == 1500.0
    assert (
        samples['gridedge_meter_active_energy_import_joules_total{device="mains",phase="total"}']
        == 7.2e6
    )
    assert samples['gridedge_meter_current_thd_ratio{device="mains",phase="l2"}'] == 0.12
    assert samples['gridedge_meter_last_reading_age_seconds{device="mains"}'] == 4.0
    assert not any("vendor" in key for key in samples)
    plain = Metrics(runtime, clock=lambda: T0, process=False)
    assert b"gridedge_meter_voltage_volts" not in plain.exposition()


async def test_quarantined_envelopes_are_counted_per_upstream_and_reason() -> None:
    """Each refusal reason of each upstream is its own counter."""
    cloud = upstream_state("cloud", quarantined={"not_authorized": 4, "quota_exceeded": 1})
    samples = await scrape(make_runtime(upstreams={"cloud": cloud}))
    name = "gridedge_upstream_quarantined_envelopes_total"
    assert samples[f'{name}{{reason="not_authorized",upstream="cloud"}}'] == 4
    assert samples[f'{name}{{reason="quota_exceeded",upstream="cloud"}}'] == 1
