"""Modbus link settings: defaults, dotted-path errors, bus sharing rules, unit id lists."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from gridedge.config import Config, SimulatedLinkConfig, dump_toml, parse_config
from gridedge.errors import ConfigError
from gridedge.links.modbus.settings import (
    LinkType,
    ModbusRtuLinkConfig,
    ModbusTcpLinkConfig,
    Parity,
    RtuOverTcpLinkConfig,
    parse_unit_ids,
    rtu_frame_gap_s,
)


def _doc(*links: dict[str, Any], count: int | None = None) -> dict[str, Any]:
    meters = []
    for i, link in enumerate(links, start=1):
        meter: dict[str, Any] = {"id": f"m{i}", "driver": "eastron-sdm630", "link": link}
        if count is not None:
            meter["count"] = count
        meters.append(meter)
    return {"gateway": {"id": "gw"}, "meters": meters}


def _parse(doc: dict[str, Any], tmp_path: Path) -> Config:
    return parse_config(doc, source="test.toml", base_dir=tmp_path)


def _unit_ids(config: Config) -> list[tuple[str, int]]:
    units = []
    for meter in config.meters:
        assert not isinstance(meter.link, SimulatedLinkConfig)
        units.append((meter.id, meter.link.unit_id))
    return units


def _error(doc: dict[str, Any], tmp_path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _parse(doc, tmp_path)
    return info.value


def test_modbus_tcp_link_fills_in_its_defaults(tmp_path: Path) -> None:
    """A modbus-tcp link needs only a host: port 502, unit 1, 1 s timeout, one retry."""
    config = _parse(_doc({"type": "modbus-tcp", "host": "10.0.0.5"}), tmp_path)
    assert config.meters[0].link == ModbusTcpLinkConfig(host="10.0.0.5")
    link = config.meters[0].link
    assert isinstance(link, ModbusTcpLinkConfig)
    assert (link.port, link.unit_id, link.timeout_s, link.retries) == (502, 1, 1.0, 1)
    assert link.bus == "10.0.0.5:502"


def test_rtu_frame_gap_defaults_to_three_and_a_half_characters() -> None:
    """The serial frame gap follows the baud rate, fixed at 1.75 ms above 19200 baud."""
    assert rtu_frame_gap_s(9600) == pytest.approx(3.5 * 11 / 9600)
    assert rtu_frame_gap_s(115200) == 0.00175


def test_modbus_rtu_link_reads_every_serial_setting(tmp_path: Path) -> None:
    """Serial settings are read as given; the frame gap default follows the baud rate."""
    link = {
        "type": "modbus-rtu",
        "port": "/dev/ttyUSB0",
        "baudrate": 19200,
        "parity": "E",
        "stopbits": 2,
        "unit_id": 17,
        "timeout_s": 0.5,
        "retries": 0,
    }
    got = _parse(_doc(link), tmp_path).meters[0].link
    assert got == ModbusRtuLinkConfig(
        port="/dev/ttyUSB0",
        baudrate=19200,
        parity=Parity.EVEN,
        stopbits=2,
        unit_id=17,
        timeout_s=0.5,
        retries=0,
        frame_gap_s=rtu_frame_gap_s(19200),
    )


def test_rtu_over_tcp_link_has_its_own_type(tmp_path: Path) -> None:
    """rtu-over-tcp reads like modbus-tcp but is its own link type."""
    link = _parse(_doc({"type": "rtu-over-tcp", "host": "gw", "port": 4001}), tmp_path)
    assert link.meters[0].link == RtuOverTcpLinkConfig(host="gw", port=4001)


@pytest.mark.parametrize(
    ("link", "path"),
    [
        ({"type": "modbus-rtu", "port": "/dev/ttyS0", "parity": "X"}, "meters[0].link.parity"),
        ({"type": "modbus-rtu", "port": "/dev/ttyS0", "unit_id": 248}, "meters[0].link.unit_id"),
        ({"type": "modbus-rtu", "port": "/dev/ttyS0", "stopbits": 3}, "meters[0].link.stopbits"),
        ({"type": "modbus-rtu"}, "meters[0].link.port"),
        ({"type": "modbus-tcp", "host": "h", "port": "abc"}, "meters[0].link.port"),
        ({"type": "modbus-tcp", "host": "h", "timeout_s": 0}, "meters[0].link.timeout_s"),
        ({"type": "modbus-tcp"}, "meters[0].link.host"),
        ({"type": "modbus-tcp", "host": "h", "baudrate": 9600}, "meters[0].link.baudrate"),
        ({"type": "modbus-udp", "host": "h"}, "meters[0].link.type"),
    ],
)
def test_bad_modbus_link_values_name_their_key(
    link: dict[str, Any], path: str, tmp_path: Path
) -> None:
    """Every invalid or unknown link key is reported with its dotted path."""
    assert _error(_doc(link), tmp_path).path == path


def test_modbus_tcp_accepts_unit_ids_0_and_255(tmp_path: Path) -> None:
    """Modbus TCP devices may answer as unit 0 or 255, which a serial bus cannot address."""
    doc = _doc({"type": "modbus-tcp", "host": "a", "unit_id": 0})
    assert _unit_ids(_parse(doc, tmp_path)) == [("m1", 0)]
    doc = _doc({"type": "modbus-tcp", "host": "a", "unit_id": 255})
    assert _unit_ids(_parse(doc, tmp_path)) == [("m1", 255)]


def test_count_expands_a_modbus_meter_into_consecutive_unit_ids(tmp_path: Path) -> None:
    """`count = 3` from unit 5 makes meters m1-1..m1-3 at units 5, 6, 7 on one bus."""
    doc = _doc({"type": "modbus-tcp", "host": "gw", "unit_id": 5}, count=3)
    assert _unit_ids(_parse(doc, tmp_path)) == [("m1-1", 5), ("m1-2", 6), ("m1-3", 7)]


def test_count_past_the_last_unit_id_is_rejected(tmp_path: Path) -> None:
    """Consecutive unit ids may not run past 247 on a serial bus."""
    doc = _doc({"type": "modbus-rtu", "port": "/dev/ttyS0", "unit_id": 240}, count=10)
    err = _error(doc, tmp_path)
    assert err.path == "meters[0].count"
    assert "247" in err.problem


def test_meters_sharing_a_serial_port_must_agree_on_its_settings(tmp_path: Path) -> None:
    """A second meter on the same port with another baud rate is refused at its link."""
    first = {"type": "modbus-rtu", "port": "/dev/ttyS0", "unit_id": 1}
    second = {"type": "modbus-rtu", "port": "/dev/ttyS0", "unit_id": 2, "baudrate": 19200}
    err = _error(_doc(first, second), tmp_path)
    assert err.path == "meters[1].link"
    assert "m1" in err.problem
    assert "baudrate = 9600" in err.problem


def test_one_host_port_cannot_be_both_tcp_and_rtu_over_tcp(tmp_path: Path) -> None:
    """The framing of a bus is a bus setting: mixing types on one host:port is refused."""
    doc = _doc({"type": "modbus-tcp", "host": "gw"}, {"type": "rtu-over-tcp", "host": "gw"})
    assert _error(doc, tmp_path).path == "meters[1].link"


def test_two_meters_with_one_unit_id_on_one_bus_are_rejected(tmp_path: Path) -> None:
    """Unit ids are unique per bus; the second meter's unit_id is named."""
    link = {"type": "modbus-tcp", "host": "gw", "unit_id": 3}
    err = _error(_doc(link, dict(link)), tmp_path)
    assert err.path == "meters[1].link.unit_id"
    assert "'m1'" in err.problem


def _sunspec_doc(*meters: tuple[str, int | None]) -> dict[str, Any]:
    """Meters on unit 1 of one gateway: (driver, sunspec_index or None for no discovery)."""
    doc: dict[str, Any] = {"gateway": {"id": "gw"}, "meters": []}
    for i, (driver, index) in enumerate(meters, start=1):
        link: dict[str, Any] = {"type": "modbus-tcp", "host": "gw", "unit_id": 1}
        if index is not None:
            link |= {"sunspec": True, "sunspec_index": index}
        doc["meters"].append({"id": f"m{i}", "driver": driver, "link": link})
    return doc


def test_each_sunspec_model_instance_of_one_unit_is_a_meter(tmp_path: Path) -> None:
    """Under SunSpec discovery one unit holds a meter per model instance: an inverter, its
    MPPT model and two instances of meter model 203 all poll unit 1.
    """
    doc = _sunspec_doc(
        ("sunspec-inverter-103", 1),
        ("sunspec-mppt-160", 1),
        ("sunspec-meter-203", 1),
        ("sunspec-meter-203", 2),
    )
    assert _unit_ids(_parse(doc, tmp_path)) == [("m1", 1), ("m2", 1), ("m3", 1), ("m4", 1)]


def test_one_sunspec_model_instance_polled_twice_is_rejected(tmp_path: Path) -> None:
    """Two meters on the same instance of a model would store the same device twice; the
    second one's sunspec_index is named, with the index a second instance needs.
    """
    err = _error(_sunspec_doc(("sunspec-meter-203", 1), ("sunspec-meter-203", 1)), tmp_path)
    assert err.path == "meters[1].link.sunspec_index"
    assert "'m1'" in err.problem
    assert "sunspec_index = 2" in err.problem


def test_a_unit_without_discovery_is_one_meter_even_beside_sunspec_ones(tmp_path: Path) -> None:
    """A meter polling the unit's fixed layout takes the whole unit, in either order."""
    for meters in (
        (("sunspec-meter-203", 1), ("sunspec-meter-203", None)),
        (("sunspec-meter-203", None), ("sunspec-inverter-103", 1)),
    ):
        err = _error(_sunspec_doc(*meters), tmp_path)
        assert err.path == "meters[1].link.unit_id"
        assert "'m1'" in err.problem


def test_one_unit_id_on_two_buses_is_fine(tmp_path: Path) -> None:
    """The same unit id on different buses are different meters."""
    doc = _doc({"type": "modbus-tcp", "host": "a"}, {"type": "modbus-tcp", "host": "b"})
    assert len(_parse(doc, tmp_path).meters) == 2


def test_modbus_links_print_and_read_back_unchanged(tmp_path: Path) -> None:
    """`gridedge check` output of Modbus meters parses back to the same configuration."""
    doc = _doc(
        {"type": "modbus-tcp", "host": "gw", "unit_id": 4},
        {"type": "modbus-rtu", "port": "/dev/ttyUSB0", "parity": "O"},
        {"type": "rtu-over-tcp", "host": "serial-server", "port": 4001},
    )
    config = _parse(doc, tmp_path)
    again = _parse(tomllib.loads(dump_toml(config)), tmp_path)
    assert again.meters == config.meters
    assert [m.link.type for m in again.meters] == [
        LinkType.MODBUS_TCP,
        LinkType.MODBUS_RTU,
        LinkType.RTU_OVER_TCP,
    ]


def test_unit_id_lists_accept_ranges_and_single_ids() -> None:
    """`1-3,7,9-10` lists those ids in order, each once."""
    assert parse_unit_ids("1-3,7,9-10") == (1, 2, 3, 7, 9, 10)
    assert parse_unit_ids("5, 5, 4") == (5, 4)


@pytest.mark.parametrize("text", ["", "a", "3-1", "1-", "256", "1-300", "-2"])
def test_malformed_unit_id_lists_are_refused(text: str) -> None:
    """Anything but ids and low-high ranges within 0..255 raises ValueError."""
    with pytest.raises(ValueError, match="unit ids"):
        parse_unit_ids(text)
