"""One physical Modbus bus: a connection, a lock, requests one at a time, whatever the framing.

:class:`ModbusBus` is one physical bus (a serial port, or one TCP connection to a meter or
gateway): one connection and one :class:`asyncio.Lock`, shared by every meter on it through
:class:`~gridedge.links.modbus.link.ModbusLink`. The frames themselves go through a
:class:`Transport`: gridedge's own Modbus TCP framing (:mod:`~gridedge.links.modbus.tcp`) for
``modbus-tcp`` links, pymodbus (:mod:`~gridedge.links.modbus.pymodbus_client`) for RTU on a
serial port or over TCP.

Failures reach the meter link as:

- no answer within the timeout, refused or lost connection -> ``DeviceUnreachableError``
- a Modbus exception response -> ``DeviceFaultError(code)``
- bytes arrived but no valid answer (bad CRC, another unit's id, a truncated or garbled frame,
  a response that does not fit the request: another function code or byte count) ->
  ``FrameError``

Timeouts are the bus's, per request (``asyncio.timeout``), so meters on one bus can have their
own; nothing retries or reconnects by itself, since the meter link and the poll loop decide
when to try again.
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from gridedge.drivers import RegisterTable
from gridedge.errors import (
    DeviceFaultError,
    DeviceUnreachableError,
    FrameError,
    LinkError,
)
from gridedge.links.modbus.codec import FUNCTION_CODES, check_answer
from gridedge.links.modbus.planner import BIT_TABLES
from gridedge.links.modbus.reasons import os_reason
from gridedge.links.modbus.settings import (
    ModbusLinkConfig,
    ModbusRtuLinkConfig,
    ModbusTcpLinkConfig,
)
from gridedge.links.modbus.stats import RTU_READ_REQUEST_BYTES, TCP_READ_REQUEST_BYTES, BusStats
from gridedge.links.modbus.tcp import GarbledFrameError, MbapConnection
from gridedge.log import FailureStreak, get_logger

_log = get_logger("modbus")

MIN_CONNECT_TIMEOUT_S = 1.0
"""A connection attempt may take at least this long, however short the request timeout."""

RECONNECT_DELAY_S = (0.5, 30.0)
"""Wait before the first new connection attempt after a failed one, doubling up to the second."""

DROP_AFTER_SILENT = 3
"""Unanswered requests in a row (no unit on the bus answering) after which a TCP connection is
closed and opened again: a half-open connection looks exactly like this."""


class Transport(Protocol):
    """How a bus's frames travel; requests come one at a time, under the bus's lock."""

    @property
    def connected(self) -> bool:
        """Whether the connection (or serial port) is open."""
        ...

    @property
    def received(self) -> bool:
        """Bytes arrived since the last request was sent."""
        ...

    async def open(self) -> str | None:
        """Open the connection; None once open, else why not."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...

    async def read(
        self, device: str, unit_id: int, table: RegisterTable, address: int, count: int
    ) -> list[int]:
        """Registers (or bits as 0/1); raises TimeoutError for no answer, else a LinkError."""
        ...


class MbapClient:
    """The :class:`Transport` of a ``modbus-tcp`` link: gridedge's own MBAP framing."""

    def __init__(self, host: str, port: int, stats: BusStats) -> None:
        self._name = f"{host}:{port}"
        self._connection = MbapConnection(host, port, stats)

    @property
    def connected(self) -> bool:
        """Whether the connection is open."""
        return self._connection.connected

    @property
    def received(self) -> bool:
        """Bytes arrived since the last request was sent."""
        return self._connection.received

    async def open(self) -> str | None:
        """Open the connection; None once open, else the operating system's reason."""
        try:
            await self._connection.connect()
        except OSError as exc:
            return os_reason(exc)
        return None

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    async def read(
        self, device: str, unit_id: int, table: RegisterTable, address: int, count: int
    ) -> list[int]:
        """See :meth:`Transport.read`."""
        try:
            pdu = await self._connection.request(unit_id, FUNCTION_CODES[table], address, count)
        except GarbledFrameError as exc:
            raise FrameError(device, f"unit {unit_id}: undecodable response ({exc})") from exc
        except OSError as exc:  # ConnectionError included
            raise DeviceUnreachableError(device, f"bus {self._name}: {exc}") from exc
        check_answer(device, unit_id, pdu, table, count)
        if pdu[0] & 0x80:
            raise DeviceFaultError(device, pdu[1], address)
        if table in BIT_TABLES:
            return [(pdu[2 + i // 8] >> (i % 8)) & 1 for i in range(count)]
        return list(struct.unpack_from(f">{count}H", pdu, 2))


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
        self.stats = BusStats(self._name)
        """Requests, failures, bytes and latency since the bus was opened."""
        self._client: Transport
        if isinstance(link, ModbusTcpLinkConfig):
            self._client = MbapClient(link.host, link.port, self.stats)
        else:
            # pymodbus (and pyserial) load only for RTU framing: 0.14 s and 3 MB otherwise.
            from gridedge.links.modbus.pymodbus_client import PymodbusClient

            self._client = PymodbusClient(link, self.stats)
        self._lock = asyncio.Lock()
        self._quiet_since = -math.inf
        self._retry_at = -math.inf
        self._retry_delay_s = 0.0
        self._silent = 0
        self._streak = FailureStreak(_log, "modbus.connect", bus=self._name)
        self._request_bytes = RTU_READ_REQUEST_BYTES if self._serial else TCP_READ_REQUEST_BYTES
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
                failure = await self._client.open()
        except TimeoutError:
            failure = reason
        if failure is not None:
            reason = failure
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
        self.stats.requests += 1
        self.stats.bytes_sent += self._request_bytes
        try:
            async with asyncio.timeout(timeout_s):
                values = await self._client.read(device, unit_id, table, address, count)
        except TimeoutError as exc:
            raise self._unanswered(device, unit_id, timeout_s) from exc
        except DeviceUnreachableError:
            self.close()
            raise
        except LinkError:
            self._silent = 0  # something answered, if not well
            raise
        self._silent = 0
        return values

    def _unanswered(self, device: str, unit_id: int, timeout_s: float) -> LinkError:
        if self._client.received:
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
