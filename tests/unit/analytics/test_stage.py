"""The analytics stage in front of the outbox: one put per sample, metrics state, River lazily."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace

from gridedge.analytics.engine import Analytics, ChannelLimits, corrected
from gridedge.analytics.settings import AggregateConfig, AnalyticsConfig
from gridedge.analytics.stage import AnalyticsSink
from gridedge.model import Envelope, Kind, MeterStatus, Record, Sample, to_envelope

T0 = 1_767_571_200.0
LIMITS = {"m1": {"voltage_l1": ChannelLimits(0.0, 300.0), "frequency": ChannelLimits(45.0, 65.0)}}


class ListSink:
    """Records every put call."""

    def __init__(self) -> None:
        self.calls: list[list[Envelope]] = []

    async def put(self, records: Sequence[Record]) -> None:
        self.calls.append([to_envelope(r) for r in records])


def _sample(i: int, voltage: float) -> Sample:
    return Sample("m1", T0 + 10.0 * i, {"voltage_l1": voltage, "frequency": 50.0})


async def test_a_sample_and_its_alert_go_into_one_put() -> None:
    """A limit violation is stored together with its sample, the alert urgent and first after it."""
    inner = ListSink()
    sink = AnalyticsSink(inner, AnalyticsConfig(), LIMITS)
    for i in range(5):
        await sink.put([_sample(i, 230.0)])
    await sink.put([_sample(5, 320.0)])
    last = inner.calls[-1]
    assert [e.kind for e in last] == [Kind.SAMPLE, Kind.ALERT]
    assert last[1].urgent
    assert last[1].body["rule"] == "limit"
    assert last[1].body["channel"] == "voltage_l1"
    assert last[1].body["severity"] == "critical"
    assert sink.stats.alerts_raised == {"critical": 1}
    assert sink.stats.alerts_active == {"critical": 1}
    assert sink.stats.values == 12
    assert sink.stats.seconds_per_value >= 0.0


async def test_status_envelopes_pass_through_untouched() -> None:
    """Status records are forwarded as they are, wrapped only by the outbox sink."""
    inner = ListSink()
    sink = AnalyticsSink(inner, AnalyticsConfig())
    status = MeterStatus("m1", T0, online=False, error="timeout")
    await sink.put([status])
    assert inner.calls == [
        [Envelope(Kind.STATUS, "m1", T0, {"state": "offline", "error": "timeout"})]
    ]


async def test_aggregates_follow_the_sample_that_closes_a_window() -> None:
    """The first sample of a new minute carries the previous minute's aggregate envelope."""
    inner = ListSink()
    sink = AnalyticsSink(inner, AnalyticsConfig())
    for i in range(7):
        await sink.put([_sample(i, 230.0 + i)])
    kinds = [[e.kind for e in call] for call in inner.calls]
    assert kinds[6] == [Kind.SAMPLE, Kind.AGGREGATE]
    assert inner.calls[6][1].body["channels"]["voltage_l1"]["count"] == 6  # type: ignore[index]


async def test_report_by_exception_keeps_only_channels_that_moved() -> None:
    """With a deadband, a sample carries only changed channels and is dropped when none moved."""
    config = replace(
        AnalyticsConfig(),
        aggregate=AggregateConfig(windows_s=(), report_by_exception=True, deadband=1.0),
    )
    inner = ListSink()
    sink = AnalyticsSink(inner, config)
    await sink.put([_sample(0, 230.0)])
    await sink.put([_sample(1, 230.5)])
    await sink.put([_sample(2, 232.0)])
    assert [len(c) for c in inner.calls] == [1, 0, 1]
    assert inner.calls[2][0].body["values"] == {"voltage_l1": 232.0}


def test_device_scores_are_discounted_for_many_channels() -> None:
    """One channel keeps its score; forty channels need a rarer value for the same score."""
    assert corrected(0.6, 1) == 0.6
    assert corrected(0.6, 40) < 0.5
    assert corrected(0.0, 40) == 0.0


def test_default_analytics_never_import_river() -> None:
    """River is loaded only when a River model is configured (checked in a fresh interpreter)."""
    code = (
        "import sys\n"
        "from gridedge.analytics.engine import Analytics\n"
        "from gridedge.analytics.settings import AnalyticsConfig\n"
        "from gridedge.model import Sample\n"
        "a = Analytics(AnalyticsConfig())\n"
        "a.process(Sample('m', 0.0, {'x': 1.0}))\n"
        "print('river' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_engine_keeps_devices_apart() -> None:
    """Each device has its own state: a spike on one does not score on the other."""
    analytics = Analytics(AnalyticsConfig(), LIMITS)
    r1 = analytics.process(Sample("m1", T0, {"voltage_l1": 400.0}))
    r2 = analytics.process(Sample("m2", T0, {"voltage_l1": 400.0}))
    assert r1.score == 1.0
    assert r1.raised[0].rule == "limit"
    assert r2.score == 0.0
    assert not r2.raised
