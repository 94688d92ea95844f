"""Home Assistant discovery payloads against the rules Home Assistant documents."""

from __future__ import annotations

import json

from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_drivers
from gridedge.forward.homeassistant import (
    DeviceState,
    config_topic,
    discovery,
    discovery_messages,
    object_id,
    removal,
    state_topic,
)
from gridedge.forward.payload import Identity

ID = Identity("gridedge", "site-a", "gw.1")

# Home Assistant's sensor device classes used here, with the units and state classes it allows
# for each (homeassistant/components/sensor/const.py: DEVICE_CLASS_UNITS and
# DEVICE_CLASS_STATE_CLASSES).
HA_UNITS: dict[str, set[str | None]] = {
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "current": {"A", "mA"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW"},
    "reactive_power": {"var", "kvar", "mvar"},
    "apparent_power": {"VA", "kVA", "mVA"},
    "power_factor": {"%", None},
    "frequency": {"Hz", "kHz", "MHz", "GHz"},
    "energy": {"Wh", "kWh", "MWh", "GWh", "TWh", "J", "kJ", "MJ", "GJ", "cal", "kcal"},
    "temperature": {"°C", "°F", "K"},
}
HA_STATE_CLASSES: dict[str, set[str]] = {
    "energy": {"total", "total_increasing"},
    **{c: {"measurement"} for c in HA_UNITS if c != "energy"},
}
BINARY_CLASSES = {"problem", "connectivity", "power", "running", "safety"}
OBJECT_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def test_every_builtin_driver_gives_a_valid_device_discovery_payload() -> None:
    """Required keys, allowed device classes, units and state classes, unique ids, per driver."""
    drivers = load_drivers([BUILTIN_DRIVERS_DIR])
    messages = discovery_messages(((f"m-{d}", drv) for d, drv in drivers.items()), ID)
    unique_ids: set[str] = set()
    for message in messages:
        topic_levels = message.topic.split("/")
        assert topic_levels[:2] == ["homeassistant", "device"]
        assert topic_levels[3] == "config"
        assert set(topic_levels[2]) <= OBJECT_ID_CHARS
        payload = json.loads(message.payload)
        assert payload["dev"]["ids"]
        assert payload["dev"]["name"]
        assert payload["o"]["name"] == "gridedge"
        assert payload["state_topic"].endswith("/state")
        assert payload["availability_mode"] == "all"
        for component in payload["cmps"].values():
            assert component["p"] in {"sensor", "binary_sensor"}
            assert component["unique_id"] not in unique_ids
            unique_ids.add(component["unique_id"])
            assert "value_json" in component["value_template"]
            if component["p"] == "binary_sensor":
                assert component["device_class"] in BINARY_CLASSES
                continue
            cls = component.get("device_class")
            if cls is None:
                assert component["state_class"] in {"measurement", "total", "total_increasing"}
                continue
            assert cls in HA_UNITS, cls
            assert component.get("unit_of_measurement") in HA_UNITS[cls], component
            assert component["state_class"] in HA_STATE_CLASSES[cls], component


def test_energy_channels_are_ready_for_the_energy_dashboard() -> None:
    """Imported and exported energy: energy, total_increasing, kWh."""
    driver = load_drivers([BUILTIN_DRIVERS_DIR])["eastron-sdm630"]
    payload = json.loads(discovery("mains", driver, ID, version="1.2").payload)
    energy = payload["cmps"]["energy_import"]
    assert (energy["device_class"], energy["state_class"]) == ("energy", "total_increasing")
    assert energy["unit_of_measurement"] == "kWh"
    power = payload["cmps"]["active_power"]
    assert (power["device_class"], power["unit_of_measurement"]) == ("power", "W")
    assert payload["o"] == {"name": "gridedge", "sw": "1.2"}
    assert payload["availability"][0]["topic"] == ID.status_topic


def test_object_ids_keep_only_the_characters_home_assistant_allows() -> None:
    """Dots and other characters in ids become underscores; the config topic uses it."""
    assert object_id(ID, "bus.meter 1") == "gridedge_site-a_gw_1_bus_meter_1"
    assert config_topic("ha", ID, "x") == "ha/device/gridedge_site-a_gw_1_x/config"
    assert removal("x", ID, discovery_prefix="ha").payload == b""


def test_the_state_keeps_every_channel_even_when_a_sample_reports_only_some() -> None:
    """Report-by-exception samples update only their channels; the payload has them all."""
    state = DeviceState()
    assert state.apply("sample", {"values": {"voltage_l1": 230.0, "current_l1": 5.0}})
    assert state.apply("sample", {"values": {"voltage_l1": 231.0}})
    assert not state.apply("sample", {"values": {"voltage_l1": 231.0}})
    assert json.loads(state.payload()) == {
        "voltage_l1": 231.0,
        "current_l1": 5.0,
        "online": True,
        "problem": False,
    }


def test_problem_follows_active_alerts_and_online_follows_status() -> None:
    """A raised alert sets problem until it clears; an offline status clears online."""
    state = DeviceState()
    assert state.apply("alert", {"state": "raised", "rule": "limit", "channel": "voltage_l1"})
    assert json.loads(state.payload())["problem"] is True
    assert state.apply("alert", {"state": "cleared", "rule": "limit", "channel": "voltage_l1"})
    assert json.loads(state.payload())["problem"] is False
    assert state.apply("status", {"state": "offline", "error": "timeout"})
    assert json.loads(state.payload())["online"] is False
    assert state_topic(ID, "m") == "gridedge/site-a/gw.1/m/state"
