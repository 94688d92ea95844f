"""The one-pass decoder gives exactly what the checked decoder gives, or steps aside."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_drivers
from gridedge.errors import CodecError
from gridedge.links.modbus.block import block_decoder
from gridedge.links.modbus.codec import decode_response
from gridedge.links.modbus.planner import ReadRequest, plan_reads

_DRIVERS = load_drivers([BUILTIN_DRIVERS_DIR])
_REQUESTS = [
    request
    for driver in _DRIVERS.values()
    for request in plan_reads(
        driver.channels, driver.max_registers_per_request, driver.max_gap_registers
    )
]
_BLOCKS = [r for r in _REQUESTS if block_decoder(r) is not None]


def test_most_builtin_requests_take_the_one_pass_path() -> None:
    """Plain big-endian blocks (Eastron, ...) qualify; SunSpec scale-factor reads do not."""
    assert len(_BLOCKS) >= len(_REQUESTS) // 3
    assert all(not r.scale_factor_addresses for r in _BLOCKS)
    assert any(r.scale_factor_addresses for r in _REQUESTS)


@given(st.sampled_from(_BLOCKS), st.data())
def test_the_one_pass_decoder_agrees_with_the_checked_one(
    request: ReadRequest, data: st.DataObject
) -> None:
    """Same values (and types) for any registers; None wherever the checked path objects."""
    registers = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=request.count,
                                   max_size=request.count))  # fmt: skip
    decoder = block_decoder(request)
    assert decoder is not None
    fast = decoder(registers)
    try:
        checked = decode_response(request, registers)
    except CodecError:
        assert fast is None
        return
    assert fast is not None
    assert fast == checked
    assert [type(v) for v in fast.values()] == [type(v) for v in checked.values()]
    assert all(math.isfinite(v) for v in fast.values())


@pytest.mark.parametrize("bad", [[70000], [-1]])
def test_a_register_out_of_range_or_a_short_response_steps_aside(bad: list[int]) -> None:
    """Out-of-range words and wrong lengths go to the checked path, which names them."""
    request = _BLOCKS[0]
    decoder = block_decoder(request)
    assert decoder is not None
    assert decoder(bad + [0] * (request.count - 1)) is None
    assert decoder([0] * (request.count + 1)) is None
