"""The per-bus Modbus metrics, read from a daemon polling a real emulator process and from a
bus talking to a real pymodbus server: requests, failures by kind, bytes and latency.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gridedge import daemon
from gridedge.config import parse_config
from gridedge.drivers import BUILTIN_DRIVERS_DIR, RegisterTable, load_drivers
from gridedge.errors import DeviceFaultError, DeviceUnreachableError
from gridedge.links.modbus.bus import open_modbus_bus
from gridedge.links.modbus.emulator import image_source
from gridedge.links.modbus.planner import plan_reads
from gridedge.links.modbus.server import serve_modbus
from gridedge.links.modbus.settings import ModbusTcpLinkConfig, TcpEndpoint
from gridedge.ops.metrics import Metrics
from gridedge.ops.runtime import Runtime
from tests.integration.modbusparts import emulator_subprocess, until
from tests.integration.processes import free_port
from tests.unit.ops.fakes import parse_exposition

pytestmark = pytest.mark.integration

DRIVER = load_drivers([BUILTIN_DRIVERS_DIR])["abb-b23"]
MBAP_BYTES = 7  # Modbus TCP header before every PDU


def _scrape(runtime: Runtime) -> dict[str, float]:
    return parse_exposition(Metrics(runtime, process=False).exposition().decode())


async def test_the_daemon_exports_each_bus_requests_bytes_and_latency(tmp_path: Path) -> None:
    """Every request the daemon sent to the emulator is counted on its bus, with the exact
    bytes a Modbus TCP read request and its answer take, and one latency observation each.
    """
    with emulator_subprocess(
        "--driver", DRIVER.id, "--unit-ids", "1", "--tcp", "127.0.0.1:0", "--freeze"
    ) as (_, address):
        host, _, port = address.rpartition(":")
        link = {"type": "modbus-tcp", "host": host, "port": int(port), "timeout_s": 5.0}
        doc = {
            "outbox": {"path": "outbox.sqlite3"},
            "http": {"enabled": False},
            "analytics": {"enabled": False},
            "meters": [{"id": "m", "driver": DRIVER.id, "interval_s": 0.1, "link": link}],
        }
        config = parse_config(doc, source="t.toml", base_dir=tmp_path)
        runtime = daemon.Runtime()

        def sampled() -> bool:
            return bool(runtime.meters) and runtime.meters["m"].samples >= 3

        async with asyncio.timeout(60):
            await daemon.run(
                config, shutdown_trigger=lambda: until(sampled, 50, "3 samples"), runtime=runtime
            )
    bus = f"{host}:{port}"
    assert list(runtime.buses) == [bus]
    polls = runtime.meters["m"].polls
    plan = plan_reads(DRIVER.channels, DRIVER.max_registers_per_request, DRIVER.max_gap_registers)
    samples = _scrape(runtime)
    requests = polls * len(plan)
    assert samples[f'gridedge_modbus_requests_total{{bus="{bus}"}}'] == requests
    assert samples[f'gridedge_modbus_sent_bytes_total{{bus="{bus}"}}'] == 12 * requests
    answer_bytes = sum(MBAP_BYTES + 2 + 2 * r.count for r in plan)
    assert samples[f'gridedge_modbus_received_bytes_total{{bus="{bus}"}}'] == polls * answer_bytes
    assert samples[f'gridedge_modbus_request_duration_seconds_count{{bus="{bus}"}}'] == requests
    assert samples[f'gridedge_modbus_request_duration_seconds_bucket{{bus="{bus}",le="+Inf"}}'] == (
        requests
    )
    assert (
        0 < samples[f'gridedge_modbus_request_duration_seconds_sum{{bus="{bus}"}}'] < 5 * requests
    )
    assert not any(key.startswith("gridedge_modbus_errors_total") for key in samples)


async def test_failures_are_counted_by_kind_on_their_bus() -> None:
    """An exception response counts as ``exception`` on the server's bus (with its 9 bytes);
    a bus whose port refuses counts ``timeout`` and sends nothing.
    """
    image = {a: a * 10 for a in range(8)}
    async with serve_modbus(image_source(image), TcpEndpoint(port=0)) as where:
        host, _, port = where.rpartition(":")
        dead = ModbusTcpLinkConfig(host="127.0.0.1", port=free_port())
        async with (
            open_modbus_bus(ModbusTcpLinkConfig(host=host, port=int(port))) as bus,
            open_modbus_bus(dead) as down,
        ):
            runtime = Runtime(buses={bus.name: bus.stats, down.name: down.stats})
            for _ in range(2):
                regs = await bus.read("m", 1, RegisterTable.HOLDING, 0, 8, timeout_s=5)
                assert regs == [a * 10 for a in range(8)]
            with pytest.raises(DeviceFaultError):
                await bus.read("m", 1, RegisterTable.HOLDING, 100, 2, timeout_s=5)
            with pytest.raises(DeviceUnreachableError):
                await down.read("n", 1, RegisterTable.HOLDING, 0, 2, timeout_s=1)
    samples = _scrape(runtime)
    ok, gone = f'bus="{bus.name}"', f'bus="{down.name}"'
    assert samples[f"gridedge_modbus_requests_total{{{ok}}}"] == 3
    assert samples[f'gridedge_modbus_errors_total{{{ok},kind="exception"}}'] == 1
    assert f'gridedge_modbus_errors_total{{{ok},kind="timeout"}}' not in samples
    assert samples[f"gridedge_modbus_sent_bytes_total{{{ok}}}"] == 3 * 12
    # Two answers of 8 registers, then an exception response (function | 0x80, code).
    expected = 2 * (MBAP_BYTES + 2 + 16) + (MBAP_BYTES + 2)
    assert samples[f"gridedge_modbus_received_bytes_total{{{ok}}}"] == expected
    assert samples[f"gridedge_modbus_request_duration_seconds_count{{{ok}}}"] == 3
    assert samples[f"gridedge_modbus_requests_total{{{gone}}}"] == 0
    assert samples[f'gridedge_modbus_errors_total{{{gone},kind="timeout"}}'] == 1
    assert samples[f"gridedge_modbus_sent_bytes_total{{{gone}}}"] == 0
    assert samples[f"gridedge_modbus_request_duration_seconds_count{{{gone}}}"] == 0
