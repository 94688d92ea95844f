"""An in-process gateway forwarding to the test broker: configs, the daemon task, waiting."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from gridedge import daemon
from gridedge.config import Config, parse_config
from gridedge.forward.state import UpstreamState
from tests.helpers import until as until  # re-exported for the tests that use this kit
from tests.integration.broker import Broker, Certs, Subscriber

GATEWAY = "gw-fwd"


def upstream(name: str, port: int, certs: Certs | None, **extra: Any) -> dict[str, Any]:
    """An [[upstreams]] table for a broker listener on 127.0.0.1 (TLS when ``certs``)."""
    table: dict[str, Any] = {
        "name": name,
        "host": "127.0.0.1",
        "port": port,
        "window": 8,
        "max_batch_bytes": 4096,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1.0,
        "connect_timeout_s": 5.0,
        "keepalive_s": 10,
    }
    if certs is None:
        table["tls"] = False
    else:
        table["ca_file"] = str(certs.ca)
    table.update(extra)
    return table


def gateway_config(
    folder: Path,
    upstreams: list[dict[str, Any]],
    *,
    meters: int = 0,
    interval_s: float = 0.2,
    outbox: dict[str, Any] | None = None,
) -> Config:
    """A gateway with ``meters`` simulated SDM630s (38 values each) and these upstreams."""
    doc: dict[str, Any] = {
        "gateway": {"id": GATEWAY, "site": "lab"},
        "outbox": {"path": "outbox.sqlite3", "commit_interval_s": 0.1, **(outbox or {})},
        "http": {"enabled": False},
        "upstreams": upstreams,
    }
    if meters:
        doc["meters"] = [
            {
                "id": "m",
                "driver": "eastron-sdm630",
                "count": meters,
                "interval_s": interval_s,
                "link": {"type": "simulated", "seed": 1},
            }
        ]
    return parse_config(doc, source="<test>", base_dir=folder)


@asynccontextmanager
async def running_gateway(
    config: Config,
) -> AsyncIterator[tuple[daemon.Runtime, asyncio.Task[None]]]:
    """The daemon as a task of this test; stopped (and awaited) on the way out."""
    runtime = daemon.Runtime()
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(config, shutdown_trigger=stop.wait, runtime=runtime))
    names = {u.name for u in config.upstreams if u.enabled}
    try:
        await until(lambda: task.done() or names <= runtime.upstreams.keys(), 10, "forwarders")
        yield runtime, task
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await task


def state_of(runtime: daemon.Runtime, name: str) -> UpstreamState:
    """The forwarder state of upstream ``name``."""
    state = runtime.upstreams[name]
    assert isinstance(state, UpstreamState)
    return state


def committed_seq(db: Path) -> int:
    """The highest seq the outbox ever committed (it never reuses one)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'envelopes'").fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def stored_seqs(db: Path) -> set[int]:
    """The seqs still stored in the outbox."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return {int(r[0]) for r in con.execute("SELECT seq FROM envelopes")}
    finally:
        con.close()


@contextmanager
def subscribed(port: int, client_id: str) -> Iterator[Subscriber]:
    """A persistent QoS 1 subscriber, connected before anything is published."""
    sub = Subscriber(port, client_id).start()
    try:
        yield sub
    finally:
        sub.stop()


def prepare_session(broker: Broker, client_id: str) -> None:
    """Create the subscriber's persistent session on a broker that is then stopped, so it
    queues everything published once the broker is back, before the subscriber reconnects.
    """
    broker.start()
    Subscriber(broker.ports["plain"], client_id).start().stop()
    broker.stop()
