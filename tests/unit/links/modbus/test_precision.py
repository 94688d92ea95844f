"""Decoded readings keep their register's precision: no more digits, and nothing lost."""

from __future__ import annotations

import struct
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from gridedge.drivers import Channel, DataType, RegisterTable
from gridedge.links.modbus.codec import decode_channel, encode
from gridedge.links.modbus.precision import shortest_float32

_F32 = struct.Struct(">f")
_finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


def _channel(dtype: DataType, **extra: float) -> Channel:
    return Channel("voltage_l1", "V", RegisterTable.INPUT, 0, dtype, **extra)  # type: ignore[arg-type]


def test_a_float32_reading_is_written_with_the_shortest_decimal() -> None:
    """231.2 in a float32 register reads 231.2 (not 231.1999969482422)."""
    registers = encode(231.2, DataType.FLOAT32)
    value = decode_channel(_channel(DataType.FLOAT32), registers)
    assert repr(value) == "231.2"
    assert repr(shortest_float32(_F32.unpack(_F32.pack(0.1))[0])) == "0.1"


@given(_finite_f32.filter(lambda v: abs(v) < 1e14))  # repr writes bigger ones in full
def test_the_shortest_float32_decimal_reads_back_as_the_same_register(raw: float) -> None:
    """No precision is lost: the value chosen packs to the very bits that were read."""
    short = shortest_float32(raw)
    assert _F32.pack(short) == _F32.pack(raw)
    assert len(repr(short)) <= len(repr(raw))


@given(_finite_f32.filter(lambda v: 1e-30 < abs(v) < 1e6))
def test_no_decimal_with_fewer_digits_reads_back_as_the_same_register(raw: float) -> None:
    """The decimal chosen is the shortest: with one significant digit fewer, none packs back."""
    digits = len(Decimal(repr(shortest_float32(raw))).normalize().as_tuple().digits)
    if digits > 1:
        # Were any decimal of fewer digits to read back, the nearest one would (it is closer).
        fewer = float(f"{raw:.{digits - 1}g}")
        assert _F32.pack(fewer) != _F32.pack(raw)


@given(st.integers(min_value=-32768, max_value=32767))
def test_an_unscaled_integer_register_reads_as_an_integer(raw: int) -> None:
    """An int16 reads as int (JSON ``230``, not ``230.0``)."""
    value = decode_channel(_channel(DataType.INT16), encode(raw, DataType.INT16))
    assert type(value) is int
    assert value == raw


@given(st.integers(min_value=0, max_value=65535), st.sampled_from([0.1, 0.01, 0.001, 0.5]))
def test_a_scaled_integer_keeps_exactly_the_digits_that_recover_the_register(
    raw: int, scale: float
) -> None:
    """2312 at scale 0.1 reads 231.2; any value reads back as its register."""
    value = decode_channel(_channel(DataType.UINT16, scale=scale), [raw])
    assert round(value / scale) == raw
    assert len(repr(value)) <= len(repr(raw * scale))


# Within the range where a double holds raw * 0.001 - 40 without absorbing raw's digits.
@given(_finite_f32.filter(lambda v: 1e-3 < abs(v) < 1e12))
def test_a_scaled_float32_reads_back_as_its_register(raw: float) -> None:
    """float32 with scale and offset: the decimal sent still identifies the register's bits."""
    channel = _channel(DataType.FLOAT32, scale=0.001, offset=-40.0)
    value = decode_channel(channel, encode(raw, DataType.FLOAT32))
    assert _F32.pack((value + 40.0) / 0.001) == _F32.pack(raw)
