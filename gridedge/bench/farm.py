"""``farm`` section of ``gridedge bench``: the daemon as a process, polling a farm of meters.

N emulated meters (``gridedge emulate``, 10 float32 channels each) answer over K Modbus TCP
connections, one emulator process per connection; the gateway runs as ``gridedge run`` in its
own process and forwards to a local mosquitto, where this process subscribes. The run is
repeated with analytics off and on. Figures per run:

- ``cpu_s_per_1k_values``: the daemon's CPU seconds (``/proc``) per 1,000 channel values
  delivered over the measured window; ``kernel_share_of_cpu``: the part spent in the kernel
  (system calls; on loopback the kernel also delivers what the daemon sends);
- ``delivered_ratio``: samples read in the window and received by the subscriber over the
  samples the schedule asked for (N per interval); ``duplicates``: seqs received twice;
- ``p50_latency_ms`` / ``p99_latency_ms``: from a reading's own timestamp to its arrival;
- ``peak_rss_mb``: the daemon's peak resident memory (``VmHWM``);
- ``farm_cpu_us_per_request``: the emulators' CPU per Modbus request they served, a canary
  for the speed of the machine (and of the emulator) rather than of the gateway.

``--headroom`` raises N by half each run (analytics on) until fewer than 99 % arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gridedge.bench.forward import process_cpu_s
from gridedge.bench.mosquitto import running_mosquitto

FARM_METERS = 200
FARM_CONNECTIONS = 4
FARM_SECONDS = 30.0
FARM_INTERVAL_S = 1.0
WARMUP_S = 5.0
TAIL_S = 3.0  # what was read before the window closed may still be on its way
_CHANNELS = (
    "voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2", "current_l3",
    "active_power", "power_factor", "frequency", "energy_import",
)  # fmt: skip
_DRIVER = "bench-farm-10"


@dataclass(frozen=True, slots=True)
class FarmRun:
    """What one run is asked to do."""

    meters: int
    connections: int
    seconds: float
    analytics: bool
    engine: str = "pymodbus"
    """The emulators' Modbus TCP server: ``pymodbus`` or ``gridedge`` (its own framing)."""
    batch_scope: str = "device"
    """The upstream's ``batch_scope``: ``device`` or ``gateway``."""


def _driver_toml() -> str:
    lines = [
        "[driver]",
        f'id = "{_DRIVER}"',
        'manufacturer = "gridedge"',
        'model = "bench meter, 10 float32 channels"',
        "phases = 3",
        'source = "gridedge bench"',
        "[nominal]",
        "voltage_v = 230",
        "frequency_hz = 50",
        "current_a = 100",
        "[modbus]",
        'default_table = "input"',
        "[channels]",
    ]
    lines += [f'{n} = {{ address = {2 * i}, type = "float32" }}' for i, n in enumerate(_CHANNELS)]
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"bench: {what} did not start")
        time.sleep(0.05)


def _gridedge(*args: str) -> list[str]:
    return [sys.executable, "-m", "gridedge", *args]


@contextlib.contextmanager
def _emulators(folder: Path, run: FarmRun) -> Iterator[list[tuple[int, int, int]]]:
    """One emulator process per connection; yields (port, pid, units) of each."""
    procs: list[subprocess.Popen[bytes]] = []
    farm: list[tuple[int, int, int]] = []
    try:
        for k in range(run.connections):
            units = run.meters // run.connections + (1 if k < run.meters % run.connections else 0)
            port = _free_port()
            proc = subprocess.Popen(
                _gridedge(
                    "emulate",
                    "--driver",
                    _DRIVER,
                    "--dir",
                    str(folder / "drivers"),
                    "--unit-ids",
                    f"1-{units}",
                    "--tcp",
                    f"127.0.0.1:{port}",
                    "--seed",
                    str(1000 * k),
                    "--engine",
                    run.engine,
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(proc)
            _wait_port(port, proc, "gridedge emulate")
            farm.append((port, proc.pid, units))
        yield farm
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


def _config_toml(folder: Path, run: FarmRun, broker: int, farm: list[tuple[int, int, int]]) -> str:
    text = (
        f'[gateway]\nid = "farm"\nsite = "bench"\ndrivers_dir = "{folder / "drivers"}"\n'
        '[log]\nlevel = "error"\nformat = "json"\n'
        f'[outbox]\npath = "{folder / "outbox.sqlite3"}"\n'
        "[http]\nenabled = false\n"
        f"[analytics]\nenabled = {'true' if run.analytics else 'false'}\n"
        f'[[upstreams]]\nname = "farm"\nhost = "127.0.0.1"\nport = {broker}\ntls = false\n'
        f'batch_scope = "{run.batch_scope}"\n'
    )
    for k, (port, _, units) in enumerate(farm):
        text += (
            f'[[meters]]\nid = "c{k}"\ndriver = "{_DRIVER}"\ncount = {units}\n'
            f"interval_s = {FARM_INTERVAL_S}\n"
            f'[meters.link]\ntype = "modbus-tcp"\nhost = "127.0.0.1"\nport = {port}\n'
            "unit_id = 1\n"
        )
    return text


class _Received:
    """What the subscriber got: seqs (for duplicates) and each sample's ts and arrival."""

    def __init__(self) -> None:
        self.seqs: Counter[int] = Counter()
        self.samples: list[tuple[float, float]] = []

    def on_message(self, topic: str, payload: bytes) -> None:
        from gridedge.forward.payload import unpack

        if not topic.endswith(("/sample", "/batch")):
            return
        now = time.time()
        for entry in unpack(payload):
            if entry.get("kind") != "sample":
                continue
            self.seqs[int(entry["seq"])] += 1
            ts = datetime.fromisoformat(str(entry["ts"]).replace("Z", "+00:00")).timestamp()
            self.samples.append((ts, now))


def _sys_cpu_s(pid: int) -> float:
    """System (kernel) CPU seconds of a process: on loopback, much of it is TCP delivery."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[12]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _start_daemon(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _gridedge("run", "-c", str(config)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _peak_rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


async def _measure(run: FarmRun, folder: Path) -> dict[str, Any]:
    from gridedge.forward.mqtt import open_mqtt
    from gridedge.forward.settings import UpstreamConfig

    with running_mosquitto(folder) as (broker, _), _emulators(folder, run) as farm:
        (folder / "gridedge.toml").write_text(_config_toml(folder, run, broker, farm))
        received = _Received()
        sub = UpstreamConfig("farm-sub", "127.0.0.1", broker, tls=False)
        async with open_mqtt(
            sub, client_id="farm-sub", status_topic="bench/farm-sub/status", password=None
        ) as subscriber:
            subscriber.subscribe(["gridedge/#"], received.on_message)
            daemon = await asyncio.to_thread(_start_daemon, folder / "gridedge.toml")
            try:
                await asyncio.sleep(WARMUP_S)
                if daemon.poll() is not None:
                    raise RuntimeError("bench: gridedge run exited during the warm-up")
                farm_cpu0 = [process_cpu_s(pid) or 0.0 for _, pid, _ in farm]
                cpu0, t0 = process_cpu_s(daemon.pid) or 0.0, time.time()
                sys0 = _sys_cpu_s(daemon.pid)
                await asyncio.sleep(run.seconds)
                cpu1, t1 = process_cpu_s(daemon.pid) or 0.0, time.time()
                sys1 = _sys_cpu_s(daemon.pid)
                farm_cpu = sum(
                    (process_cpu_s(pid) or 0.0) - c
                    for (_, pid, _), c in zip(farm, farm_cpu0, strict=True)
                )
                await asyncio.sleep(TAIL_S)
                rss = _peak_rss_mb(daemon.pid)
            finally:
                daemon.terminate()
                await asyncio.to_thread(daemon.wait, 20)
    in_window = [(ts, at) for ts, at in received.samples if t0 <= ts < t1]
    expected = run.meters * (t1 - t0) / FARM_INTERVAL_S
    values = len(in_window) * len(_CHANNELS)
    latencies = sorted(at - ts for ts, at in in_window)
    return {
        "meters": run.meters,
        "connections": run.connections,
        "analytics": run.analytics,
        "farm_engine": run.engine,
        "batch_scope": run.batch_scope,
        "seconds": round(t1 - t0, 1),
        "cpu_s_per_1k_values": round((cpu1 - cpu0) / values * 1000, 5) if values else None,
        "kernel_share_of_cpu": round((sys1 - sys0) / (cpu1 - cpu0), 2) if cpu1 > cpu0 else None,
        "delivered_ratio": round(len(in_window) / expected, 4),
        "duplicates": sum(n - 1 for n in received.seqs.values() if n > 1),
        "p50_latency_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_latency_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 1)
        if latencies
        else None,
        "peak_rss_mb": rss,
        # One read of this driver is one request (20 registers in one block).
        "farm_cpu_us_per_request": round(farm_cpu / len(in_window) * 1e6, 1) if in_window else None,
    }


def _run(run: FarmRun) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gridedge-farm-") as tmp:
        folder = Path(tmp)
        (folder / "drivers").mkdir()
        (folder / "drivers" / f"{_DRIVER}.toml").write_text(_driver_toml())
        return asyncio.run(_measure(run, folder))


def bench_farm(
    seconds: float | None = None,
    *,
    meters: int = FARM_METERS,
    connections: int = FARM_CONNECTIONS,
    headroom: bool = False,
    engine: str = "pymodbus",
    batch_scope: str = "device",
) -> dict[str, Any]:
    """Analytics off, then on (or, with ``headroom``, growing farms until delivery < 99 %);
    ``engine`` is the emulators' server (``gridedge``: about half the CPU per request),
    ``batch_scope`` the upstream's.
    """
    length = FARM_SECONDS if seconds is None else seconds
    if connections < 1 or meters < connections or meters > 247 * connections:
        raise ValueError("bench farm: expected 1 <= connections <= meters <= 247 * connections")
    cpus = os.cpu_count()
    if not headroom:
        return {
            "cpus": cpus,
            "analytics_off": _run(FarmRun(meters, connections, length, False, engine, batch_scope)),
            "analytics_on": _run(FarmRun(meters, connections, length, True, engine, batch_scope)),
        }
    runs: list[dict[str, Any]] = []
    n, most = meters, 247 * connections
    while True:
        result = _run(FarmRun(n, connections, length, True, engine, batch_scope))
        runs.append(result)
        if result["delivered_ratio"] < 0.99 or n >= most:
            break
        n = min(int(n * 1.5), most)
    kept = [r["meters"] for r in runs if r["delivered_ratio"] >= 0.99]
    return {
        "cpus": cpus,
        "runs": runs,
        "headroom_meters": max(kept, default=None),
        # Every farm kept up: the connections' 247 unit ids, not the gateway, set the limit.
        "limited_by": "delivery" if len(kept) < len(runs) else "unit ids per connection",
    }
