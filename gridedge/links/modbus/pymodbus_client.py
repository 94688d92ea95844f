"""The pymodbus adapter's client side (with :mod:`~gridedge.links.modbus.server`, the only
modules that import pymodbus): RTU frames on a serial port or over TCP, for
:class:`~gridedge.links.modbus.bus.ModbusBus`. Plain Modbus TCP uses gridedge's own framing
(:mod:`~gridedge.links.modbus.tcp`).

Library exceptions are translated here and nowhere else:

- no answer within the timeout -> ``TimeoutError`` (the bus decides what silence means)
- refused or lost connection -> ``DeviceUnreachableError``
- a Modbus exception response -> ``DeviceFaultError(code)``
- bytes arrived but no valid answer (bad CRC, another unit's id, a truncated or garbled frame,
  a response that does not fit the request: another function code or byte count) ->
  ``FrameError``

pymodbus decodes responses inside asyncio's ``data_received``, where a decoding exception would
print a traceback and drop the connection; :class:`_ResponseGuard` wraps that callback, so a
garbled frame fails only its own request (at once, as a ``FrameError``) and the connection stays.
The library's own timeouts, retries and automatic reconnects are off: every wait is bounded by
the caller, and the meter link and the poll loop decide when to try again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from gridedge.drivers import RegisterTable
from gridedge.errors import DeviceFaultError, DeviceUnreachableError, FrameError
from gridedge.links.modbus.codec import check_answer
from gridedge.links.modbus.planner import BIT_TABLES
from gridedge.links.modbus.reasons import open_failure
from gridedge.links.modbus.settings import (
    ModbusLinkConfig,
    ModbusRtuLinkConfig,
    RtuOverTcpLinkConfig,
)
from gridedge.links.modbus.stats import BusStats

# pymodbus logs through the standard library; gridedge reports the translated errors itself,
# and without a handler Python would print the library's messages to stderr.
logging.getLogger("pymodbus").addHandler(logging.NullHandler())

_LIBRARY_TIMEOUT_S = 3600.0
"""pymodbus' own timeout: out of the way, since every wait is bounded by the caller."""

_READ_METHODS = {
    RegisterTable.HOLDING: "read_holding_registers",
    RegisterTable.INPUT: "read_input_registers",
    RegisterTable.COIL: "read_coils",
    RegisterTable.DISCRETE: "read_discrete_inputs",
}


class _GarbledResponseError(Exception):
    """Set on pymodbus' pending response when the bytes that arrived would not decode."""


class _ResponseGuard:
    """Sits between asyncio and pymodbus' frame handling of one client.

    pymodbus decodes inside the protocol's ``data_received``; an exception there (a byte count
    past the frame, an exception response without its code, an unknown function code) would
    reach asyncio, which prints a traceback and closes the connection. Here it fails the
    pending request instead, and the buffered bytes are dropped (one request is in flight at a
    time, so they can only belong to it). The guard also notes whether any bytes arrived and
    keeps the raw PDU of the last decoded response, so it can be checked against the request.
    """

    def __init__(self, client: ModbusBaseClient) -> None:
        ctx = client.ctx
        self._ctx = ctx
        self._datagram_received = ctx.datagram_received
        self._callback_data = ctx.callback_data
        self._decode = ctx.framer.decoder.decode
        # Instance attributes shadow the methods; asyncio and pymodbus look them up on the
        # instance. Bytes are noted on arrival: pymodbus drops an overlong buffer unseen.
        ctx.datagram_received = self._on_bytes  # type: ignore[method-assign]  # the hook itself
        ctx.callback_data = self._on_data  # type: ignore[method-assign]  # the hook itself
        ctx.framer.decoder.decode = self._on_pdu  # type: ignore[method-assign]  # the hook itself
        self.received = False
        """Bytes arrived since :meth:`reset`."""
        self.pdu = b""
        """Function code and data of the last response pymodbus decoded since :meth:`reset`."""
        self.garbled = 0
        """Received buffers that pymodbus failed to decode."""
        self.stats: BusStats | None = None
        """Where arriving bytes are counted."""

    def reset(self) -> None:
        """Forget the previous request's response (call before sending)."""
        self.received = False
        self.pdu = b""

    def _on_pdu(self, frame: bytes) -> Any:
        self.pdu = bytes(frame)
        return self._decode(frame)

    def _on_bytes(self, data: bytes, addr: tuple[Any, ...] | None) -> None:
        if data:
            self.received = True
            if self.stats is not None:
                self.stats.bytes_received += len(data)
        self._datagram_received(data, addr)

    def _on_data(self, data: bytes, addr: tuple[Any, ...] | None = None) -> int:
        try:
            return int(self._callback_data(data, addr))
        except Exception as exc:
            # Any exception at all: nothing may escape into asyncio's protocol callback.
            self.garbled += 1
            future = self._ctx.response_future
            if not future.done():
                future.set_exception(_GarbledResponseError(f"{type(exc).__name__}: {exc}"))
            return len(data)


class PymodbusClient:
    """One pymodbus client (serial RTU, or RTU over TCP) behind the bus's transport calls."""

    def __init__(self, link: ModbusLinkConfig, stats: BusStats) -> None:
        self._link = link
        self._name = link.bus
        self._client = _make_client(link)
        self._guard = _ResponseGuard(self._client)
        self._guard.stats = stats

    @property
    def connected(self) -> bool:
        """Whether the connection (or serial port) is open."""
        return bool(self._client.connected)

    @property
    def received(self) -> bool:
        """Bytes arrived since the last request was sent."""
        return self._guard.received

    async def open(self) -> str | None:
        """Open the connection; None once open, else why not (bound it with a timeout)."""
        if await self._client.connect():
            return None
        return await open_failure(self._link)

    def close(self) -> None:
        """Close the connection (a later :meth:`open` opens it again)."""
        self._client.close()

    async def read(
        self, device: str, unit_id: int, table: RegisterTable, address: int, count: int
    ) -> list[int]:
        """Read ``count`` registers or bits (bound it with ``asyncio.timeout``).

        Raises:
            TimeoutError: no answer.
            LinkError: see the module docstring.
        """
        self._guard.reset()
        call = getattr(self._client, _READ_METHODS[table])
        try:
            response = await call(address, count=count, device_id=unit_id)
        except _GarbledResponseError as exc:
            raise FrameError(device, f"unit {unit_id}: undecodable response ({exc})") from exc
        except ModbusIOException as exc:
            raise TimeoutError from exc
        except ConnectionException as exc:
            raise DeviceUnreachableError(device, f"bus {self._name}: not connected") from exc
        except ModbusException as exc:
            raise FrameError(device, f"unit {unit_id}: {exc}") from exc
        except OSError as exc:
            raise DeviceUnreachableError(device, f"bus {self._name}: {exc}") from exc
        check_answer(device, unit_id, self._guard.pdu, table, count)
        if response.isError():
            raise DeviceFaultError(device, int(response.exception_code), address)
        return _payload(device, response, table, count)


def _payload(device: str, response: Any, table: RegisterTable, count: int) -> list[int]:
    """The registers (or bits as 0/1) of a read response; bits arrive padded to whole bytes."""
    if table in BIT_TABLES:
        bits = getattr(response, "bits", None)
        if not isinstance(bits, list) or len(bits) < count:
            raise FrameError(device, f"expected {count} bits, got {bits!r:.60}")
        return [int(bool(b)) for b in bits[:count]]
    registers = getattr(response, "registers", None)
    if not isinstance(registers, list):
        raise FrameError(device, f"expected registers, got {type(response).__name__}")
    return [int(r) for r in registers]


def _make_client(link: ModbusLinkConfig) -> ModbusBaseClient:
    # No library timeouts, retries or reconnects: the bus and the poll loop handle those.
    common: dict[str, Any] = {
        "name": link.bus,
        "reconnect_delay": 0,
        "timeout": _LIBRARY_TIMEOUT_S,
        "retries": 0,
    }
    if isinstance(link, ModbusRtuLinkConfig):
        return AsyncModbusSerialClient(
            link.port,
            framer=FramerType.RTU,
            baudrate=link.baudrate,
            bytesize=link.bytesize,
            parity=link.parity.value,
            stopbits=link.stopbits,
            **common,
        )
    framer = FramerType.RTU if isinstance(link, RtuOverTcpLinkConfig) else FramerType.SOCKET
    return AsyncModbusTcpClient(link.host, port=link.port, framer=framer, **common)


# --- baseline for the benchmark --------------------------------------------------------------


async def bare_poll_loop(
    host: str,
    port: int,
    unit_id: int,
    requests: Sequence[tuple[RegisterTable, int, int]],
    seconds: float,
) -> tuple[int, float]:
    """Send ``requests`` (table, address, count) back to back with a plain pymodbus client.

    The yardstick for gridedge's own overhead: no lock, no timeout, no decoding.

    Returns:
        (polls completed, seconds taken).
    """
    client = AsyncModbusTcpClient(host, port=port, retries=0, reconnect_delay=0)
    if not await client.connect():
        raise DeviceUnreachableError(f"{host}:{port}", "cannot connect")
    calls = [(getattr(client, _READ_METHODS[t]), a, c) for t, a, c in requests]
    polls, start = 0, time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            for call, address, count in calls:
                await call(address, count=count, device_id=unit_id)
            polls += 1
    finally:
        client.close()
    return polls, time.perf_counter() - start


async def bare_reads(
    host: str,
    port: int,
    requests: Sequence[tuple[int, RegisterTable, int, int]],
    timeout_s: float = 2.0,
) -> list[list[int] | int | None]:
    """Each request (unit id, table, address, count) read by a plain pymodbus client: the
    registers or bits, the exception code of an exception response, or None for no answer.

    An independent client for interoperability checks of gridedge's own server.
    """
    client = AsyncModbusTcpClient(host, port=port, retries=0, reconnect_delay=0, timeout=timeout_s)
    if not await client.connect():
        raise DeviceUnreachableError(f"{host}:{port}", "cannot connect")
    answers: list[list[int] | int | None] = []
    try:
        for unit_id, table, address, count in requests:
            call = getattr(client, _READ_METHODS[table])
            try:
                response = await call(address, count=count, device_id=unit_id)
            except ModbusIOException:
                answers.append(None)
                continue
            if response.isError():
                answers.append(int(response.exception_code))
            else:
                answers.append(_payload(f"{host}:{port}", response, table, count))
    finally:
        client.close()
    return answers
