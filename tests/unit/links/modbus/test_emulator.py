"""The emulator's register source: encoding, time, faults, and the answers of absent units."""

from __future__ import annotations

import pytest

from gridedge.drivers import DataType, RegisterTable
from gridedge.errors import DeviceFaultError, DeviceUnreachableError
from gridedge.links.modbus.codec import decode
from gridedge.links.modbus.emulator import (
    SUNSPEC_MARKER,
    Emulator,
    EmulatorSettings,
    encode_readings,
    register_spans,
)
from gridedge.simulator.faults import FaultKind, FaultPlan, ScheduledFault
from tests.unit.links.modbus.fakes import builtin, sunspec_style

START = 1767571200.0


class Clock:
    """A hand-stepped clock."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def _emulator(clock: Clock | None = None, **settings: object) -> Emulator:
    merged: dict[str, object] = {"driver": builtin("eastron-sdm630"), "unit_ids": (1, 2)}
    merged.update(settings)
    return Emulator(EmulatorSettings(**merged), clock=clock or Clock())  # type: ignore[arg-type]


def test_registers_hold_the_simulated_reading_through_the_driver_map() -> None:
    """voltage_l1 of an SDM630 is the float32 at input registers 0-1."""
    emulator = _emulator()
    words = emulator.read(1, RegisterTable.INPUT, 0, 2)
    truth = emulator.values(1)
    assert truth is not None
    assert decode(words, DataType.FLOAT32) == pytest.approx(truth["voltage_l1"], rel=1e-6)


def test_each_unit_is_its_own_meter() -> None:
    """Units are seeded apart, so two units read differently."""
    emulator = _emulator()
    assert emulator.values(1) != emulator.values(2)


def test_an_unserved_unit_does_not_answer() -> None:
    """A unit id that is not served stays silent, as an absent device on a bus."""
    with pytest.raises(DeviceUnreachableError):
        _emulator().read(3, RegisterTable.INPUT, 0, 2)


def test_an_exception_unit_answers_every_read_with_its_code() -> None:
    """Units listed for exceptions answer with the configured exception code."""
    emulator = _emulator(exception_unit_ids=frozenset({2}), exception_code=6)
    with pytest.raises(DeviceFaultError) as info:
        emulator.read(2, RegisterTable.INPUT, 0, 2)
    assert info.value.code == 6
    assert emulator.read(1, RegisterTable.INPUT, 0, 2)


@pytest.mark.parametrize(
    ("table", "address", "count"),
    [(RegisterTable.HOLDING, 0, 1), (RegisterTable.INPUT, 0xFFF0, 2), (RegisterTable.COIL, 0, 1)],
)
def test_a_read_outside_the_register_map_gets_illegal_address(
    table: RegisterTable, address: int, count: int
) -> None:
    """Tables the driver does not use, and reads past its last register, get exception 2."""
    with pytest.raises(DeviceFaultError) as info:
        _emulator().read(1, table, address, count)
    assert info.value.code == 2


def test_registers_refresh_once_refresh_s_has_passed() -> None:
    """Reads within refresh_s see one reading; a later read sees a new one."""
    clock = Clock()
    emulator = _emulator(clock, refresh_s=1.0)
    first = emulator.read(1, RegisterTable.INPUT, 0, 6)
    clock.now += 0.5
    assert emulator.read(1, RegisterTable.INPUT, 0, 6) == first
    clock.now += 1.0
    assert emulator.read(1, RegisterTable.INPUT, 0, 6) != first


def test_a_frozen_emulator_serves_its_first_reading_forever() -> None:
    """With frozen set, time passing changes nothing."""
    clock = Clock()
    emulator = _emulator(clock, frozen=True)
    first = emulator.read(1, RegisterTable.INPUT, 0, 6)
    clock.now += 3600.0
    assert emulator.read(1, RegisterTable.INPUT, 0, 6) == first


def test_a_simulated_dropout_leaves_requests_unanswered() -> None:
    """During a dropout fault the unit is silent; afterwards it answers again."""
    dropout = ScheduledFault(FaultKind.DROPOUT, at_s=10.0, duration_s=10.0)
    clock = Clock()
    emulator = _emulator(clock, faults=FaultPlan(rate_per_hour=0.0, schedule=(dropout,)))
    assert emulator.read(1, RegisterTable.INPUT, 0, 2)
    clock.now += 12.0
    with pytest.raises(DeviceUnreachableError):
        emulator.read(1, RegisterTable.INPUT, 0, 2)
    clock.now += 20.0
    assert emulator.read(1, RegisterTable.INPUT, 0, 2)


def test_the_sunspec_marker_sits_at_the_chosen_base() -> None:
    """`sunspec_base` puts "SunS" into two holding registers, which become readable."""
    emulator = _emulator(sunspec_base=40000)
    assert tuple(emulator.read(1, RegisterTable.HOLDING, 40000, 2)) == SUNSPEC_MARKER


def test_scale_factors_are_the_most_precise_that_fit() -> None:
    """An int16 of 230.12 V gets factor -2 (23012); 150 kW needs factor 1 (15000)."""
    image = encode_readings(sunspec_style(), {"voltage_l1": 230.12, "active_power": 150000.0})
    holding = image[RegisterTable.HOLDING]
    # voltage_l1 and active_power share factor register 40012: the larger value decides.
    assert decode([holding[40012]], DataType.INT16) == 1
    assert holding[40100] == 15000
    image = encode_readings(sunspec_style(), {"voltage_l1": 230.12, "active_power": 15.0})
    assert decode([image[RegisterTable.HOLDING][40012]], DataType.INT16) == -2
    assert image[RegisterTable.HOLDING][40010] == 23012


def test_register_spans_cover_every_channel_and_scale_factor() -> None:
    """The answered addresses run from the first mapped register to the last."""
    assert register_spans(sunspec_style()) == {RegisterTable.HOLDING: range(40010, 40104)}
    spans = register_spans(sunspec_style(), sunspec_base=40000)
    assert spans[RegisterTable.HOLDING] == range(40000, 40104)
