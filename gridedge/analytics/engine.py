"""The analytics of one gateway: samples in, scores and envelopes out (pure, synchronous).

:class:`Analytics` keeps one :class:`~gridedge.analytics.device.DeviceAnalytics` per device;
each sample goes through the device's rules, detectors, alert machines, forecasters and
aggregators in one call, every channel at once. The daemon (:mod:`~gridedge.analytics.stage`)
and ``gridedge replay`` (:mod:`~gridedge.analytics.replay`) both use exactly this code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from gridedge.analytics.alerts import AlertState
from gridedge.analytics.calibrate import SURPRISE_HALF, SurpriseBank, corrected
from gridedge.analytics.device import DEVICE_CHANNEL, ChannelLimits, DeviceAnalytics, Limits
from gridedge.analytics.result import DeviceScorer, Result
from gridedge.analytics.rules import supply_band
from gridedge.analytics.settings import AnalyticsConfig
from gridedge.model import Envelope, Kind, Quality, Sample

if TYPE_CHECKING:
    from gridedge.analytics.river_models import DeviceRiver

__all__ = [
    "DEVICE_CHANNEL",
    "MAX_ABS_VALUE",
    "Analytics",
    "ChannelLimits",
    "DeviceAnalytics",
    "DeviceScorer",
    "Limits",
    "Result",
    "corrected",
    "supply_band",
]

MAX_ABS_VALUE = 1e15
"""Values beyond this magnitude (or not finite) are skipped: no meter measures them, and near
the float limits the detectors' differences and squares would overflow into NaN."""


class RiverScorer:
    """The configured River models of one device as a :class:`DeviceScorer`: the half-space
    trees' raw score calibrated like every other detector, or a level shift's fixed score.
    """

    __slots__ = ("_col", "_river", "_surprise")

    def __init__(self, river: DeviceRiver, calibration_samples: int) -> None:
        self._river = river
        self._surprise = SurpriseBank(1, 1, calibration_samples)
        self._col = np.zeros(1, np.intp)

    def score(self, sample: Sample) -> float:
        """The device's River score of one sample, then learnt."""
        river, values = self._river, sample.values
        raw = np.array([[river.score(values)]])
        s = float(self._surprise.update(raw, slice(None), self._col)[0, 0])
        score = s / (s + SURPRISE_HALF) if river.ready else 0.0
        return max(score, river.shift_score(values))


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

    def device(self, name: str) -> DeviceAnalytics:
        """The analytics of one device (created on first use)."""
        dev = self._devices.get(name)
        if dev is None:
            scorers: list[DeviceScorer] = []
            if self._river_factory is not None:
                river = self._river_factory(self.config.river_models)
                scorers.append(RiverScorer(river, self.config.detector.calibration_samples))
            limits = self._limits.get(name, {})
            dev = self._devices[name] = DeviceAnalytics(name, self.config, limits, scorers)
        return dev

    def process(self, sample: Sample) -> Result:
        """Analyse one sample of any device; absurd or non-finite values are skipped, counted."""
        values = sample.values
        raw = np.fromiter(values.values(), float, len(values))
        usable = np.abs(raw) <= MAX_ABS_VALUE  # NaN compares False
        bad = len(raw) - int(np.count_nonzero(usable))
        if bad:
            self.skipped_values += bad
            kept = {k: v for k, v in values.items() if -MAX_ABS_VALUE <= v <= MAX_ABS_VALUE}
            sample = Sample(sample.device, sample.ts, kept, Quality.PARTIAL)
            result = self.device(sample.device).process(sample)
        else:
            result = self.device(sample.device).process(sample, raw)
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
