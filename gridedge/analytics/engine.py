"""The analytics of one gateway: samples in, scores and envelopes out (pure, synchronous).

:class:`Analytics` keeps one :class:`DeviceAnalytics` per device; each sample goes through the
device's rules, detectors, alert machines, forecasters and aggregators in one call. The daemon
(:mod:`~gridedge.analytics.stage`) and ``gridedge replay`` (:mod:`~gridedge.analytics.replay`)
both use exactly this code.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from gridedge.analytics.aggregate import Deadband, WindowAggregator
from gridedge.analytics.alerts import AlertEvent, AlertMachine, AlertParams, AlertState, Severity
from gridedge.analytics.detectors import SURPRISE_HALF, ChannelDetector, Holdoff, Surprise
from gridedge.analytics.device_models import DeviceModels
from gridedge.analytics.hold import Hold, Reference
from gridedge.analytics.rules import ChannelRules, DropoutRule, RuleParams
from gridedge.analytics.settings import AnalyticsConfig, TrendChannel
from gridedge.analytics.trend import Crossing, Forecaster
from gridedge.channels import CHANNELS
from gridedge.model import Envelope, Kind, Quality, Sample

if TYPE_CHECKING:
    from gridedge.analytics.river_models import DeviceRiver


class ChannelLimits(NamedTuple):
    """What the driver says about one channel: physical range and nominal value."""

    min: float | None = None
    max: float | None = None
    nominal: float | None = None
    """Nominal voltage of a voltage channel, rated current of a current channel."""


Limits = Mapping[str, ChannelLimits]
"""Limits per channel name, from the driver."""

DEVICE_CHANNEL = "*"
"""The channel name of device-level alerts (dropout, multi-channel models)."""

MAX_ABS_VALUE = 1e15
"""Values beyond this magnitude (or not finite) are skipped: no meter measures them, and near
the float limits the detectors' differences and squares would overflow into NaN."""


@dataclass(slots=True)
class Result:
    """What one sample produced."""

    score: float
    channel_scores: dict[str, float]
    envelopes: list[Envelope]
    raised: list[AlertEvent] = field(default_factory=list)
    report: dict[str, float] | None = None
    forecasts: dict[str, dict[int, float]] = field(default_factory=dict)
    active: bool = False
    """Whether any alert of the device is active after this sample."""


WEEK_S = 7 * 86400.0
_COUNTERS = frozenset(n for n, info in CHANNELS.items() if "energy" in info.quantity)
"""Channels that only ever count up: their detectors see the rate, not the reading."""


class _Channel:
    __slots__ = ("alert", "counter", "detector", "holdoff", "last", "last_ts", "ref", "rules")

    def __init__(self, name: str, config: AnalyticsConfig, rules: RuleParams) -> None:
        self.counter = name in _COUNTERS
        self.last = math.nan
        self.last_ts = math.nan
        self.ref = Reference()
        self.detector = ChannelDetector(config.detector)
        self.holdoff = Holdoff(config.detector.holdoff_samples, config.detector.alert_threshold)
        self.rules = ChannelRules(rules)
        self.alert = AlertMachine(name, config.alerts)


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
        )
        self.alert = AlertMachine(spec.channel, params)


class DeviceAnalytics:
    """Everything the analytics know about one device."""

    def __init__(
        self, device: str, config: AnalyticsConfig, limits: Limits, river: DeviceRiver | None
    ) -> None:
        self.device = device
        self._config = config
        self._limits = limits
        self._only = frozenset(config.channels)
        self._channels: dict[str, _Channel | None] = {}
        self._dropout = DropoutRule(config.dropout_factor)
        self._device_alert = AlertMachine(DEVICE_CHANNEL, config.alerts)
        self._dropout_alert = AlertMachine(DEVICE_CHANNEL, config.alerts)
        self._hold = Hold()
        self._held = False
        self._active = 0
        self._trends = {t.channel: _Trend(t, config) for t in config.trend.channels}
        self._windows = [WindowAggregator(device, w) for w in config.aggregate.windows_s]
        self._river = river
        self._river_surprise = Surprise(config.detector.calibration_samples)
        self._models = DeviceModels.create(device, config)
        agg = config.aggregate
        bands = {o.name: o.deadband for o in config.overrides if o.deadband is not None}
        self._deadband = (
            Deadband(agg.deadband, bands, agg.max_silence_s) if agg.report_by_exception else None
        )

    def _channel(self, name: str) -> _Channel | None:
        cfg = self._config
        override = cfg.override(self.device, name)
        excluded = bool(self._only) and name not in self._only
        if excluded or (override is not None and not override.enabled):
            return None
        low, high, nominal = self._limits.get(name, ChannelLimits())
        flat = cfg.flatline_samples
        rate = None
        if override is not None:
            low = override.min if override.min is not None else low
            high = override.max if override.max is not None else high
            flat = override.flatline_samples if override.flatline_samples is not None else flat
            rate = override.max_rate_per_s
        band_low, band_high = supply_band(name, nominal, cfg.supply_band)
        return _Channel(name, cfg, RuleParams(low, high, rate, flat, band_low, band_high))

    def process(self, sample: Sample) -> Result:
        """Run every analysis on one sample."""
        ts = sample.ts
        envelopes: list[Envelope] = []
        events: list[AlertEvent] = []
        scores: dict[str, float] = {}
        top = self._score_channels(sample, scores, events)
        interval = self._dropout.interval_s
        per_week = WEEK_S / interval if interval > 0.0 else 1.0
        budget = self._config.detector.false_alerts_per_week
        detected = corrected(top[0], len(scores), per_week / budget)
        self._dropout_check(sample.ts, events)
        if self._river is not None:
            detected = max(detected, self._river_score(sample.values))
        if self._models is not None:  # device-level models: the device channel is the evidence
            extra = self._models.update(ts, sample.values, envelopes, per_week / budget, corrected)
            if extra > detected:
                detected, top = extra, (extra, DEVICE_CHANNEL, 0.0, top[3])
        event = self._device_alert_update(ts, detected, top)
        if event is not None:
            events.append(event)
        forecasts = self._trend(sample, envelopes, events) if self._trends else {}
        for w in self._windows:
            closed = w.add(ts, sample.values)
            if closed is not None:
                envelopes.append(closed)
        envelopes[:0] = [e.envelope(self.device) for e in events]
        report = self._deadband.filter(ts, sample.values) if self._deadband else None
        raised = [e for e in events if e.state is AlertState.RAISED]
        self._active += 2 * len(raised) - len(events)
        best = max(detected, top[3])
        return Result(best, scores, envelopes, raised, report, forecasts, self._active > 0)

    def _device_alert_update(
        self, ts: float, detected: float, top: tuple[float, str, float, float]
    ) -> AlertEvent | None:
        """The detector alert, held while its evidence channel stays away from its baseline."""
        machine, hold = self._device_alert, self._hold
        if machine.active is not None and self._held:
            detected = max(detected, self._config.alerts.raise_threshold)
        event = machine.update(ts, detected, top[2], "detector", channel=top[1])
        if event is not None:
            if event.state is AlertState.RAISED and (ch := self._channels.get(top[1])):
                hold.start(top[1], ch.ref)
            else:
                hold.stop()
            self._held = False
        return event

    def _score_channels(
        self, sample: Sample, scores: dict[str, float], events: list[AlertEvent]
    ) -> tuple[float, str, float, float]:
        """Score every channel; returns (best detector score, its channel, its value, best rule
        score). Rules alert per channel; detector scores alert per device.
        """
        ts = sample.ts
        best, top, top_value, ruled = 0.0, DEVICE_CHANNEL, 0.0, 0.0
        channels = self._channels
        hold_channel = self._hold.channel
        for name, value in sample.values.items():
            if name in channels:
                ch = channels[name]
            else:
                ch = channels[name] = self._channel(name)
            if ch is None:
                continue
            seen = self._seen(ch, ts, value)
            ch.ref.update(seen)
            if name == hold_channel:
                self._held = self._hold.update(seen)
            score = ch.holdoff.update(ch.detector.update(ts, seen))
            if score > best:
                best, top, top_value = score, name, value
            hit = ch.rules.check(ts, value)
            if hit is not None:
                ruled = max(ruled, hit[1])
                scores[name] = max(score, hit[1])
                event = ch.alert.update(ts, hit[1], value, hit[0])
            else:
                scores[name] = score
                event = ch.alert.update(ts, 0.0, value, "") if ch.alert.active else None
            if event is not None:
                events.append(event)
        return best, top, top_value, ruled

    @staticmethod
    def _seen(ch: _Channel, ts: float, value: float) -> float:
        """What the detector sees: the reading, or a counter's increase per second."""
        if not ch.counter:
            return value
        last, last_ts = ch.last, ch.last_ts
        ch.last, ch.last_ts = value, ts
        if math.isnan(last) or ts <= last_ts:
            return 0.0
        return (value - last) / (ts - last_ts)

    def _dropout_check(self, ts: float, events: list[AlertEvent]) -> None:
        """A gap is not a value: it raises its own alert but leaves the anomaly score alone."""
        machine = self._dropout_alert
        gap = self._dropout.check(ts)
        if gap is not None:
            event = machine.raise_now(ts, gap, "dropout", Severity.WARNING)
        elif machine.active is not None:
            event = machine.update(ts, 0.0, 0.0, "dropout")
        else:
            return
        if event is not None:
            events.append(event)

    def _river_score(self, values: Mapping[str, float]) -> float:
        assert self._river is not None
        s = self._river_surprise.update(self._river.score(values))
        score = s / (s + SURPRISE_HALF) if self._river.ready else 0.0
        return max(score, self._river.shift_score(values))

    def flush(self) -> list[Envelope]:
        """The aggregates of this device's open windows."""
        return [env for w in self._windows if (env := w.flush()) is not None]

    def _trend(
        self, sample: Sample, envelopes: list[Envelope], events: list[AlertEvent]
    ) -> dict[str, dict[int, float]]:
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
                tr.next_ts = ts + self._config.trend.forecast_interval_s
                envelopes.append(self._forecast_envelope(ts, name, tr, out[name], crossing))
        return out

    def _forecast_envelope(
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
        return Envelope(kind=Kind.FORECAST, device=self.device, ts=ts, body=body)


def supply_band(
    channel: str, nominal: float | None, band: float
) -> tuple[float | None, float | None]:
    """The normal operating range of a voltage (nominal +- ``band``, EN 50160) or current
    (up to the rated current) channel; (None, None) for the others or without a nominal.
    """
    info = CHANNELS.get(channel)
    if nominal is None or info is None or band <= 0.0:
        return None, None
    if info.quantity in ("voltage", "voltage_ll"):
        return (1.0 - band) * nominal, (1.0 + band) * nominal
    if info.quantity == "current":
        return None, nominal
    return None, None


def corrected(score: float, channels: int, samples_per_alarm: float = 1000.0) -> float:
    """A device's best detector score, discounted for the channels and the samples looked at.

    With many channels, one of them is rare by chance far more often than any single one, and
    with many samples a week, a one-in-a-thousand value comes many times a week. Subtracting
    ``log10(channels)`` (a Bonferroni correction) and ``log10(samples_per_alarm / 1000)`` from
    the surprise makes 0.5 mean "one device sample in ``samples_per_alarm`` on normal data":
    the false-alarm budget. One channel at one alarm per 1000 samples is left unchanged.
    """
    if score <= 0.0 or score >= 1.0:
        return score
    discount = max(
        0.0, math.log10(max(1, channels)) + math.log10(max(1.0, samples_per_alarm)) - 3.0
    )
    if discount == 0.0:
        return score
    s = SURPRISE_HALF * score / (1.0 - score) - discount
    return s / (s + SURPRISE_HALF) if s > 0.0 else 0.0


class Analytics:
    """The analytics of every device, with counters for metrics.

    Args:
        config: the ``[analytics]`` section.
        limits: physical limits per device and channel (from the drivers).
    """

    def __init__(self, config: AnalyticsConfig, limits: Mapping[str, Limits] | None = None) -> None:
        self.config = config
        self._limits = limits or {}
        self._devices: dict[str, DeviceAnalytics] = {}
        self.alerts_raised: Counter[str] = Counter()
        self.alerts_active: Counter[str] = Counter()
        self.skipped_values = 0
        """Channel values left out of the analysis: not finite, or beyond ``MAX_ABS_VALUE``."""
        self._river_factory = None
        if config.river_models:
            from gridedge.analytics import river_models  # deferred: River is slow to import

            self._river_factory = river_models.DeviceRiver

    def process(self, sample: Sample) -> Result:
        """Analyse one sample of any device; absurd or non-finite values are skipped, counted."""
        usable = {k: v for k, v in sample.values.items() if -MAX_ABS_VALUE <= v <= MAX_ABS_VALUE}
        if len(usable) != len(sample.values):
            self.skipped_values += len(sample.values) - len(usable)
            sample = Sample(sample.device, sample.ts, usable, Quality.PARTIAL)
        dev = self._devices.get(sample.device)
        if dev is None:
            river = None
            if self._river_factory is not None:
                river = self._river_factory(self.config.river_models)
            limits = self._limits.get(sample.device, {})
            dev = self._devices[sample.device] = DeviceAnalytics(
                sample.device, self.config, limits, river
            )
        result = dev.process(sample)
        for env in result.envelopes:
            if env.kind is Kind.ALERT:
                severity = str(env.body["severity"])
                if env.body["state"] == AlertState.RAISED.value:
                    self.alerts_raised[severity] += 1
                    self.alerts_active[severity] += 1
                else:
                    self.alerts_active[severity] -= 1
        return result

    def flush(self) -> list[Envelope]:
        """The aggregates of every open window (on an orderly stop)."""
        return [env for dev in self._devices.values() for env in dev.flush()]
