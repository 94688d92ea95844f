"""The ``modbus`` section of ``gridedge bench``: request planning and Modbus TCP polling speed.

The server is ``gridedge emulate`` in a subprocess on loopback, so it does not share an event
loop (or, with two or more cores, a core) with the client being measured. Figures:

- ``requests_per_poll``: per driver, requests one poll sends with the planner and with one
  request per channel (plus one per scale-factor register).
- ``polls_per_s_1_meter``: one SDM630 polled back to back over one connection.
- ``polls_per_s_100_meters``: 100 SDM630 units behind one ``host:port``, polled concurrently as
  the daemon would: one connection and one lock, so requests still go one at a time.
- ``time_ratio_vs_bare_pymodbus``: gridedge's time per poll of one meter divided by that of a
  plain pymodbus client loop sending the same requests to the same server without decoding.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from gridedge.drivers import BUILTIN_DRIVERS_DIR, Driver, load_drivers
from gridedge.links.modbus.link import ModbusLink
from gridedge.links.modbus.planner import plan_reads
from gridedge.links.modbus.settings import ModbusTcpLinkConfig

BENCH_DRIVER = "eastron-sdm630"
BENCH_UNITS = 100
_TIMEOUT_S = 5.0


def requests_per_poll(drivers: dict[str, Driver]) -> dict[str, dict[str, int]]:
    """Planned and one-per-channel request counts for every driver, by id."""
    counts = {}
    for driver in sorted(drivers.values(), key=lambda d: d.id):
        plan = plan_reads(
            driver.channels, driver.max_registers_per_request, driver.max_gap_registers
        )
        factors = {(ch.table, ch.scale_factor_address) for ch in driver.channels}
        naive = len(driver.channels) + len({f for f in factors if f[1] is not None})
        counts[driver.id] = {"planned": len(plan), "naive": naive}
    return counts


@contextmanager
def emulator_subprocess(*args: str, ready_timeout_s: float = 30.0) -> Iterator[tuple[Any, str]]:
    """Run ``gridedge emulate ARGS`` (JSON logs) until the block ends.

    Yields:
        the process and the address it listens on (from its ``emulator.listening`` line).
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "gridedge", "emulate", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc, _listening_address(proc, ready_timeout_s)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _listening_address(proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    pending = seen = b""
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([proc.stdout], [], [], left)[0]:
            break
        chunk = os.read(proc.stdout.fileno(), 65536)  # unbuffered: select sees all data
        if not chunk:  # the process ended
            break
        seen += chunk
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if (address := _listening_in(line)) is not None:
                return address
    output = seen.decode(errors="replace")
    raise RuntimeError(f"gridedge emulate did not start listening:\n{output}")


def _listening_in(line: bytes) -> str | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if isinstance(event, dict) and event.get("event") == "emulator.listening":
        return str(event["address"])
    return None


async def _poll_for(links: Sequence[ModbusLink], seconds: float) -> tuple[int, float]:
    """Read every link back to back, concurrently, for ``seconds``: (polls, elapsed)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + seconds
    polls = 0

    async def run(link: ModbusLink) -> None:
        nonlocal polls
        while loop.time() < end:
            await link.read()
            polls += 1

    async with asyncio.TaskGroup() as tg:
        for link in links:
            tg.create_task(run(link))
    return polls, loop.time() - start


async def _measure(address: str, driver: Driver, seconds: float) -> dict[str, Any]:
    from gridedge.links.modbus.bus import open_modbus_bus
    from gridedge.links.modbus.pymodbus_client import bare_poll_loop

    host, _, port = address.rpartition(":")
    link = ModbusTcpLinkConfig(host=host, port=int(port), timeout_s=_TIMEOUT_S)
    share = seconds / 3
    async with open_modbus_bus(link) as bus:
        many = [
            ModbusLink(f"m{u}", driver, bus, unit_id=u, timeout_s=_TIMEOUT_S)
            for u in range(1, BENCH_UNITS + 1)
        ]
        await many[0].read()  # connect and warm up
        requests = [(r.table, r.address, r.count) for r in many[0].plan]
        bare_polls, bare_s = await bare_poll_loop(host, int(port), 1, requests, share)
        one_polls, one_s = await _poll_for(many[:1], share)
        all_polls, all_s = await _poll_for(many, share)
    return {
        "polls_per_s_1_meter": round(one_polls / one_s, 1),
        "polls_per_s_100_meters": round(all_polls / all_s, 1),
        "time_ratio_vs_bare_pymodbus": round((one_s / one_polls) / (bare_s / bare_polls), 3),
        "requests_per_poll_measured": len(requests),
    }


def bench_modbus(seconds: float) -> dict[str, Any]:
    """Request counts per driver, then Modbus TCP polling against a local emulator."""
    drivers = load_drivers([BUILTIN_DRIVERS_DIR])
    result: dict[str, Any] = {"requests_per_poll": requests_per_poll(drivers)}
    units = f"1-{BENCH_UNITS}"
    with emulator_subprocess(
        "--driver", BENCH_DRIVER, "--unit-ids", units, "--tcp", "127.0.0.1:0"
    ) as (_, address):
        result.update(asyncio.run(_measure(address, drivers[BENCH_DRIVER], seconds)))
    result["driver"] = BENCH_DRIVER
    result["server"] = "gridedge emulate in a subprocess, Modbus TCP on loopback"
    return result
