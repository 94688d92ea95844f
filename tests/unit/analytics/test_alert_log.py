"""Alerts reach the log: raised at WARNING, cleared at INFO, once each, with their evidence."""

from __future__ import annotations

from collections.abc import Sequence

from structlog.testing import capture_logs

from gridedge.analytics.alerts import AlertParams
from gridedge.analytics.engine import ChannelLimits
from gridedge.analytics.settings import AnalyticsConfig
from gridedge.analytics.stage import AnalyticsSink
from gridedge.model import Record, Sample

T0 = 1_767_571_200.0
LIMITS = {"m1": {"voltage_l1": ChannelLimits(0.0, 300.0)}}


class NullSink:
    """Takes records and keeps nothing."""

    async def put(self, records: Sequence[Record]) -> None:
        del records


async def test_a_raised_and_cleared_alert_are_logged_once_each() -> None:
    """A limit violation logs alert.raised (WARNING) once, its end alert.cleared (INFO) once."""
    params = AlertParams(min_active_samples=2, clear_after_samples=2)
    sink = AnalyticsSink(NullSink(), AnalyticsConfig(alerts=params), LIMITS)
    volts = [230.0] * 5 + [320.0] * 3 + [230.0] * 10
    with capture_logs() as logs:
        for i, v in enumerate(volts):
            await sink.put([Sample("m1", T0 + 10.0 * i, {"voltage_l1": v})])
    alerts = [e for e in logs if e["event"].startswith("alert.")]
    assert [(e["event"], e["log_level"]) for e in alerts] == [
        ("alert.raised", "warning"),
        ("alert.cleared", "info"),
    ]
    raised = alerts[0]
    assert (raised["device"], raised["channel"], raised["rule"]) == ("m1", "voltage_l1", "limit")
    assert raised["value"] == 320.0
    assert raised["severity"] == "critical"
