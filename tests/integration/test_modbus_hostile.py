"""A hostile Modbus TCP server next to healthy units: nothing garbled is accepted or fatal.

The server speaks MBAP and behaves per unit id: healthy, random bytes, another function code,
a bad byte count, an exception response without its code, truncated frames, silence, absurd
float values, or framed random PDUs (the fuzzer). ``python -m tests.integration.test_modbus_hostile
N`` fuzzes N frames through the real bus and prints the outcomes as JSON.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sqlite3
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import pytest

from gridedge.drivers import RegisterTable
from gridedge.errors import DeviceFaultError, DeviceUnreachableError, FrameError
from gridedge.links.modbus.bus import open_modbus_bus
from gridedge.links.modbus.settings import ModbusTcpLinkConfig
from tests.integration.daemonproc import running_daemon, samples_by_device, wait_for

pytestmark = pytest.mark.integration

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


def _image(values: tuple[float, ...]) -> bytes:
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
        good = _image(HEALTHY_VALUES)[2 * address : 2 * (address + count)]
        if behaviour is Behaviour.HEALTHY:
            return _mbap(tid, unit, bytes([fc, len(good)]) + good)
        if behaviour is Behaviour.ABSURD:
            data = _image(_absurd_values(k))[2 * address : 2 * (address + count)]
            return _mbap(tid, unit, bytes([fc, len(data)]) + data)
        if behaviour is Behaviour.RANDOM:
            return rng.randbytes(rng.randint(1, 300))
        if behaviour is Behaviour.WRONG_FUNCTION:
            return _mbap(tid, unit, bytes([(3, 23)[k % 2], len(good)]) + good)
        if behaviour is Behaviour.BAD_BYTE_COUNT:
            wrong = (len(good) - 2, len(good) + 2, len(good) - 1, 255)[k % 4]
            return _mbap(tid, unit, bytes([fc, wrong]) + good)
        if behaviour is Behaviour.EXCEPTION_NO_CODE:
            return _mbap(tid, unit, bytes([fc | 0x80]))
        if behaviour is Behaviour.TRUNCATED:
            frame = _mbap(tid, unit, bytes([fc, len(good)]) + good)
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
        return _mbap(tid, unit, pdu)


def _mbap(tid: int, unit: int, pdu: bytes) -> bytes:
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


async def test_fuzzed_frames_never_reach_asyncio_and_keep_the_connection() -> None:
    """3000 framed random PDUs: each is values or our error, no exception reaches asyncio,
    nothing invalid is accepted, and one connection carries them all."""
    report = await fuzz(3000)
    outcomes = report["outcomes"]
    assert isinstance(outcomes, dict)
    assert sum(outcomes.values()) == 3000
    assert report["exceptions_reaching_asyncio"] == 0
    assert report["accepted_but_invalid"] == 0
    assert outcomes.get("frame", 0) > 1000
    assert outcomes.get("accepted", 0) == report["well_formed_sent"]
    assert outcomes.get("accepted", 0) >= 100
    assert report["connections"] == report["server_connections"] == 1


@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour.RANDOM,
        Behaviour.WRONG_FUNCTION,
        Behaviour.BAD_BYTE_COUNT,
        Behaviour.EXCEPTION_NO_CODE,
        Behaviour.TRUNCATED,
    ],
)
async def test_each_hostile_answer_is_a_frame_error(behaviour: Behaviour) -> None:
    """Random bytes, another function code, a bad byte count, a codeless exception or a
    truncated frame: every request fails as ``frame``, never as data or a timeout."""
    server = HostileServer({1: behaviour, 2: Behaviour.HEALTHY})
    async with serving(server) as port:
        config = ModbusTcpLinkConfig(host="127.0.0.1", port=port, timeout_s=0.2)
        async with open_modbus_bus(config) as bus:
            for _ in range(8):
                with pytest.raises(FrameError):
                    await bus.read("h", 1, RegisterTable.INPUT, 0, 4, timeout_s=0.2)
                healthy = await bus.read("ok", 2, RegisterTable.INPUT, 0, 4, timeout_s=0.2)
                assert healthy == list(struct.unpack(">4H", _image(HEALTHY_VALUES)[:8]))


# --- the daemon next to a hostile bus ---------------------------------------------------------

HOSTILE_UNITS = {
    10: Behaviour.RANDOM,
    11: Behaviour.WRONG_FUNCTION,
    12: Behaviour.BAD_BYTE_COUNT,
    13: Behaviour.EXCEPTION_NO_CODE,
    14: Behaviour.TRUNCATED,
    15: Behaviour.SILENT,
    16: Behaviour.FUZZ,
}
ABSURD_UNIT = 20
HEALTHY_UNITS = (1, 2, 3)
INTERVAL_S = 0.25
RUN_S = 15.0


def _config(folder: Path, port: int) -> Path:
    drivers = folder / "drivers"
    drivers.mkdir()
    (drivers / "hostile-test.toml").write_text(DRIVER)
    meters = ""
    units = dict.fromkeys(HEALTHY_UNITS, "healthy") | {ABSURD_UNIT: "absurd"}
    units |= {u: b.value for u, b in HOSTILE_UNITS.items()}
    for unit, name in units.items():
        meters += (
            f'[[meters]]\nid = "{name}-{unit}"\ndriver = "hostile-test"\n'
            f"interval_s = {INTERVAL_S}\n"
            f'[meters.link]\ntype = "modbus-tcp"\nhost = "127.0.0.1"\nport = {port}\n'
            f"unit_id = {unit}\ntimeout_s = 0.1\n\n"
        )
    path = folder / "gridedge.toml"
    path.write_text(
        '[gateway]\nid = "gw-test"\nsite = "lab"\ndrivers_dir = "drivers"\n\n'
        '[log]\nformat = "json"\n\n[http]\nport = 0\n\n[analytics]\nenabled = true\n\n'
        f'[outbox]\npath = "outbox.sqlite3"\n\n{meters}'
    )
    return path


def _samples(db: Path) -> dict[str, list[tuple[float, dict[str, float]]]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute(
            "SELECT device, ts, body FROM envelopes WHERE kind = 'sample' ORDER BY seq"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, list[tuple[float, dict[str, float]]]] = {}
    for device, ts, body in rows:
        out.setdefault(str(device), []).append((float(ts), json.loads(body)["values"]))
    return out


def _rate_ratio(samples: list[tuple[float, dict[str, float]]]) -> float:
    """Samples stored per interval of the span they cover (1.0 = every tick)."""
    span = samples[-1][0] - samples[0][0]
    return (len(samples) - 1) * INTERVAL_S / span


def test_daemon_next_to_hostile_units_keeps_healthy_rates_and_accepts_nothing_bad(
    tmp_path: Path,
) -> None:
    """A real daemon polling 3 healthy, 1 absurd and 7 hostile units on one connection: no
    traceback, no hostile value stored, healthy units at >= 90 % of their poll rate."""
    server = HostileServer(
        dict.fromkeys(HEALTHY_UNITS, Behaviour.HEALTHY)
        | {ABSURD_UNIT: Behaviour.ABSURD}
        | HOSTILE_UNITS
    )
    db = tmp_path / "outbox.sqlite3"
    with serving_in_thread(server) as port, running_daemon(_config(tmp_path, port)) as proc:
        started = time.monotonic()
        wait_for(lambda: "healthy-1" in samples_by_device(db), 30, "first samples")
        wait_for(lambda: time.monotonic() - started >= RUN_S, RUN_S + 5, "the run")
        assert proc.poll() is None, "the daemon ended"
        proc.terminate()
        code = proc.wait(timeout=10)
        assert proc.stdout is not None
        lines = proc.stdout.read().decode().splitlines()
    assert code == 0
    not_json = [line for line in lines if not _is_json(line)]
    assert not_json == []
    assert not [line for line in lines if "Traceback" in line or "Fatal error" in line]
    samples = _samples(db)
    ratios = {f"healthy-{u}": _rate_ratio(samples[f"healthy-{u}"]) for u in HEALTHY_UNITS}
    print(json.dumps({"rate_ratio": ratios, "requests": dict(server.sent)}))
    assert min(ratios.values()) >= 0.9, ratios
    healthy = dict(zip(_names(), HEALTHY_VALUES, strict=True))
    for unit, behaviour in HOSTILE_UNITS.items():
        stored = samples.get(f"{behaviour.value}-{unit}", [])
        if behaviour is Behaviour.FUZZ:
            # A well-formed answer (random registers under the right function code and byte
            # count) is data as far as anyone can tell; nothing else may be stored.
            assert len(stored) <= server.well_formed
        else:
            assert stored == [], behaviour
    for device, rows in samples.items():
        for _, values in rows:
            assert all(math.isfinite(v) for v in values.values())
            if device.startswith("healthy"):
                assert values == healthy
    absurd = samples[f"absurd-{ABSURD_UNIT}"]
    assert len(absurd) > 10
    # The finite extremes are stored as measured, so they went through the analytics too.
    assert any(abs(v) >= 1e308 for _, values in absurd for v in values.values())
    events = [json.loads(line) for line in lines]
    first_failures: dict[str, str] = {}
    for e in events:
        if e["event"] == "poll.failed":
            first_failures.setdefault(e["device"], e["error"])
    for unit, behaviour in HOSTILE_UNITS.items():
        expected = "timeout" if behaviour is Behaviour.SILENT else "frame"
        assert first_failures[f"{behaviour.value}-{unit}"] == expected, behaviour
    assert not [e for e in events if e["event"] == "poll.internal.failed"]


def _names() -> list[str]:
    return ["voltage_l1", "current_l1", "energy_import", "active_power"]


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 120_000
    print(json.dumps(asyncio.run(fuzz(n))))
