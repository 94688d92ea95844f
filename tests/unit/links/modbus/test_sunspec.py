"""SunSpec discovery over a fake bus: the chain, the common model, binding, sentinels."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridedge.config import Config, parse_config
from gridedge.errors import DriverError, FrameError, LinkError
from gridedge.links.factory import open_links
from gridedge.links.modbus.emulator import Emulator, EmulatorSettings, chain_image, image_source
from gridedge.links.modbus.settings import ModbusTcpLinkConfig
from gridedge.links.modbus.sunspec import (
    CommonInfo,
    ModelInstance,
    SunSpecLink,
    bind,
    decode_string,
    encode_string,
    read_chain,
)
from tests.unit.links.modbus.fakes import FakeBus, builtin

COMMON = CommonInfo("Fronius", "Symo 10.0-3-M", "", "1.2.3", "SN-12345")
INVERTER = builtin("sunspec-inverter-103")
MPPT = builtin("sunspec-mppt-160")
METER = builtin("sunspec-meter-203")
INVERTER_VALUES = {"active_power": 4321.0, "frequency": 50.01, "voltage_l1": 231.4}
MPPT_VALUES = {"dc_power_s1": 2100.0, "dc_voltage_s1": 612.5, "dc_power_s2": 1900.0}
METER_VALUES = {"active_power": -1234.0, "voltage_l2": 229.9, "energy_import": 4567.891}
MPPT_TWO_STRINGS = 8 + 2 * 20


def _image(base: int = 40000) -> dict[int, int]:
    return chain_image(
        base,
        [
            (INVERTER, INVERTER_VALUES, 50),
            (MPPT, MPPT_VALUES, MPPT_TWO_STRINGS),
            (METER, METER_VALUES, 105),
        ],
        COMMON,
    )


def _bus(image: dict[int, int]) -> FakeBus:
    return FakeBus(image_source(image))


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=32))
def test_strings_round_trip_through_registers(text: str) -> None:
    """A SunSpec string field reads back as written, up to its NUL padding and spaces."""
    assert decode_string(encode_string(text, 16)) == text.strip()


async def test_the_chain_lists_every_model_with_its_header_and_the_device_identity() -> None:
    """Discovery finds SunS at 40000, models 1, 103, 160, 203 in order, and model 1's strings."""
    chain = await read_chain(_bus(_image()), "d", 1, 0.1)
    assert chain.base == 40000
    assert [(m.model, m.header) for m in chain.models] == [
        (1, 40002),
        (103, 40070),
        (160, 40122),
        (203, 40172),
    ]
    assert chain.common == COMMON


async def test_a_map_at_a_configured_base_is_found_only_there() -> None:
    """A map at 1000 is not at a standard base; with sunspec_base = 1000 it is found."""
    bus = _bus(_image(base=1000))
    with pytest.raises(FrameError, match="no SunSpec marker"):
        await read_chain(bus, "d", 1, 0.1)
    chain = await read_chain(bus, "d", 1, 0.1, base=1000)
    assert chain.instance(203) == ModelInstance(203, 1172, 105)


async def test_a_model_found_behind_others_is_read_with_its_scale_factors() -> None:
    """The meter sits 102 registers later than its driver assumes; values still decode."""
    link = SunSpecLink("m", METER, _bus(_image()), unit_id=1, timeout_s=0.1)
    values = await link.read()
    for name, expected in METER_VALUES.items():
        assert values[name] == pytest.approx(expected, abs=0.0015), name


async def test_the_mppt_model_keeps_only_the_strings_the_device_has() -> None:
    """A model 160 with 2 strings reads s1 and s2 and no s3, although the driver lists 4."""
    link = SunSpecLink("m", MPPT, _bus(_image()), unit_id=1, timeout_s=0.1)
    values = await link.read()
    assert values["dc_power_s1"] == pytest.approx(2100.0)
    assert values["dc_voltage_s1"] == pytest.approx(612.5)
    assert values["dc_power_s2"] == pytest.approx(1900.0)
    assert not any(name.endswith(("_s3", "_s4")) for name in values)


async def test_sentinels_and_unimplemented_scale_factors_leave_values_out() -> None:
    """0x8000 in a value or in its scale factor drops just those channels, without errors."""
    image = _image()
    bound = bind(METER, ModelInstance(203, 40172, 105))
    var_sf = bound.channel("reactive_power").scale_factor_address
    assert var_sf is not None
    image[var_sf] = 0x8000
    image[bound.channel("voltage_l2").address] = 0x8000
    link = SunSpecLink("m", METER, _bus(image), unit_id=1, timeout_s=0.1)
    values = await link.read()
    assert "voltage_l2" not in values
    assert "voltage_l1" in values
    assert not any(n.startswith("reactive_power") for n in values)
    assert link.inner is not None
    assert link.inner.errors == {}


async def test_a_missing_model_fails_the_read_and_discovery_is_retried() -> None:
    """A chain without the driver's model is a frame error; a later read discovers again."""
    image = chain_image(40000, [(INVERTER, INVERTER_VALUES, 50)], COMMON)
    bus = _bus(image)
    link = SunSpecLink("m", METER, bus, unit_id=1, timeout_s=0.1)
    with pytest.raises(FrameError, match="model 203"):
        await link.read()
    bus.source = image_source(_image())
    assert (await link.read())["voltage_l2"] == pytest.approx(229.9, abs=0.01)


def test_binding_a_driver_to_another_model_is_refused() -> None:
    """A 203 driver cannot be bound to a model 103 instance."""
    with pytest.raises(ValueError, match="not for SunSpec model 103"):
        bind(METER, ModelInstance(103, 40070, 50))


def test_the_chain_ends_with_the_end_marker() -> None:
    """The image closes the chain with 0xFFFF and a zero length."""
    image = chain_image(0, [(METER, METER_VALUES, 105)])
    end = 2 + 2 + 105
    assert (image[end], image[end + 1]) == (0xFFFF, 0)
    assert (image[2], image[3]) == (203, 105)


def _config(tmp_path: Path, driver: str, **link: object) -> Config:
    doc = {
        "outbox": {"path": "o.sqlite3"},
        "meters": [
            {
                "id": "m",
                "driver": driver,
                "link": {"type": "modbus-tcp", "host": "127.0.0.1", "port": 1502, **link},
            }
        ],
    }
    return parse_config(doc, source="t.toml", base_dir=tmp_path)


async def test_sunspec_true_builds_a_discovering_link_with_its_base(tmp_path: Path) -> None:
    """`sunspec = true, sunspec_base = 1000` gives the meter a SunSpecLink at that base."""
    config = _config(tmp_path, "sunspec-meter-203", sunspec=True, sunspec_base=1000)
    link = config.meters[0].link
    assert isinstance(link, ModbusTcpLinkConfig)
    assert (link.sunspec, link.sunspec_base, link.sunspec_index) == (True, 1000, 1)
    async with AsyncExitStack() as stack:
        links = await open_links(config.meters, config.drivers, stack)
    assert isinstance(links["m"], SunSpecLink)


async def test_sunspec_true_with_a_plain_driver_is_a_driver_error(tmp_path: Path) -> None:
    """An SDM630 has no SunSpec model: the error names the meter's driver key."""
    config = _config(tmp_path, "eastron-sdm630", sunspec=True)
    async with AsyncExitStack() as stack:
        with pytest.raises(DriverError, match="needs a SunSpec driver") as info:
            await open_links(config.meters, config.drivers, stack)
    assert info.value.path == "meters.m.driver"


@given(
    st.dictionaries(st.integers(40000, 40400), st.integers(0, 0xFFFF), max_size=120),
    st.booleans(),
)
async def test_any_register_image_gives_a_chain_or_our_error(
    noise: dict[int, int], marker: bool
) -> None:
    """Whatever a broken or hostile device holds, discovery ends with a chain or a LinkError."""
    image = dict(noise)
    if marker:
        image[40000], image[40001] = 0x5375, 0x6E53
    try:
        chain = await read_chain(_bus(image), "d", 1, 0.1)
    except LinkError:
        return
    assert len(chain.models) <= 32
    assert all(m.header >= 40002 for m in chain.models)


@pytest.mark.parametrize("driver_id", ["sunspec-inverter-103", "sunspec-common-1"])
async def test_the_emulator_serves_a_sunspec_driver_as_a_discoverable_chain(driver_id: str) -> None:
    """With a SunSpec base the emulator puts the model behind a common model; discovery finds it
    there and reads back the simulated values.
    """
    settings = EmulatorSettings(driver=builtin(driver_id), unit_ids=(1,), sunspec_base=1000)
    emulator = Emulator(settings, clock=lambda: 1767614400.0)
    bus = FakeBus(emulator.read)
    chain = await read_chain(bus, "d", 1, 0.1, base=1000)
    assert chain.common is not None
    assert chain.common.model == f"emulated {driver_id}"
    link = SunSpecLink("m", builtin(driver_id), bus, unit_id=1, timeout_s=0.1, base=1000)
    values = await link.read()
    truth = emulator.values(1) or {}
    assert set(values) == set(builtin(driver_id).channel_names)
    for name in ("active_power", "voltage_l1", "frequency"):
        if name in truth:
            assert values[name] == pytest.approx(truth[name], rel=1e-3, abs=0.051), name
