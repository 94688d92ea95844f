"""gridedge's own Modbus TCP framing: requests on the wire, answers found in any byte stream."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridedge.drivers import RegisterTable
from gridedge.errors import DeviceFaultError, DeviceUnreachableError
from gridedge.links.modbus.stats import BusStats
from gridedge.links.modbus.tcp import (
    MAX_PDU_BYTES,
    MBAP_HEADER,
    GarbledFrameError,
    MbapConnection,
    _Protocol,
    _ServerProtocol,
)


class _Wire(asyncio.Transport):
    """The sending half of a connection: what was written, nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def _connected() -> tuple[MbapConnection, _Wire, BusStats]:
    stats = BusStats("test:502")
    connection = MbapConnection("test", 502, stats)
    wire = _Wire()
    connection._transport = wire  # as connect() leaves it, without a socket
    connection.current = asyncio.Protocol()
    return connection, wire, stats


def _frame(tid: int, unit: int, pdu: bytes) -> bytes:
    return MBAP_HEADER.pack(tid, 0, len(pdu) + 1, unit) + pdu


async def test_a_read_request_is_twelve_bytes_with_a_new_transaction_id() -> None:
    """MBAP header (tid, protocol 0, length 6, unit) then function, address and count."""
    connection, wire, _ = _connected()
    for expected_tid in (1, 2):
        pending = asyncio.ensure_future(connection.request(7, 4, 0x0156, 2))
        await asyncio.sleep(0)
        assert wire.written[-1] == struct.pack(">HHHBBHH", expected_tid, 0, 6, 7, 4, 0x0156, 2)
        connection.feed(_frame(expected_tid, 7, b"\x04\x04\x43\x66\x00\x00"))
        assert await pending == b"\x04\x04\x43\x66\x00\x00"


async def test_an_answer_in_pieces_is_put_together() -> None:
    """TCP may cut a frame anywhere: one byte at a time still answers the request."""
    connection, _, stats = _connected()
    pending = asyncio.ensure_future(connection.request(1, 3, 0, 1))
    await asyncio.sleep(0)
    frame = _frame(1, 1, b"\x03\x02\x00\x2a")
    for byte in frame:
        assert not pending.done()
        connection.feed(bytes([byte]))
    assert await pending == b"\x03\x02\x00\x2a"
    assert stats.bytes_received == len(frame)


async def test_late_and_foreign_answers_are_dropped_and_the_own_one_taken() -> None:
    """An answer with an old transaction id (its request timed out) or another unit's id
    does not answer this request; the right one after them in the same bytes does.
    """
    connection, _, _ = _connected()
    pending = asyncio.ensure_future(connection.request(5, 4, 0, 1))
    await asyncio.sleep(0)
    late = _frame(0, 5, b"\x04\x02\x00\x01")
    foreign = _frame(1, 6, b"\x04\x02\x00\x02")
    own = _frame(1, 5, b"\x04\x02\x00\x03")
    connection.feed(late + foreign + own[:4])
    assert not pending.done()
    connection.feed(own[4:])
    assert await pending == b"\x04\x02\x00\x03"
    assert connection.received


async def test_a_header_that_is_not_modbus_tcp_fails_the_request_at_once() -> None:
    """Another protocol id, or a length Modbus does not allow: garbled, the bytes dropped."""
    for header in (MBAP_HEADER.pack(1, 1, 3, 1), MBAP_HEADER.pack(1, 0, 1, 1)):
        connection, _, _ = _connected()
        pending = asyncio.ensure_future(connection.request(1, 4, 0, 1))
        await asyncio.sleep(0)
        connection.feed(header + b"\x04\x02\x00\x01")
        with pytest.raises(GarbledFrameError):
            await pending
        assert connection.garbled == 1


async def test_a_lost_connection_fails_the_waiting_request() -> None:
    """The peer closing the connection ends the wait as a ConnectionError, not a timeout."""
    connection, _, _ = _connected()
    pending = asyncio.ensure_future(connection.request(1, 4, 0, 1))
    await asyncio.sleep(0)
    connection.lost(None)
    with pytest.raises(ConnectionError):
        await pending
    assert not connection.connected
    with pytest.raises(ConnectionError, match="not connected"):
        await connection.request(1, 4, 0, 1)


framed = st.builds(
    _frame, st.integers(0, 3), st.integers(0, 3), st.binary(min_size=1, max_size=MAX_PDU_BYTES)
)


@settings(max_examples=300)
@given(stream=st.lists(st.one_of(st.binary(max_size=40), framed), max_size=10), data=st.data())
async def test_any_byte_stream_ends_the_request_one_way_and_keeps_the_buffer_bounded(
    stream: list[bytes], data: st.DataObject
) -> None:
    """Whatever arrives, in whatever pieces: feeding never raises, at most 260 bytes wait in
    the buffer, and the request ends with its own frame's PDU, as garbled, or still waits.
    """
    connection, _, _ = _connected()
    pending = asyncio.ensure_future(connection.request(1, 4, 0, 1))
    await asyncio.sleep(0)
    raw = b"".join(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    for start, stop in zip([0, *cuts], [*cuts, len(raw)], strict=True):
        connection.feed(raw[start:stop])
        assert len(connection._buffer) <= MBAP_HEADER.size + MAX_PDU_BYTES
    if not pending.done():
        pending.cancel()
        return
    error = pending.exception()
    if error is not None:
        assert isinstance(error, GarbledFrameError)
        return
    pdu = pending.result()
    assert _frame(1, 1, pdu) in raw  # only its own transaction and unit answer it


def _source(unit_id: int, table: RegisterTable, address: int, count: int) -> list[int]:
    if unit_id == 9:
        raise DeviceUnreachableError("unit-9", "absent")
    if address >= 1000:
        raise DeviceFaultError(f"unit-{unit_id}", 2, address)
    return [(address + i) & 0xFFFF for i in range(count)]


def _served(raw: bytes) -> tuple[list[bytes], bool]:
    """What the server wrote for ``raw`` arriving on one connection, and whether it hung up."""
    protocol = _ServerProtocol(_source)
    wire = _Wire()
    protocol.connection_made(wire)
    protocol.data_received(raw)
    return wire.written, wire.closed


def test_the_server_answers_reads_exceptions_and_silence_like_a_meter() -> None:
    """Registers and bits as read responses under the request's transaction id, an exception
    for an unknown function or a bad count or address, nothing for an absent unit.
    """
    requests = [
        _frame(1, 1, struct.pack(">BHH", 4, 10, 2)),
        _frame(2, 1, struct.pack(">BHH", 1, 0, 10)),
        _frame(3, 1, struct.pack(">BHH", 6, 0, 1)),
        _frame(4, 1, struct.pack(">BHH", 3, 0, 126)),
        _frame(5, 1, struct.pack(">BHH", 3, 1000, 1)),
        _frame(6, 9, struct.pack(">BHH", 3, 0, 1)),
    ]
    written, closed = _served(b"".join(requests))
    assert written == [
        _frame(1, 1, b"\x04\x04\x00\x0a\x00\x0b"),
        _frame(2, 1, bytes([1, 2, 0b11111110, 0b11])),  # all but address 0 set, LSB first
        _frame(3, 1, b"\x86\x01"),
        _frame(4, 1, b"\x83\x03"),
        _frame(5, 1, b"\x83\x02"),
    ]
    assert not closed


@settings(max_examples=300)
@given(stream=st.lists(st.one_of(st.binary(max_size=30), framed), max_size=8))
def test_the_server_survives_any_byte_stream(stream: list[bytes]) -> None:
    """Whatever arrives, parsing never raises; every answer is one well-formed frame whose
    length field matches, and a stream that is not Modbus TCP ends the connection.
    """
    written, _ = _served(b"".join(stream))
    for frame in written:
        _, protocol, length, _ = MBAP_HEADER.unpack_from(frame)
        assert protocol == 0
        assert len(frame) == 6 + length
        assert 2 <= length <= MAX_PDU_BYTES + 1


async def test_callbacks_of_a_connection_closed_earlier_are_ignored() -> None:
    """After a reconnect, the old connection's late bytes or close do not touch the new one."""
    connection, _, _ = _connected()
    stale = _Protocol(connection)  # made by an earlier connect, not the current connection's
    pending = asyncio.ensure_future(connection.request(1, 4, 0, 1))
    await asyncio.sleep(0)
    stale.data_received(_frame(1, 1, b"\x04\x02\x00\x07"))
    stale.connection_lost(None)
    assert not pending.done()
    assert connection.connected
    assert connection.current is not stale
    connection.feed(_frame(1, 1, b"\x04\x02\x00\x08"))
    assert await pending == b"\x04\x02\x00\x08"
