"""Decoding one response in one pass, for the common case (pure).

Most meters are read as blocks of big-endian registers holding plain numbers: no scale-factor
registers, no "not available" sentinels. For such a request :func:`block_decoder` prepares,
once per plan, a decoder that packs the whole response into bytes with one precompiled
``struct`` call and takes each channel out at its offset, instead of checking, slicing and
joining registers channel by channel. Anything unusual (a register out of range, a value that
is not finite) makes it return None, and the caller decodes that response the checked way,
which names the channel at fault.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

from gridedge.drivers import Channel, DataType, Order
from gridedge.links.modbus.codec import STRUCT_CODES
from gridedge.links.modbus.planner import BIT_TABLES, ReadRequest
from gridedge.links.modbus.precision import shortest_float32, source_precision

BlockDecoder = Callable[[Sequence[int]], dict[str, float] | None]
"""Registers of one response -> values by channel, or None to decode it the checked way."""


def _plain(channel: Channel) -> bool:
    return (
        channel.type in STRUCT_CODES
        and channel.byte_order is Order.BIG
        and channel.word_order is Order.BIG
        and channel.scale_factor_address is None
        and not channel.na
        and not channel.na_nan
    )


def block_decoder(request: ReadRequest) -> BlockDecoder | None:
    """A one-pass decoder for ``request``, or None when some channel needs the checked path."""
    if request.table in BIT_TABLES or request.scale_factor_addresses:
        return None
    if not request.channels or not all(_plain(ch) for ch in request.channels):
        return None
    words = struct.Struct(f">{request.count}H")
    fields = [
        (
            ch.name,
            struct.Struct(">" + STRUCT_CODES[ch.type]).unpack_from,
            2 * (ch.address - request.address),
            ch,
            ch.type is DataType.FLOAT32 and ch.scale == 1 and ch.offset == 0,
        )
        for ch in request.channels
    ]
    count = request.count

    def decode(registers: Sequence[int]) -> dict[str, float] | None:
        if len(registers) != count:
            return None
        try:
            data = words.pack(*registers)
        except struct.error:
            return None  # a register outside 0..65535: the checked path says which
        values: dict[str, float] = {}
        for name, unpack_from, offset, channel, plain_float32 in fields:
            raw = unpack_from(data, offset)[0]
            if plain_float32:
                if not math.isfinite(raw):
                    return None
                values[name] = shortest_float32(raw)
                continue
            value = float(raw * channel.scale + channel.offset)
            if not math.isfinite(value):
                return None
            values[name] = source_precision(channel, raw, value, None)
        return values

    return decode
