"""Readings written with no more digits than their register holds (pure).

A float32 register's value decodes to a double with 17 significant digits, most of them noise
the register never held; :func:`source_precision` picks the shortest decimal that still reads
back as the very same register content, so nothing is lost and nothing is invented.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from gridedge.drivers import Channel, DataType

_FLOAT32 = struct.Struct(">f")


def source_precision(channel: Channel, raw: float, value: float, scale_factor: int | None) -> float:
    """``value`` written with no more digits than its register holds.

    A float32 register holding 231.2 decodes to the double 231.1999969482422; sent as it is, every
    value costs 17 digits. This returns the double with the shortest ``repr`` from which the
    register's exact content is recovered (231.2), and an integer register's unscaled value
    as an ``int``. Nothing is lost: the digits kept always read back as the same register value.
    """
    dtype = channel.type
    integer = not dtype.is_float
    if channel.scale == 1 and channel.offset == 0 and scale_factor is None:
        if integer:
            return int(raw)
        if dtype is DataType.FLOAT32:
            return shortest_float32(raw)
        return value
    if dtype is DataType.FLOAT64:
        return value
    if integer and value.is_integer():
        return int(value)
    return _shortest_decimal(channel, raw, value, scale_factor, integer)


_SHORTEST_CACHE: dict[float, float] = {}
_SHORTEST_CACHE_SIZE = 16384


def shortest_float32(raw: float) -> float:
    """The double whose ``repr`` is the shortest decimal that reads back as float32 ``raw``."""
    # Meters repeat values (energy counters, frequency, a quantised voltage): a lookup costs a
    # tenth of the search below.
    if raw == 0:
        return raw  # keeps -0.0, which a dict lookup would take for 0.0
    known = _SHORTEST_CACHE.get(raw)
    if known is not None:
        return known
    # numpy prints a float32 with the fewest digits that read back as it (three times faster
    # than trying 6, 7 and 8 digits with the format mini-language).
    shortest = float(str(np.float32(raw)))
    if abs(raw) >= 1e6 and len(repr(shortest)) > len(repr(raw)):
        # Big values print in full: rounding to fewer digits can add zeros (1e12 vs 999999995904).
        shortest = raw
    if len(_SHORTEST_CACHE) >= _SHORTEST_CACHE_SIZE:
        _SHORTEST_CACHE.clear()
    _SHORTEST_CACHE[raw] = shortest
    return shortest


def _shortest_decimal(
    channel: Channel, raw: float, value: float, scale_factor: int | None, integer: bool
) -> float:
    """The shortest decimal near ``value`` that still maps back to the same ``raw``."""
    packed = None if integer else _FLOAT32.pack(raw)
    for digits in range(4, 17):
        candidate = float(f"{value:.{digits}g}")
        back = candidate
        if scale_factor is not None:
            # Undoing ``10 ** sf`` the way the codec applies it: dividing by exact powers of ten.
            back = back / 10.0**scale_factor if scale_factor > 0 else back * 10.0**-scale_factor
        back = (back - channel.offset) / channel.scale
        if integer:
            if round(back) == raw:
                return candidate
        elif math.isfinite(back) and abs(back) < 3.4e38 and _FLOAT32.pack(back) == packed:
            return candidate
    return value
