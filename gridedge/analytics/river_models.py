"""The River adapter: the only module that imports River, and only what is used.

River's ``river.base`` imports in tens of milliseconds and under 1 MB on top of gridedge;
``river.anomaly`` or ``river.time_series`` take a second and ~85 MB (``gridedge bench`` figures
in the README). So this module imports only ``river.base`` at load, the rest when a model is built,
and :mod:`~gridedge.analytics.engine` imports this module only when River is configured.

Two directions:

* River models inside gridedge: any anomaly detector or forecaster named in
  ``[[analytics.models]]`` (:func:`check_model`, :class:`AnomalyModel`,
  :class:`ForecastModel`), and the older ``analytics.river_models`` list
  (:class:`DeviceRiver`): half-space trees over a device's channels, ADWIN or Page-Hinkley
  change detectors per channel.
* gridedge's detectors inside River: :class:`ChannelAnomaly` (one feature, the per-channel
  detector) and :class:`MultivariateAnomaly` (a dict of features, the multivariate detector)
  implement River's ``AnomalyDetector``, so ``preprocessing.StandardScaler() |
  ChannelAnomaly()`` is a River pipeline.
"""

from __future__ import annotations

import difflib
import importlib
import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Protocol

from river import base

from gridedge.analytics.detectors import ChannelDetector
from gridedge.analytics.multivariate import MultivariateDetector, MultivariateParams

SHIFT_SCORE = 0.9
"""The score a detected level shift contributes."""


class ScoresValues(Protocol):
    """The one call the River adapter needs of a per-channel detector."""

    def update(self, ts: float, value: float) -> float:
        """Score ``value`` (at ``ts``) against the past in [0, 1], then learn it."""
        ...


def channel_detector() -> ScoresValues:
    """A per-channel detector with the default tuning."""
    return ChannelDetector()


def _river(module: str) -> Any:
    return importlib.import_module(f"river.{module}")


def check_model(name: str, params: Mapping[str, object]) -> str:
    """What the River model ``name`` (``anomaly.HalfSpaceTrees``) is, ``"anomaly"`` or
    ``"forecaster"``, after building it once with ``params``.

    Raises:
        ValueError: with args ``(key, problem)``, the key being ``model`` or ``params``.
    """
    module, _, cls_name = name.rpartition(".")
    try:
        mod = _river(module)
    except ImportError:
        raise ValueError("model", f"River has no module 'river.{module}'") from None
    cls = getattr(mod, cls_name, None)
    if not isinstance(cls, type):
        public = [n for n in dir(mod) if n[:1].isupper()]
        hint = difflib.get_close_matches(cls_name, public, n=1)
        also = f"; did you mean {module}.{hint[0]}?" if hint else ""
        raise ValueError("model", f"river.{module} has no class {cls_name!r}{also}")
    if issubclass(cls, base.AnomalyDetector):
        kind = "anomaly"
    elif issubclass(cls, _river("time_series.base").Forecaster):
        kind = "forecaster"
    elif issubclass(cls, base.SupervisedAnomalyDetector):
        raise ValueError("model", f"river.{name} is a supervised anomaly detector: it needs labels")
    else:
        raise ValueError("model", f"river.{name} is neither an anomaly detector nor a forecaster")
    try:
        cls(**params)
    except Exception as e:  # any complaint of a third-party constructor is a config mistake
        raise ValueError("params", f"river.{name}: {e}") from None
    return kind


def build_model(name: str, params: Mapping[str, object]) -> Any:
    """A new River model ``name`` (checked by :func:`check_model`) built with ``params``."""
    module, _, cls_name = name.rpartition(".")
    return getattr(_river(module), cls_name)(**params)


class AnomalyModel:
    """A configured River anomaly detector over a device's channel vector, behind a scaler."""

    __slots__ = ("_model", "_scaler")

    def __init__(self, name: str, params: Mapping[str, object], scaling: str) -> None:
        self._model = build_model(name, params)
        scalers = {"minmax": "MinMaxScaler", "standard": "StandardScaler"}
        pre = _river("preprocessing")
        self._scaler = getattr(pre, scalers[scaling])() if scaling in scalers else None

    def score(self, values: Mapping[str, float]) -> float:
        """The model's raw score of ``values`` (then learnt)."""
        x = dict(values)
        if self._scaler is not None:
            self._scaler.learn_one(x)
            x = self._scaler.transform_one(x)
        s = float(self._model.score_one(x))
        self._model.learn_one(x)
        return s if math.isfinite(s) else 0.0


class ForecastModel:
    """A configured River forecaster of one channel, with its one-step absolute error."""

    __slots__ = ("_model", "_next", "error1", "seen")

    ERROR_RATE = 0.02

    def __init__(self, name: str, params: Mapping[str, object]) -> None:
        self._model = build_model(name, params)
        self._next = math.nan
        self.error1 = 0.0
        """The recent mean absolute error of the one-step forecast."""
        self.seen = 0

    def update(self, y: float) -> None:
        """Learn the next value (and how far the last one-step forecast was from it)."""
        if math.isfinite(self._next):
            self.error1 += self.ERROR_RATE * (abs(y - self._next) - self.error1)
        self._model.learn_one(y)
        self.seen += 1
        self._next = math.nan

    def forecast(self, horizons: Iterable[int]) -> dict[int, float]:
        """The forecast at each horizon (in samples); empty while the model cannot forecast."""
        wanted = sorted(set(horizons))
        try:
            path = [float(v) for v in self._model.forecast(horizon=wanted[-1])]
        except (IndexError, ValueError, ZeroDivisionError):
            return {}  # not initialised yet (too few values for its seasonality or order)
        if len(path) < wanted[-1] or not all(math.isfinite(v) for v in path):
            return {}
        self._next = path[0]
        return {h: path[h - 1] for h in wanted}


class _ScoresWhileLearning(base.AnomalyDetector):
    """gridedge's detectors score and learn in one step: ``score_one`` learns, and the
    ``learn_one`` that a River pipeline calls right after it is skipped.
    """

    _ahead = False

    def _update(self, x: Mapping[Hashable, Any]) -> float:
        raise NotImplementedError

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        """Learn ``x`` unless :meth:`score_one` just did."""
        if self._ahead:
            self._ahead = False
        else:
            self._update(x)

    def score_one(self, x: dict[Hashable, Any]) -> float:
        """The score of ``x`` in [0, 1) (0.5 = one in a thousand), which is then learnt."""
        self._ahead = True
        return self._update(x)


class ChannelAnomaly(_ScoresWhileLearning):
    """gridedge's per-channel detector as a River anomaly detector of one feature.

    gridedge's detectors score and learn a value in one step, so :meth:`score_one` learns the
    value too and the :meth:`learn_one` right after it (River's score-then-learn loop) is
    skipped; a :meth:`learn_one` without a :meth:`score_one` before it learns. Timestamps are
    counted: sample ``n`` is at ``n * interval_s`` seconds.

    Args:
        feature: the feature to watch (the only one of ``x`` when None).
        interval_s: the time between two samples, for the daily profile.
        make_detector: builds the detector (the default tuning when None).
    """

    def __init__(
        self,
        feature: str | None = None,
        interval_s: float = 60.0,
        make_detector: Callable[[], ScoresValues] | None = None,
    ) -> None:
        self.feature = feature
        self.interval_s = interval_s
        self.make_detector = make_detector
        self._detector = (make_detector or channel_detector)()
        self._n = 0
        self._ahead = False

    def _value(self, x: Mapping[Hashable, Any]) -> float:
        return float(x[self.feature] if self.feature is not None else next(iter(x.values())))

    def _update(self, x: Mapping[Hashable, Any]) -> float:
        self._n += 1
        return self._detector.update(self._n * self.interval_s, self._value(x))


class MultivariateAnomaly(_ScoresWhileLearning):
    """gridedge's multivariate detector (Hotelling T^2 and SPE) as a River anomaly detector.

    The features are those of the first ``x``, in sorted order; a later missing feature takes
    its mean. Scoring learns as in :class:`ChannelAnomaly`.

    Args:
        window: commissioning samples before it scores.
        memory: horizon once commissioned.
        components: principal components kept (0: as many as explain ``variance``).
        variance: the share of the variance the kept components explain.
    """

    def __init__(
        self, window: int = 500, memory: int = 20000, components: int = 0, variance: float = 0.9
    ) -> None:
        self.window = window
        self.memory = memory
        self.components = components
        self.variance = variance
        self._detector: MultivariateDetector | None = None
        self._ahead = False

    def _update(self, x: Mapping[Hashable, Any]) -> float:
        if self._detector is None:
            refresh = max(1, min(100, self.window // 2))
            params = MultivariateParams(
                True, self.window, self.memory, self.components, self.variance, refresh
            )
            self._detector = MultivariateDetector(sorted(str(k) for k in x), params)
        return self._detector.update({str(k): float(v) for k, v in x.items()})


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
    """The models of the ``analytics.river_models`` list for one device."""

    HST_WINDOW = 250

    def __init__(self, models: Iterable[str]) -> None:
        chosen = {str(m) for m in models}
        self._hst: AnomalyModel | None = None
        if "half_space_trees" in chosen:
            params = {"n_trees": 15, "height": 8, "window_size": self.HST_WINDOW, "seed": 7}
            self._hst = AnomalyModel("anomaly.HalfSpaceTrees", params, "minmax")
        self._shift_kind = next((k for k in ("adwin", "page_hinkley") if k in chosen), None)
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
        return self._hst.score(values)

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
        drift = _river("drift")
        if self._shift_kind == "adwin":
            return drift.ADWIN(delta=0.0002)
        return drift.PageHinkley(min_instances=60, delta=0.05, threshold=40.0)
