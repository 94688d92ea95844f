"""The River adapter: the only module that imports River, and only when a model is configured.

River is slow to import (seconds, and tens of MB of memory on a small board), so
:class:`~gridedge.analytics.engine.Analytics` imports this module only when
``analytics.river_models`` names a model. Everything River-specific stays here; the rest of
gridedge sees plain floats.

* ``half_space_trees``: :class:`river.anomaly.HalfSpaceTrees` over all of a device's analysed
  channels, behind an online min-max scaler (the trees expect features in [0, 1]). Its raw
  score is calibrated by the engine like every other detector.
* ``adwin`` / ``page_hinkley``: change detectors per channel on the standardised value (mean and
  deviation from a long moving window), so one set of parameters suits volts and kilowatts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from river import anomaly, drift, preprocessing

from gridedge.analytics.settings import RiverModel

SHIFT_SCORE = 0.9
"""The score a detected level shift contributes."""


class _Standardise:
    __slots__ = ("mean", "n", "var")

    def __init__(self) -> None:
        self.mean, self.var, self.n = 0.0, 0.0, 0

    def update(self, x: float) -> float:
        self.n += 1
        e = x - self.mean
        z = e / math.sqrt(self.var) if self.var > 0 else 0.0
        a = max(1.0 / self.n, 1.0 / 1000)
        self.mean += a * e
        self.var += a * (e * e - self.var)
        return max(-10.0, min(10.0, z))


class DeviceRiver:
    """The configured River models of one device."""

    HST_WINDOW = 250

    def __init__(self, models: Iterable[RiverModel]) -> None:
        chosen = set(models)
        self._scaler: Any = None
        self._hst: Any = None
        if RiverModel.HALF_SPACE_TREES in chosen:
            self._scaler = preprocessing.MinMaxScaler()
            self._hst = anomaly.HalfSpaceTrees(
                n_trees=15, height=8, window_size=self.HST_WINDOW, seed=7
            )
        self._shift_kind = (
            RiverModel.ADWIN
            if RiverModel.ADWIN in chosen
            else RiverModel.PAGE_HINKLEY
            if RiverModel.PAGE_HINKLEY in chosen
            else None
        )
        self._shift: dict[str, tuple[_Standardise, Any]] = {}
        self._seen = 0

    @property
    def ready(self) -> bool:
        """True once the trees have seen a full reference window."""
        return self._hst is not None and self._seen > 2 * self.HST_WINDOW

    def score(self, values: Mapping[str, float]) -> float:
        """The half-space-trees score of a sample (then learnt), 0 when not configured."""
        if self._hst is None:
            return 0.0
        self._seen += 1
        x = dict(values)
        self._scaler.learn_one(x)
        scaled = self._scaler.transform_one(x)
        s = float(self._hst.score_one(scaled))
        self._hst.learn_one(scaled)
        return s

    def shift_score(self, values: Mapping[str, float]) -> float:
        """:data:`SHIFT_SCORE` when a change detector fires on any channel, else 0."""
        if self._shift_kind is None:
            return 0.0
        fired = False
        for name, value in values.items():
            pair = self._shift.get(name)
            if pair is None:
                pair = self._shift[name] = (_Standardise(), self._detector())
            std, det = pair
            det.update(std.update(value))
            fired = fired or bool(det.drift_detected)
        return SHIFT_SCORE if fired else 0.0

    def _detector(self) -> Any:
        if self._shift_kind is RiverModel.ADWIN:
            # River ships no type information; ADWIN's constructor is the one call mypy flags.
            return drift.ADWIN(delta=0.0002)  # type: ignore[no-untyped-call]
        return drift.PageHinkley(min_instances=60, delta=0.05, threshold=40.0)
