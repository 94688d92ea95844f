"""The pymodbus adapter: the only module that imports pymodbus.

Client side, :class:`ModbusBus` is one physical bus (a serial port, or one TCP connection to a
meter or gateway): one connection and one :class:`asyncio.Lock`, shared by every meter on it
through :class:`~gridedge.links.modbus.link.ModbusLink`. Server side, :func:`serve_modbus` answers
requests from a plain callback, which is how ``gridedge emulate`` serves simulated meters.

Library exceptions are translated here and nowhere else:

- no answer within the timeout, refused or lost connection -> ``DeviceUnreachableError``
- a Modbus exception response -> ``DeviceFaultError(code)``
- bytes arrived but no valid answer (bad CRC, another unit's id, a truncated or garbled frame:
  pymodbus discards those silently, so "something arrived" is tracked by a packet hook) and
  mismatched responses -> ``FrameError``

Timeouts are ours, per request (``asyncio.timeout``), not the library's per-client setting, so
meters on one bus can have their own; the library's retries and automatic reconnects are off,
since the meter link and the poll loop decide when to try again.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import ConnectionException, ModbusIOException, NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from gridedge.drivers import RegisterTable
from gridedge.errors import DeviceFaultError, DeviceUnreachableError, FrameError, LinkError
from gridedge.links.modbus.settings import (
    ModbusLinkConfig,
    ModbusRtuLinkConfig,
    RtuOverTcpLinkConfig,
    SerialEndpoint,
    TcpEndpoint,
)
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
_TABLES_BY_FUNCTION = {
    1: RegisterTable.COIL,
    2: RegisterTable.DISCRETE,
    3: RegisterTable.HOLDING,
    4: RegisterTable.INPUT,
}
_BIT_TABLES = frozenset({RegisterTable.COIL, RegisterTable.DISCRETE})


class ModbusBus:
    """One physical bus: one connection, one lock, requests one at a time.

    The connection opens on the first request and again after a failure, with a doubling wait
    between attempts (requests in the meantime fail at once). On serial buses the lock is held
    for ``frame_gap_s`` of silence before each request.

    Args:
        link: the link settings of any meter on the bus (they all agree, see ``BusCheck``).
    """

    def __init__(self, link: ModbusLinkConfig) -> None:
        self._name = link.bus
        self._link = link
        self._gap_s = link.frame_gap_s
        self._serial = isinstance(link, ModbusRtuLinkConfig)
        self._client = _make_client(link, self._trace_packet)
        self._lock = asyncio.Lock()
        self._received = False
        self._quiet_since = -math.inf
        self._retry_at = -math.inf
        self._retry_delay_s = 0.0
        self._silent = 0
        self._streak = FailureStreak(_log, "modbus.connect", bus=self._name)
        self.requests = 0
        """Requests sent on this bus."""
        self.connects = 0
        """Connections opened."""

    @property
    def name(self) -> str:
        """The bus identity (``host:port`` or the serial port)."""
        return self._name

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
            await self._connect(device, timeout_s)
            gap = self._quiet_since + self._gap_s - loop.time()
            if gap > 0:
                # Modbus RTU: a frame ends with a silent interval; sending earlier merges frames.
                await asyncio.sleep(gap)
            try:
                return await self._transact(device, unit_id, table, address, count, timeout_s)
            finally:
                self._quiet_since = loop.time()

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
                    reason = await _open_failure(self._link)
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
        self._received = False
        self.requests += 1
        call = getattr(self._client, _READ_METHODS[table])
        try:
            async with asyncio.timeout(timeout_s):
                response = await call(address, count=count, device_id=unit_id)
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
        if response.isError():
            raise DeviceFaultError(device, int(response.exception_code), address)
        return _payload(device, response, table, count)

    def _unanswered(self, device: str, unit_id: int, timeout_s: float) -> LinkError:
        if self._received:
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

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending and data:
            self._received = True
        return data


def _payload(device: str, response: Any, table: RegisterTable, count: int) -> list[int]:
    """The registers (or bits as 0/1) of a read response; bits arrive padded to whole bytes."""
    if table in _BIT_TABLES:
        bits = getattr(response, "bits", None)
        if not isinstance(bits, list) or len(bits) < count:
            raise FrameError(device, f"expected {count} bits, got {bits!r:.60}")
        return [int(bool(b)) for b in bits[:count]]
    registers = getattr(response, "registers", None)
    if not isinstance(registers, list):
        raise FrameError(device, f"expected registers, got {type(response).__name__}")
    return [int(r) for r in registers]


async def _open_failure(link: ModbusLinkConfig) -> str:
    """Why ``link`` cannot be opened, in the OS's words (pymodbus only says that it failed)."""
    try:
        if isinstance(link, ModbusRtuLinkConfig):
            fd = os.open(link.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            try:  # pyserial opens the port exclusively, with this lock
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        else:
            _, writer = await asyncio.open_connection(link.host, link.port)
            writer.close()
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, "")
        # asyncio replaces strerror with its own sentence; the errno's own text is clearer.
        text = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else str(exc)
        reason = f"{name} {text}".strip()
        if exc.errno == errno.EACCES and isinstance(link, ModbusRtuLinkConfig):
            reason += " (add the gateway's user to the 'dialout' group)"
        elif exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            reason += " (the port is in use by another program)"
        return reason
    return "the Modbus library could not open it"


def _make_client(
    link: ModbusLinkConfig, trace_packet: Callable[[bool, bytes], bytes]
) -> ModbusBaseClient:
    # No library timeouts, retries or reconnects: the bus and the poll loop handle those.
    common: dict[str, Any] = {
        "name": link.bus,
        "reconnect_delay": 0,
        "timeout": _LIBRARY_TIMEOUT_S,
        "retries": 0,
        "trace_packet": trace_packet,
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


# --- server ----------------------------------------------------------------------------------

RegisterSource = Callable[[int, RegisterTable, int, int], Sequence[int]]
"""``source(unit_id, table, address, count)`` -> registers (bits as 0/1).

It raises :class:`DeviceUnreachableError` for "no answer" (the request goes unanswered, as from
an absent or dead unit) and :class:`DeviceFaultError` for a Modbus exception response."""


class _SourceContext(ModbusServerContext):
    """A server datastore that asks a callback for every read and refuses every write."""

    def __init__(self, source: RegisterSource) -> None:
        # The base initialiser wants a device table and logs a deprecation notice; the server
        # only needs the two flags below to hand every request to this object's methods.
        self.old_simulator = True
        self.simdevices = []
        self._source = source

    async def async_getValues(  # noqa: N802 - the library's method name
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        table = _TABLES_BY_FUNCTION.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        try:
            values = self._source(device_id, table, address, count)
        except DeviceUnreachableError:
            raise NoSuchIdException(f"unit {device_id} does not answer") from None
        except DeviceFaultError as exc:
            return _exception_code(exc.code)
        if table in _BIT_TABLES:
            return [bool(v) for v in values]
        return list(values)

    async def async_setValues(  # noqa: N802 - the library's method name
        self,
        device_id: int,
        func_code: int,
        address: int,
        values: Sequence[int] | Sequence[bool],
    ) -> ExcCodes | None:
        return ExcCodes.ILLEGAL_FUNCTION  # meters are read-only here

    def device_ids(self) -> list[int]:
        return []


def _exception_code(code: int) -> ExcCodes:
    try:
        return ExcCodes(code)
    except ValueError:
        return ExcCodes.DEVICE_FAILURE


@asynccontextmanager
async def serve_modbus(
    source: RegisterSource, endpoint: TcpEndpoint | SerialEndpoint
) -> AsyncIterator[str]:
    """Answer Modbus requests from ``source`` until the block ends.

    Yields:
        where the server listens: ``host:port`` (the real port when ``endpoint.port`` is 0),
        or the serial device.

    Raises:
        LinkError: the address or device cannot be opened.
    """
    server = _make_server(_SourceContext(source), endpoint)
    where = endpoint.port if isinstance(endpoint, SerialEndpoint) else endpoint.bound
    try:
        await server.serve_forever(background=True)
    except RuntimeError as exc:
        raise LinkError(where, "cannot listen (address in use, or no such device)") from exc
    try:
        if isinstance(endpoint, TcpEndpoint):
            listener = cast(asyncio.Server, server.transport)
            host, port = listener.sockets[0].getsockname()[:2]
            where = f"{host}:{port}"
        yield where
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated


def _make_server(
    context: _SourceContext, endpoint: TcpEndpoint | SerialEndpoint
) -> ModbusTcpServer | ModbusSerialServer:
    # ignore_missing_devices: absent units stay silent, as on a real bus.
    if isinstance(endpoint, TcpEndpoint):
        return ModbusTcpServer(
            context,
            framer=FramerType.RTU if endpoint.rtu_framing else FramerType.SOCKET,
            address=(endpoint.host, endpoint.port),
            ignore_missing_devices=True,
        )
    return ModbusSerialServer(
        context,
        framer=FramerType.RTU,
        port=endpoint.port,
        baudrate=endpoint.baudrate,
        parity=endpoint.parity.value,
        stopbits=endpoint.stopbits,
        bytesize=endpoint.bytesize,
        ignore_missing_devices=True,
    )


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
