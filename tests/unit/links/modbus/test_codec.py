"""Register codec and read planner: round trips, garbage handling, coalescing properties."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections import Counter
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gridedge.drivers import (
    BUILTIN_DRIVERS_DIR,
    Channel,
    Computed,
    ComputeOp,
    DataType,
    Order,
    RegisterTable,
    load_drivers,
)
from gridedge.errors import CodecError
from gridedge.links.modbus.codec import (
    SCALE_FACTOR_NA,
    compute,
    decode,
    decode_channel,
    decode_response,
    decode_value,
    encode,
    encode_channel,
    read_scale_factors,
)
from gridedge.links.modbus.planner import MAX_READ_BITS, MAX_READ_REGISTERS, plan_reads

BIT_TABLES = (RegisterTable.COIL, RegisterTable.DISCRETE)
NUMERIC = [t for t in DataType if t is not DataType.BOOL]
INTEGERS = [t for t in NUMERIC if "int" in t.value]
ORDERS = [(b, w) for b in Order for w in Order]


def _bounds(dtype: DataType) -> tuple[int, int]:
    bits = 16 * dtype.registers
    if dtype.value.startswith("u"):
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _values(dtype: DataType) -> st.SearchStrategy[float]:
    if dtype is DataType.BOOL:
        return st.sampled_from([0, 1])
    if dtype is DataType.FLOAT32:
        return st.floats(width=32)
    if dtype is DataType.FLOAT64:
        return st.floats()
    low, high = _bounds(dtype)
    return st.integers(low, high)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


# --- codec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("byte_order", "word_order"), ORDERS)
@pytest.mark.parametrize("dtype", list(DataType))
@given(data=st.data())
def test_encode_then_decode_gives_the_value_back(
    data: st.DataObject, dtype: DataType, byte_order: Order, word_order: Order
) -> None:
    """Any value a type can hold survives encode then decode, for every order combination."""
    value = data.draw(_values(dtype))
    registers = encode(value, dtype, byte_order, word_order)
    assert len(registers) == dtype.registers
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert _same(decode(registers, dtype, byte_order, word_order), value)


@pytest.mark.parametrize(("byte_order", "word_order"), ORDERS)
@pytest.mark.parametrize("dtype", NUMERIC)
@given(data=st.data())
def test_decode_then_encode_gives_the_registers_back(
    data: st.DataObject, dtype: DataType, byte_order: Order, word_order: Order
) -> None:
    """Any register pattern that is not a NaN survives decode then encode unchanged."""
    registers = data.draw(
        st.lists(st.integers(0, 0xFFFF), min_size=dtype.registers, max_size=dtype.registers)
    )
    value = decode(registers, dtype, byte_order, word_order)
    assume(not math.isnan(value))  # NaN payload bits are not preserved through a Python float
    assert encode(value, dtype, byte_order, word_order) == registers


@given(
    registers=st.lists(st.one_of(st.integers(), st.booleans()), max_size=6),
    dtype=st.sampled_from(DataType),
    byte_order=st.sampled_from(Order),
    word_order=st.sampled_from(Order),
    scale_factor=st.none() | st.integers(-20, 20),
)
def test_any_register_list_decodes_or_raises_codec_error(
    registers: list[int],
    dtype: DataType,
    byte_order: Order,
    word_order: Order,
    scale_factor: int | None,
) -> None:
    """Garbage in never raises anything but CodecError, and a channel never yields non-finite."""
    table = RegisterTable.COIL if dtype is DataType.BOOL else RegisterTable.INPUT
    channel = Channel("x_any", "", table, 0, dtype, byte_order=byte_order, word_order=word_order)
    with contextlib.suppress(CodecError):
        decode(registers, dtype, byte_order, word_order)
    with contextlib.suppress(CodecError):
        assert math.isfinite(decode_channel(channel, registers, scale_factor))


@pytest.mark.parametrize(
    ("dtype", "byte_order", "word_order", "value", "registers"),
    [
        (DataType.FLOAT32, Order.BIG, Order.BIG, 230.0, [0x4366, 0x0000]),
        (DataType.FLOAT32, Order.BIG, Order.LITTLE, 230.0, [0x0000, 0x4366]),
        (DataType.FLOAT32, Order.LITTLE, Order.BIG, 230.0, [0x6643, 0x0000]),
        (DataType.FLOAT32, Order.LITTLE, Order.LITTLE, 230.0, [0x0000, 0x6643]),
        (DataType.FLOAT32, Order.BIG, Order.BIG, 50.0, [0x4248, 0x0000]),
        (DataType.INT16, Order.BIG, Order.BIG, -2, [0xFFFE]),
        (DataType.UINT16, Order.LITTLE, Order.BIG, 0x1234, [0x3412]),
        (DataType.INT32, Order.BIG, Order.BIG, -2, [0xFFFF, 0xFFFE]),
        (DataType.UINT32, Order.BIG, Order.LITTLE, 0x00010002, [0x0002, 0x0001]),
        (DataType.INT64, Order.BIG, Order.BIG, 1, [0, 0, 0, 1]),
        (DataType.UINT64, Order.BIG, Order.LITTLE, 1, [1, 0, 0, 0]),
        (DataType.FLOAT64, Order.BIG, Order.BIG, 1.0, [0x3FF0, 0, 0, 0]),
        (DataType.BOOL, Order.BIG, Order.BIG, 1, [1]),
    ],
)
def test_known_vectors_decode_and_encode(
    dtype: DataType, byte_order: Order, word_order: Order, value: float, registers: list[int]
) -> None:
    """Hand-computed register images match in both directions."""
    assert decode(registers, dtype, byte_order, word_order) == value
    assert encode(value, dtype, byte_order, word_order) == registers


@pytest.mark.parametrize(
    ("registers", "dtype"),
    [
        ([0x4366], DataType.FLOAT32),
        ([0x4366, 0, 0], DataType.FLOAT32),
        ([0x10000], DataType.UINT16),
        ([-1], DataType.INT16),
        ([2], DataType.BOOL),
    ],
)
def test_malformed_registers_raise_codec_error(registers: list[int], dtype: DataType) -> None:
    """Wrong register counts and out-of-range words are rejected."""
    with pytest.raises(CodecError):
        decode(registers, dtype)


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (40000, DataType.INT16),
        (-1, DataType.UINT16),
        (1 << 32, DataType.UINT32),
        (1.5, DataType.INT32),
        (math.inf, DataType.INT64),
        (1e39, DataType.FLOAT32),
        (2, DataType.BOOL),
    ],
)
def test_values_a_type_cannot_hold_raise_codec_error(value: float, dtype: DataType) -> None:
    """Encoding out-of-range, fractional or non-finite values into integers fails cleanly."""
    with pytest.raises(CodecError):
        encode(value, dtype)


def test_float_decode_passes_nan_through() -> None:
    """The bare codec reports NaN as NaN; refusing it is decode_channel's job."""
    assert math.isnan(decode([0x7FC0, 0x0000], DataType.FLOAT32))


@pytest.mark.parametrize("registers", [[0x7FC0, 0x0000], [0x7F80, 0x0000], [0xFF80, 0x0000]])
def test_non_finite_float_never_becomes_a_reading(registers: list[int]) -> None:
    """NaN and infinities from a meter raise CodecError naming the channel."""
    channel = Channel("voltage_l1", "V", RegisterTable.INPUT, 0, DataType.FLOAT32)
    with pytest.raises(CodecError, match="voltage_l1"):
        decode_channel(channel, registers)


def test_channel_value_applies_scale_offset_and_scale_factor() -> None:
    """Raw * scale + offset, then times 10 ** sf: 2315 at scale 0.1 or sf -1 is 231.5."""
    scaled = Channel("voltage_l1", "V", RegisterTable.HOLDING, 0, DataType.UINT16, scale=0.1)
    assert decode_channel(scaled, [2315]) == pytest.approx(231.5)
    offset = Channel("temperature", "°C", RegisterTable.HOLDING, 0, DataType.INT16, offset=-40)
    assert decode_channel(offset, [65]) == 25.0
    with_sf = Channel(
        "voltage_l1", "V", RegisterTable.HOLDING, 0, DataType.UINT16, scale_factor_address=9
    )
    assert decode_channel(with_sf, [2315], scale_factor=-1) == 231.5
    assert decode_channel(with_sf, [23], scale_factor=1) == 230.0


def test_channel_with_scale_factor_register_needs_its_value() -> None:
    """A channel that names a scale-factor register refuses to decode without it."""
    channel = Channel(
        "current_l1", "A", RegisterTable.HOLDING, 0, DataType.INT16, scale_factor_address=5
    )
    with pytest.raises(CodecError, match="scale-factor register 5"):
        decode_channel(channel, [100])
    with pytest.raises(CodecError, match=r"outside -10\.\.10"):
        decode_channel(channel, [100], scale_factor=-32768)


def test_encode_channel_rounds_integer_types_to_nearest() -> None:
    """231.56 V at scale 0.1 is stored as 2316, not truncated to 2315."""
    channel = Channel("voltage_l1", "V", RegisterTable.HOLDING, 0, DataType.UINT16, scale=0.1)
    assert encode_channel(channel, 231.56) == [2316]
    with pytest.raises(CodecError):
        encode_channel(channel, -5.0)


@pytest.mark.parametrize("dtype", INTEGERS)
@given(
    data=st.data(),
    scale=st.sampled_from([0.001, 0.1, 1.0, 10.0]),
    offset=st.sampled_from([0.0, -40.0]),
    scale_factor=st.none() | st.integers(-3, 3),
)
def test_integer_channel_value_encodes_back_to_its_registers(
    data: st.DataObject, dtype: DataType, scale: float, offset: float, scale_factor: int | None
) -> None:
    """Scaling, offset and scale factor invert exactly once encode_channel rounds."""
    low, high = _bounds(dtype)
    # Beyond 2**48 a float64 cannot keep every raw step apart after scaling.
    raw = data.draw(st.integers(max(low, -(1 << 48)), min(high, 1 << 48)))
    channel = Channel("x_v", "", RegisterTable.HOLDING, 0, dtype, scale=scale, offset=offset)
    registers = encode(raw, dtype)
    value = decode_channel(channel, registers, scale_factor)
    assert encode_channel(channel, value, scale_factor) == registers


@pytest.mark.parametrize("dtype", [DataType.FLOAT32, DataType.FLOAT64])
@given(
    value=st.floats(-1e6, 1e6),
    scale=st.sampled_from([0.001, 0.1, 1.0, 10.0]),
    offset=st.sampled_from([0.0, -40.0]),
    scale_factor=st.none() | st.integers(-3, 3),
)
def test_float_channel_value_survives_encode_and_decode(
    dtype: DataType, value: float, scale: float, offset: float, scale_factor: int | None
) -> None:
    """A physical value comes back within float32 precision of its raw value."""
    channel = Channel("x_v", "", RegisterTable.HOLDING, 0, dtype, scale=scale, offset=offset)
    registers = encode_channel(channel, value, scale_factor)
    back = decode_channel(channel, registers, scale_factor)
    # float32 keeps 24 significant bits of the raw value; scaling maps that error back out.
    unit = 10.0 ** (scale_factor or 0)
    raw = (value / unit - offset) / scale
    assert back == pytest.approx(value, abs=abs(raw) * 2**-22 * scale * unit + 1e-9)


# --- planner -------------------------------------------------------------------------------


@st.composite
def _channel_sets(draw: st.DrawFn) -> list[Channel]:
    channels: list[Channel] = []
    for i in range(draw(st.integers(1, 30))):
        table = draw(st.sampled_from(RegisterTable))
        dtype = DataType.BOOL if table in BIT_TABLES else draw(st.sampled_from(NUMERIC))
        near = st.integers(0, 300)  # mostly close together, so that coalescing happens
        address = draw(near | st.integers(0, 65536 - dtype.registers))
        sf = None if table in BIT_TABLES else draw(st.none() | near)
        channels.append(Channel(f"x_{i}", "", table, address, dtype, scale_factor_address=sf))
    return channels


@given(channels=_channel_sets(), max_registers=st.integers(4, 2500), max_gap=st.integers(0, 40))
def test_plan_covers_each_channel_once_within_limits(
    channels: list[Channel], max_registers: int, max_gap: int
) -> None:
    """Every channel lies in exactly one read; reads respect the limit and never mix tables."""
    plan = plan_reads(channels, max_registers, max_gap)
    seen = Counter(ch.name for read in plan for ch in read.channels)
    assert seen == Counter(ch.name for ch in channels)
    for read in plan:
        cap = MAX_READ_BITS if read.table in BIT_TABLES else MAX_READ_REGISTERS
        assert 1 <= read.count <= min(max_registers, cap)
        assert read.address + read.count <= 65536
        for ch in read.channels:
            assert ch.table is read.table
            assert read.address <= ch.address
            assert ch.address + ch.count <= read.address + read.count
        for sf in read.scale_factor_addresses:
            assert read.address <= sf < read.address + read.count


@given(channels=_channel_sets(), max_registers=st.integers(4, 2500), max_gap=st.integers(0, 40))
def test_plan_reads_every_scale_factor_register(
    channels: list[Channel], max_registers: int, max_gap: int
) -> None:
    """Each referenced scale-factor register is listed by some read of the channel's table."""
    plan = plan_reads(channels, max_registers, max_gap)
    listed = {(read.table, sf) for read in plan for sf in read.scale_factor_addresses}
    for ch in channels:
        if ch.scale_factor_address is not None:
            assert (ch.table, ch.scale_factor_address) in listed


@given(channels=_channel_sets(), max_registers=st.integers(4, 2500), max_gap=st.integers(0, 40))
def test_plan_leaves_no_two_neighbouring_reads_mergeable(
    channels: list[Channel], max_registers: int, max_gap: int
) -> None:
    """Consecutive reads of a table are split only by a too-wide gap or the size limit."""
    plan = plan_reads(channels, max_registers, max_gap)
    for first, second in itertools.pairwise(plan):
        if first.table is not second.table:
            continue
        cap = MAX_READ_BITS if first.table in BIT_TABLES else MAX_READ_REGISTERS
        gap = second.address - (first.address + first.count)
        span = second.address + second.count - first.address
        assert gap > max_gap or span > min(max_registers, cap)


def test_planner_rejects_impossible_limits() -> None:
    """A non-positive read size, a negative gap or a channel larger than a read is a bug."""
    channel = Channel("x_big", "", RegisterTable.HOLDING, 0, DataType.FLOAT64)
    with pytest.raises(ValueError, match="max_registers"):
        plan_reads([channel], 0, 0)
    with pytest.raises(ValueError, match="max_gap"):
        plan_reads([channel], 10, -1)
    with pytest.raises(ValueError, match="x_big"):
        plan_reads([channel], 2, 0)


@pytest.mark.parametrize(
    ("driver_id", "most_reads"), [("eastron-sdm630", 4), ("eastron-sdm120", 2)]
)
def test_eastron_maps_plan_into_a_handful_of_even_reads(driver_id: str, most_reads: int) -> None:
    """Each map needs a few reads, each within the meter's limit, even-aligned as it requires."""
    driver = load_drivers([BUILTIN_DRIVERS_DIR])[driver_id]
    plan = plan_reads(driver.channels, driver.max_registers_per_request, driver.max_gap_registers)
    assert len(plan) <= most_reads < len(driver.channels) / 5
    for read in plan:
        assert read.count <= driver.max_registers_per_request
        assert read.address % 2 == 0
        assert read.count % 2 == 0


def test_sdm630_plan_decodes_every_channel_from_a_register_image() -> None:
    """Values encoded into a simulated register space come back through the planned reads."""
    driver = load_drivers([BUILTIN_DRIVERS_DIR])["eastron-sdm630"]
    expected = {ch.name: i + 0.5 for i, ch in enumerate(driver.channels)}
    image = [0] * 1024
    for ch in driver.channels:
        image[ch.address : ch.address + ch.count] = encode_channel(ch, expected[ch.name])
    decoded: dict[str, float] = {}
    for read in plan_reads(driver.channels, 80, 10):
        decoded |= decode_response(read, image[read.address : read.address + read.count])
    assert decoded == expected


def test_scale_factor_from_another_read_is_applied() -> None:
    """A scale factor that landed in a different read is gathered first, then applied."""
    channels = [
        Channel(
            "current_l1", "A", RegisterTable.HOLDING, 0, DataType.INT16, scale_factor_address=200
        ),
        Channel(
            "voltage_l1", "V", RegisterTable.HOLDING, 201, DataType.UINT16, scale_factor_address=2
        ),
    ]
    image = [0] * 256
    image[0], image[2] = 1234, 0xFFFF  # current raw 1234; voltage sf -1 (int16)
    image[200], image[201] = 0xFFFE, 2315  # current sf -2; voltage raw 2315
    plan = plan_reads(channels, 100, 10)
    assert len(plan) == 2
    responses = [(read, image[read.address : read.address + read.count]) for read in plan]
    factors: dict[int, int] = {}
    for read, registers in responses:
        factors |= read_scale_factors(read, registers)
    assert factors == {2: -1, 200: -2}
    values: dict[str, float] = {}
    for read, registers in responses:
        values |= decode_response(read, registers, factors)
    assert values == {"current_l1": 12.34, "voltage_l1": 231.5}


def test_coil_response_bits_decode_to_zero_or_one() -> None:
    """For bit tables the response is one 0/1 per address and bool channels read it."""
    channels = [
        Channel("x_relay", "", RegisterTable.COIL, 0, DataType.BOOL),
        Channel("x_alarm", "", RegisterTable.COIL, 5, DataType.BOOL),
    ]
    [read] = plan_reads(channels, 100, 10)
    assert (read.address, read.count) == (0, 6)
    assert decode_response(read, [1, 0, 0, 0, 0, 0]) == {"x_relay": 1.0, "x_alarm": 0.0}


def test_response_of_the_wrong_length_raises_codec_error() -> None:
    """A short response is refused before anything is decoded from it."""
    channel = Channel("voltage_l1", "V", RegisterTable.INPUT, 0, DataType.FLOAT32)
    [read] = plan_reads([channel], 80, 10)
    with pytest.raises(CodecError, match="got 1 values"):
        decode_response(read, [0x4366])


# --- sentinels and computed channels ---------------------------------------------------------


def _na_channel(dtype: DataType, na: tuple[int, ...] = (), nan: bool = False, **kw: Any) -> Channel:
    return Channel(
        name="x_v",
        unit="",
        table=RegisterTable.HOLDING,
        address=0,
        type=dtype,
        na=na,
        na_nan=nan,
        **kw,
    )


def test_an_int16_sentinel_is_missing_not_minus_32768() -> None:
    """0x8000 in an int16 with na = [0x8000] decodes to None; its neighbour value decodes."""
    ch = _na_channel(DataType.INT16, (0x8000,))
    assert decode_value(ch, [0x8000]) is None
    assert decode_value(ch, [0x8001]) == -32767


def test_a_sentinel_is_the_logical_pattern_whatever_the_word_order() -> None:
    """0xFFFF0000 in a little-word-order uint32 is the registers [0x0000, 0xFFFF]."""
    ch = _na_channel(DataType.UINT32, (0xFFFF0000,), word_order=Order.LITTLE)
    assert decode_value(ch, [0x0000, 0xFFFF]) is None
    assert decode_value(ch, [0xFFFF, 0x0000]) == 0x0000FFFF


def test_nan_is_missing_only_where_the_channel_says_so() -> None:
    """A NaN float32 is None with na = [nan] and a decode error without it."""
    nan_words = [0x7FC0, 0x0000]
    assert decode_value(_na_channel(DataType.FLOAT32, nan=True), nan_words) is None
    with pytest.raises(CodecError, match="non-finite"):
        decode_value(_na_channel(DataType.FLOAT32), nan_words)


def test_an_unimplemented_scale_factor_leaves_the_value_out() -> None:
    """A scale factor of -32768 (0x8000) makes the channel missing, not an error."""
    ch = _na_channel(DataType.INT16, scale_factor_address=5)
    assert decode_value(ch, [100], SCALE_FACTOR_NA) is None
    assert decode_value(ch, [100], -1) == 10.0


@given(st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2))
def test_any_registers_decode_or_are_missing_or_raise_our_error(words: list[int]) -> None:
    """With sentinels set, any two registers give a finite float, None, or a CodecError."""
    ch = _na_channel(DataType.FLOAT32, (0xFFFFFFFF,), nan=True)
    try:
        value = decode_value(ch, words)
    except CodecError:
        return
    assert value is None or math.isfinite(value)


def test_computed_channels_sum_or_subtract_and_need_both_operands() -> None:
    """Sum and difference combine two values; a missing operand leaves the result out."""
    total = Computed("reactive_energy_import", "kvarh", ComputeOp.SUM, ("x_a", "x_b"))
    net = Computed("active_power", "W", ComputeOp.DIFFERENCE, ("x_a", "x_b"))
    assert compute([total, net], {"x_a": 5.0, "x_b": 2.0}) == {
        "reactive_energy_import": 7.0,
        "active_power": 3.0,
    }
    assert compute([total, net], {"x_a": 5.0}) == {}
