"""Consistency: identities between a meter's readings, broken by a reading that goes wrong alone."""

from __future__ import annotations

import random

import numpy as np

from gridedge.analytics.consistency import Consistency, identities
from gridedge.analytics.engine import Analytics
from gridedge.analytics.settings import AnalyticsConfig
from gridedge.model import Sample

PHASE = ["voltage_l1", "current_l1", "apparent_power_l1", "active_power_l1", "power_factor_l1"]


def _phase(rng: random.Random, i: int, current_gain: float = 1.0) -> dict[str, float]:
    """One phase's readings at step ``i``, rounded like a meter; ``current_gain`` distorts the
    current reading alone.
    """
    volts = 230.0 + rng.gauss(0.0, 1.0)
    amps = 20.0 + 5.0 * np.sin(i / 30.0) + rng.gauss(0.0, 0.3)
    pf = 0.9 + rng.gauss(0.0, 0.01)
    s = volts * amps
    return {
        "voltage_l1": round(volts, 2),
        "current_l1": round(amps * current_gain, 3),
        "apparent_power_l1": round(s, 1),
        "active_power_l1": round(s * pf, 1),
        "power_factor_l1": round(pf, 4),
    }


def test_identities_are_found_only_where_every_channel_is_reported() -> None:
    """S = V * I and |P| = S * |PF| for a phase with all five; the total needs every phase."""
    found = identities([*PHASE, "active_power", "active_power_l2"])
    assert found == [
        ("apparent_power_l1", ("voltage_l1", "current_l1", None)),
        ("active_power_l1", ("apparent_power_l1", "power_factor_l1", None)),
    ]
    assert identities(["voltage_l1", "current_l1"]) == []


def test_a_consistent_load_change_breaks_nothing_and_a_drifting_current_does() -> None:
    """The load swings and steps without breaking S = V * I; a current reading 1 % off does,
    at once, while |P| = S * |PF| (which does not use the current) holds.
    """
    check = Consistency(PHASE)
    cols = np.arange(len(PHASE))
    rng = random.Random(3)
    broken = []
    for i in range(400):
        gain = 1.01 if i >= 300 else 1.0
        values = _phase(rng, i, gain)
        if i == 150:
            values = {
                k: v * (2.0 if k != "voltage_l1" and k != "power_factor_l1" else 1.0)
                for k, v in values.items()
            }
        broken.append(check.check(np.array([values[n] for n in PHASE]), cols)[0])
    assert not any(broken[:300])
    assert all(b == [0] for b in broken[300:])  # S = V * I, not |P| = S * |PF|


def test_a_missing_channel_breaks_nothing() -> None:
    """A sample without the current (only four of the five channels) checks only what it can."""
    check = Consistency(PHASE)
    rng = random.Random(5)
    for i in range(200):
        values = _phase(rng, i)
        check.check(np.array([values[n] for n in PHASE]), np.arange(len(PHASE)))
    values = _phase(rng, 200)
    cols = np.array([0, 2, 3, 4])
    broken, relative = check.check(np.array([values[PHASE[k]] for k in cols]), cols)
    assert broken == []
    assert relative[0] != relative[0]  # S = V * I could not be checked: NaN
    assert relative[1] < 1e-3


def test_a_drifting_reading_raises_a_consistency_alert_that_lasts_while_it_drifts() -> None:
    """Through the whole device: a current reading drifting by 0.1 % per sample raises one
    consistency alert, active until the reading is right again.
    """
    analytics = Analytics(AnalyticsConfig())
    rng = random.Random(4)
    raised: list[tuple[int, str]] = []
    active = []
    for i in range(800):
        gain = 1.0 + 0.001 * (i - 500) if 500 <= i < 650 else 1.0
        result = analytics.process(Sample("m", 1.7e9 + 10.0 * i, _phase(rng, i, gain)))
        raised += [(i, e.rule) for e in result.raised if e.rule == "consistency"]
        active.append(result.active)
    assert len(raised) == 1
    assert 500 <= raised[0][0] <= 510
    assert sum(active[510:650]) >= 0.95 * 140
    assert not any(active[660:])
