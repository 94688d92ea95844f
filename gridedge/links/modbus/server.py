"""The server side of the pymodbus adapter: answer Modbus requests from a plain callback.

This is how ``gridedge emulate`` serves simulated meters. Together with
:mod:`gridedge.links.modbus.pymodbus_client` (the client side of RTU framing) it is the only
module allowed to import pymodbus.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import cast

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from gridedge.drivers import RegisterTable
from gridedge.errors import DeviceFaultError, DeviceUnreachableError, LinkError
from gridedge.links.modbus.codec import TABLES_BY_FUNCTION
from gridedge.links.modbus.planner import BIT_TABLES
from gridedge.links.modbus.settings import SerialEndpoint, TcpEndpoint
from gridedge.links.modbus.tcp import serve_mbap

__all__ = ["RegisterSource", "serve_modbus"]

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
        table = TABLES_BY_FUNCTION.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        try:
            values = self._source(device_id, table, address, count)
        except DeviceUnreachableError:
            raise NoSuchIdException(f"unit {device_id} does not answer") from None
        except DeviceFaultError as exc:
            return _exception_code(exc.code)
        if table in BIT_TABLES:
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
    if isinstance(endpoint, TcpEndpoint) and endpoint.own_framing:
        async with serve_mbap(source, endpoint.host, endpoint.port) as where:
            yield where
        return
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
