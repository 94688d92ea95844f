"""The [analytics] section: defaults, validation with dotted paths, the example config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gridedge.analytics.settings import AnalyticsConfig, RiverModel, load_analytics, parse_analytics
from gridedge.config import load_config
from gridedge.errors import ConfigError
from gridedge.tomlread import Table

EXAMPLE = Path(__file__).resolve().parents[3] / "config.example.toml"


def _parse(section: dict[str, Any]) -> AnalyticsConfig:
    return parse_analytics(Table({"analytics": section}, "", "t.toml").table("analytics"))


def _error(section: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        _parse(section)
    return str(info.value)


def test_an_empty_section_gives_the_defaults() -> None:
    """Nothing configured means the documented defaults, analytics on, no River."""
    cfg = _parse({})
    assert cfg == AnalyticsConfig()
    assert cfg.enabled
    assert cfg.river_models == ()
    assert cfg.aggregate.windows_s == (60.0, 900.0)


def test_every_subsection_is_read() -> None:
    """Detector, alert, aggregate, trend and per-channel settings land in their fields."""
    cfg = _parse(
        {
            "river_models": ["adwin"],
            "detector": {"holdoff_samples": 20, "jump_level": 2.5},
            "alerts": {"raise_threshold": 0.7, "clear_threshold": 0.5, "rearm_after_samples": 9},
            "aggregate": {"windows_s": [300], "report_by_exception": True, "deadband": 0.2},
            "trend": {"horizons": [2, 4], "channels": [{"channel": "temperature", "above": 80}]},
            "overrides": [{"name": "frequency", "device": "mains", "max_rate_per_s": 0.5}],
        }
    )
    assert cfg.river_models == (RiverModel.ADWIN,)
    assert cfg.detector.holdoff_samples == 20
    assert cfg.detector.jump_level == 2.5
    assert cfg.alerts.rearm_after_samples == 9
    assert cfg.alerts.raise_threshold == 0.7
    assert cfg.aggregate.windows_s == (300.0,)
    assert cfg.aggregate.report_by_exception
    assert cfg.trend.horizons == (2, 4)
    assert cfg.trend.channels[0].above == 80.0
    override = cfg.override("mains", "frequency")
    assert override is not None
    assert override.max_rate_per_s == 0.5
    assert cfg.override("other", "frequency") is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"alerts": {"raise_threshold": 2}}, "analytics.alerts.raise_threshold: expected at most"),
        ({"detecter": {}}, "analytics.detecter: unknown key; did you mean 'detector'?"),
        (
            {"aggregate": {"windows_s": [7]}},
            "analytics.aggregate.windows_s[0]: expected a positive",
        ),
        ({"river_models": ["forest"]}, "analytics.river_models[0]: expected one of"),
        (
            {"alerts": {"clear_threshold": 0.9}},
            "analytics.alerts.clear_threshold: expected at most",
        ),
        ({"trend": {"horizons": []}}, "analytics.trend.horizons: expected at least one"),
        ({"overrides": [{"name": "v", "maxx": 1}]}, "analytics.overrides[0].maxx: unknown key"),
    ],
)
def test_mistakes_name_their_dotted_path(section: dict[str, Any], message: str) -> None:
    """Every invalid value or unknown key is reported with its full key path."""
    assert message in _error(section)


def test_the_example_config_turns_analytics_on_with_a_trend_channel() -> None:
    """config.example.toml has an [analytics] section the daemon uses as-is."""
    cfg = load_config(EXAMPLE).analytics
    assert cfg.enabled
    assert [t.channel for t in cfg.trend.channels] == ["voltage_l1"]
    assert cfg.override("mains", "frequency") is not None


def test_replay_reads_only_the_analytics_section(tmp_path: Path) -> None:
    """load_analytics takes [analytics] from a full config file and ignores the rest."""
    path = tmp_path / "c.toml"
    path.write_text('[gateway]\nid = "x"\n[analytics.alerts]\nraise_threshold = 0.8\n')
    assert load_analytics(path).alerts.raise_threshold == 0.8
    assert load_analytics(None) == AnalyticsConfig()
