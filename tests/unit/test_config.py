"""Config loading: every mistake names its dotted key path; the example config is valid."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from gridedge.config import (
    Config,
    OnFull,
    SimulatedLinkConfig,
    Synchronous,
    dump_toml,
    load_config,
    parse_config,
)
from gridedge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"


def _doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "gateway": {"id": "gw", "site": "s"},
        "meters": [
            {"id": "m1", "driver": "eastron-sdm630", "link": {"type": "simulated", "seed": 1}}
        ],
    }
    doc.update(overrides)
    return doc


def _parse(doc: dict[str, Any], tmp_path: Path) -> Config:
    return parse_config(doc, source="test.toml", base_dir=tmp_path)


def _error(doc: dict[str, Any], tmp_path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _parse(doc, tmp_path)
    return info.value


def test_example_config_is_valid() -> None:
    """The shipped example loads and describes at least one meter of each built-in driver."""
    config = load_config(EXAMPLE)
    assert config.meters
    assert {m.driver for m in config.meters} >= {"eastron-sdm630", "eastron-sdm120"}
    assert config.outbox.path.parent == ROOT


def test_defaults_fill_missing_sections(tmp_path: Path) -> None:
    """A minimal config gets the documented defaults, with paths relative to the file."""
    config = _parse(_doc(), tmp_path)
    assert config.outbox.on_full is OnFull.DROP_OLDEST
    assert config.outbox.synchronous is Synchronous.NORMAL
    assert config.outbox.path == tmp_path / "gridedge-outbox.sqlite3"
    assert config.meters[0].interval_s == 10.0


def test_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    """A misspelt section is rejected with its name and a suggestion."""
    err = _error(_doc(outbx={}), tmp_path)
    assert err.path == "outbx"
    assert "unknown key" in err.problem
    assert "outbox" in err.problem


def test_unknown_nested_key_names_the_meter_index(tmp_path: Path) -> None:
    """An unknown key inside the second meter's link names meters[1].link.<key>."""
    doc = _doc()
    doc["meters"].append(
        {"id": "m2", "driver": "eastron-sdm120", "link": {"type": "simulated", "sed": 3}}
    )
    err = _error(doc, tmp_path)
    assert err.path == "meters[1].link.sed"
    assert "seed" in err.problem


def test_wrong_type_names_expected_and_found(tmp_path: Path) -> None:
    """A string where an integer belongs says what was expected and what was found."""
    err = _error(_doc(outbox={"max_bytes": "abc"}), tmp_path)
    assert err.path == "outbox.max_bytes"
    assert err.problem == "expected an integer, got a string 'abc'"


def test_negative_interval_is_rejected(tmp_path: Path) -> None:
    """A negative poll interval is rejected at meters[0].interval_s."""
    doc = _doc()
    doc["meters"][0]["interval_s"] = -5
    err = _error(doc, tmp_path)
    assert err.path == "meters[0].interval_s"
    assert "-5" in err.problem


def test_missing_driver_lists_the_available_ones(tmp_path: Path) -> None:
    """An unknown driver id names the key and lists what exists."""
    doc = _doc()
    doc["meters"][0]["driver"] = "acme-9000"
    err = _error(doc, tmp_path)
    assert err.path == "meters[0].driver"
    assert "acme-9000" in err.problem
    assert "eastron-sdm630" in err.problem


def test_enum_value_lists_the_choices(tmp_path: Path) -> None:
    """A value outside a closed set lists the accepted values."""
    err = _error(_doc(outbox={"on_full": "explode"}), tmp_path)
    assert err.path == "outbox.on_full"
    assert "'drop_oldest'" in err.problem
    assert "'drop_newest'" in err.problem


def test_missing_required_key(tmp_path: Path) -> None:
    """A meter without a link is reported at meters[0].link."""
    doc = _doc()
    del doc["meters"][0]["link"]
    err = _error(doc, tmp_path)
    assert err.path == "meters[0].link"
    assert "missing" in err.problem


def test_duplicate_meter_ids_are_rejected(tmp_path: Path) -> None:
    """Two meters with one id cannot be told apart upstream, so the second is an error."""
    doc = _doc()
    doc["meters"].append(dict(doc["meters"][0]))
    err = _error(doc, tmp_path)
    assert err.path == "meters[1].id"
    assert "meters[0]" in err.problem


def test_count_expands_into_numbered_meters_with_distinct_seeds(tmp_path: Path) -> None:
    """`count` makes that many meters with zero-padded ids and consecutive seeds."""
    doc = _doc()
    doc["meters"][0]["count"] = 12
    config = _parse(doc, tmp_path)
    assert [m.id for m in config.meters][:2] == ["m1-01", "m1-02"]
    assert config.meters[-1].id == "m1-12"
    seeds = {m.link.seed for m in config.meters if isinstance(m.link, SimulatedLinkConfig)}
    assert len(seeds) == 12


def test_fault_schedule_channel_must_exist_in_driver(tmp_path: Path) -> None:
    """A scheduled fault on a channel the driver lacks is named by its full path."""
    doc = _doc()
    doc["meters"][0]["driver"] = "eastron-sdm120"
    doc["meters"][0]["link"]["faults"] = {
        "schedule": [{"kind": "spike", "at_s": 1, "channel": "current_l3"}]
    }
    err = _error(doc, tmp_path)
    assert err.path == "meters[0].link.faults.schedule[0].channel"


def test_fault_kind_in_list_is_checked(tmp_path: Path) -> None:
    """An unknown fault kind in the kinds array names its index."""
    doc = _doc()
    doc["meters"][0]["link"]["faults"] = {"kinds": ["sag", "meteor"]}
    err = _error(doc, tmp_path)
    assert err.path == "meters[0].link.faults.kinds[1]"


def test_id_with_topic_wildcard_is_rejected(tmp_path: Path) -> None:
    """Ids become MQTT topic levels, so '+', '#' and '/' are refused."""
    err = _error(_doc(gateway={"id": "gw/1"}), tmp_path)
    assert err.path == "gateway.id"


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    """A file that is not TOML is reported with its name."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway\nid = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert "bad.toml" in str(info.value)
    assert "invalid TOML" in str(info.value)


def test_dump_round_trips_to_the_same_config(tmp_path: Path) -> None:
    """The effective config printed by `check` reads back into an equal config."""
    original = load_config(EXAMPLE)
    text = dump_toml(original)
    again = parse_config(tomllib.loads(text), source="dump", base_dir=tmp_path)
    assert again.meters == original.meters
    assert again.outbox == original.outbox
    assert again.gateway == original.gateway
