"""Links read meters. One link object serves one meter (one device id).

Implementations name the technology (``SimulatedLink``, ``ModbusLink``); the poll loop only
knows the :class:`Link` role. :func:`gridedge.links.factory.open_links` builds them from the
configuration.
"""

from __future__ import annotations

from typing import Protocol


class Link(Protocol):
    """Reads the current channel values of one meter."""

    @property
    def device(self) -> str:
        """The meter's device id (as configured)."""
        ...

    async def read(self) -> dict[str, float]:
        """Read every channel the meter's driver defines.

        Returns:
            canonical channel name -> value in the canonical unit. Channels that could not be
            read or decoded are left out (the poll loop marks the sample partial).

        Raises:
            LinkError: a subclass saying why nothing could be read (timeout, Modbus exception,
                garbled frame).
        """
        ...
