"""Why a bus cannot be opened, in the operating system's words (pymodbus only says it failed)."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os

from gridedge.links.modbus.settings import ModbusLinkConfig, ModbusRtuLinkConfig


async def open_failure(link: ModbusLinkConfig) -> str:
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
        return os_reason(exc, serial=isinstance(link, ModbusRtuLinkConfig))
    return "the Modbus library could not open it"


def os_reason(exc: OSError, *, serial: bool = False) -> str:
    """An OSError as ``ECONNREFUSED Connection refused``, with a hint where one helps."""
    name = errno.errorcode.get(exc.errno or 0, "")
    # asyncio replaces strerror with its own sentence; the errno's own text is clearer.
    text = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else str(exc)
    reason = f"{name} {text}".strip()
    if exc.errno == errno.EACCES and serial:
        reason += " (add the gateway's user to the 'dialout' group)"
    elif exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
        reason += " (the port is in use by another program)"
    return reason
