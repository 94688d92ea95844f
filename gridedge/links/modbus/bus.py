"""The client side of the pymodbus adapter (with :mod:`~gridedge.links.modbus.server`, the only
modules that import pymodbus).

:class:`ModbusBus` is one physical bus (a serial port, or one TCP connection to a meter or
gateway): one connection and one :class:`asyncio.Lock`, shared by every meter on it through
:class:`~gridedge.links.modbus.link.ModbusLink`.

Library exceptions are translated here and nowhere else:

- no answer within the timeout, refused or lost connection -> ``DeviceUnreachableError``
- a Modbus exception response -> ``DeviceFaultError(code)``
- bytes arrived but no valid answer (bad CRC, another unit's id, a truncated or garbled frame,
  a response that does not fit the request: another function code or byte count) ->
  ``FrameError``

pymodbus decodes responses inside asyncio's ``data_received``, where a decoding exception would
print a traceback and drop the connection; :class:`_ResponseGuard` wraps that callback, so a
garbled frame fails only its own request (at once, as a ``FrameError``) and the connection stays.

Timeouts are ours, per request (``asyncio.timeout``), not the library's per-client setting, so
meters on one bus can have their own; the library's retries and automatic reconnects are off,
since the meter link and the poll loop decide when to try again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from gridedge.drivers import RegisterTable
from gridedge.errors import (
    CodecError,
    DeviceFaultError,
    DeviceUnreachableError,
    FrameError,
    LinkError,
)
from gridedge.links.modbus.codec import check_read_response
from gridedge.links.modbus.planner import BIT_TABLES
from gridedge.links.modbus.reasons import open_failure
from gridedge.links.modbus.settings import (
    ModbusLinkConfig,
    ModbusRtuLinkConfig,
    RtuOverTcpLinkConfig,
)
from gridedge.links.modbus.stats import RTU_READ_REQUEST_BYTES, TCP_READ_REQUEST_BYTES, BusStats
from gridedge.log import FailureStreak, get_logger

_log = get_logger("modbus")

# pymodbus logs through the standard library; gridedge reports the translated errors itself,
# and without a handler Python would print the library's messages to stderr.
logging.getLogger("pymodbus").addHandler(logging.NullHandler())

_LIBRARY_TIMEOUT_S = 3600.0
"""pymodbus' own timeout: out of the way, since every wait is bounded here."""

MIN_CONNECT_TIMEOUT_S = 1.0
"""A connection attempt may take at least this long, however short the request timeout."""

RECONNECT_DELAY_S = (0.5, 30.0)
"""Wait before the first new connection attempt after a failed one, doubling up to the second."""

DROP_AFTER_SILENT = 3
"""Unanswered requests in a row (no unit on the bus answering) after which a TCP connection is
closed and opened again: a half-open connection looks exactly like this."""

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


class ModbusBus:
    """One physical bus: one connection, one lock, requests one at a time.

    The connection opens on the first request and again after a failure, with a doubling wait
    between attempts (requests in the meantime fail at once). On serial buses the lock is held
    for ``frame_gap_s`` of silence before each request.

    Args:
        link: the link settings of any meter on the bus (they all agree, see ``BusCheck``).
    """

    def __init__(self, link: ModbusLinkConfig) -> None:
        self._link = link
        self._name = link.bus
        self._gap_s = link.frame_gap_s
        self._serial = isinstance(link, ModbusRtuLinkConfig)
        self._client = _make_client(link)
        self._guard = _ResponseGuard(self._client)
        self._lock = asyncio.Lock()
        self._quiet_since = -math.inf
        self._retry_at = -math.inf
        self._retry_delay_s = 0.0
        self._silent = 0
        self._streak = FailureStreak(_log, "modbus.connect", bus=self._name)
        self._request_bytes = RTU_READ_REQUEST_BYTES if self._serial else TCP_READ_REQUEST_BYTES
        self.stats = BusStats(self._name)
        """Requests, failures, bytes and latency since the bus was opened."""
        self._guard.stats = self.stats
        self.connects = 0
        """Connections opened."""
        self.last_sent_ts = 0.0
        """Wall-clock UTC time the most recent request was sent (after the lock and gap)."""

    @property
    def name(self) -> str:
        """The bus identity (``host:port`` or the serial port)."""
        return self._name

    @property
    def requests(self) -> int:
        """Requests sent on this bus."""
        return self.stats.requests

    async def read(
        self,
        device: str,
        unit_id: int,
        table: RegisterTable,
        address: int,
        count: int,
        *,
        timeout_s: float,
    ) -> list[int]:
        """Read ``count`` registers (or bits, as 0/1); see ``RegisterBus.read``."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            try:
                await self._connect(device, timeout_s)
            except LinkError as exc:
                self.stats.errors[exc.kind] += 1
                raise
            gap = self._quiet_since + self._gap_s - loop.time()
            if gap > 0:
                # Modbus RTU: a frame ends with a silent interval; sending earlier merges frames.
                await asyncio.sleep(gap)
            sent = loop.time()
            self.last_sent_ts = time.time()
            try:
                return await self._transact(device, unit_id, table, address, count, timeout_s)
            except LinkError as exc:
                self.stats.errors[exc.kind] += 1
                raise
            finally:
                self._quiet_since = loop.time()
                self.stats.request_seconds.observe(self._quiet_since - sent)

    def close(self) -> None:
        """Close the connection (a later request would open it again)."""
        self._client.close()

    async def _connect(self, device: str, timeout_s: float) -> None:
        if self._client.connected:
            return
        now = asyncio.get_running_loop().time()
        if now < self._retry_at:
            raise DeviceUnreachableError(
                device,
                f"cannot connect to {self._name}; next attempt in {self._retry_at - now:.1f} s",
            )
        limit_s = max(timeout_s, MIN_CONNECT_TIMEOUT_S)
        reason = f"no connection within {limit_s:g} s"
        try:
            async with asyncio.timeout(limit_s):
                connected = bool(await self._client.connect())
                if not connected:
                    reason = await open_failure(self._link)
        except TimeoutError:
            connected = False
        if not connected:
            first, most = RECONNECT_DELAY_S
            self._retry_delay_s = min(max(2 * self._retry_delay_s, first), most)
            self._retry_at = now + self._retry_delay_s
            self._streak.failed(reason, retry_in_s=self._retry_delay_s)
            raise DeviceUnreachableError(device, f"cannot connect to {self._name}: {reason}")
        self._retry_delay_s = 0.0
        self._silent = 0
        self.connects += 1
        self._streak.succeeded()
        _log.debug("modbus.connected", bus=self._name)

    async def _transact(
        self,
        device: str,
        unit_id: int,
        table: RegisterTable,
        address: int,
        count: int,
        timeout_s: float,
    ) -> list[int]:
        self._guard.reset()
        self.stats.requests += 1
        self.stats.bytes_sent += self._request_bytes
        call = getattr(self._client, _READ_METHODS[table])
        try:
            async with asyncio.timeout(timeout_s):
                response = await call(address, count=count, device_id=unit_id)
        except _GarbledResponseError as exc:
            self._silent = 0
            raise FrameError(device, f"unit {unit_id}: undecodable response ({exc})") from exc
        except (TimeoutError, ModbusIOException) as exc:
            raise self._unanswered(device, unit_id, timeout_s) from exc
        except ConnectionException as exc:
            self.close()
            raise DeviceUnreachableError(device, f"bus {self._name}: not connected") from exc
        except ModbusException as exc:
            raise FrameError(device, f"unit {unit_id}: {exc}") from exc
        except OSError as exc:
            self.close()
            raise DeviceUnreachableError(device, f"bus {self._name}: {exc}") from exc
        self._silent = 0
        try:
            check_read_response(self._guard.pdu, table, count)
        except CodecError as exc:
            raise FrameError(device, f"unit {unit_id}: {exc}") from exc
        if response.isError():
            raise DeviceFaultError(device, int(response.exception_code), address)
        return _payload(device, response, table, count)

    def _unanswered(self, device: str, unit_id: int, timeout_s: float) -> LinkError:
        if self._guard.received:
            return FrameError(
                device,
                f"no valid answer from unit {unit_id} on {self._name} within {timeout_s} s "
                "(bytes arrived: bad CRC, another unit's id, or a truncated frame)",
            )
        self._silent += 1
        if not self._serial and self._silent >= DROP_AFTER_SILENT:
            _log.info("modbus.reconnecting", bus=self._name, unanswered=self._silent)
            self.close()
        return DeviceUnreachableError(
            device, f"no answer from unit {unit_id} on {self._name} within {timeout_s} s"
        )


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


@asynccontextmanager
async def open_modbus_bus(link: ModbusLinkConfig) -> AsyncIterator[ModbusBus]:
    """A bus for ``link``'s ``host:port`` or serial port, closed on the way out.

    Nothing is opened yet: the first request connects, so a bus that is down at start-up does
    not stop the daemon.
    """
    bus = ModbusBus(link)
    try:
        yield bus
    finally:
        bus.close()


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
