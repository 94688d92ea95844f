"""Driver files: the shipped ones load, and every mistake names its file and dotted key path."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridedge.channels import CHANNELS
from gridedge.cli.main import main
from gridedge.drivers import (
    BUILTIN_DRIVERS_DIR,
    DataType,
    Order,
    RegisterTable,
    load_driver,
    load_drivers,
)
from gridedge.errors import DriverError

SHIPPED = sorted(BUILTIN_DRIVERS_DIR.glob("*.toml"))

# A valid single-phase driver; text appended after it lands in [channels.voltage_l1] until the
# appended text opens a table of its own.
MINIMAL = """\
[driver]
id = "acme-m1"
manufacturer = "Acme"
model = "M1"
phases = 1
source = "Acme M1 Modbus register map, revision 1"

[nominal]
voltage_v = 230
frequency_hz = 50
current_a = 63

[modbus]
default_table = "input"
max_registers_per_request = 100

[channels.voltage_l1]
address = 0
type = "float32"
"""


F32 = 'type = "float32"'
U32 = 'type = "uint32"'
BOOL = 'type = "bool"'


def _extra(name: str, *lines: str) -> str:
    """A [channels.<name>] table to append to MINIMAL."""
    return f"[channels.{name}]\n" + "".join(f"{line}\n" for line in lines)


def _write(folder: Path, text: str, name: str = "acme-m1") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_both_eastron_drivers_ship() -> None:
    """The built-in folder holds the SDM630 (three-phase) and the SDM120 (single-phase)."""
    drivers = load_drivers([BUILTIN_DRIVERS_DIR])
    assert drivers["eastron-sdm630"].phases == 3
    assert drivers["eastron-sdm630"].nominal.current_a == 100
    assert drivers["eastron-sdm120"].phases == 1
    assert drivers["eastron-sdm120"].nominal.current_a == 45


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_driver_file_loads(path: Path) -> None:
    """Each file in drivers/ loads, uses canonical units and gives every channel limits."""
    driver = load_driver(path)
    assert driver.id == path.stem
    assert driver.source
    for ch in driver.channels:
        if ch.name in CHANNELS:
            assert ch.unit == CHANNELS[ch.name].unit
        assert ch.min is not None
        assert ch.max is not None


def test_sdm630_addresses_match_the_protocol_document() -> None:
    """Spot checks against the SDM630 document: register 3xxxx N sits at address N - 30001."""
    driver = load_drivers([BUILTIN_DRIVERS_DIR])["eastron-sdm630"]
    expected = {
        "voltage_l1": 30001,
        "current_l3": 30011,
        "power_factor_l1": 30031,
        "active_power": 30053,
        "frequency": 30071,
        "energy_import": 30073,
        "reactive_energy_export": 30079,
        "active_power_demand": 30085,
        "voltage_l1_l2": 30201,
        "current_n": 30225,
        "thd_voltage_l1": 30235,
        "thd_current_l3": 30245,
    }
    for name, register in expected.items():
        assert driver.channel(name).address == register - 30001, name
    assert len(driver.channels) == 38


def test_eastron_channels_are_big_endian_float32_input_registers() -> None:
    """Every Eastron channel is a float32 input register pair, most significant word first."""
    for driver in load_drivers([BUILTIN_DRIVERS_DIR]).values():
        if driver.manufacturer != "Eastron":
            continue
        for ch in driver.channels:
            assert ch.table is RegisterTable.INPUT
            assert ch.type is DataType.FLOAT32
            assert (ch.byte_order, ch.word_order) == (Order.BIG, Order.BIG)


def test_channel_settings_default_from_the_modbus_table(tmp_path: Path) -> None:
    """A channel without table, orders, scale or unit takes the file's and vocabulary's defaults."""
    driver = load_driver(_write(tmp_path, MINIMAL))
    ch = driver.channel("voltage_l1")
    assert ch.table is RegisterTable.INPUT
    assert (ch.byte_order, ch.word_order) == (Order.BIG, Order.BIG)
    assert (ch.scale, ch.offset, ch.unit) == (1.0, 0.0, "V")
    assert (driver.max_registers_per_request, driver.max_gap_registers) == (100, 10)
    assert driver.path == tmp_path / "acme-m1.toml"


def test_energy_counted_in_wh_loads_when_scaled_to_kwh(tmp_path: Path) -> None:
    """A Wh register is accepted once scale = 0.001 turns it into the canonical kWh."""
    text = MINIMAL + '[channels.energy_import]\naddress = 2\ntype = "uint32"\n'
    text += 'scale = 0.001\nunit = "kWh"\n'
    assert load_driver(_write(tmp_path, text)).channel("energy_import").scale == 0.001


def test_same_address_in_different_tables_is_not_an_overlap(tmp_path: Path) -> None:
    """Holding register 0 and input register 0 are different registers."""
    text = MINIMAL + '[channels.current_l1]\naddress = 0\ntype = "float32"\ntable = "holding"\n'
    assert len(load_driver(_write(tmp_path, text)).channels) == 2


@pytest.mark.parametrize(
    ("appended", "path", "fragment"),
    [
        ("adress = 2\n", "voltage_l1.adress", "did you mean 'address'"),
        ("min = 10\nmax = 5\n", "voltage_l1.max", "greater than min"),
        ("scale_factor_address = 1\n", "voltage_l1.scale_factor_address", "own"),
        (_extra("current_l1", "address = 2", 'type = "float33"'), "current_l1.type", "one of"),
        (_extra("current_l1", 'address = "2"', F32), "current_l1.address", "expected an integer"),
        (_extra("volatge_l2", "address = 2", F32), "volatge_l2", "did you mean 'voltage_l2'"),
        (_extra("x_", "address = 2", F32), "x_", "vendor-specific names start with 'x_'"),
        (_extra("energy_import", "address = 2", U32, 'unit = "Wh"'), "energy_import.unit", "0.001"),
        (_extra("current_l1", "address = 1", F32), "current_l1.address", "channel 'voltage_l1'"),
        (_extra("x_relay", "address = 0", BOOL, 'table = "holding"'), "x_relay.type", "'coil'"),
        (_extra("x_flag", "address = 0", F32, 'table = "coil"'), "x_flag.type", "use 'bool'"),
        (_extra("voltage_l3", "address = 4", F32), "voltage_l3", "single-phase"),
        (_extra("voltage_l1_l2", "address = 4", F32), "voltage_l1_l2", "single-phase"),
        (_extra("current_l1", "address = 65535", F32), "current_l1.address", "runs past"),
        (_extra("current_l1", "address = 65536", F32), "current_l1.address", "at most 65535"),
        (_extra("current_l1", "address = 2", F32, "scale = 0"), "current_l1.scale", "not be 0"),
    ],
)
def test_invalid_channel_names_its_dotted_path(
    tmp_path: Path, appended: str, path: str, fragment: str
) -> None:
    """Each channel mistake raises DriverError naming the file and the channels.<name> key."""
    file = _write(tmp_path, MINIMAL + appended)
    with pytest.raises(DriverError) as caught:
        load_driver(file)
    assert caught.value.path == f"channels.{path}"
    assert fragment in caught.value.problem
    assert caught.value.source == str(file)


@pytest.mark.parametrize(
    ("old", "new", "path", "fragment"),
    [
        ('id = "acme-m1"', 'id = "acme-m2"', "driver.id", "file name 'acme-m1'"),
        ("phases = 1", "phases = 2", "driver.phases", "1 or 3"),
        ('source = "Acme M1 Modbus register map, revision 1"\n', "", "driver.source", "missing"),
        ("frequency_hz = 50", "frequency_hz = 70", "nominal.frequency_hz", "at most 65"),
        ("current_a = 63", "current_a = 0", "nominal.current_a", "greater than 0"),
        ("current_a = 63", "current_a = 63\nvolts = 1", "nominal.volts", "unknown key"),
        ("[driver]", "[extra]\nanswer = 42\n\n[driver]", "extra", "unknown key"),
        ("= 100", "= 126", "modbus.max_registers_per_request", "at most 125"),
        ('table = "input"', 'table = "inputs"', "modbus.default_table", "expected one of"),
        (
            '[channels.voltage_l1]\naddress = 0\ntype = "float32"\n',
            "[channels]\n",
            "channels",
            "one",
        ),
    ],
)
def test_invalid_header_names_its_dotted_path(
    tmp_path: Path, old: str, new: str, path: str, fragment: str
) -> None:
    """Mistakes outside the channel tables, or an empty [channels], name their key."""
    assert old in MINIMAL
    with pytest.raises(DriverError) as caught:
        load_driver(_write(tmp_path, MINIMAL.replace(old, new)))
    assert caught.value.path == path
    assert fragment in caught.value.problem


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    """A file that is not TOML at all is reported against the file."""
    file = _write(tmp_path, "[driver\n")
    with pytest.raises(DriverError, match="invalid TOML") as caught:
        load_driver(file)
    assert caught.value.source == str(file)


def test_user_folder_overrides_a_builtin_driver(tmp_path: Path) -> None:
    """A later folder's file with a built-in id replaces the built-in model; others remain."""
    builtin = (BUILTIN_DRIVERS_DIR / "eastron-sdm630.toml").read_text(encoding="utf-8")
    assert 'model = "SDM630-Modbus V2"' in builtin
    custom = builtin.replace('model = "SDM630-Modbus V2"', 'model = "SDM630 (site fork)"')
    _write(tmp_path, custom, "eastron-sdm630")
    drivers = load_drivers([BUILTIN_DRIVERS_DIR, tmp_path])
    assert drivers["eastron-sdm630"].model == "SDM630 (site fork)"
    assert drivers["eastron-sdm630"].path == tmp_path / "eastron-sdm630.toml"
    assert "eastron-sdm120" in drivers
    assert load_drivers([tmp_path, BUILTIN_DRIVERS_DIR])["eastron-sdm630"].model == (
        "SDM630-Modbus V2"
    )


def test_a_driver_file_changed_in_place_is_read_again(tmp_path: Path) -> None:
    """Loading a folder twice in one process sees an edit made in between, even one that
    keeps the file's size, and an invalid edit is refused rather than answered from before.
    """
    _write(tmp_path, MINIMAL)
    assert load_drivers([tmp_path])["acme-m1"].model == "M1"
    _write(tmp_path, MINIMAL.replace('model = "M1"', 'model = "M2"'))
    assert load_drivers([tmp_path])["acme-m1"].model == "M2"
    _write(tmp_path, MINIMAL.replace("phases = 1", "phases = 2"))
    with pytest.raises(DriverError, match="phases"):
        load_drivers([tmp_path])


def test_user_folder_adds_new_models(tmp_path: Path) -> None:
    """A user's file with a new id joins the built-in ones."""
    _write(tmp_path, MINIMAL)
    assert {"acme-m1", "eastron-sdm630"} <= set(load_drivers([BUILTIN_DRIVERS_DIR, tmp_path]))


def test_missing_driver_folder_is_an_error(tmp_path: Path) -> None:
    """A folder that does not exist is reported by name, not silently skipped."""
    missing = tmp_path / "nowhere"
    with pytest.raises(DriverError, match="driver folder not found") as caught:
        load_drivers([BUILTIN_DRIVERS_DIR, missing])
    assert str(missing) in caught.value.problem
    assert caught.value.source is None


# --- the models added from public register maps ------------------------------------------

NEW_MODELS = (
    "eastron-sdm72",
    "carlo-gavazzi-em24",
    "carlo-gavazzi-em340",
    "janitza-umg604",
    "schneider-iem3255",
    "abb-b23",
    "chint-dtsu666",
    "siemens-pac2200",
    "sunspec-meter-203",
)


@pytest.mark.parametrize("driver_id", NEW_MODELS)
def test_new_model_plans_into_far_fewer_reads_than_channels(driver_id: str) -> None:
    """Each new model coalesces into a handful of reads, every one within its request limit."""
    from gridedge.links.modbus.planner import plan_reads

    driver = load_drivers([BUILTIN_DRIVERS_DIR])[driver_id]
    plan = plan_reads(driver.channels, driver.max_registers_per_request, driver.max_gap_registers)
    assert len(plan) * 3 <= len(driver.channels)
    assert all(read.count <= driver.max_registers_per_request for read in plan)
    planned = {ch.name for read in plan for ch in read.channels}
    assert planned == {ch.name for ch in driver.channels}


def _decode(driver_id: str, words: dict[int, int]) -> dict[str, float]:
    """Decode every read of a driver's plan from a sparse register image (absent = 0)."""
    from gridedge.links.modbus.codec import decode_response, read_scale_factors
    from gridedge.links.modbus.planner import plan_reads

    driver = load_drivers([BUILTIN_DRIVERS_DIR])[driver_id]
    plan = plan_reads(driver.channels, driver.max_registers_per_request, driver.max_gap_registers)
    responses = [[words.get(r.address + i, 0) for i in range(r.count)] for r in plan]
    factors: dict[int, int] = {}
    for read, regs in zip(plan, responses, strict=True):
        factors.update(read_scale_factors(read, regs))
    values: dict[str, float] = {}
    for read, regs in zip(plan, responses, strict=True):
        values.update(decode_response(read, regs, factors))
    return values


def test_em24_int32_values_are_least_significant_word_first() -> None:
    """EM24 table 2.3-1: INT32 LSW first, V*10, A*1000, W*10, kWh*10; INT16 PF*1000, Hz*10."""
    values = _decode(
        "carlo-gavazzi-em24",
        {
            0x0000: 0x08FC,  # V L1-N 230.0 V = 2300 = 0x000008FC, low word first
            0x000C: 0x1403,  # A L1 5.123 A = 5123
            0x0012: 0xCFC7,  # W L1 -1234.5 W = -12345 = 0xFFFFCFC7
            0x0013: 0xFFFF,
            0x0032: 0xFC4A,  # PF L1 -0.950 (leading) = -950
            0x0037: 0x01F4,  # 50.0 Hz = 500
            0x003E: 0xE240,  # kWh(+) TOT 12345.6 kWh = 123456 = 0x0001E240
            0x003F: 0x0001,
        },
    )
    assert values["voltage_l1"] == pytest.approx(230.0)
    assert values["current_l1"] == pytest.approx(5.123)
    assert values["active_power_l1"] == pytest.approx(-1234.5)
    assert values["power_factor_l1"] == pytest.approx(-0.95)
    assert values["frequency"] == pytest.approx(50.0)
    assert values["energy_import"] == pytest.approx(12345.6)
    driver = load_drivers([BUILTIN_DRIVERS_DIR])["carlo-gavazzi-em24"]
    assert driver.channel("energy_export").address == 0x005C


def test_abb_b23_big_endian_unsigned_with_hundredths() -> None:
    """ABB B23: UINT64 energy in 0.01 kWh, UINT32 voltage 0.1 V, INT32 power 0.01 W."""
    values = _decode(
        "abb-b23",
        {
            0x5002: 0x0012,  # 12345.67 kWh = 1234567 = 0x0012D687 in the low two words
            0x5003: 0xD687,
            0x5B01: 0x08FD,  # 230.1 V = 2301
            0x5B14: 0xFFFE,  # -1000.00 W = -100000 = 0xFFFE7960
            0x5B15: 0x7960,
            0x5B2C: 5002,  # 50.02 Hz
        },
    )
    assert values["energy_import"] == pytest.approx(12345.67)
    assert values["voltage_l1"] == pytest.approx(230.1)
    assert values["active_power"] == pytest.approx(-1000.0)
    assert values["frequency"] == pytest.approx(50.02)


def test_sunspec_203_applies_scale_factor_registers() -> None:
    """Model 203 at 40070: int16 values times 10^SF, PF in percent, acc32 Wh to kWh."""
    values = _decode(
        "sunspec-meter-203",
        {
            40078: 2301,  # PhVphA
            40085: 0xFFFF,  # V_SF = -1
            40089: 0xF830,  # WphA = -2000
            40092: 0,  # W_SF = 0
            40103: 0xDAEA,  # PF = -9494
            40107: 0xFFFE,  # PF_SF = -2 -> -94.94 %
            40116: 0x0001,  # TotWhImp = 0x0001E240 = 123456
            40117: 0xE240,
            40124: 1,  # TotWh_SF = 1 -> 1234560 Wh
        },
    )
    assert values["voltage_l1"] == pytest.approx(230.1)
    assert values["active_power_l1"] == pytest.approx(-2000.0)
    assert values["power_factor"] == pytest.approx(-0.9494)
    assert values["energy_import"] == pytest.approx(1234.56)


def test_iem3255_addresses_are_document_registers_minus_one() -> None:
    """The iEM3000 manual numbers registers from 1; the driver holds zero-based addresses."""
    driver = load_drivers([BUILTIN_DRIVERS_DIR])["schneider-iem3255"]
    expected = {
        "current_l1": 3000,
        "voltage_l1_l2": 3020,
        "voltage_l1": 3028,
        "active_power": 3060,
        "frequency": 3110,
        "energy_import": 3204,
        "reactive_energy_export": 3224,
    }
    for name, register in expected.items():
        assert driver.channel(name).address == register - 1, name
    values = _decode("schneider-iem3255", {3059: 0x3FC0, 3203 + 2: 0x0001, 3203 + 3: 0xE240})
    assert values["active_power"] == pytest.approx(1500.0)  # 1.5 kW as float32 0x3FC00000
    assert values["energy_import"] == pytest.approx(123.456)  # 123456 Wh


def test_float_models_decode_big_endian_ieee754() -> None:
    """Janitza, PAC2200 and DTSU666 floats are high word first; DTSU666 floats carry a scale."""
    assert _decode("janitza-umg604", {19000: 0x4366})["voltage_l1"] == pytest.approx(230.0)
    pac = _decode("siemens-pac2200", {55: 0x4248, 801: 0x4132, 802: 0xD687})
    assert pac["frequency"] == pytest.approx(50.0)
    assert pac["energy_import"] == pytest.approx(1234.567)  # 1234567.0 Wh as float64
    dtsu = _decode(
        "chint-dtsu666", {0x2006: 0x450F, 0x2007: 0x2000, 0x2044: 0x459C, 0x2045: 0x3800}
    )
    assert dtsu["voltage_l1"] == pytest.approx(229.0)  # float 2290.0 in 0.1 V
    assert dtsu["frequency"] == pytest.approx(49.99)  # float 4999.0 in 0.01 Hz


# --- sentinels, computed channels, aliases, [sunspec]; drivers --search / --check ----------


def test_sentinels_load_as_raw_patterns_and_nan(tmp_path: Path) -> None:
    """Na lists raw register patterns; nan is accepted for float channels."""
    text = MINIMAL + "na = [nan, 0xFFFFFFFF]\n" + _extra("x_s", "address = 10", U32, "na = [0]")
    driver = load_driver(_write(tmp_path, text))
    assert driver.channel("voltage_l1").na == (0xFFFFFFFF,)
    assert driver.channel("voltage_l1").na_nan
    assert driver.channel("x_s").na == (0,)


@pytest.mark.parametrize(
    ("extra", "path", "problem"),
    [
        (_extra("x_s", "address = 10", U32, "na = [nan]"), "na[0]", "float types"),
        (_extra("x_s", "address = 10", U32, "na = [0x1FFFFFFFF]"), "na[0]", "0..0xffffffff"),
        (_extra("x_s", "address = 10", U32, "na = []"), "na", "non-empty"),
        (_extra("x_s", "address = 10", U32, 'na = "0x8000"'), "na", "array"),
    ],
)
def test_bad_sentinels_name_their_key(tmp_path: Path, extra: str, path: str, problem: str) -> None:
    """A sentinel that cannot occur in the channel's type is refused with its dotted path."""
    with pytest.raises(DriverError, match=problem) as info:
        load_driver(_write(tmp_path, MINIMAL + extra))
    assert info.value.path == f"channels.x_s.{path}"


def test_computed_channels_and_aliases_load(tmp_path: Path) -> None:
    """[computed] sums two register channels; aliases name the relabelled hardware."""
    text = MINIMAL.replace("phases = 1", 'phases = 1\naliases = ["Relabel R1"]') + (
        _extra("x_a", "address = 10", F32, 'unit = "W"')
        + _extra("x_b", "address = 12", F32, 'unit = "W"')
        + '[computed]\nactive_power = { difference = ["x_a", "x_b"] }\n'
    )
    driver = load_driver(_write(tmp_path, text))
    assert driver.aliases == ("Relabel R1",)
    (c,) = driver.computed
    assert (c.name, c.op.value, c.operands, c.unit) == (
        "active_power",
        "difference",
        ("x_a", "x_b"),
        "W",
    )
    assert driver.channel_names[-1] == "active_power"


@pytest.mark.parametrize(
    ("computed", "path", "problem"),
    [
        ('active_power = { sum = ["x_a", "x_zz"] }', "computed.active_power.sum[1]", "x_zz"),
        ('active_power = { sum = ["x_a"] }', "computed.active_power.sum", "two channel"),
        ("active_power = { }", "computed.active_power", "exactly one"),
        ('voltage_l1 = { sum = ["x_a", "x_a"] }', "computed.voltage_l1", "register channel"),
        ('energy_import = { sum = ["x_a", "x_a"] }', "computed.energy_import.sum", "operands"),
    ],
)
def test_bad_computed_channels_name_their_key(
    tmp_path: Path, computed: str, path: str, problem: str
) -> None:
    """Unknown operands, wrong arity, a name clash or mixed units are refused."""
    text = MINIMAL + _extra("x_a", "address = 10", F32, 'unit = "W"') + f"[computed]\n{computed}\n"
    with pytest.raises(DriverError, match=problem) as info:
        load_driver(_write(tmp_path, text))
    assert info.value.path == path


def test_the_library_holds_every_sunspec_model_named_in_the_issue() -> None:
    """Models 1, 101-103, 111-113, 124, 160, 201-204 and 211-214 ship, each with its table."""
    drivers = load_drivers([BUILTIN_DRIVERS_DIR])
    models = {d.sunspec.model for d in drivers.values() if d.sunspec is not None}
    wanted = {1, 101, 102, 103, 111, 112, 113, 124, 160, 201, 202, 203, 204, 211, 212, 213, 214}
    assert models == wanted


def test_search_matches_every_word_in_names_and_aliases(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`drivers --search` finds by manufacturer and model words, and by alias."""
    text = MINIMAL.replace("phases = 1", 'phases = 1\naliases = ["Relabel R1"]')
    _write(tmp_path, text)
    assert main(["drivers", "--dir", str(tmp_path), "--search", "relabel r1"]) == 0
    assert capsys.readouterr().out.startswith("acme-m1 ")
    assert main(["drivers", "--search", "sunspec 160"]) == 0
    assert "sunspec-mppt-160" in capsys.readouterr().out
    assert main(["drivers", "--search", "no such meter"]) == 1


def test_check_passes_a_shipped_driver(capsys: pytest.CaptureFixture[str]) -> None:
    """`drivers --check` loads, plans and round-trips a good file, and says so."""
    assert main(["drivers", "--check", str(BUILTIN_DRIVERS_DIR / "eastron-sdm630.toml")]) == 0
    assert capsys.readouterr().out.startswith("ok: eastron-sdm630: 38 channels")


def test_check_names_the_channel_a_plausible_reading_does_not_fit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """230 V in millivolts overflows a uint16: --check names the channel that cannot hold it."""
    text = MINIMAL.replace('type = "float32"', 'type = "uint16"\nscale = 0.001')
    assert main(["drivers", "--check", str(_write(tmp_path, text))]) == 2
    out = capsys.readouterr().out
    assert "channels.voltage_l1:" in out
    assert "read back as" in out


def test_check_of_a_broken_file_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A file that does not load gives exit 2 and one line naming the file and key."""
    path = _write(tmp_path, MINIMAL.replace('type = "float32"', 'type = "float33"'))
    assert main(["drivers", "--check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(path) in err
    assert "channels.voltage_l1.type" in err


_ASCII = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=5)
_TOML_VALUES = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True),
    _ASCII,
    st.booleans(),
    st.lists(st.one_of(st.integers(-5, 2**33), st.floats(allow_nan=True), _ASCII)),
)


@given(_TOML_VALUES, st.sampled_from(["int16", "uint32", "float32", "float64"]))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
def test_any_na_value_loads_or_is_a_driver_error(tmp_path: Path, value: object, dtype: str) -> None:
    """Whatever `na` holds, the loader accepts it or raises DriverError naming channels.x_s.na."""
    text = MINIMAL + _extra("x_s", "address = 10", f'type = "{dtype}"', f"na = {_toml(value)}")
    try:
        driver = load_driver(_write(tmp_path, text))
    except DriverError as exc:
        error = exc
    else:
        assert driver.channel("x_s").na or driver.channel("x_s").na_nan
        return
    assert error.path.startswith("channels.x_s.na")


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)
