"""Modbus TCP with real servers on loopback: a plain pymodbus server, the emulator, raw sockets."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gridedge import daemon
from gridedge.config import parse_config
from gridedge.drivers import RegisterTable, load_driver
from gridedge.errors import DeviceFaultError, DeviceUnreachableError, FrameError
from gridedge.links.modbus.bus import open_modbus_bus
from gridedge.links.modbus.emulator import Emulator, EmulatorSettings
from gridedge.links.modbus.link import ModbusLink
from gridedge.links.modbus.server import serve_modbus
from gridedge.links.modbus.settings import ModbusTcpLinkConfig, RtuOverTcpLinkConfig, TcpEndpoint
from tests.integration.modbusparts import emulator_subprocess, until
from tests.unit.links.modbus.fakes import builtin

pytestmark = pytest.mark.integration

START = 1767571200.0

# Register values written by hand (not by gridedge's codec), with the value each stands for.
TEST_DRIVER = """
[driver]
id = "test-meter"
manufacturer = "Test"
model = "Every type"
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
voltage_l1 = { address = 0, type = "float32" }                          # 0x4366 0x8000
current_l1 = { address = 2, type = "uint32", word_order = "little", scale = 0.001 }
energy_import = { address = 4, type = "float64" }                      # 0x4093 0x4A00 0 0
active_power = { address = 0, table = "holding", type = "int32" }      # 0xFFFF 0xFA24
frequency = { address = 2, table = "holding", type = "uint16", scale = 0.01 }
power_factor = { address = 3, table = "holding", type = "int16", scale_factor_address = 4 }
temperature = { address = 5, table = "holding", type = "int16", byte_order = "little" }
x_relay = { address = 0, table = "coil", type = "bool" }
x_alarm = { address = 1, table = "discrete", type = "bool" }
"""

EXPECTED = {
    "voltage_l1": 230.5,
    "current_l1": 12345 * 0.001,
    "energy_import": 1234.5,
    "active_power": -1500.0,
    "frequency": 5002 * 0.01,
    "power_factor": 0.92,
    "temperature": -12.0,
    "x_relay": 1.0,
    "x_alarm": 1.0,
}


def _plain_device(unit_id: int) -> SimDevice:
    return SimDevice(
        id=unit_id,
        simdata=(
            [SimData(0, values=[True, False], datatype=DataType.BITS)],  # coils
            [SimData(0, values=[False, True], datatype=DataType.BITS)],  # discrete inputs
            [
                SimData(
                    0,
                    # int32 -1500, 5002, 920 with factor -3, int16 -12 with its bytes swapped
                    values=[0xFFFF, 0xFA24, 5002, 920, 0xFFFD, 0xF4FF],
                    datatype=DataType.REGISTERS,
                )
            ],
            [
                SimData(
                    0,
                    values=[0x4366, 0x8000, 0x3039, 0x0000, 0x4093, 0x4A00, 0, 0],
                    datatype=DataType.REGISTERS,
                )
            ],
        ),
    )


@asynccontextmanager
async def _plain_server(unit_id: int) -> AsyncIterator[int]:
    server = ModbusTcpServer([_plain_device(unit_id)], address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    try:
        yield server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


@asynccontextmanager
async def _emulator(
    *, rtu_framing: bool = False, **settings: object
) -> AsyncIterator[tuple[Emulator, int]]:
    merged: dict[str, object] = {"driver": builtin("eastron-sdm630"), "unit_ids": (1, 2)}
    merged.update(settings)
    emulator = Emulator(EmulatorSettings(**merged), clock=lambda: START)  # type: ignore[arg-type]
    endpoint = TcpEndpoint("127.0.0.1", 0, rtu_framing=rtu_framing)
    async with serve_modbus(emulator.read, endpoint) as where:
        yield emulator, int(where.rpartition(":")[2])


@asynccontextmanager
async def _raw_server(reply: Callable[[bytes], bytes]) -> AsyncIterator[int]:
    """A TCP server that answers every chunk it receives with ``reply(chunk)``."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while data := await reader.read(256):
            writer.write(reply(data))
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


def _crc(frame: bytes) -> bytes:
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


async def test_plain_pymodbus_server_values_decode_exactly(tmp_path: Path) -> None:
    """Every type, order, scale, scale factor and bit table decodes to its exact value."""
    (tmp_path / "test-meter.toml").write_text(TEST_DRIVER)
    driver = load_driver(tmp_path / "test-meter.toml")
    async with _plain_server(7) as port:
        config = ModbusTcpLinkConfig(host="127.0.0.1", port=port, unit_id=7)
        async with open_modbus_bus(config) as bus:
            link = ModbusLink("m", driver, bus, unit_id=7, timeout_s=2.0)
            assert await link.read() == EXPECTED
            assert bus.requests == len(link.plan) == 4  # input, holding, coil, discrete


async def test_emulator_over_tcp_reads_what_it_simulates() -> None:
    """Gridedge reading the emulator gets the simulated reading, to float32 precision."""
    async with _emulator() as (emulator, port):
        config = ModbusTcpLinkConfig(host="127.0.0.1", port=port)
        async with open_modbus_bus(config) as bus:
            for unit_id in (1, 2):
                link = ModbusLink("m", builtin("eastron-sdm630"), bus, unit_id=unit_id, timeout_s=2)
                values = await link.read()
                truth = emulator.values(unit_id) or {}
                assert values.keys() == truth.keys()
                for name, value in values.items():
                    assert value == pytest.approx(truth[name], rel=1e-6)
            assert bus.connects == 1  # both units over the one connection


async def test_rtu_over_tcp_reads_the_emulator() -> None:
    """RTU framing (with CRC) through a TCP connection reads like Modbus TCP."""
    async with _emulator(rtu_framing=True) as (emulator, port):
        config = RtuOverTcpLinkConfig(host="127.0.0.1", port=port)
        async with open_modbus_bus(config) as bus:
            link = ModbusLink("m", builtin("eastron-sdm630"), bus, unit_id=2, timeout_s=2)
            values = await link.read()
    truth = emulator.values(2) or {}
    assert values["voltage_l1"] == pytest.approx(truth["voltage_l1"], rel=1e-6)


async def test_exception_unit_raises_device_fault_with_its_code() -> None:
    """A unit answering with exception 2 fails its read with code 2; its neighbour reads."""
    async with (
        _emulator(exception_unit_ids=frozenset({2}), exception_code=2) as (_, port),
        open_modbus_bus(ModbusTcpLinkConfig(host="127.0.0.1", port=port)) as bus,
    ):
        faulty = ModbusLink("m2", builtin("eastron-sdm630"), bus, unit_id=2, timeout_s=2)
        with pytest.raises(DeviceFaultError) as info:
            await faulty.read()
        assert info.value.code == 2
        healthy = ModbusLink("m1", builtin("eastron-sdm630"), bus, unit_id=1, timeout_s=2)
        assert await healthy.read()


async def test_a_silent_unit_is_unreachable_within_its_timeout() -> None:
    """A unit id nobody answers times out (per request) and the bus keeps serving others."""
    async with (
        _emulator() as (_, port),
        open_modbus_bus(ModbusTcpLinkConfig(host="127.0.0.1", port=port)) as bus,
    ):
        dead = ModbusLink("m9", builtin("eastron-sdm630"), bus, unit_id=9, timeout_s=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(DeviceUnreachableError):
            await dead.read()
        assert loop.time() - started < 5.0  # two attempts of 0.2 s, generously bounded
        live = ModbusLink("m1", builtin("eastron-sdm630"), bus, unit_id=1, timeout_s=2)
        assert await live.read()


async def test_a_read_cancelled_mid_request_frees_the_bus() -> None:
    """Cancelling a read that waits for a silent unit releases the bus lock at once."""
    async with (
        _emulator() as (_, port),
        open_modbus_bus(ModbusTcpLinkConfig(host="127.0.0.1", port=port)) as bus,
    ):
        dead = ModbusLink("m9", builtin("eastron-sdm630"), bus, unit_id=9, timeout_s=60)
        stuck = asyncio.create_task(dead.read())
        await until(lambda: bus.requests == 1, 10, "the request to unit 9")
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        live = ModbusLink("m1", builtin("eastron-sdm630"), bus, unit_id=1, timeout_s=2)
        async with asyncio.timeout(10):
            assert await live.read()


async def test_a_refused_connection_is_unreachable_and_the_bus_recovers() -> None:
    """Nothing listening: DeviceUnreachableError; once a server appears the bus reconnects."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = ModbusTcpLinkConfig(host="127.0.0.1", port=port)
    async with open_modbus_bus(config) as bus:
        link = ModbusLink("m1", builtin("eastron-sdm630"), bus, unit_id=1, timeout_s=1.0)
        with pytest.raises(DeviceUnreachableError, match="cannot connect"):
            await link.read()
        emulator = Emulator(EmulatorSettings(builtin("eastron-sdm630"), (1,)), clock=lambda: START)
        async with serve_modbus(emulator.read, TcpEndpoint("127.0.0.1", port)):
            assert await _read_when_up(link, timeout_s=10)
        assert bus.connects == 1


async def _read_when_up(link: ModbusLink, timeout_s: float) -> dict[str, float]:
    """Read until the bus has reconnected; it refuses at once during its reconnect delay."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await link.read()
        except DeviceUnreachableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_bytes_that_never_make_a_frame_are_a_frame_error() -> None:
    """A peer sending garbage instead of an answer is a FrameError at once, not a timeout."""
    async with (
        _raw_server(lambda _: b"\xde\xad\xbe\xef" * 3) as port,
        open_modbus_bus(ModbusTcpLinkConfig(host="127.0.0.1", port=port)) as bus,
    ):
        started = time.monotonic()
        with pytest.raises(FrameError, match="unit 1: undecodable response"):
            await bus.read("m", 1, RegisterTable.INPUT, 0, 2, timeout_s=5.0)
        assert time.monotonic() - started < 4.0


def _sealed(body: bytes) -> bytes:
    return body + _crc(body)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        # unit 9 answering two registers (float32 230.5) to a request for unit 1
        (_sealed(bytes([9, 4, 4, 0x43, 0x66, 0x80, 0x00])), "bytes arrived"),
        # unit 1's answer with its last CRC byte flipped
        (_sealed(bytes([1, 4, 4, 0x43, 0x66, 0x80, 0x00]))[:-1] + b"\x00", "bytes arrived"),
        # unit 1 answering one register when more were asked for
        (_sealed(bytes([1, 4, 2, 0x43, 0x66])), "byte count 2"),
    ],
    ids=["another-unit", "bad-crc", "short"],
)
async def test_rtu_answers_from_another_unit_with_a_bad_crc_or_too_short_are_frame_errors(
    frame: bytes, match: str
) -> None:
    """Each garbled kind of RTU answer is a FrameError, retried once and then given up."""
    async with (
        _raw_server(lambda _: frame) as port,
        open_modbus_bus(RtuOverTcpLinkConfig(host="127.0.0.1", port=port)) as bus,
    ):
        link = ModbusLink("m", builtin("eastron-sdm630"), bus, unit_id=1, timeout_s=0.3)
        with pytest.raises(FrameError, match=match):
            await link.read()
        assert link.errors["frame"] == 2


async def test_daemon_polls_modbus_meters_into_the_outbox(tmp_path: Path) -> None:
    """The daemon reads two emulated units over one connection and stores their samples."""
    async with _emulator() as (_, port):
        link = {"type": "modbus-tcp", "host": "127.0.0.1", "port": port, "timeout_s": 2.0}
        doc = {
            "outbox": {"path": "outbox.sqlite3"},
            "http": {"enabled": False},
            "meters": [
                {"id": "m", "driver": "eastron-sdm630", "interval_s": 0.1, "count": 2, "link": link}
            ],
        }
        config = parse_config(doc, source="t.toml", base_dir=tmp_path)
        runtime = daemon.Runtime()

        def enough_samples() -> bool:
            return bool(runtime.meters) and min(s.samples for s in runtime.meters.values()) >= 3

        async with asyncio.timeout(30):
            await daemon.run(
                config,
                shutdown_trigger=lambda: until(enough_samples, 20, "3 samples per meter"),
                runtime=runtime,
            )
    assert set(runtime.meters) == {"m-1", "m-2"}
    assert all(s.online and not s.errors for s in runtime.meters.values())


def test_emulate_process_serves_until_sigterm_and_exits_zero() -> None:
    """`gridedge emulate` answers gridedge, then stops with status 0 on SIGTERM."""
    with emulator_subprocess("--unit-ids", "3", "--tcp", "127.0.0.1:0") as (proc, address):
        host, _, port = address.rpartition(":")
        link_config = ModbusTcpLinkConfig(host=host, port=int(port), unit_id=3)

        async def read_once() -> dict[str, float]:
            async with open_modbus_bus(link_config) as bus:
                link = ModbusLink("m", builtin("eastron-sdm630"), bus, unit_id=3, timeout_s=5)
                return await link.read()

        assert len(asyncio.run(read_once())) == len(builtin("eastron-sdm630").channels)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
