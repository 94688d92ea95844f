"""The register codec: pure functions, no I/O and no asyncio (the read planner is in `planner`).

Orders: ``byte_order`` is the order of the two bytes inside each 16-bit register (Modbus itself
sends the high byte first, so "big" is the norm); ``word_order`` is the order of the registers
of a multi-register value ("big" puts the most significant register first). A float32 230.0
(0x43660000) is ``[0x4366, 0x0000]`` big/big and ``[0x0000, 0x4366]`` with little word order.

Bit tables (coils, discrete inputs) travel as one 0/1 value per address, so the same functions
treat a ``bool`` channel's "registers" as bits.

Scale factors: a channel may name a SunSpec-style scale-factor register (an int16 in the same
table, value times ``10 ** sf``). The planner treats each such register as a one-register span
to cover, so it lands in some read; every :class:`ReadRequest` lists the scale-factor addresses
it covers. A poll therefore gathers :func:`read_scale_factors` from all responses first and hands
them to :func:`decode_response`, which also picks up the ones in its own response.

Missing values: :func:`decode_value` returns None for a channel whose registers hold one of its
``na`` sentinels or whose scale factor is the SunSpec "not implemented" value, so the channel
is left out of the sample without counting as an error. :func:`compute` derives the computed
channels from the decoded ones.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence

from gridedge.drivers import Channel, Computed, ComputeOp, DataType, Order, RegisterTable
from gridedge.errors import CodecError, FrameError
from gridedge.links.modbus.planner import (
    BIT_TABLES,
    ReadRequest,
)
from gridedge.links.modbus.precision import source_precision

SCALE_FACTOR_NA = -32768
"""A SunSpec scale-factor register holding 0x8000: the values it scales are not implemented."""

MAX_SCALE_FACTOR = 10
"""SunSpec scale factors range over -10..10; anything else is "not implemented" or garbage."""

FUNCTION_CODES = {
    RegisterTable.COIL: 1,
    RegisterTable.DISCRETE: 2,
    RegisterTable.HOLDING: 3,
    RegisterTable.INPUT: 4,
}
"""The Modbus function code that reads each table."""

TABLES_BY_FUNCTION = {code: table for table, code in FUNCTION_CODES.items()}
"""The table a read function code addresses."""

STRUCT_CODES = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.INT64: "q",
    DataType.UINT64: "Q",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}
"""The :mod:`struct` code of each register data type (big-endian once the words are ordered)."""
_INTEGER_RANGES = {
    dtype: (-(1 << (16 * dtype.registers - 1)), (1 << (16 * dtype.registers - 1)) - 1)
    if signed
    else (0, (1 << (16 * dtype.registers)) - 1)
    for dtype, signed in (
        (DataType.INT16, True),
        (DataType.UINT16, False),
        (DataType.INT32, True),
        (DataType.UINT32, False),
        (DataType.INT64, True),
        (DataType.UINT64, False),
    )
}


# --- codec ---------------------------------------------------------------------------------


def decode(
    registers: Sequence[int],
    dtype: DataType,
    byte_order: Order = Order.BIG,
    word_order: Order = Order.BIG,
) -> int | float:
    """Turn raw registers (or one bit, for ``bool``) into a number.

    Floats come back as they are, NaN and infinities included; :func:`decode_channel` is the
    place that refuses them.

    Raises:
        CodecError: wrong number of registers, or a value outside 0..65535 (0..1 for bits).
    """
    if len(registers) != dtype.registers:
        raise CodecError(f"{dtype.value} needs {dtype.registers} register(s), got {len(registers)}")
    top = 1 if dtype is DataType.BOOL else 0xFFFF
    for word in registers:
        if not isinstance(word, int) or not 0 <= word <= top:
            raise CodecError(f"{dtype.value}: register value {word!r} is outside 0..{top}")
    if dtype is DataType.BOOL:
        return int(registers[0])
    data = _words_to_bytes(registers, byte_order, word_order)
    value: int | float = struct.unpack(">" + STRUCT_CODES[dtype], data)[0]
    return value


def encode(
    value: float,
    dtype: DataType,
    byte_order: Order = Order.BIG,
    word_order: Order = Order.BIG,
) -> list[int]:
    """Turn a number into raw registers (or one bit, for ``bool``); the inverse of :func:`decode`.

    Raises:
        CodecError: an integer type cannot hold ``value`` (fraction, out of range, not
            finite), ``bool`` got something other than 0 or 1, or a float is too large.
    """
    if dtype is DataType.BOOL:
        if value not in (0, 1):
            raise CodecError(f"bool holds 0 or 1, got {value!r}")
        return [int(value)]
    fmt = ">" + STRUCT_CODES[dtype]
    if dtype in _INTEGER_RANGES:
        data = struct.pack(fmt, _whole(value, dtype))
    else:
        try:
            data = struct.pack(fmt, value)
        except OverflowError:
            raise CodecError(f"{value!r} is too large for {dtype.value}") from None
    return _bytes_to_words(data, byte_order, word_order)


def decode_channel(
    channel: Channel, registers: Sequence[int], scale_factor: int | None = None
) -> float:
    """A channel's physical value: ``raw * scale + offset``, times ``10 ** scale_factor``.

    The channel's ``min``/``max`` limits are not applied here: whether an implausible value is
    dropped or flagged is the caller's decision.

    Raises:
        CodecError: the registers do not decode, the value is not finite (a garbled float
            must never become a reading), or the channel needs a scale factor and got none.
    """
    try:
        raw = decode(registers, channel.type, channel.byte_order, channel.word_order)
    except CodecError as exc:
        raise CodecError(f"{channel.name}: {exc}") from None
    if channel.scale_factor_address is not None and scale_factor is None:
        raise CodecError(
            f"{channel.name}: scale-factor register {channel.scale_factor_address} was not read"
        )
    value = raw * channel.scale + channel.offset
    if scale_factor is not None:
        value = _apply_scale_factor(value, scale_factor)
    if not math.isfinite(value):
        raise CodecError(f"{channel.name}: the meter sent a non-finite value ({value})")
    return source_precision(channel, raw, float(value), scale_factor)


def is_not_available(channel: Channel, registers: Sequence[int]) -> bool:
    """True when ``registers`` hold one of the channel's ``na`` sentinels."""
    if not (channel.na or channel.na_nan) or len(registers) != channel.count:
        return False
    if any(not isinstance(w, int) or not 0 <= w <= 0xFFFF for w in registers):
        return False  # not a sentinel: decode_channel reports the garbage
    data = _words_to_bytes(registers, channel.byte_order, channel.word_order)
    if int.from_bytes(data, "big") in channel.na:
        return True
    if channel.na_nan and channel.type.is_float:
        return math.isnan(struct.unpack(">" + STRUCT_CODES[channel.type], data)[0])
    return False


def decode_value(
    channel: Channel, registers: Sequence[int], scale_factor: int | None = None
) -> float | None:
    """Like :func:`decode_channel`, but None when the meter says the value is not available.

    Raises:
        CodecError: as :func:`decode_channel`.
    """
    if channel.scale_factor_address is not None and scale_factor == SCALE_FACTOR_NA:
        return None
    if is_not_available(channel, registers):
        return None
    return decode_channel(channel, registers, scale_factor)


def compute(computed: Sequence[Computed], values: Mapping[str, float]) -> dict[str, float]:
    """The computed channels whose operands are both in ``values``."""
    out: dict[str, float] = {}
    for c in computed:
        a, b = (values.get(name) for name in c.operands)
        if a is not None and b is not None:
            out[c.name] = a + b if c.op is ComputeOp.SUM else a - b
    return out


def encode_channel(channel: Channel, value: float, scale_factor: int | None = None) -> list[int]:
    """The registers that make :func:`decode_channel` return ``value`` (as near as the type allows).

    Integer types round to the nearest whole raw value.

    Raises:
        CodecError: ``value`` is not finite or does not fit the channel's type.
    """
    if not math.isfinite(value):
        raise CodecError(f"{channel.name}: cannot encode {value}")
    if scale_factor is not None:
        value = _apply_scale_factor(value, -scale_factor)
    raw = (value - channel.offset) / channel.scale
    if not math.isfinite(raw):
        raise CodecError(f"{channel.name}: {value} does not fit {channel.type.value}")
    if channel.type in _INTEGER_RANGES or channel.type is DataType.BOOL:
        raw = round(raw)
    try:
        return encode(raw, channel.type, channel.byte_order, channel.word_order)
    except CodecError as exc:
        raise CodecError(f"{channel.name}: {exc}") from None


def _whole(value: float, dtype: DataType) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise CodecError(f"{dtype.value} holds whole numbers, got {value!r}")
    number = int(value)
    low, high = _INTEGER_RANGES[dtype]
    if not low <= number <= high:
        raise CodecError(f"{dtype.value} holds {low}..{high}, got {number}")
    return number


def _apply_scale_factor(value: float, scale_factor: int) -> float:
    if not -MAX_SCALE_FACTOR <= scale_factor <= MAX_SCALE_FACTOR:
        raise CodecError(f"scale factor {scale_factor} is outside -10..10")
    # Dividing by an exact power of ten gives 3 at sf -1 as 0.3, not 0.30000000000000004.
    if scale_factor < 0:
        return value / 10.0**-scale_factor
    return value * 10.0**scale_factor


def _words_to_bytes(words: Sequence[int], byte_order: Order, word_order: Order) -> bytes:
    chunks = [word.to_bytes(2, byte_order.value) for word in words]
    if word_order is Order.LITTLE:
        chunks.reverse()
    return b"".join(chunks)


def _bytes_to_words(data: bytes, byte_order: Order, word_order: Order) -> list[int]:
    words = [int.from_bytes(data[i : i + 2], byte_order.value) for i in range(0, len(data), 2)]
    if word_order is Order.LITTLE:
        words.reverse()
    return words


# --- responses -----------------------------------------------------------------------------


def check_read_response(pdu: bytes, table: RegisterTable, count: int) -> None:
    """Check that ``pdu`` (function code and data, no framing) can answer a read of ``count``.

    A valid answer repeats the request's function code and carries exactly the byte count the
    request implies (2 per register, 1 per 8 bits), or is an exception response for that
    function code with its one-byte code. Anything else, another function code included, is
    not this meter's data however well it decodes.

    Raises:
        CodecError: saying which part of the response does not fit the request.
    """
    function = FUNCTION_CODES[table]
    if not pdu:
        raise CodecError("empty response")
    if pdu[0] == function | 0x80:
        if len(pdu) != 2:
            raise CodecError(f"exception response of {len(pdu)} bytes, expected 2")
        return
    if pdu[0] != function:
        raise CodecError(f"function code {pdu[0]} in answer to function code {function}")
    expected = (count + 7) // 8 if table in BIT_TABLES else 2 * count
    if len(pdu) < 2 or pdu[1] != expected or len(pdu) != 2 + expected:
        got = pdu[1] if len(pdu) >= 2 else None
        raise CodecError(
            f"byte count {got} with {len(pdu) - 2} data bytes, expected {expected} "
            f"for {count} {table.value} values"
        )


def check_answer(device: str, unit_id: int, pdu: bytes, table: RegisterTable, count: int) -> None:
    """:func:`check_read_response` on a link: a response that does not fit the request is a
    :class:`~gridedge.errors.FrameError` of ``device``.
    """
    try:
        check_read_response(pdu, table, count)
    except CodecError as exc:
        raise FrameError(device, f"unit {unit_id}: {exc}") from exc


def read_scale_factors(request: ReadRequest, registers: Sequence[int]) -> dict[int, int]:
    """The scale factors (int16, big byte order) a response carries, by register address.

    Raises:
        CodecError: the response has the wrong length or a register is out of range.
    """
    _check_length(request, registers)
    factors: dict[int, int] = {}
    for address in request.scale_factor_addresses:
        at = address - request.address
        factors[address] = int(decode(registers[at : at + 1], DataType.INT16))
    return factors


def decode_response(
    request: ReadRequest,
    registers: Sequence[int],
    scale_factors: Mapping[int, int] | None = None,
) -> dict[str, float]:
    """Decode every channel of ``request`` from the registers (or bits) that answered it.

    Args:
        request: the read that was sent.
        registers: the response, ``request.count`` values.
        scale_factors: scale factors gathered from the other responses of the same poll;
            those inside this response are read from it directly.

    Returns:
        Physical values by channel name; channels holding a sentinel are left out.

    Raises:
        CodecError: the response has the wrong length or any channel fails to decode (the
            message names it; :func:`decode_channel` decodes one channel at a time).
    """
    factors = {**(scale_factors or {}), **read_scale_factors(request, registers)}
    values: dict[str, float] = {}
    for ch in request.channels:
        at = ch.address - request.address
        sf = None if ch.scale_factor_address is None else factors.get(ch.scale_factor_address)
        value = decode_value(ch, registers[at : at + ch.count], sf)
        if value is not None:
            values[ch.name] = value
    return values


def _check_length(request: ReadRequest, registers: Sequence[int]) -> None:
    if len(registers) != request.count:
        raise CodecError(
            f"read of {request.count} at {request.table.value} {request.address} "
            f"got {len(registers)} values"
        )
