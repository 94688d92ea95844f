"""Bus scanning over a fake bus: which units answer, SunSpec discovery, driver matching."""

from __future__ import annotations

from gridedge.drivers import BUILTIN_DRIVERS_DIR, RegisterTable, load_drivers
from gridedge.errors import DeviceFaultError
from gridedge.links.modbus.emulator import Emulator, EmulatorSettings, chain_image, image_source
from gridedge.links.modbus.scan import DriverMatch, UnitReport, describe, probe, scan_bus
from gridedge.links.modbus.sunspec import CommonInfo
from tests.unit.links.modbus.fakes import FakeBus, builtin

START = 1767571200.0


def _bus(driver_id: str, **settings: object) -> FakeBus:
    merged: dict[str, object] = {"driver": builtin(driver_id), "unit_ids": (2, 5)}
    merged.update(settings)
    emulator = Emulator(EmulatorSettings(**merged), clock=lambda: START)  # type: ignore[arg-type]
    return FakeBus(emulator.read)


async def test_scan_reports_only_the_units_that_answer() -> None:
    """Of units 1..6 only the two served ones are reported, in order."""
    reports = await scan_bus(_bus("eastron-sdm630"), range(1, 7), {}, timeout_s=0.1)
    assert [r.unit_id for r in reports] == [2, 5]


async def test_an_exception_answer_counts_as_present() -> None:
    """A unit that answers only with exceptions is there all the same."""
    bus = _bus("eastron-sdm630", exception_unit_ids=frozenset({5}))
    assert await probe(bus, 5, timeout_s=0.1)


async def test_gateway_no_answer_codes_count_as_absent() -> None:
    """Exception 11 (gateway target failed to respond) means nobody is there."""
    bus = _bus("eastron-sdm630")
    bus.errors = [DeviceFaultError("scan", 11, 0)]
    assert not await probe(bus, 2, timeout_s=0.1)


async def test_the_best_match_is_the_driver_that_explains_most_channels() -> None:
    """An SDM630 is identified as one; the SDM120 map, a subset of it, ranks below."""
    drivers = load_drivers([BUILTIN_DRIVERS_DIR])
    (report, _) = await scan_bus(_bus("eastron-sdm630"), [2, 5], drivers, timeout_s=0.1)
    assert report.matches[0].driver == "eastron-sdm630"
    assert report.matches[0].plausible == report.matches[0].channels


async def test_a_single_phase_meter_is_not_taken_for_a_three_phase_one() -> None:
    """An SDM120 does not hold the SDM630's registers, so only the SDM120 driver fits."""
    drivers = load_drivers([BUILTIN_DRIVERS_DIR])
    (report, _) = await scan_bus(_bus("eastron-sdm120"), [2, 5], drivers, timeout_s=0.1)
    assert [m.driver for m in report.matches][:1] == ["eastron-sdm120"]
    assert "eastron-sdm630" not in [m.driver for m in report.matches]


async def test_the_sunspec_base_address_is_found() -> None:
    """The "SunS" marker at 40000 is reported as the SunSpec base."""
    bus = _bus("eastron-sdm630", sunspec_base=40000)
    (report, _) = await scan_bus(bus, [2, 5], {}, timeout_s=0.1)
    assert report.sunspec_base == 40000
    assert any(c.table is RegisterTable.HOLDING and c.address == 40000 for c in bus.calls)


async def test_the_sunspec_model_chain_is_followed_to_its_end() -> None:
    """Model headers (id, length) are walked from the marker until the 0xFFFF end mark."""
    regs = {0: 0x5375, 1: 0x6E53, 2: 1, 3: 66, 70: 203, 71: 105, 177: 0xFFFF, 178: 0}

    def source(unit: int, table: RegisterTable, address: int, count: int) -> list[int]:
        return [regs.get(a, 0) for a in range(address, address + count)]

    (report,) = await scan_bus(FakeBus(source), [1], {}, timeout_s=0.1)
    assert report.sunspec_base == 0
    assert report.sunspec_models == ((1, 2), (203, 70))


def test_describe_names_the_unit_the_sunspec_base_and_the_drivers() -> None:
    """The human line carries everything the scan found."""
    matches = (DriverMatch("a", 10, 10), DriverMatch("b", 4, 4))
    report = UnitReport(3, 40000, ((1, 40002), (203, 40070)), matches)
    assert describe(report) == (
        "unit 3: answers; SunSpec map at 40000 (models 1 at 40002, 203 at 40070); "
        "driver a (10/10 channels plausible); also fits b"
    )
    assert describe(UnitReport(4)) == "unit 4: answers; no known driver fits"


async def test_the_scan_names_a_sunspec_device_from_its_common_model() -> None:
    """Manufacturer, model and serial of model 1 appear in the report and its line."""
    common = CommonInfo("SolarEdge", "SE10K", "", "0004.0018", "7E123456")
    image = chain_image(40000, [(builtin("sunspec-inverter-103"), {}, 50)], common)
    (report,) = await scan_bus(FakeBus(image_source(image)), [1], {}, timeout_s=0.1)
    assert report.sunspec_models == ((1, 40002), (103, 40070))
    assert report.sunspec_identity == "SolarEdge SE10K SN 7E123456"
    assert "SolarEdge SE10K SN 7E123456" in describe(report)
