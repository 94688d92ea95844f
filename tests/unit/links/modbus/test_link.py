"""ModbusLink over a fake bus: planned requests, decoding, and what each failure does."""

from __future__ import annotations

import math
import struct

import pytest

from gridedge.drivers import BUILTIN_DRIVERS_DIR, ComputeOp, DataType, RegisterTable, load_drivers
from gridedge.errors import DeviceFaultError, DeviceUnreachableError, FrameError
from gridedge.links import Link
from gridedge.links.modbus.codec import decode
from gridedge.links.modbus.emulator import Emulator, EmulatorSettings
from gridedge.links.modbus.link import ModbusLink
from tests.unit.links.modbus.fakes import FakeBus, builtin, sunspec_style

START = 1767571200.0


def _emulated(driver_id: str = "eastron-sdm630") -> tuple[Emulator, FakeBus]:
    settings = EmulatorSettings(builtin(driver_id), unit_ids=(1,), frozen=True)
    emulator = Emulator(settings, clock=lambda: START)
    return emulator, FakeBus(emulator.read)


def _link(bus: FakeBus, driver_id: str = "eastron-sdm630", retries: int = 1) -> ModbusLink:
    return ModbusLink("m1", builtin(driver_id), bus, unit_id=1, timeout_s=0.1, retries=retries)


async def test_a_read_sends_only_the_planned_requests() -> None:
    """One SDM630 read is the planner's handful of requests, not one per channel."""
    _, bus = _emulated()
    link = _link(bus)
    await link.read()
    assert len(bus.calls) == len(link.plan) < len(builtin("eastron-sdm630").channels) / 5
    assert [(c.address, c.count) for c in bus.calls] == [(r.address, r.count) for r in link.plan]


@pytest.mark.parametrize("driver_id", ["eastron-sdm630", "eastron-sdm120"])
async def test_values_decode_to_what_the_meter_holds(driver_id: str) -> None:
    """Every channel decodes to the emulated reading (to float32 precision)."""
    emulator, bus = _emulated(driver_id)
    link: Link = _link(bus, driver_id)
    values = await link.read()
    truth = emulator.values(1)
    assert truth is not None
    assert values.keys() == truth.keys()
    for name, value in values.items():
        assert value == pytest.approx(truth[name], rel=1e-6), name


async def test_scale_factors_from_another_response_apply() -> None:
    """A channel whose scale-factor register came in a different request is still scaled."""
    regs = {40010: 23012, 40011: 5001, 40012: 0xFFFE, 40013: 0xFFFE}
    regs |= {40100: 1500, 40101: 0x0001, 40102: 0xE240, 40103: 0xFFFF}  # 123456, sf -1

    def source(unit: int, table: RegisterTable, address: int, count: int) -> list[int]:
        return [regs.get(a, 0) for a in range(address, address + count)]

    bus = FakeBus(source)
    link = ModbusLink("m", sunspec_style(), bus, unit_id=1, timeout_s=0.1)
    values = await link.read()
    assert [c.address for c in bus.calls] == [40010, 40100]  # active_power's factor: 40012
    assert values == {
        "voltage_l1": 230.12,
        "frequency": 50.01,
        "active_power": 15.0,
        "energy_import": 12345.6,
    }


async def test_an_exception_to_every_request_is_a_device_fault_with_its_code() -> None:
    """A unit answering only with exceptions fails the read with its exception code."""
    bus = FakeBus(lambda *a: [], errors=[DeviceFaultError("m1", 2, 0)] * 10)
    link = _link(bus)
    with pytest.raises(DeviceFaultError) as info:
        await link.read()
    assert info.value.code == 2
    assert info.value.kind == "exception"
    assert len(bus.calls) == len(link.plan)  # an exception is an answer: no retries


async def test_an_exception_to_one_request_leaves_only_its_channels_out() -> None:
    """The channels of the other requests still make a (partial) sample."""
    emulator, bus = _emulated()
    link = _link(bus)
    bus.errors = [DeviceFaultError("m1", 2, 0)]
    values = await link.read()
    first = {ch.name for ch in link.plan[0].channels}
    assert values.keys() == set(emulator.values(1) or {}) - first
    assert link.errors["exception"] == 1


async def test_a_request_without_answer_ends_the_read_at_once() -> None:
    """No answer: one retry, then DeviceUnreachableError before the other requests go out."""
    _, bus = _emulated()
    bus.errors = [DeviceUnreachableError("m1", "no answer")] * 2
    link = _link(bus, retries=1)
    with pytest.raises(DeviceUnreachableError):
        await link.read()
    assert len(bus.calls) == 2
    assert link.errors["timeout"] == 2


async def test_a_meter_that_did_not_answer_gets_no_retry_next_time() -> None:
    """After an unanswered read the next read tries once, so a dead unit holds its bus for
    one timeout per attempt; an answer restores the retries.
    """
    _, bus = _emulated()
    link = _link(bus, retries=2)
    bus.errors = [DeviceUnreachableError("m1", "no answer")] * 3
    with pytest.raises(DeviceUnreachableError):
        await link.read()
    assert len(bus.calls) == 3
    bus.calls.clear()
    bus.errors = [DeviceUnreachableError("m1", "no answer")]
    with pytest.raises(DeviceUnreachableError):
        await link.read()
    assert len(bus.calls) == 1
    bus.calls.clear()
    assert await link.read()
    bus.errors = [DeviceUnreachableError("m1", "no answer"), None]
    assert await link.read()  # answered last time: the retry saves this read


async def test_a_garbled_answer_is_retried_and_then_a_frame_error() -> None:
    """FrameError is retried like a timeout, and raised once the retries are used up."""
    _, bus = _emulated()
    bus.errors = [FrameError("m1", "bad CRC"), None]
    assert await _link(bus).read()
    bus.errors = [FrameError("m1", "bad CRC")] * 2
    with pytest.raises(FrameError):
        await _link(bus).read()


async def test_a_short_response_is_a_frame_error() -> None:
    """Fewer registers than asked for is a garbled answer, not a reading."""
    bus = FakeBus(lambda unit, table, address, count: [0] * (count - 1))
    link = _link(bus, retries=0)
    with pytest.raises(FrameError, match="short response"):
        await link.read()
    assert link.errors["frame"] == 1


async def test_an_undecodable_channel_is_left_out_and_counted() -> None:
    """A NaN float drops its channel only; the sample stays (partial)."""
    emulator, inner = _emulated()
    nan = list(struct.unpack(">HH", struct.pack(">f", math.nan)))

    def source(unit: int, table: RegisterTable, address: int, count: int) -> list[int]:
        words = emulator.read(unit, table, address, count)
        if address == 0:
            words[0:2] = nan  # voltage_l1
        return words

    link = _link(FakeBus(source))
    values = await link.read()
    assert "voltage_l1" not in values
    assert "voltage_l2" in values
    assert link.errors["decode"] == 1
    assert inner.calls == []


@pytest.mark.parametrize("driver_id", sorted(load_drivers([BUILTIN_DRIVERS_DIR])))
async def test_every_driver_reads_back_what_the_emulator_encodes(driver_id: str) -> None:
    """For every shipped driver, each channel reads back within half a raw step of the
    simulated value (integers with scale and scale factors round; floats keep float32).
    """
    emulator, bus = _emulated(driver_id)
    driver = builtin(driver_id)
    values = await ModbusLink("m", driver, bus, unit_id=1, timeout_s=0.1).read()
    truth = emulator.values(1) or {}
    assert values.keys() == set(driver.channel_names)
    for c in driver.computed:
        a, b = (values[name] for name in c.operands)
        assert values[c.name] == pytest.approx(a + b if c.op is ComputeOp.SUM else a - b)
    for ch in driver.channels:
        expected = truth.get(ch.name, 0.0)
        if ch.type in (DataType.FLOAT32, DataType.FLOAT64):
            assert values[ch.name] == pytest.approx(expected, rel=1e-6), ch.name
            continue
        sf = 0
        if ch.scale_factor_address is not None:
            word = emulator.read(1, ch.table, ch.scale_factor_address, 1)
            sf = int(decode(word, DataType.INT16))
        step = abs(ch.scale) * 10.0**sf
        assert abs(values[ch.name] - expected) <= step / 2 + 1e-9 * abs(expected), ch.name


async def test_a_meter_that_only_sent_garbage_gets_no_retry_next_time() -> None:
    """Frame errors on every attempt count as no answer: the next read tries once; a good
    answer restores the retries.
    """
    _, bus = _emulated()
    link = _link(bus, retries=1)
    bus.errors = [FrameError("m1", "bad CRC")] * 2
    with pytest.raises(FrameError):
        await link.read()
    assert len(bus.calls) == 2
    bus.calls.clear()
    bus.errors = [FrameError("m1", "bad CRC")]
    with pytest.raises(FrameError):
        await link.read()
    assert len(bus.calls) == 1
    assert await link.read()
    bus.errors = [FrameError("m1", "bad CRC"), None]
    assert await link.read()  # answered last time: the retry saves this read
