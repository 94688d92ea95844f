"""Modbus RTU over a real serial line: a socat pty pair with the emulator process on one end."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gridedge import daemon
from gridedge.config import parse_config
from tests.integration.modbusparts import emulator_subprocess, serial_pair, until

pytestmark = pytest.mark.integration

BAUD = "115200"
INTERVAL_S = 0.2
WINDOW_S = 4.0


def _meter(meter_id: str, port: str, unit_id: int) -> dict[str, Any]:
    link = {
        "type": "modbus-rtu",
        "port": port,
        "baudrate": int(BAUD),
        "unit_id": unit_id,
        "timeout_s": 0.15,
    }
    return {
        "id": meter_id,
        "driver": "eastron-sdm630",
        "interval_s": INTERVAL_S,
        "offline_after": 2,
        "max_backoff_s": 1.0,
        "link": link,
    }


async def test_live_meters_keep_their_poll_rate_beside_a_dead_unit(tmp_path: Path) -> None:
    """Two answering units on one bus keep most of their samples while a third unit id,
    which never answers, goes offline and is backed off.
    """
    with (
        serial_pair() as (emulator_end, gateway_end),
        emulator_subprocess("--serial", emulator_end, "--baud", BAUD, "--unit-ids", "1-2"),
    ):
        doc = {
            "outbox": {"path": "outbox.sqlite3"},
            "http": {"enabled": False},
            "meters": [
                _meter("live-1", gateway_end, 1),
                _meter("live-2", gateway_end, 2),
                _meter("dead", gateway_end, 3),
            ],
        }
        config = parse_config(doc, source="t.toml", base_dir=tmp_path)
        runtime = daemon.Runtime()
        loop = asyncio.get_running_loop()
        start = loop.time()

        def window_over() -> bool:
            dead = runtime.meters.get("dead")
            return loop.time() - start >= WINDOW_S and dead is not None and not dead.online

        async with asyncio.timeout(WINDOW_S + 20):
            await daemon.run(
                config,
                shutdown_trigger=lambda: until(window_over, WINDOW_S + 15, "the window"),
                runtime=runtime,
            )
        elapsed = loop.time() - start
    expected = elapsed / INTERVAL_S
    for name in ("live-1", "live-2"):
        state = runtime.meters[name]
        assert state.online
        assert state.samples >= 0.5 * expected, (name, state.samples, expected)
    dead = runtime.meters["dead"]
    assert not dead.online
    assert dead.errors["timeout"] >= 2
    assert dead.polls < 0.5 * expected  # backed off, not polled at the interval


def test_scan_finds_the_units_on_a_serial_bus_and_their_driver() -> None:
    """`gridedge scan` over RTU lists units 1 and 2 as SDM630s and not the absent unit 3."""
    with (
        serial_pair() as (emulator_end, scanner_end),
        emulator_subprocess("--serial", emulator_end, "--baud", BAUD, "--unit-ids", "1-2"),
    ):
        args = ["scan", "--serial", scanner_end, "--baud", BAUD, "--unit-ids", "1-3"]
        done = subprocess.run(
            [sys.executable, "-m", "gridedge", *args, "--timeout-s", "0.2"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["unit 1", "unit 2"]
    assert all("driver eastron-sdm630 " in line for line in lines)
