"""The River adapter: configured River models inside gridedge, gridedge detectors inside River."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from gridedge.analytics.engine import DEVICE_CHANNEL, Analytics
from gridedge.analytics.model_settings import ModelKind
from gridedge.analytics.river_models import (
    SHIFT_SCORE,
    ChannelAnomaly,
    DeviceRiver,
    MultivariateAnomaly,
)
from gridedge.analytics.settings import AnalyticsConfig, RiverModel, load_analytics
from gridedge.analytics.stage import AnalyticsSink
from gridedge.model import Envelope, Kind, Record, Sample
from tests.unit.cli.runner import assert_refused, run

METER = '[[meters]]\nid = "m"\ndriver = "eastron-sdm630"\n[meters.link]\ntype = "simulated"\n'


def test_half_space_trees_score_an_outlier_higher_than_typical_samples() -> None:
    """After learning a cluster, a far-away point scores above the typical ones."""
    rng = random.Random(2)
    river = DeviceRiver([RiverModel.HALF_SPACE_TREES])
    typical = []
    for i in range(800):
        s = river.score({"a": 230.0 + rng.gauss(0, 1), "b": 10.0 + rng.gauss(0, 0.5)})
        if i > 600:
            typical.append(s)
    assert river.ready
    outlier = river.score({"a": 236.0, "b": 6.0})
    assert outlier > sorted(typical)[len(typical) // 2]


def test_adwin_notices_a_level_shift() -> None:
    """A lasting jump makes the change detector fire within a few hundred readings."""
    rng = random.Random(4)
    river = DeviceRiver([RiverModel.ADWIN])
    before = [river.shift_score({"v": rng.gauss(0, 1)}) for _ in range(500)]
    after = [river.shift_score({"v": 5.0 + rng.gauss(0, 1)}) for _ in range(300)]
    assert SHIFT_SCORE in after
    assert before.count(SHIFT_SCORE) <= 2


def test_configured_river_models_feed_the_device_score() -> None:
    """With River models configured the engine still yields scores in [0, 1]."""
    config = AnalyticsConfig(river_models=(RiverModel.HALF_SPACE_TREES, RiverModel.PAGE_HINKLEY))
    analytics = Analytics(config)
    rng = random.Random(1)
    scores = [
        analytics.process(Sample("m", 60.0 * i, {"a": rng.gauss(0, 1), "b": rng.gauss(5, 1)})).score
        for i in range(700)
    ]
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_a_river_pipeline_runs_gridedge_detectors_and_ranks_an_anomaly_first() -> None:
    """``StandardScaler() | ChannelAnomaly()`` and ``| MultivariateAnomaly()`` are River
    pipelines: score, then learn, over a stream; an injected jump scores above every normal
    point after warm-up.
    """
    from river import compose, preprocessing

    rng = random.Random(6)
    for detector in (ChannelAnomaly(feature="v"), MultivariateAnomaly(window=300)):
        pipeline = preprocessing.StandardScaler() | detector
        assert isinstance(pipeline, compose.Pipeline)
        normal, injected = [], 0.0
        for i in range(1500):
            v = 230.0 + rng.gauss(0, 1)
            x = {"v": v, "w": 2 * v + rng.gauss(0, 0.1)}
            if i == 1400:
                x = {"v": 236.0, "w": 2 * 224.0}
            score = pipeline.score_one(x)
            pipeline.learn_one(x)
            if i == 1400:
                injected = score
            elif i > 500:
                normal.append(score)
        assert injected > max(normal), type(detector).__name__


def test_score_then_learn_learns_each_value_once() -> None:
    """Detectors score and learn in one step: learn_one right after score_one is skipped."""
    seen: list[float] = []

    class Recorder:
        def update(self, ts: float, value: float) -> float:
            seen.append(value)
            return 0.25

    detector = ChannelAnomaly(make_detector=Recorder)
    assert detector.score_one({"x": 1.0}) == 0.25
    detector.learn_one({"x": 1.0})
    detector.learn_one({"x": 2.0})
    assert seen == [1.0, 2.0]


def _analytics(tmp_path: Path, text: str) -> AnalyticsConfig:
    path = tmp_path / "gridedge.toml"
    path.write_text(text, encoding="utf-8")
    return load_analytics(path)


HST = """
[analytics.multivariate]
enabled = false
[[analytics.models]]
model = "anomaly.HalfSpaceTrees"
params = {n_trees = 15, height = 8, window_size = 250, seed = 7}
"""


class _Collect:
    def __init__(self) -> None:
        self.records: list[Record] = []

    async def put(self, records: Sequence[Record]) -> None:
        self.records.extend(records)


def _two_clusters(sink: AnalyticsSink, fault_at: int, seed: int) -> list[tuple[int, str]]:
    """Both channels low or both high, switching every 20 samples: each channel alone is
    bimodal, so a sample with one low and one high (the fault) looks usual channel by channel.
    """
    rng = random.Random(seed)
    high, raised = False, []
    for i in range(fault_at + 100):
        if i % 20 == 0:
            high = rng.random() < 0.5
        a = b = 80.0 if high else 20.0
        if fault_at <= i < fault_at + 40:
            b = 100.0 - a
        values = {"a": a + rng.gauss(0, 1), "b": b + rng.gauss(0, 1)}
        for r in sink.process([Sample("m", 1767571200.0 + 60.0 * i, values)]):
            if isinstance(r, Envelope) and r.kind is Kind.ALERT and r.body["state"] == "raised":
                raised.append((i, str(r.body["channel"])))
    return raised


def test_a_configured_half_space_trees_model_raises_an_alert_through_the_stage(
    tmp_path: Path,
) -> None:
    """Through the daemon's analytics stage: the trees raise a device alert at the fault,
    which the per-channel detectors alone do not.
    """
    config = _analytics(tmp_path, HST)
    assert config.models[0].kind is ModelKind.ANOMALY
    raised = _two_clusters(AnalyticsSink(_Collect(), config), 5000, seed=1)
    assert (5000, DEVICE_CHANNEL) in [(i, ch) for i, ch in raised if 5000 <= i < 5040]
    assert not [i for i, _ in raised if i < 5000]
    plain = _analytics(tmp_path, "[analytics.multivariate]\nenabled = false\n")
    assert _two_clusters(AnalyticsSink(_Collect(), plain), 5000, seed=1) == []


def test_a_configured_forecaster_emits_forecast_envelopes(tmp_path: Path) -> None:
    """A ``time_series.HoltWinters`` model emits forecast envelopes that follow a ramp.

    The envelopes name the model; their horizons are those of ``[analytics.trend]``.
    """
    config = _analytics(
        tmp_path,
        '[[analytics.models]]\nmodel = "time_series.HoltWinters"\n'
        'params = {alpha = 0.5, beta = 0.2}\nchannels = ["v"]\n',
    )
    inner = _Collect()
    sink = AnalyticsSink(inner, config)
    for i in range(300):
        sink.process([Sample("m", 1767571200.0 + 60.0 * i, {"v": 200.0 + 0.1 * i, "w": 1.0})])
    forecasts = sink.process([Sample("m", 1767571200.0 + 18000.0, {"v": 230.0})])
    bodies = [r.body for r in forecasts if isinstance(r, Envelope) and r.kind is Kind.FORECAST]
    river_bodies = [b for b in bodies if b.get("model") == "time_series.HoltWinters"]
    assert len(river_bodies) == 1
    horizons = river_bodies[0]["horizons"]
    assert isinstance(horizons, dict)
    assert set(horizons) == {"1", "6", "12"}
    assert 230.0 < horizons["1"] < horizons["6"] < horizons["12"] < 232.0


@pytest.mark.parametrize(
    ("entry", "key", "needle"),
    [
        ('model = "anomaly.HalfSpaceTree"', "analytics.models[0].model", "HalfSpaceTrees"),
        ('model = "anomalies.HalfSpaceTrees"', "analytics.models[0].model", "river.anomalies"),
        ('model = "preprocessing.StandardScaler"', "analytics.models[0].model", "neither"),
        ('model = "os.system"', "analytics.models[0].model", "no module"),
        ('model = "HalfSpaceTrees"', "analytics.models[0].model", "dotted"),
        (
            'model = "anomaly.HalfSpaceTrees"\nparams = {trees = 3}',
            "analytics.models[0].params",
            "trees",
        ),
        ('model = "time_series.HoltWinters"', "analytics.models[0].params", "alpha"),
        (
            'model = "time_series.HoltWinters"\nparams = {alpha = 0.3}',
            "analytics.models[0].channels",
            "forecaster",
        ),
        (
            'model = "anomaly.HalfSpaceTrees"\nscaling = "robust"',
            "analytics.models[0].scaling",
            "minmax",
        ),
    ],
)
def test_model_mistakes_are_refused_by_check(
    tmp_path: Path, entry: str, key: str, needle: str
) -> None:
    """Unknown names, bad parameters and missing channels: exit 2, one line naming the key."""
    path = tmp_path / "gridedge.toml"
    path.write_text(f"{METER}\n[[analytics.models]]\n{entry}\n", encoding="utf-8")
    assert_refused(run(["check", "-c", str(path)]), key, needle)


def test_multivariate_mistakes_are_refused_by_check(tmp_path: Path) -> None:
    """The multivariate table's keys are checked with the same precision."""
    path = tmp_path / "gridedge.toml"
    path.write_text(f"{METER}\n[analytics.multivariate]\nwindow = 5\n", encoding="utf-8")
    assert_refused(run(["check", "-c", str(path)]), "analytics.multivariate.window", "at least 10")
    path.write_text(f"{METER}\n[analytics.multivariate]\nwindow = 100\nrefresh_samples = 80\n")
    assert_refused(run(["check", "-c", str(path)]), "analytics.multivariate.refresh_samples")


def test_a_configured_model_survives_the_effective_config_dump(tmp_path: Path) -> None:
    """``gridedge check`` prints the model with its parameters, and that reads back equal."""
    path = tmp_path / "gridedge.toml"
    path.write_text(METER + HST, encoding="utf-8")
    outcome = run(["check", "-c", str(path)])
    assert outcome.status == 0, outcome
    again = tmp_path / "again.toml"
    again.write_text(outcome.out[outcome.out.index("[") :], encoding="utf-8")
    assert load_analytics(again) == load_analytics(path)


def test_without_river_configured_river_is_never_imported() -> None:
    """The default analytics (multivariate detector on) run without importing River."""
    code = (
        "import sys\n"
        "from gridedge.analytics.engine import Analytics\n"
        "from gridedge.analytics.settings import AnalyticsConfig\n"
        "from gridedge.model import Sample\n"
        "a = Analytics(AnalyticsConfig())\n"
        "for i in range(50): a.process(Sample('m', 60.0 * i, {'v': 230.0 + i % 3}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'river'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
