"""The device-level models of one device: the multivariate detector and configured River models.

:class:`DeviceModels` gives the engine one extra raw score per sample (the largest of its
models' scores, each in [0, 1) with 0.5 = one sample in a thousand) and the number of scores it
took the largest of, so the engine discounts it for the false-alarm budget like the channels'
scores. River forecasters add forecast envelopes instead.

Every model sees the device's analysed channels: those the ``[analytics]`` section analyses
(``channels``, overrides with ``enabled = false`` left out), without the energy counters (they
only count up). The channel set is the first sample's: the arrays are sized once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from gridedge.analytics.calibrate import SURPRISE_HALF
from gridedge.analytics.model_settings import ModelKind, ModelSpec
from gridedge.analytics.multivariate import MultivariateDetector
from gridedge.analytics.settings import AnalyticsConfig
from gridedge.analytics.surprise import Surprise
from gridedge.channels import CHANNELS
from gridedge.model import Envelope, Kind

if TYPE_CHECKING:
    from gridedge.analytics.river_models import AnomalyModel, ForecastModel

Discount = Callable[[float, int, float], float]
"""(best score, how many scores it is the best of, samples per false alarm) -> score."""
_COUNTERS = frozenset(n for n, info in CHANNELS.items() if "energy" in info.quantity)


class _Calibrated:
    """A River anomaly model's raw score turned into a rarity, like the detectors' distances.

    Models differ in the range of their scores, so the first ``warmup_samples / 2`` scores
    (learnt, not scored) decide the distance: a model whose scores all lie in [0, 1] (half-space
    trees) gets ``-ln(1 - score)``, which spreads the scores near 1 where its anomalies are;
    any other the exceedance over its moving mean in units of its moving absolute deviation.
    How rare the distance is comes from a :class:`Surprise` histogram, as for the detectors.
    """

    __slots__ = ("bounded", "channels", "dev", "mean", "model", "n", "surprise", "warmup")

    def __init__(self, model: AnomalyModel, spec: ModelSpec, memory: int) -> None:
        self.model = model
        self.channels = frozenset(spec.channels)
        self.warmup = spec.warmup_samples
        self.surprise = Surprise(memory)
        self.mean, self.dev, self.n = 0.0, 0.0, 0
        self.bounded = True

    def update(self, values: Mapping[str, float]) -> float:
        if self.channels:
            values = {k: v for k, v in values.items() if k in self.channels}
        raw = self.model.score(values)
        self.n += 1
        e = raw - self.mean
        a = max(1.0 / self.n, 1.0 / 5000)
        if self.n <= self.warmup // 2:
            self.bounded = self.bounded and 0.0 <= raw <= 1.0
        if self.bounded:
            distance = -math.log(max(1e-9, 1.0 - raw))
        else:
            distance = max(0.0, e) / self.dev if self.dev > 0.0 else 0.0
        self.mean += a * e
        self.dev += a * (abs(e) - self.dev)
        if self.n <= self.warmup // 2:
            return 0.0  # the model's first scores rest on a handful of values
        s = self.surprise.update(max(0.0, distance))
        return s / (s + SURPRISE_HALF) if self.n > self.warmup else 0.0


class _Forecasts:
    __slots__ = ("channel", "model", "next_ts", "spec")

    def __init__(self, spec: ModelSpec, channel: str, model: ForecastModel) -> None:
        self.spec, self.channel, self.model = spec, channel, model
        self.next_ts = 0.0


class DeviceModels:
    """The multivariate detector and the configured River models of one device."""

    def __init__(self, device: str, config: AnalyticsConfig) -> None:
        self.device = device
        self._config = config
        self._multivariate: MultivariateDetector | None = None
        self._anomaly: list[_Calibrated] = []
        self._forecasts: list[_Forecasts] = []
        self._last_ts = math.nan
        self.interval_s = 0.0
        memory = config.detector.calibration_samples
        specs = config.models
        if specs:
            from gridedge.analytics import river_models  # deferred: River is slow to import

            for spec in specs:
                if spec.kind is ModelKind.ANOMALY:
                    model = river_models.AnomalyModel(spec.model, spec.params, spec.scaling)
                    self._anomaly.append(_Calibrated(model, spec, memory))
                else:
                    for ch in spec.channels:
                        forecaster = river_models.ForecastModel(spec.model, spec.params)
                        self._forecasts.append(_Forecasts(spec, ch, forecaster))
        self.tests = (2 if config.multivariate.enabled else 0) + len(self._anomaly)
        """How many scores the device score is the largest of (for the Bonferroni discount)."""

    @classmethod
    def create(cls, device: str, config: AnalyticsConfig) -> DeviceModels | None:
        """The device's models, None when none is configured."""
        if not config.multivariate.enabled and not config.models:
            return None
        return cls(device, config)

    def _analysed(self, values: Mapping[str, float]) -> dict[str, float]:
        cfg = self._config
        only = cfg.channels
        out = {}
        for name, value in values.items():
            if name in _COUNTERS or (only and name not in only):
                continue
            override = cfg.override(self.device, name)
            if override is None or override.enabled:
                out[name] = value
        return out

    def update(
        self,
        ts: float,
        values: Mapping[str, float],
        envelopes: list[Envelope],
        samples_per_alarm: float,
        discount: Discount,
    ) -> float:
        """The device-level score of one sample: the largest of the models' scores, discounted
        (by ``discount``, the engine's) for the number of scores and ``samples_per_alarm``, the
        false-alarm budget. Forecast envelopes go to ``envelopes``.
        """
        if ts > self._last_ts:
            gap = ts - self._last_ts
            self.interval_s = (
                gap if self.interval_s == 0.0 else self.interval_s + 0.05 * (gap - self.interval_s)
            )
        self._last_ts = ts
        x = self._analysed(values)
        best = 0.0
        if self._config.multivariate.enabled and x:
            mv = self._multivariate
            if mv is None:
                det = self._config.detector
                mv = self._multivariate = MultivariateDetector(
                    list(x), self._config.multivariate, det.calibration_samples, det.alert_threshold
                )
            best = mv.update(x)
        for model in self._anomaly:
            best = max(best, model.update(x))
        for fc in self._forecasts:
            self._forecast(ts, fc, values, envelopes)
        return discount(best, self.tests, samples_per_alarm)

    def _forecast(
        self, ts: float, fc: _Forecasts, values: Mapping[str, float], envelopes: list[Envelope]
    ) -> None:
        value = values.get(fc.channel)
        if value is None:
            return
        fc.model.update(value)
        if ts < fc.next_ts:
            return
        horizons = fc.model.forecast(self._config.trend.horizons)
        if not horizons:
            return
        fc.next_ts = ts + self._config.trend.forecast_interval_s
        body: dict[str, object] = {
            "channel": fc.channel,
            "model": fc.spec.model,
            "interval_s": round(self.interval_s, 3),
            "horizons": {str(h): round(v, 6) for h, v in horizons.items()},
            "error": round(fc.model.error1, 6),
        }
        envelopes.append(Envelope(kind=Kind.FORECAST, device=self.device, ts=ts, body=body))
