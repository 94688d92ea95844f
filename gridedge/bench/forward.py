"""``forward`` and ``drain`` sections of ``gridedge bench``: the outbox to a local mosquitto.

Both start their own mosquitto on an ephemeral loopback port and publish to it over plain TCP
(TLS would measure the cipher, not gridedge) at QoS 1, with no subscriber attached. The broker's
CPU time is reported apart from the gateway's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gridedge.bench.load import simulated_load_config
from gridedge.bench.mosquitto import running_mosquitto
from gridedge.log import LogFormat, LogLevel, configure
from gridedge.model import Envelope, Sample
from gridedge.outbox.settings import OutboxConfig

FORWARD_METERS = 200
FORWARD_INTERVAL_S = 0.02
"""As in the ``pipeline`` section: more samples offered than one core takes."""
DRAIN_BACKLOG = 1_000_000
DRAIN_DEVICES = 100
_CHANNELS = (
    "voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2", "current_l3",
    "active_power", "power_factor", "frequency", "energy_import",
)  # fmt: skip
_UPSTREAM = {"name": "bench", "host": "127.0.0.1", "tls": False, "drain_rate": 0, "window": 64}


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux), None where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_forward(seconds: float) -> dict[str, Any]:
    """Simulated meters -> poll loops -> outbox -> forwarder -> mosquitto (QoS 1), analytics off."""
    from gridedge import daemon
    from gridedge.forward.state import UpstreamState

    with (
        tempfile.TemporaryDirectory(prefix="gridedge-bench-") as tmp,
        running_mosquitto(Path(tmp)) as (
            port,
            pid,
        ),
    ):
        config = simulated_load_config(
            Path(tmp),
            meters=FORWARD_METERS,
            interval_s=FORWARD_INTERVAL_S,
            upstreams=[{**_UPSTREAM, "port": port}],
        )
        runtime = daemon.Runtime()
        broker0 = process_cpu_s(pid)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        with _without_plaintext_warning():
            asyncio.run(
                daemon.run(config, shutdown_trigger=lambda: asyncio.sleep(seconds), runtime=runtime)
            )
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        broker1 = process_cpu_s(pid)
    state = runtime.upstreams["bench"]
    assert isinstance(state, UpstreamState)
    polled = sum(s.values for s in runtime.meters.values())
    samples = sum(s.samples for s in runtime.meters.values())
    per_sample = polled / samples if samples else 0.0
    forwarded = state.envelopes_acked * per_sample
    return {
        "meters": FORWARD_METERS,
        "channels_per_sample": round(per_sample, 1),
        "seconds": round(wall, 2),
        "channel_values_per_s": round(forwarded / wall),
        "samples_per_s": round(state.envelopes_acked / wall),
        "cpu_s_per_1k_values": round(cpu / forwarded * 1000, 5) if forwarded else None,
        "polled_values_per_s": round(polled / wall),
        "messages_per_s": round(state.acked / wall),
        "backlog_at_end": state.backlog,
        "broker_cpu_s": _delta(broker0, broker1),
        "transport": "tcp (loopback, no TLS)",
    }


@contextlib.contextmanager
def _without_plaintext_warning() -> Iterator[None]:
    """Log errors only while the section runs: its plain TCP is deliberate, and ``gridedge
    bench`` (which logs warnings as JSON on stdout) must print nothing but its result.
    """
    configure(LogLevel.ERROR, LogFormat.JSON)
    try:
        yield
    finally:
        configure(LogLevel.WARNING, LogFormat.JSON)


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else round(after - before, 2)


async def _build_backlog(config: OutboxConfig, samples: int) -> None:
    from gridedge.outbox.store import open_outbox

    now = time.time() - samples / 1000  # one sample per ms, ending now: none expires
    values = {name: 230.0 + i for i, name in enumerate(_CHANNELS)}
    async with open_outbox(config, upstreams=["bench"]) as outbox:
        for start in range(0, samples, 5000):
            await outbox.append(
                [
                    Envelope.of_sample(
                        Sample(f"dev-{i % DRAIN_DEVICES:03d}", now + i / 1000, values)
                    )
                    for i in range(start, min(samples, start + 5000))
                ]
            )


async def _drain(config: OutboxConfig, port: int, total: int) -> tuple[float, float, int]:
    """Forward the backlog; (wall seconds, CPU seconds, messages) until the cursor is at the end."""
    from gridedge.forward.forwarder import Forwarder
    from gridedge.forward.payload import Identity
    from gridedge.forward.settings import UpstreamConfig
    from gridedge.forward.state import UpstreamState
    from gridedge.outbox.store import open_outbox

    upstream = UpstreamConfig(
        "bench", "127.0.0.1", port, tls=False, drain_rate=0.0, window=64, client_id="bench-drain"
    )
    state = UpstreamState("bench", upstream.broker, tls=False)
    async with open_outbox(config, upstreams=["bench"]) as outbox:
        forwarder = Forwarder(upstream, outbox, Identity("gridedge", "bench", "bench"), state)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        task = asyncio.create_task(forwarder.run())
        # The cursor is polled: the forwarder has no hook for it, and 10 ms is well below the
        # run's length.
        while True:
            if state.cursor >= total or task.done():
                break
            await asyncio.sleep(0.01)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return wall, cpu, state.acked


def bench_drain(seconds: float, *, backlog: int = DRAIN_BACKLOG) -> dict[str, Any]:
    """A prebuilt backlog of ``backlog`` samples (10 values each) drained to mosquitto.

    ``seconds`` is unused: the section runs until the backlog is delivered.
    """
    with tempfile.TemporaryDirectory(prefix="gridedge-bench-") as tmp:
        config = OutboxConfig(path=Path(tmp) / "outbox.sqlite3", max_bytes=8 * 1024**3)
        built0 = time.perf_counter()
        asyncio.run(_build_backlog(config, backlog))
        build_s = time.perf_counter() - built0
        with running_mosquitto(Path(tmp)) as (port, pid):
            broker0 = process_cpu_s(pid)
            wall, cpu, messages = asyncio.run(_drain(config, port, backlog))
            broker1 = process_cpu_s(pid)
    return {
        "backlog_samples": backlog,
        "channels_per_sample": len(_CHANNELS),
        "devices": DRAIN_DEVICES,
        "seconds": round(wall, 2),
        "samples_per_s": round(backlog / wall),
        "messages_per_s": round(messages / wall),
        "cpu_s_per_1k_samples": round(cpu / backlog * 1000, 5),
        "broker_cpu_s": _delta(broker0, broker1),
        "backlog_build_s": round(build_s, 2),
        "transport": "tcp (loopback, no TLS)",
    }
