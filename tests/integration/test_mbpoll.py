"""Interoperability: mbpoll (libmodbus, an independent implementation) reads the emulator and
gets the registers and values gridedge gets.
"""

from __future__ import annotations

import asyncio
import re
import subprocess

import pytest

from gridedge.drivers import DataType
from gridedge.links.modbus.bus import open_modbus_bus
from gridedge.links.modbus.link import ModbusLink
from gridedge.links.modbus.planner import ReadRequest, plan_reads
from gridedge.links.modbus.pymodbus_client import bare_reads
from gridedge.links.modbus.settings import (
    ModbusLinkConfig,
    ModbusRtuLinkConfig,
    ModbusTcpLinkConfig,
)
from tests.integration.modbusparts import emulator_subprocess, require, serial_pair
from tests.unit.links.modbus.fakes import builtin

pytestmark = pytest.mark.integration

DRIVER = builtin("eastron-sdm630")
_VALUE = re.compile(r"^\[(\d+)\]:\s+(\S+)\s*$", re.MULTILINE)


def _mbpoll(target: list[str], request: ReadRequest, kind: str) -> dict[int, str]:
    """Read ``request`` with mbpoll as 16-bit hex (``3:hex``) or big-endian floats (``3:float``);
    returns the printed value by protocol address.
    """
    count = request.count if kind == "3:hex" else request.count // 2
    args = ["-a", "1", "-0", "-r", str(request.address), "-c", str(count), "-t", kind, "-1"]
    if kind == "3:float":
        args.append("-B")
    done = subprocess.run(
        [require("mbpoll"), *args, *target],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {int(ref): value for ref, value in _VALUE.findall(done.stdout)}


async def _gridedge_reads(
    link_config: ModbusLinkConfig,
) -> tuple[list[list[int]], dict[str, float]]:
    """The raw registers of every planned request, and the decoded values, read by gridedge."""
    async with open_modbus_bus(link_config) as bus:
        link = ModbusLink("m", DRIVER, bus, unit_id=1, timeout_s=5.0)
        raw = [
            await bus.read("m", 1, r.table, r.address, r.count, timeout_s=5.0) for r in link.plan
        ]
        return raw, await link.read()


def _compare(target: list[str], raw: list[list[int]], values: dict[str, float]) -> None:
    plan = plan_reads(DRIVER.channels, DRIVER.max_registers_per_request, DRIVER.max_gap_registers)
    assert len(values) == len(DRIVER.channels)
    for request, registers in zip(plan, raw, strict=True):
        words = _mbpoll(target, request, "3:hex")
        assert [int(words[request.address + i], 16) for i in range(request.count)] == registers
        floats = _mbpoll(target, request, "3:float")
        for ch in request.channels:
            assert ch.type is DataType.FLOAT32
            assert floats[ch.address] == f"{values[ch.name]:g}", ch.name


@pytest.mark.parametrize("engine", ["pymodbus", "gridedge"])
def test_mbpoll_reads_the_emulator_over_tcp_as_gridedge_does(engine: str) -> None:
    """Every planned block of an SDM630 reads the same raw registers, and every channel the
    same value (as mbpoll prints it, %g), through mbpoll and through gridedge, whichever
    server engine the emulator runs: two independent clients agree with each server.
    """
    require("mbpoll")
    with emulator_subprocess(
        "--unit-ids", "1", "--tcp", "127.0.0.1:0", "--freeze", "--engine", engine
    ) as (_, address):
        host, _, port = address.rpartition(":")
        link_config = ModbusTcpLinkConfig(host=host, port=int(port), unit_id=1)
        raw, values = asyncio.run(_gridedge_reads(link_config))
        _compare(["-m", "tcp", "-p", port, host], raw, values)


def test_a_pymodbus_client_reads_the_own_engine_as_gridedge_does() -> None:
    """The pymodbus client reads every planned block of the gridedge engine's emulator with the
    registers gridedge's client gets; an absent unit stays silent and a read past the map is
    an exception response (illegal data address), as from the pymodbus server.
    """
    with emulator_subprocess(
        "--unit-ids", "1", "--tcp", "127.0.0.1:0", "--freeze", "--engine", "gridedge"
    ) as (_, address):
        host, _, port = address.rpartition(":")
        link_config = ModbusTcpLinkConfig(host=host, port=int(port), unit_id=1)
        raw, _ = asyncio.run(_gridedge_reads(link_config))
        plan = plan_reads(
            DRIVER.channels, DRIVER.max_registers_per_request, DRIVER.max_gap_registers
        )
        requests = [(1, r.table, r.address, r.count) for r in plan]
        probes = [(9, plan[0].table, plan[0].address, 2), (1, plan[0].table, 60_000, 2)]
        answers = asyncio.run(bare_reads(host, int(port), requests + probes, timeout_s=1.0))
        assert answers[: len(plan)] == raw
        assert answers[len(plan) :] == [None, 2]  # silent absent unit; illegal data address


def test_mbpoll_reads_the_emulator_over_rtu_as_gridedge_does() -> None:
    """The same agreement over Modbus RTU on a socat serial pair."""
    require("mbpoll")
    with (
        serial_pair() as (emulator_end, client_end),
        emulator_subprocess(
            "--unit-ids", "1", "--serial", emulator_end, "--baud", "38400", "--freeze"
        ),
    ):
        link_config = ModbusRtuLinkConfig(port=client_end, baudrate=38400)
        raw, values = asyncio.run(_gridedge_reads(link_config))
        target = ["-m", "rtu", "-b", "38400", "-P", "none", "-s", "1", "-d", "8", client_end]
        _compare(target, raw, values)
