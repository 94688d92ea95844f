"""``soak`` section of ``gridedge bench``: the delivery promise under kill -9, an outage and a
moved-aside outbox, checked from a consumer's end.

A real ``gridedge run`` process polls simulated meters at a fast interval and forwards to a
mosquitto of the bench's own (persistent, so that what it acknowledged reaches the consumer
whatever it goes through). Each cycle starts the daemon, lets it run for a random (seeded) time
and kills it with SIGKILL. The broker is stopped for ``outage_s`` from the start of cycle
``outage_cycle``, across several cycles; before cycle ``move_aside_cycle`` (daemon down)
``gridedge outbox --move-aside`` moves the outbox aside, so the next start opens a new file under
a new epoch. After the last cycle a daemon without meters drains the final file. A consumer on a
persistent QoS 1 session records every ``(gateway, epoch, seq)`` (the README's dedupe key), and
every seq each file ever committed is accounted for (:mod:`gridedge.bench.receipts`).
"""

from __future__ import annotations

import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gridedge.bench.consumer import DedupingConsumer, Received
from gridedge.bench.mosquitto import Mosquitto
from gridedge.bench.receipts import account_file, phantoms
from gridedge.outbox.audit import FileLedger, read_ledger

GATEWAY = "soak"
UPSTREAM = "soak"
_START_TIMEOUT_S = 60.0
_POLL_S = 0.02


@dataclass(frozen=True, slots=True)
class SoakPlan:
    """What the soak does.

    Attributes:
        cycles: daemon starts, each ended by SIGKILL.
        cycle_s: longest time the daemon runs in a cycle once it is up (random, at least 5 %).
        outage_s: the broker is down this long.
        outage_cycle: the cycle at whose start the broker stops (1-based; 0 for no outage).
        move_aside_cycle: the cycle before whose start the outbox is moved aside (0: never).
        meters: simulated SDM630 meters (38 values a sample).
        interval_s: their polling interval (a read waits for its commit, so below the outbox's
            commit_interval_s a meter polls about once per commit).
        seed: for the kill times.
        drain_timeout_s: bound on the final drain.
    """

    cycles: int = 20
    cycle_s: float = 10.0
    outage_s: float = 60.0
    outage_cycle: int = 4
    move_aside_cycle: int = 16
    meters: int = 50
    interval_s: float = 0.25
    seed: int = 1
    drain_timeout_s: float = 60.0


class SoakError(RuntimeError):
    """The run could not go on: a daemon did not start, or exited by itself."""


class _Outage:
    """The broker's outage: stopped once, started again when ``outage_s`` has passed."""

    def __init__(self, broker: Mosquitto, outage_s: float) -> None:
        self._broker, self._outage_s = broker, outage_s
        self.started_at: float | None = None
        self.lasted_s: float | None = None

    def begin(self) -> None:
        self._broker.stop()
        self.started_at = time.monotonic()

    def tick(self) -> None:
        """Start the broker again if the outage is over."""
        started = self.started_at
        if started is not None and self.lasted_s is None and self._outage_over(started):
            self._broker.start()
            self.lasted_s = round(time.monotonic() - started, 2)

    def _outage_over(self, started: float) -> bool:
        return time.monotonic() - started >= self._outage_s

    def finish(self) -> None:
        """Wait out whatever remains of the outage."""
        while self.started_at is not None and self.lasted_s is None:
            self.tick()
            time.sleep(_POLL_S)


class _Daemon:
    """One ``gridedge run`` process, its log in a file of its own."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gridedge", "run", "-c", str(config)],
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def wait_started(self, tick: Callable[[], None]) -> float:
        """Seconds from spawn to ``daemon.started``.

        Raises:
            SoakError: it exited or did not start within a minute.
        """
        while b'"daemon.started"' not in self.log.read_bytes():
            self._check_alive()
            if time.monotonic() - self.spawned > _START_TIMEOUT_S:
                raise SoakError(f"daemon did not start: {self._tail()}")
            tick()
            time.sleep(_POLL_S)
        return time.monotonic() - self.spawned

    def run_for(self, seconds: float, tick: Callable[[], None]) -> None:
        """Let it run ``seconds``, failing if it exits meanwhile."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self._check_alive()
            tick()
            time.sleep(_POLL_S)

    def kill(self) -> None:
        """SIGKILL and reap it."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._out.close()

    def terminate(self) -> int:
        """SIGTERM; its exit status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self._out.close()

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise SoakError(f"daemon exited with {self.proc.returncode}: {self._tail()}")

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]


def write_config(folder: Path, port: int, plan: SoakPlan, *, meters: bool) -> Path:
    """The daemon's config: the plan's meters (or none, to drain) and one upstream."""
    meter_table = (
        f'[[meters]]\nid = "m"\ndriver = "eastron-sdm630"\ncount = {plan.meters}\n'
        f'interval_s = {plan.interval_s}\n[meters.link]\ntype = "simulated"\nseed = 1\n'
        if meters
        else ""
    )
    path = folder / ("gridedge.toml" if meters else "drain.toml")
    path.write_text(
        f'[gateway]\nid = "{GATEWAY}"\nsite = "bench"\n\n[log]\nformat = "json"\n\n'
        '[http]\nenabled = false\n\n[outbox]\npath = "outbox.sqlite3"\n\n'
        f'{meter_table}\n[[upstreams]]\nname = "{UPSTREAM}"\nhost = "127.0.0.1"\nport = {port}\n'
        "tls = false\nreconnect_min_s = 0.2\nreconnect_max_s = 2.0\n"
    )
    return path


def _move_aside(config: Path) -> Path:
    """``gridedge outbox --move-aside``; the moved database file."""
    done = subprocess.run(
        [sys.executable, "-m", "gridedge", "outbox", "-c", str(config), "--move-aside"],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise SoakError(f"outbox --move-aside failed: {done.stderr.decode()[-2000:]}")
    return Path(json.loads(done.stdout)["moved"][0])


def _wait_delivered(
    consumer: DedupingConsumer, ledger: FileLedger, timeout_s: float
) -> tuple[bool, float]:
    """Wait until the consumer has every seq of ``ledger``; (all there, seconds waited)."""
    started = time.monotonic()
    wanted = set(range(1, ledger.highest_seq + 1))
    while time.monotonic() - started < timeout_s:
        have = {s for gw, e, s in consumer.received().copies if gw == GATEWAY and e == ledger.epoch}
        if wanted <= have:
            return True, time.monotonic() - started
        time.sleep(0.1)
    return False, time.monotonic() - started


def run_soak(plan: SoakPlan, folder: Path | None = None) -> dict[str, Any]:
    """Run ``plan`` in ``folder`` (a temporary one by default); the figures."""
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="gridedge-soak-") as tmp:
            return run_soak(plan, Path(tmp))
    wall0 = time.monotonic()
    rng = random.Random(plan.seed)
    broker = Mosquitto(folder, persistence=True)
    broker.start()
    consumer = DedupingConsumer("127.0.0.1", broker.port, "soak-consumer").start()
    outage = _Outage(broker, plan.outage_s)
    config = write_config(folder, broker.port, plan, meters=True)
    db = folder / "outbox.sqlite3"
    restarts: list[float] = []
    moved: Path | None = None
    try:
        for cycle in range(1, plan.cycles + 1):
            if cycle == plan.move_aside_cycle:
                moved = _move_aside(config)
            if cycle == plan.outage_cycle:
                outage.begin()
            daemon = _Daemon(config, folder / f"daemon-{cycle:02d}.log")
            try:
                restarts.append(daemon.wait_started(outage.tick))
                daemon.run_for(rng.uniform(0.05, 1.0) * plan.cycle_s, outage.tick)
            finally:
                daemon.kill()
        outage.finish()
        final_before = read_ledger(db)
        drain = _Daemon(write_config(folder, broker.port, plan, meters=False), folder / "drain.log")
        try:
            drain.wait_started(outage.tick)
            drained, drain_s = _wait_delivered(consumer, final_before, plan.drain_timeout_s)
        finally:
            drain_status = drain.terminate()
        time.sleep(0.5)  # the broker's last deliveries reach the consumer
        received = consumer.received()
    finally:
        consumer.stop()
        broker.stop()
    files = [("final", read_ledger(db))]
    if moved is not None:
        files.insert(0, ("moved_aside", read_ledger(moved)))
    return _figures(plan, files, received, restarts, outage, drained, drain_s, drain_status, wall0)


def _figures(
    plan: SoakPlan,
    files: list[tuple[str, FileLedger]],
    received: Received,
    restarts: list[float],
    outage: _Outage,
    drained: bool,
    drain_s: float,
    drain_status: int,
    wall0: float,
) -> dict[str, Any]:
    accounts = [account_file(label, ledger, received, GATEWAY, UPSTREAM) for label, ledger in files]
    return {
        "plan": asdict(plan),
        "readings_committed": sum(a.committed for a in accounts),
        "delivered_unique": sum(a.delivered for a in accounts),
        "duplicates": received.duplicates,
        "kept_unsent_in_moved_aside_file": sum(
            a.kept_unsent for a in accounts if a.label == "moved_aside"
        ),
        "undelivered_in_final_file": sum(a.kept_unsent for a in accounts if a.label == "final"),
        "dropped_counted": sum(a.dropped_unsent for a in accounts),
        "lost": sum(a.lost for a in accounts),
        "phantom_keys": phantoms([ledger for _, ledger in files], received, GATEWAY),
        "not_envelopes": received.not_envelopes,
        "files": [asdict(a) for a in accounts],
        "kills": len(restarts),
        "restart_s": {
            "min": round(min(restarts), 3),
            "median": round(statistics.median(restarts), 3),
            "max": round(max(restarts), 3),
            "per_cycle": [round(r, 3) for r in restarts],
        },
        "outage_s": outage.lasted_s,
        "consumer_connects": received.connects,
        "drained": drained,
        "drain_s": round(drain_s, 2),
        "drain_exit_status": drain_status,
        "seconds": round(time.monotonic() - wall0, 1),
    }
