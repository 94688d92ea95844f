"""A small asyncio TCP proxy that breaks MQTT on purpose, between the gateway and mosquitto.

It parses the MQTT fixed header in both directions (type nibble, variable-length remaining
length), so it can act per packet: hold back the CONNACK, swallow PUBACKs while PINGRESPs
still pass, or cut the connection after a number of PUBLISH packets, the way a cellular link
drops. Faults are attributes, changed while it runs; setting them back lifts the fault for
new packets and connections. Loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from tests.integration.processes import free_port

CONNACK, PUBLISH, PUBACK, PINGREQ, PINGRESP = 2, 3, 4, 12, 13
_CUT_GRACE_S = 2.0  # how long a cut waits for the PUBACKs of what it let through


async def read_packet(reader: asyncio.StreamReader) -> bytes:
    """One whole MQTT packet (fixed header included).

    Raises:
        asyncio.IncompleteReadError: the stream ended.
        ValueError: the remaining length is malformed (more than four bytes).
    """
    first = await reader.readexactly(1)
    header = bytearray(first)
    length, shift = 0, 0
    for _ in range(4):
        byte = (await reader.readexactly(1))[0]
        header.append(byte)
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    else:
        raise ValueError("malformed remaining length")
    return bytes(header) + await reader.readexactly(length)


def packet_type(packet: bytes) -> int:
    """The MQTT control packet type of a packet."""
    return packet[0] >> 4


@dataclass
class _Link:
    """One proxied connection and what has crossed it."""

    publishes: int = 0  # PUBLISH packets forwarded to the broker
    pubacks: int = 0  # PUBACK packets the broker sent
    cutting: bool = False
    acked: asyncio.Event = field(default_factory=asyncio.Event)


class FaultProxy:
    """Listens on a free loopback port and forwards to ``127.0.0.1:target_port``.

    Attributes:
        connack_delay_s: hold each CONNACK this long before passing it on (0: none).
        swallow_pubacks: drop every PUBACK after the first of each connection (the first
            answers the gateway's status message), while PINGRESPs still pass.
        cut_every: after this many PUBLISH packets on one connection, the next is not
            forwarded and, once the PUBACKs of those let through have come back (bounded),
            the connection is closed; None: never.
        connections: client connections accepted.
        cuts: connections closed by ``cut_every``.
        swallowed: PUBACKs dropped.
        pingresps: PINGRESPs passed on.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.connack_delay_s = 0.0
        self.swallow_pubacks = False
        self.cut_every: int | None = None
        self.connections = 0
        self.cuts = 0
        self.swallowed = 0
        self.pingresps = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            self._tasks.discard(task)
            return
        link = _Link()
        try:
            async with asyncio.TaskGroup() as tg:
                up = tg.create_task(self._upstream(link, client_r, broker_w))
                down = tg.create_task(self._downstream(link, broker_r, client_w))
                done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
                for other in {up, down} - done:
                    other.cancel()
        except* (OSError, asyncio.IncompleteReadError, ValueError):
            pass  # one side went away: the connection is over
        finally:
            for writer in (client_w, broker_w):
                writer.close()
            self._tasks.discard(task)

    async def _upstream(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Client to broker: count PUBLISH packets and cut after ``cut_every``."""
        while True:
            packet = await read_packet(reader)
            if packet_type(packet) == PUBLISH:
                if self.cut_every is not None and link.publishes >= self.cut_every:
                    link.cutting = True
                    if link.pubacks >= link.publishes:
                        link.acked.set()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(_CUT_GRACE_S):
                            await link.acked.wait()
                    self.cuts += 1
                    return
                link.publishes += 1
            writer.write(packet)
            await writer.drain()

    async def _downstream(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Broker to client: delay CONNACK, swallow PUBACKs, note what passes."""
        while True:
            packet = await read_packet(reader)
            kind = packet_type(packet)
            if kind == CONNACK and self.connack_delay_s > 0:
                await asyncio.sleep(self.connack_delay_s)  # the fault itself: a slow broker
            elif kind == PUBACK:
                link.pubacks += 1
                if self.swallow_pubacks and link.pubacks > 1:
                    self.swallowed += 1
                    continue
            elif kind == PINGRESP:
                self.pingresps += 1
            writer.write(packet)
            await writer.drain()
            if link.cutting and link.pubacks >= link.publishes:
                link.acked.set()
