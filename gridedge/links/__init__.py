"""Links read meters. One link object serves one meter (one device id).

Implementations name the technology (``SimulatedLink``, ``ModbusLink``); the poll loop only
knows the :class:`Link` role. :func:`gridedge.links.factory.open_links` builds them from the
configuration.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


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


@runtime_checkable
class TimedLink(Link, Protocol):
    """A link that knows when its last read actually went out.

    On a shared bus a read may wait for the meters ahead of it; the poll loop stamps such a
    link's sample with ``read_ts`` instead of the time the read was due, so queueing never
    shifts readings in time.
    """

    @property
    def read_ts(self) -> float | None:
        """Wall-clock UTC time the last read's first request was sent (after waiting for the
        bus); None when nothing was sent.
        """
        ...
