"""The soak in small: kill -9 cycles, a broker outage and a moved-aside outbox lose nothing.

The same driver as ``gridedge bench --only soak`` (real daemon processes, a real mosquitto, a
consumer deduplicating by ``(gateway, epoch, seq)``), with six short cycles and a 10 s outage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridedge.bench.soak import SoakPlan, run_soak

pytestmark = pytest.mark.integration

PLAN = SoakPlan(
    cycles=6,
    cycle_s=2.0,
    outage_s=10.0,
    outage_cycle=2,
    move_aside_cycle=4,
    meters=25,
    interval_s=0.25,  # not below commit_interval_s: each read waits for its commit
    seed=7,
)
LOAD_PER_S = PLAN.meters / PLAN.interval_s


def test_kill_9_cycles_an_outage_and_a_move_aside_lose_no_committed_reading(
    tmp_path: Path,
) -> None:
    """Every seq either file committed reaches the consumer or is still in the moved file."""
    figures = run_soak(PLAN, tmp_path)
    print(json.dumps(figures))  # the figures of this run, for whoever reads the test log
    final, moved = (
        next(f for f in figures["files"] if f["label"] == n) for n in ("final", "moved_aside")
    )
    assert figures["lost"] == 0, figures["files"]
    assert figures["phantom_keys"] == 0
    assert figures["not_envelopes"] == 0
    assert figures["drained"]
    assert figures["drain_exit_status"] == 0
    assert figures["undelivered_in_final_file"] == 0
    assert figures["dropped_counted"] == 0  # the outbox is far below its cap: nothing to drop
    assert final["integrity"] == "ok"
    assert moved["integrity"] == "ok"
    assert final["epoch"] != moved["epoch"]
    # Both files committed readings, and the new file's were all delivered under its epoch.
    assert moved["committed"] > 0
    assert final["committed"] > 0
    assert final["delivered"] == final["committed"]
    assert moved["delivered"] + moved["kept_unsent"] == moved["committed"]
    assert figures["kills"] == PLAN.cycles
    assert figures["outage_s"] >= PLAN.outage_s
    assert figures["consumer_connects"] >= 2  # it came back after the outage
    # A broken connection resends what was in flight and what was acknowledged since the
    # cursor was last saved (one group commit earlier): never more than the backlog, which is
    # at most the outage's readings and a cycle's. Each kill and the outage break it once.
    breaks = PLAN.cycles + 1
    assert figures["duplicates"] <= breaks * LOAD_PER_S * (PLAN.outage_s + PLAN.cycle_s)
