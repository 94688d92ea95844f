"""Forecasts and predictive alerts of a device's configured trend channels.

One :class:`~gridedge.analytics.trend.Forecaster` per ``[[analytics.trend.channels]]`` entry:
each sample updates it, its forecasts join the result, a crossing of the configured limit within
``horizon_s`` with enough confidence raises a predictive alert (``rule = "trend"``), and every
``forecast_interval_s`` a ``forecast`` envelope is emitted.
"""

from __future__ import annotations

from dataclasses import asdict

from gridedge.analytics.alerts import AlertEvent, AlertMachine, AlertParams
from gridedge.analytics.settings import AnalyticsConfig, TrendChannel
from gridedge.analytics.trend import Crossing, Forecaster
from gridedge.model import Envelope, Kind, Sample


class _Trend:
    __slots__ = ("alert", "forecaster", "next_ts", "spec")

    def __init__(self, spec: TrendChannel, config: AnalyticsConfig) -> None:
        self.spec = spec
        self.forecaster = Forecaster(config.trend.horizons, config.trend.params)
        self.next_ts = 0.0
        a = config.alerts
        params = AlertParams(
            raise_threshold=spec.min_confidence,
            clear_threshold=spec.min_confidence / 2.0,
            raise_after_samples=a.raise_after_samples,
            clear_after_samples=a.clear_after_samples,
            min_active_samples=a.min_active_samples,
            rearm_after_samples=a.rearm_after_samples,
        )
        self.alert = AlertMachine(spec.channel, params)


class TrendWatch:
    """The trend channels of one device."""

    __slots__ = ("_device", "_interval_s", "_trends")

    def __init__(self, device: str, config: AnalyticsConfig) -> None:
        self._device = device
        self._interval_s = config.trend.forecast_interval_s
        self._trends = {t.channel: _Trend(t, config) for t in config.trend.channels}

    def __bool__(self) -> bool:
        return bool(self._trends)

    def process(
        self, sample: Sample, envelopes: list[Envelope], events: list[AlertEvent]
    ) -> dict[str, dict[int, float]]:
        """Forecasts per channel and horizon; appends forecast envelopes and alert events."""
        out: dict[str, dict[int, float]] = {}
        ts = sample.ts
        for name, tr in self._trends.items():
            value = sample.values.get(name)
            if value is None:
                continue
            f = tr.forecaster
            f.update(ts, value)
            out[name] = {h: f.forecast(h) for h in f.horizons}
            spec = tr.spec
            crossing = None
            for limit, above in ((spec.above, True), (spec.below, False)):
                if limit is not None and crossing is None:
                    found = f.time_to_threshold(limit, above=above, horizon_s=spec.horizon_s)
                    crossing = (limit, found) if found is not None else None
            confidence = crossing[1].confidence if crossing is not None else 0.0
            event = tr.alert.update(ts, confidence, value, "trend", severity=spec.severity)
            if event is not None:
                events.append(event)
            if ts >= tr.next_ts:
                tr.next_ts = ts + self._interval_s
                envelopes.append(self._envelope(ts, name, tr, out[name], crossing))
        return out

    def _envelope(
        self,
        ts: float,
        name: str,
        tr: _Trend,
        values: dict[int, float],
        crossing: tuple[float, Crossing] | None,
    ) -> Envelope:
        f = tr.forecaster
        body: dict[str, object] = {
            "channel": name,
            "interval_s": round(f.interval_s, 3),
            "horizons": {str(h): round(v, 6) for h, v in values.items()},
            "error": round(f.error1, 6),
        }
        if crossing is not None:
            body["crossing"] = {"limit": crossing[0], **asdict(crossing[1])}
        return Envelope(kind=Kind.FORECAST, device=self._device, ts=ts, body=body)
