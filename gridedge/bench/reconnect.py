"""``reconnect`` section of ``gridedge bench``: how soon telemetry resumes after a broker outage.

The gateway runs in this process with simulated meters, forwarding to a local mosquitto. The
broker is stopped for ``seconds`` (pass ``--seconds 30`` for the 30 s outage the README
quotes) and started again on the same port, three times; each round reports how long after
the broker was back the forwarder reconnected and the whole backlog of the outage was
acknowledged. Default reconnect settings (``reconnect_min_s`` 1, ``reconnect_max_s`` 10).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridedge.bench.forward import _without_plaintext_warning
from gridedge.bench.load import simulated_load_config

RECONNECT_METERS = 50
RECONNECT_INTERVAL_S = 1.0
RECONNECT_ROUNDS = 3
_SETTLE_S = 12.0  # longer than the 10 s a connection needs to count as healthy


class _Broker:
    """A mosquitto on a fixed loopback port that can be stopped and started again."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
        if binary is None:
            raise RuntimeError("bench: mosquitto is not installed (Debian package mosquitto)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._conf = folder / "mosquitto.conf"
        self._conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest none\n"
        )
        self._binary = binary
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait until the port accepts connections."""
        self._proc = subprocess.Popen([self._binary, "-c", str(self._conf)])
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("bench: mosquitto did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop (SIGTERM) and wait for the process."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None


def _above(read: Callable[[], int], floor: int) -> bool:
    return read() > floor


async def _wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def _rounds(broker: _Broker, outage_s: float, folder: Path) -> list[dict[str, Any]]:
    from gridedge import daemon

    config = simulated_load_config(
        folder,
        meters=RECONNECT_METERS,
        interval_s=RECONNECT_INTERVAL_S,
        upstreams=[{"name": "bench", "host": "127.0.0.1", "port": broker.port, "tls": False}],
    )
    runtime = daemon.Runtime()
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(config, shutdown_trigger=stop.wait, runtime=runtime))
    rounds: list[dict[str, Any]] = []
    try:
        await _wait(lambda: "bench" in runtime.upstreams, 10)
        state = runtime.upstreams["bench"]
        for _ in range(RECONNECT_ROUNDS):
            await _wait(lambda: state.connected and state.backlog == 0, 30)
            await asyncio.sleep(_SETTLE_S)
            await asyncio.to_thread(broker.stop)
            await asyncio.sleep(outage_s)
            backlog = state.backlog
            await asyncio.to_thread(broker.start)
            back, connects = time.monotonic(), state.connects
            outage_seq = state.last_seq
            await _wait(functools.partial(_above, lambda: state.connects, connects), 120)
            connected = time.monotonic() - back
            await _wait(functools.partial(_above, lambda: state.cursor, outage_seq - 1), 120)
            rounds.append(
                {
                    "reconnected_s": round(connected, 2),
                    "backlog_delivered_s": round(time.monotonic() - back, 2),
                    "backlog_envelopes": backlog,
                }
            )
    finally:
        stop.set()
        await task
    return rounds


def bench_reconnect(seconds: float) -> dict[str, Any]:
    """Three outages of ``seconds``; reconnect and backlog-delivered times after each."""
    with tempfile.TemporaryDirectory(prefix="gridedge-bench-") as tmp:
        broker = _Broker(Path(tmp))
        broker.start()
        try:
            with _without_plaintext_warning():
                rounds = asyncio.run(_rounds(broker, seconds, Path(tmp)))
        finally:
            broker.stop()
    delivered = [r["backlog_delivered_s"] for r in rounds]
    return {
        "meters": RECONNECT_METERS,
        "interval_s": RECONNECT_INTERVAL_S,
        "outage_s": seconds,
        "rounds": rounds,
        "median_reconnected_s": statistics.median(r["reconnected_s"] for r in rounds),
        "median_backlog_delivered_s": statistics.median(delivered),
    }
