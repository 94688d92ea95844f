"""Broker and link faults between the gateway and a real mosquitto, through a fault proxy.

Each test runs the gateway in this process (simulated meters, SQLite outbox) forwarding to
mosquitto through :class:`~tests.integration.faultproxy.FaultProxy` (or, for the refused
topic, straight to a mosquitto with an ACL), injects one fault, lifts it, and checks that the
subscriber saw every seq the cursor passed, that the cursor reached what was committed, and
that re-sends stayed within the window per reconnect. Each prints what it measured.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gridedge.ops.health import Status, assess, outbox_stats
from gridedge.ops.runtime import Runtime
from gridedge.outbox.store import read_stats
from tests.integration.broker import Broker, mosquitto_binary
from tests.integration.faultproxy import FaultProxy
from tests.integration.forwardkit import (
    GATEWAY,
    committed_seq,
    gateway_config,
    running_gateway,
    state_of,
    subscribed,
    until,
    upstream,
)
from tests.integration.processes import free_port, stop_process

pytestmark = pytest.mark.integration

WINDOW = 8  # forwardkit.upstream
REFUSED_DEVICE = "m-2"


@pytest.fixture
def broker(fresh_broker: Broker) -> Broker:
    return fresh_broker


def _duplicates(received: Counter[int]) -> int:
    return sum(n - 1 for n in received.values())


def _report(what: str, **figures: object) -> None:
    print(f"\n[{what}] " + " ".join(f"{k}={v}" for k, v in figures.items()))


async def test_a_broker_answering_connect_too_late_is_retried_until_it_answers_in_time(
    tmp_path: Path, broker: Broker
) -> None:
    """CONNACK after connect_timeout_s: each attempt is a counted retry, the forwarder lives
    on, and once the broker is quick again the whole backlog arrives.
    """
    async with FaultProxy(broker.ports["plain"]) as proxy:
        proxy.connack_delay_s = 1.5
        table = upstream("up", proxy.port, None, connect_timeout_s=0.5, reconnect_max_s=0.3)
        config = gateway_config(tmp_path, [table], meters=2, interval_s=0.2)
        with subscribed(broker.ports["plain"], "sub-connack") as sub:
            async with running_gateway(config) as (runtime, task):
                state = state_of(runtime, "up")
                await until(lambda: state.reconnects >= 3, 15, "three late CONNACKs")
                assert state.last_error == "no CONNACK within 0.5 s"
                assert state.connects == 0
                assert not task.done()
                lifted = time.monotonic()
                proxy.connack_delay_s = 0.0
                target = state.last_seq
                await until(lambda: state.cursor >= target, 15, "the backlog to drain")
                drained_s = time.monotonic() - lifted
                await until(lambda: sub.received().keys() >= set(range(1, target + 1)), 10, "all")
    received = sub.received()
    _report(
        "late CONNACK",
        attempts=state.reconnects + 1,
        backlog=target,
        drain_s=round(drained_s, 2),
        duplicates=_duplicates(received),
    )
    assert _duplicates(received) == 0  # nothing was ever published before the fault lifted


@pytest.mark.parametrize("every", [3, 10, 50])
async def test_a_link_cut_every_few_publishes_still_delivers_everything(
    tmp_path: Path, broker: Broker, every: int
) -> None:
    """The link drops after every N publishes (the status message included): the cursor keeps
    moving during the fault, reaches the end once it is lifted, and every seq arrives with
    duplicates within the window per reconnect.
    """
    async with FaultProxy(broker.ports["plain"]) as proxy:
        proxy.cut_every = every
        table = upstream(
            "up", proxy.port, None, reconnect_min_s=0.05, reconnect_max_s=0.1, max_batch_bytes=8192
        )
        config = gateway_config(tmp_path, [table], meters=4, interval_s=0.2)
        with subscribed(broker.ports["plain"], f"sub-cut-{every}") as sub:
            async with running_gateway(config) as (runtime, task):
                state = state_of(runtime, "up")
                started = time.monotonic()
                await until(lambda: proxy.cuts >= 3, 15, "three cuts")
                await until(lambda: state.cursor >= 100, 15, "progress while the link flaps")
                during_s = time.monotonic() - started
                cursor_during, reconnects = state.cursor, state.reconnects
                proxy.cut_every = None
                target = committed_seq(config.outbox.path)
                await until(lambda: state.cursor >= target, 15, "the cursor to reach the end")
                acked = set(range(1, state.cursor + 1))
                await until(lambda: sub.received().keys() >= acked, 10, "every acked seq")
                assert not task.done()
    received = sub.received()
    duplicates = _duplicates(received)
    _report(
        f"cut every {every}",
        cuts=proxy.cuts,
        reconnects=reconnects,
        cursor_after_s=f"{cursor_during}@{during_s:.1f}",
        delivered=len(received),
        duplicates=duplicates,
        largest_message=sub.largest_message,
    )
    assert duplicates <= (state.reconnects + 1) * WINDOW * sub.largest_message


async def test_a_broker_that_stops_acking_is_dropped_and_health_says_so(
    tmp_path: Path, broker: Broker
) -> None:
    """PUBACKs swallowed (pings still answered): the PUBACK timeout ends each session, /health
    reports no progress, and everything arrives once the broker acks again.
    """
    async with FaultProxy(broker.ports["plain"]) as proxy:
        proxy.swallow_pubacks = True
        table = upstream("up", proxy.port, None, puback_timeout_s=1.0, stall_after_s=2.0)
        config = gateway_config(tmp_path, [table], meters=2, interval_s=0.2)
        with subscribed(broker.ports["plain"], "sub-silent") as sub:
            async with running_gateway(config) as (runtime, task):
                state = state_of(runtime, "up")
                await until(
                    lambda: state.reconnects >= 2 and state.last_error is not None, 15, "timeouts"
                )
                assert state.last_error == "no PUBACK within 1 s (the broker is stuck)"
                await until(lambda: _stalled(runtime), 10, "/health to report no progress")
                assert state.cursor == 0
                health = assess(runtime, await outbox_stats(runtime, 2.0), time.time())
                assert health.status is Status.DEGRADED
                lifted = time.monotonic()
                proxy.swallow_pubacks = False
                target = state.last_seq
                await until(lambda: state.cursor >= target, 15, "the backlog to drain")
                drained_s = time.monotonic() - lifted
                acked = set(range(1, state.cursor + 1))
                await until(lambda: sub.received().keys() >= acked, 10, "every acked seq")
                await until(lambda: not _stalled(runtime), 10, "/health to recover")
                assert not task.done()
    received = sub.received()
    duplicates = _duplicates(received)
    _report(
        "PUBACKs swallowed",
        sessions_dropped=state.reconnects,
        pubacks_swallowed=proxy.swallowed,
        drain_s=round(drained_s, 2),
        duplicates=duplicates,
    )
    assert duplicates <= (state.reconnects + 1) * WINDOW * sub.largest_message


def _stalled(runtime: Runtime) -> bool:
    up = runtime.upstreams["up"]
    health = assess(runtime, None, time.time())
    return any(p.startswith("upstreams making no progress") for p in health.problems) and bool(
        up.backlog
    )


@contextmanager
def _acl_broker(folder: Path) -> Iterator[int]:
    """A mosquitto whose ACL refuses writes to one device's topics; its port."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    acl = folder / "acl"
    acl.write_text(
        f"topic readwrite gridedge/#\ntopic deny gridedge/lab/{GATEWAY}/{REFUSED_DEVICE}/#\n"
    )
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"user root\nper_listener_settings false\nallow_anonymous true\nacl_file {acl}\n"
        f"log_type all\nlog_dest file {folder / 'mosquitto.log'}\n"
        f"listener {port} 127.0.0.1\n"
    )
    proc = subprocess.Popen(
        [mosquitto_binary(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while (
            not (folder / "mosquitto.log").exists()
            or "running" not in (folder / "mosquitto.log").read_text()
        ):
            assert proc.poll() is None, "mosquitto exited"
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.02)  # polling a process' log for readiness, with a deadline
        yield port
    finally:
        stop_process(proc)


async def test_a_topic_the_broker_refuses_is_quarantined_and_everything_else_flows(
    tmp_path: Path,
) -> None:
    """MQTT 5, an ACL denying one device: its envelopes are refused (0x87), quarantined and
    counted; every other envelope arrives and the cursor reaches the end.
    """
    with _acl_broker(tmp_path / "acl-broker") as port:
        table = upstream("up", port, None, protocol="5", max_batch_bytes=2048)
        config = gateway_config(tmp_path, [table], meters=3, interval_s=0.2)
        with subscribed(port, "sub-acl") as sub:
            async with running_gateway(config) as (runtime, task):
                state = state_of(runtime, "up")
                started = time.monotonic()
                await until(
                    lambda: state.quarantined.get("not_authorized", 0) >= 10, 15, "refusals"
                )
                await until(lambda: state.cursor >= 100, 15, "the cursor to pass them")
                passing_s = time.monotonic() - started
                target = state.last_seq
                await until(lambda: state.cursor >= target, 15, "the cursor to reach the end")
                delivered_to = state.cursor
                assert not task.done()
                assert state.connects == 1  # a refusal never ended the connection
            quarantined = dict(state.quarantined)
            await until(
                lambda: sub.count() >= delivered_to - quarantined["not_authorized"], 10, "the rest"
            )
    stats = read_stats(config.outbox.path)
    received = sub.received()
    assert stats.quarantined == {"up": quarantined}
    refused = _quarantined_seqs(config.outbox.path)
    assert len(refused) == quarantined["not_authorized"]
    assert set(range(1, delivered_to + 1)) - refused <= received.keys()
    assert not refused & received.keys()
    _report(
        "refused topic",
        quarantined=quarantined,
        delivered=len(received),
        cursor=delivered_to,
        cursor_100_after_s=round(passing_s, 2),
        duplicates=_duplicates(received),
    )
    assert _duplicates(received) == 0


def _quarantined_seqs(db: Path) -> set[int]:
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT seq, device FROM quarantine WHERE upstream = 'up'").fetchall()
    finally:
        con.close()
    assert {device for _, device in rows} == {REFUSED_DEVICE}
    return {int(seq) for seq, _ in rows}
