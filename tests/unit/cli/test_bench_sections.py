"""The new bench sections' fixed parts: the farm's configs, the wire figures."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gridedge.bench.farm import _DRIVER, FarmRun, _config_toml, _driver_toml, bench_farm
from gridedge.bench.wire import bench_wire
from gridedge.config import parse_config
from gridedge.drivers import DataType, load_driver
from gridedge.links.modbus.planner import plan_reads


def test_the_farm_config_spreads_the_meters_over_the_connections(tmp_path: Path) -> None:
    """10 float32 channels read in one request; every meter on its connection's port."""
    (tmp_path / "drivers").mkdir()
    driver_file = tmp_path / "drivers" / f"{_DRIVER}.toml"
    driver_file.write_text(_driver_toml())
    driver = load_driver(driver_file)
    assert [ch.type for ch in driver.channels] == [DataType.FLOAT32] * 10
    assert len(plan_reads(driver.channels, driver.max_registers_per_request, 10)) == 1
    farm = [(5020, 0, 34), (5021, 0, 33), (5022, 0, 33)]
    text = _config_toml(tmp_path, FarmRun(100, 3, 1.0, analytics=True), 1883, farm)
    config = parse_config(tomllib.loads(text), source="farm.toml", base_dir=tmp_path)
    assert len(config.meters) == 100
    assert config.analytics.enabled
    ports = sorted({m.link.port for m in config.meters})  # type: ignore[union-attr]
    assert ports == [5020, 5021, 5022]


def test_the_farm_refuses_more_meters_than_its_connections_can_address() -> None:
    """A Modbus TCP connection addresses 247 units at most."""
    with pytest.raises(ValueError, match="247"):
        bench_farm(1.0, meters=500, connections=2)


def test_the_wire_section_measures_source_precision_and_compression() -> None:
    """An SDM630 batch costs under 22 bytes per value in the column layout (under 30 with
    names in every object), gzip well under a third of that.
    """
    result = bench_wire(0.0)
    assert result["values"] == 360 * 38
    assert result["json_bytes_per_value"] < 22
    assert result["json_bytes_per_value"] < result["objects_json_bytes_per_value"] < 30
    assert result["gzip_bytes_per_value"] < result["json_bytes_per_value"] / 3
