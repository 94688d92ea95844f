"""A read response is checked against its request: function code and byte count."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridedge.drivers import RegisterTable
from gridedge.errors import CodecError
from gridedge.links.modbus.codec import FUNCTION_CODES, check_read_response
from gridedge.links.modbus.planner import BIT_TABLES

TABLES = st.sampled_from(list(RegisterTable))


def _byte_count(table: RegisterTable, count: int) -> int:
    return (count + 7) // 8 if table in BIT_TABLES else 2 * count


@given(TABLES, st.integers(1, 125), st.data())
def test_a_well_formed_answer_passes(table: RegisterTable, count: int, data: st.DataObject) -> None:
    """The request's function code and exactly the implied byte count is accepted."""
    n = _byte_count(table, count)
    body = data.draw(st.binary(min_size=n, max_size=n))
    check_read_response(bytes([FUNCTION_CODES[table], n]) + body, table, count)


@given(TABLES, st.integers(1, 125), st.binary(max_size=300))
def test_any_bytes_either_fit_the_request_or_raise_codec_error(
    table: RegisterTable, count: int, pdu: bytes
) -> None:
    """Whatever arrives is accepted only in one of the two valid shapes; otherwise CodecError."""
    fc = FUNCTION_CODES[table]
    n = _byte_count(table, count)
    valid = (len(pdu) == 2 and pdu[0] == fc | 0x80) or (
        len(pdu) == 2 + n and pdu[0] == fc and pdu[1] == n
    )
    if valid:
        check_read_response(pdu, table, count)
    else:
        with pytest.raises(CodecError):
            check_read_response(pdu, table, count)


@pytest.mark.parametrize(
    ("pdu", "problem"),
    [
        (bytes([3, 4, 0, 1, 0, 2]), "function code 3 in answer to function code 4"),
        (bytes([23, 4, 0, 1, 0, 2]), "function code 23"),
        (bytes([4, 2, 0, 1, 0, 2]), "byte count 2"),
        (bytes([4, 6, 0, 1, 0, 2]), "byte count 6"),
        (bytes([0x84]), "exception response of 1 bytes"),
        (bytes([0x83, 2]), "function code 131"),
        (b"", "empty"),
    ],
    ids=[
        "fc3",
        "fc23",
        "short-count",
        "long-count",
        "codeless-exception",
        "other-exception",
        "empty",
    ],
)
def test_mismatched_answers_to_an_input_read_are_rejected(pdu: bytes, problem: str) -> None:
    """Another function code, a wrong byte count or a codeless exception names its problem."""
    with pytest.raises(CodecError, match=problem):
        check_read_response(pdu, RegisterTable.INPUT, 2)
