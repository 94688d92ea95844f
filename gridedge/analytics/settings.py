"""The ``[analytics]`` configuration section: frozen dataclasses and their parser.

Read through :class:`~gridedge.tomlread.Table`, so every mistake names its dotted key path
(``analytics.alerts.raise_threshold: expected at most 1.0, got 2.0``). ``config.example.toml``
shows every key; the README has the reference table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from gridedge.analytics.alerts import AlertParams, Severity
from gridedge.analytics.detectors import DetectorParams
from gridedge.analytics.model_settings import ModelSpec, parse_model, parse_multivariate
from gridedge.analytics.multivariate import MultivariateParams
from gridedge.analytics.trend import TrendParams
from gridedge.tomlread import Table, load_toml


class RiverModel(StrEnum):
    """Optional River models (importing River costs seconds and tens of MB)."""

    HALF_SPACE_TREES = "half_space_trees"
    """Half-space trees over all analysed channels of a device, min-max scaled."""
    ADWIN = "adwin"
    """ADWIN change detection on each channel: level shifts."""
    PAGE_HINKLEY = "page_hinkley"
    """Page-Hinkley change detection on each channel: level shifts."""


@dataclass(frozen=True, slots=True)
class ChannelOverride:
    """Settings of one channel (of every device, or of ``device`` only)."""

    name: str
    device: str | None = None
    enabled: bool = True
    min: float | None = None
    max: float | None = None
    max_rate_per_s: float | None = None
    flatline_samples: int | None = None
    deadband: float | None = None


@dataclass(frozen=True, slots=True)
class TrendChannel:
    """A channel whose trend is forecast, with the limit a predictive alert watches."""

    channel: str
    above: float | None = None
    below: float | None = None
    horizon_s: float = 3600.0
    min_confidence: float = 0.5
    severity: Severity = Severity.WARNING


@dataclass(frozen=True, slots=True)
class TrendConfig:
    """Forecasting: which channels, how often, which horizons (in samples)."""

    forecast_interval_s: float = 60.0
    horizons: tuple[int, ...] = (1, 6, 12)
    params: TrendParams = field(default_factory=TrendParams, metadata={"flatten": True})
    channels: tuple[TrendChannel, ...] = ()


@dataclass(frozen=True, slots=True)
class AggregateConfig:
    """Window aggregates and report-by-exception of raw samples."""

    windows_s: tuple[float, ...] = (60.0, 900.0)
    report_by_exception: bool = False
    deadband: float = 0.0
    max_silence_s: float = 900.0


@dataclass(frozen=True, slots=True)
class AnalyticsConfig:
    """The whole ``[analytics]`` section."""

    enabled: bool = True
    channels: tuple[str, ...] = ()
    flatline_samples: int = 30
    dropout_factor: float = 3.0
    supply_band: float = 0.1
    linger_s: float = 0.1
    """How long the daemon's stage gathers samples of all meters before analysing them back
    to back (warm caches cost less per value); 0 analyses each sample as it comes."""
    river_models: tuple[RiverModel, ...] = ()
    detector: DetectorParams = field(default_factory=DetectorParams)
    alerts: AlertParams = field(default_factory=AlertParams)
    aggregate: AggregateConfig = field(default_factory=AggregateConfig)
    trend: TrendConfig = field(default_factory=TrendConfig)
    overrides: tuple[ChannelOverride, ...] = ()
    multivariate: MultivariateParams = field(default_factory=MultivariateParams)
    models: tuple[ModelSpec, ...] = field(default=(), metadata={"tables": True})

    def override(self, device: str, channel: str) -> ChannelOverride | None:
        """The most specific override of ``channel`` on ``device`` (device-specific first)."""
        general = None
        for o in self.overrides:
            if o.name == channel:
                if o.device == device:
                    return o
                if o.device is None:
                    general = o
        return general


def load_analytics(path: Path | None) -> AnalyticsConfig:
    """The ``[analytics]`` section of a config file (defaults when ``path`` is None)."""
    if path is None:
        return AnalyticsConfig()
    root = Table(load_toml(path), "", str(path))
    return parse_analytics(root.table("analytics"))


def parse_analytics(t: Table) -> AnalyticsConfig:
    """Validate an ``[analytics]`` table."""
    d = AnalyticsConfig()
    models = t.strings("river_models", ())
    allowed = {m.value for m in RiverModel}
    for i, m in enumerate(models):
        if m not in allowed:
            names = ", ".join(sorted(allowed))
            raise t.error(
                f"{t.key_path('river_models')}[{i}]", f"expected one of {names}", t.source
            )
    cfg = AnalyticsConfig(
        enabled=t.boolean("enabled", d.enabled),
        channels=t.strings("channels", d.channels),
        flatline_samples=t.integer("flatline_samples", d.flatline_samples, min=0),
        dropout_factor=t.number("dropout_factor", d.dropout_factor, min=0.0),
        supply_band=t.number("supply_band", d.supply_band, min=0.0, max=1.0),
        linger_s=t.number("linger_s", d.linger_s, min=0.0, max=1.0),
        river_models=tuple(RiverModel(m) for m in models),
        detector=_detector(t.table("detector")),
        alerts=_alerts(t.table("alerts")),
        aggregate=_aggregate(t.table("aggregate")),
        trend=_trend(t.table("trend")),
        overrides=tuple(_override(c) for c in t.tables("overrides")),
        multivariate=parse_multivariate(t.table("multivariate")),
        models=tuple(parse_model(m) for m in t.tables("models")),
    )
    t.finish()
    return cfg


def _detector(t: Table) -> DetectorParams:
    d = DetectorParams()
    p = DetectorParams(
        long_samples=t.integer("long_samples", d.long_samples, min=2),
        step_samples=t.integer("step_samples", d.step_samples, min=2),
        short_samples=t.integer("short_samples", d.short_samples, min=1),
        seasonal_bins=t.integer("seasonal_bins", d.seasonal_bins, min=0, max=1440),
        seasonal_rate=t.number("seasonal_rate", d.seasonal_rate, min=0.0, max=1.0),
        calibration_samples=t.integer("calibration_samples", d.calibration_samples, min=10),
        warmup_samples=t.integer("warmup_samples", d.warmup_samples, min=0),
        holdoff_samples=t.integer("holdoff_samples", d.holdoff_samples, min=0),
        alert_threshold=t.number("alert_threshold", d.alert_threshold, min=0.0, max=1.0),
        false_alerts_per_week=t.number(
            "false_alerts_per_week", d.false_alerts_per_week, positive=True
        ),
        jump_level=t.number("jump_level", d.jump_level, min=0.0),
    )
    t.finish()
    return p


def _alerts(t: Table) -> AlertParams:
    d = AlertParams()
    p = AlertParams(
        raise_threshold=t.number("raise_threshold", d.raise_threshold, min=0.0, max=1.0),
        clear_threshold=t.number("clear_threshold", d.clear_threshold, min=0.0, max=1.0),
        critical_threshold=t.number("critical_threshold", d.critical_threshold, min=0.0, max=1.0),
        raise_after_samples=t.integer("raise_after_samples", d.raise_after_samples, min=1),
        clear_after_samples=t.integer("clear_after_samples", d.clear_after_samples, min=1),
        min_active_samples=t.integer("min_active_samples", d.min_active_samples, min=1),
        rearm_after_samples=t.integer("rearm_after_samples", d.rearm_after_samples, min=0),
    )
    if p.clear_threshold > p.raise_threshold:
        raise t.fail("clear_threshold", "expected at most raise_threshold (hysteresis)")
    t.finish()
    return p


def _aggregate(t: Table) -> AggregateConfig:
    d = AggregateConfig()
    windows = _numbers(t, "windows_s", d.windows_s)
    for i, w in enumerate(windows):
        if w <= 0 or 86400.0 % w:
            raise t.error(
                f"{t.key_path('windows_s')}[{i}]",
                f"expected a positive divisor of 86400 seconds, got {w}",
                t.source,
            )
    cfg = AggregateConfig(
        windows_s=windows,
        report_by_exception=t.boolean("report_by_exception", d.report_by_exception),
        deadband=t.number("deadband", d.deadband, min=0.0),
        max_silence_s=t.number("max_silence_s", d.max_silence_s, positive=True),
    )
    t.finish()
    return cfg


def _trend(t: Table) -> TrendConfig:
    d, dp = TrendConfig(), TrendParams()
    horizons = tuple(int(h) for h in _numbers(t, "horizons", d.horizons, integers=True))
    if not horizons or min(horizons) < 1:
        raise t.fail("horizons", "expected at least one horizon, each at least 1 sample")
    params = TrendParams(
        alpha=t.number("alpha", dp.alpha, min=0.01, max=1.0),
        beta=t.number("beta", dp.beta, min=0.0, max=1.0),
        phi=t.number("phi", dp.phi, min=0.0, max=1.0),
        seasonal_bins=t.integer("seasonal_bins", dp.seasonal_bins, min=1, max=1440),
        seasonal_rate=t.number("seasonal_rate", dp.seasonal_rate, min=0.0, max=1.0),
        error_rate=t.number("error_rate", dp.error_rate, min=0.0001, max=1.0),
        slope_samples=t.integer("slope_samples", dp.slope_samples, min=8, max=10_000),
        min_slope_z=t.number("min_slope_z", dp.min_slope_z, min=0.0),
        max_extrapolation=t.number("max_extrapolation", dp.max_extrapolation, positive=True),
    )
    cfg = TrendConfig(
        forecast_interval_s=t.number("forecast_interval_s", d.forecast_interval_s, positive=True),
        horizons=horizons,
        params=params,
        channels=tuple(_trend_channel(c) for c in t.tables("channels")),
    )
    t.finish()
    return cfg


def _trend_channel(t: Table) -> TrendChannel:
    d = TrendChannel("")
    c = TrendChannel(
        channel=t.string("channel"),
        above=t.number("above", None),
        below=t.number("below", None),
        horizon_s=t.number("horizon_s", d.horizon_s, positive=True),
        min_confidence=t.number("min_confidence", d.min_confidence, min=0.0, max=1.0),
        severity=t.choice("severity", Severity, d.severity),
    )
    t.finish()
    return c


def _override(t: Table) -> ChannelOverride:
    o = ChannelOverride(
        name=t.string("name"),
        device=t.string("device", None),
        enabled=t.boolean("enabled", True),
        min=t.number("min", None),
        max=t.number("max", None),
        max_rate_per_s=t.number("max_rate_per_s", None, positive=True),
        flatline_samples=t.integer("flatline_samples", None, min=0),
        deadband=t.number("deadband", None, min=0.0),
    )
    t.finish()
    return o


def _numbers(
    t: Table, key: str, default: tuple[Any, ...], *, integers: bool = False
) -> tuple[float, ...]:
    if not t.has(key):
        return tuple(float(x) for x in default)
    value = t.data[key]
    kind = "integers" if integers else "numbers"
    if not isinstance(value, list):
        raise t.fail(key, f"expected an array of {kind}")
    out = []
    for i, item in enumerate(value):
        ok = isinstance(item, int) if integers else isinstance(item, int | float)
        if isinstance(item, bool) or not ok:
            raise t.error(f"{t.key_path(key)}[{i}]", f"expected one of the {kind}", t.source)
        out.append(float(item))
    return tuple(out)
