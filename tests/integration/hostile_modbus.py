"""A hostile Modbus TCP server for the tests, and a frame fuzzer through the real bus.

The server speaks MBAP and behaves per unit id: healthy, random bytes, another function code,
a bad byte count, an exception response without its code, truncated frames, silence, absurd
float values, or framed random PDUs (the fuzzer). ``python -m tests.integration.hostile_modbus
N`` fuzzes N frames through :class:`~gridedge.links.modbus.bus.ModbusBus` and prints the
outcomes as JSON.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import struct
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum

from gridedge.drivers import RegisterTable
from gridedge.errors import DeviceFaultError, DeviceUnreachableError, FrameError
from gridedge.links.modbus.bus import open_modbus_bus
from gridedge.links.modbus.settings import ModbusTcpLinkConfig

DRIVER = """
[driver]
id = "hostile-test"
manufacturer = "Test"
model = "Four channels"
phases = 1
source = "tests"

[nominal]
voltage_v = 230
frequency_hz = 50
current_a = 10

[modbus]
default_table = "input"
max_registers_per_request = 20

[channels]
voltage_l1 = { address = 0, type = "float32" }
current_l1 = { address = 2, type = "float32" }
energy_import = { address = 4, type = "float64" }
active_power = { address = 8, type = "float64" }
"""
LAYOUT = (("f", 0), ("f", 2), ("d", 4), ("d", 8))
HEALTHY_VALUES = (230.5, 4.25, 1234.5, 980.0)
REGISTERS = 12
FLOAT32_MAX = 3.4028234663852886e38
ABSURD = (1.797e308, -1.797e308, math.nan, math.inf, -math.inf)


class Behaviour(StrEnum):
    """How one unit id of the hostile server answers."""

    HEALTHY = "healthy"
    RANDOM = "random"  # random bytes, no MBAP framing
    WRONG_FUNCTION = "wrong-function"  # healthy data under fc 3 or fc 23 to an fc 4 request
    BAD_BYTE_COUNT = "bad-byte-count"
    EXCEPTION_NO_CODE = "exception-no-code"
    TRUNCATED = "truncated"  # an MBAP header promising more than is sent
    SILENT = "silent"
    ABSURD = "absurd"  # well framed, float values at the limits, NaN and inf in turn
    FUZZ = "fuzz"  # well framed random PDUs, sometimes the right answer


def image(values: tuple[float, ...]) -> bytes:
    out = bytearray(2 * REGISTERS)
    for (fmt, address), value in zip(LAYOUT, values, strict=True):
        if fmt == "f" and math.isfinite(value) and abs(value) > FLOAT32_MAX:
            value = math.copysign(FLOAT32_MAX, value)  # the float32 channels' own limit
        struct.pack_into(">" + fmt, out, 2 * address, value)
    return bytes(out)


def _absurd_values(k: int) -> tuple[float, ...]:
    """Poll ``k``: one position (or, every fifth poll, all) holds one of the absurd values."""
    bad = ABSURD[(k // len(LAYOUT)) % len(ABSURD)]
    if k % 5 == 4:
        return (bad,) * len(LAYOUT)
    return tuple(bad if i == k % len(LAYOUT) else v for i, v in enumerate(HEALTHY_VALUES))


@dataclass
class HostileServer:
    """Answers MBAP requests per unit id; counts what it sent."""

    units: dict[int, Behaviour]
    seed: int = 1
    sent: Counter[str] = field(default_factory=Counter)
    well_formed: int = 0
    last_well_formed: bool = False
    connections: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._polls: Counter[int] = Counter()
        self._handlers: dict[asyncio.Task[object], asyncio.StreamWriter] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection until the client closes it."""
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = writer
        try:
            while True:
                tid, _, length, unit = struct.unpack(">HHHB", await reader.readexactly(7))
                pdu = await reader.readexactly(length - 1)
                reply = self.answer(tid, unit, pdu)
                if reply:
                    writer.write(reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            del self._handlers[task]

    async def close_connections(self) -> None:
        """Close every open connection and wait until its handler has ended (not cancelled)."""
        for writer in self._handlers.values():
            writer.close()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)

    def answer(self, tid: int, unit: int, pdu: bytes) -> bytes:
        """The bytes sent back for one request (possibly none)."""
        behaviour = self.units.get(unit, Behaviour.SILENT)
        self.sent[behaviour.value] += 1
        fc, address, count = pdu[0], *struct.unpack(">HH", pdu[1:5])
        k = self._polls[unit]
        self._polls[unit] += 1
        rng = self._rng
        good = image(HEALTHY_VALUES)[2 * address : 2 * (address + count)]
        if behaviour is Behaviour.HEALTHY:
            return mbap(tid, unit, bytes([fc, len(good)]) + good)
        if behaviour is Behaviour.ABSURD:
            data = image(_absurd_values(k))[2 * address : 2 * (address + count)]
            return mbap(tid, unit, bytes([fc, len(data)]) + data)
        if behaviour is Behaviour.RANDOM:
            return rng.randbytes(rng.randint(1, 300))
        if behaviour is Behaviour.WRONG_FUNCTION:
            return mbap(tid, unit, bytes([(3, 23)[k % 2], len(good)]) + good)
        if behaviour is Behaviour.BAD_BYTE_COUNT:
            wrong = (len(good) - 2, len(good) + 2, len(good) - 1, 255)[k % 4]
            return mbap(tid, unit, bytes([fc, wrong]) + good)
        if behaviour is Behaviour.EXCEPTION_NO_CODE:
            return mbap(tid, unit, bytes([fc | 0x80]))
        if behaviour is Behaviour.TRUNCATED:
            frame = mbap(tid, unit, bytes([fc, len(good)]) + good)
            return frame[: rng.randint(1, len(frame) - 1)]
        if behaviour is Behaviour.FUZZ:
            return self._fuzz(tid, unit, fc, good)
        return b""

    def _fuzz(self, tid: int, unit: int, fc: int, good: bytes) -> bytes:
        rng = self._rng
        if rng.random() < 0.1:
            pdu = bytes([fc, len(good)]) + good
        else:
            code = rng.choice([fc, fc | 0x80, 3, 23, 0x83, rng.randint(0, 255)])
            body = rng.randbytes(rng.randint(0, 30))
            if body and rng.random() < 0.5:
                count = rng.choice([len(body) - 1, len(body), len(good), 0, 255])
                body = bytes([count]) + body[1:]
            pdu = bytes([code]) + body
        # Well formed (random registers included): the function code and byte count fit.
        self.last_well_formed = pdu[0] == fc and len(pdu) == 2 + len(good) == 2 + pdu[1]
        self.well_formed += self.last_well_formed
        return mbap(tid, unit, pdu)


def mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


@asynccontextmanager
async def serving(server: HostileServer) -> AsyncIterator[int]:
    """Listen on a free loopback port for the block; yields the port."""
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    try:
        yield int(listener.sockets[0].getsockname()[1])
    finally:
        listener.close()
        await server.close_connections()
        await listener.wait_closed()


@contextmanager
def serving_in_thread(server: HostileServer) -> Iterator[int]:
    """The server on its own event loop thread (for a daemon in another process)."""
    loop = asyncio.new_event_loop()
    ready: asyncio.Future[int] = loop.create_future()
    stop = asyncio.Event()

    async def main() -> None:
        async with serving(server) as port:
            ready.set_result(port)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        port = asyncio.run_coroutine_threadsafe(asyncio.wait_for(ready, 10), loop).result(15)
        yield port
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


# --- the fuzzer ------------------------------------------------------------------------------


async def fuzz(frames: int, seed: int = 1, timeout_s: float = 0.2) -> dict[str, object]:
    """Send ``frames`` requests to a fuzzing unit through the real bus; count the outcomes.

    Returns:
        outcomes by error kind (``accepted``: registers returned), well-formed answers sent,
        accepted answers that were not well formed, connections opened on either side, and
        exceptions that reached asyncio's handler.
    """
    loop = asyncio.get_running_loop()
    escaped: list[str] = []
    loop.set_exception_handler(lambda _, ctx: escaped.append(str(ctx.get("message"))))
    server = HostileServer({1: Behaviour.FUZZ}, seed=seed)
    outcomes: Counter[str] = Counter()
    accepted_invalid = 0
    async with serving(server) as port:
        config = ModbusTcpLinkConfig(host="127.0.0.1", port=port, timeout_s=timeout_s)
        async with open_modbus_bus(config) as bus:
            for _ in range(frames):
                try:
                    await bus.read("fuzz", 1, RegisterTable.INPUT, 0, 4, timeout_s=timeout_s)
                except (FrameError, DeviceFaultError, DeviceUnreachableError) as exc:
                    outcomes[exc.kind] += 1
                else:
                    outcomes["accepted"] += 1
                    accepted_invalid += not server.last_well_formed
            connects = bus.connects
    loop.set_exception_handler(None)
    return {
        "frames": frames,
        "outcomes": dict(outcomes),
        "well_formed_sent": server.well_formed,
        "accepted_but_invalid": accepted_invalid,
        "connections": connects,
        "server_connections": server.connections,
        "exceptions_reaching_asyncio": len(escaped),
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 120_000
    print(json.dumps(asyncio.run(fuzz(n))))
