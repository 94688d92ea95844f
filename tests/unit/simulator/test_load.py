"""Normal operation of simulated sites: inside every driver's limits, and varied like a real one."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridedge.drivers import BUILTIN_DRIVERS_DIR, Driver, load_drivers
from gridedge.simulator.faults import FaultPlan
from gridedge.simulator.load import MAX_NORMAL_LOAD, LoadModel, LoadProfile, soft_cap
from gridedge.simulator.physics import MeterSimulator, SimulationParams
from tests.unit.simulator.fixtures import DAY_S, START_TS

DRIVERS = load_drivers([BUILTIN_DRIVERS_DIR])
EN50160_BAND = 0.1  # supply voltage within +-10 % of nominal in normal operation


def _extremes(
    driver: Driver, params: SimulationParams, days: float, step_s: float
) -> dict[str, tuple[float, float]]:
    sim = MeterSimulator("m", driver, params, FaultPlan(), seed=7)
    seen: dict[str, tuple[float, float]] = {}
    for k in range(int(days * DAY_S / step_s)):
        values = sim.step(START_TS + k * step_s)
        assert values is not None
        for name, v in values.items():
            lo, hi = seen.get(name, (math.inf, -math.inf))
            seen[name] = (min(lo, v), max(hi, v))
    return seen


@pytest.mark.parametrize("driver_id", sorted(DRIVERS))
@pytest.mark.parametrize("profile", list(LoadProfile))
def test_normal_operation_stays_inside_the_drivers_limits(
    driver_id: str, profile: LoadProfile
) -> None:
    """Fourteen fault-free days at the highest configurable load never break a driver limit,
    never exceed the rated current and keep the supply voltage inside the EN 50160 band.
    """
    driver = DRIVERS[driver_id]
    params = SimulationParams(profile=profile, load_fraction=1.5)
    seen = _extremes(driver, params, days=14.0, step_s=1800.0)
    limits = {ch.name: (ch.min, ch.max) for ch in driver.channels}
    for name, (lo, hi) in seen.items():
        low, high = limits.get(name, (None, None))
        assert low is None or lo >= low, (name, lo)
        assert high is None or hi <= high, (name, hi)
    rated, nominal_v = driver.nominal.current_a, driver.nominal.voltage_v
    # Models without phase channels (SunSpec common block, MPPT strings, storage) have only
    # the driver limits above to keep.
    for phase in range(1, driver.phases + 1):
        if f"current_l{phase}" in seen:
            assert seen[f"current_l{phase}"][1] <= rated
        if f"voltage_l{phase}" in seen:
            vlo, vhi = seen[f"voltage_l{phase}"]
            assert (1 - EN50160_BAND) * nominal_v <= vlo <= vhi <= (1 + EN50160_BAND) * nominal_v


@given(st.floats(min_value=-10.0, max_value=1e6), st.floats(min_value=0.01, max_value=100.0))
def test_soft_cap_never_reaches_the_ceiling_and_keeps_order(x: float, cap: float) -> None:
    """The ceiling bends the load below ``cap``, never reorders loads, and leaves light loads."""
    y = soft_cap(x, cap)
    assert y < cap or math.isclose(y, cap)
    assert soft_cap(x + 1.0, cap) >= y
    if x <= 0.7 * cap:
        assert y == x


def test_switched_loads_make_steps_in_a_flat_load() -> None:
    """A flat site still shows load steps: some ten-second changes are far above the walk's."""
    model = LoadModel(LoadProfile.FLAT, 0.4, 0.0, random.Random(3))
    loads = [model.at(START_TS + 10.0 * k) for k in range(int(2 * DAY_S / 10.0))]
    changes = [abs(b - a) for a, b in itertools.pairwise(loads)]
    typical = statistics.median(changes)
    assert sum(c > 20 * typical for c in changes) >= 4
    assert max(loads) <= MAX_NORMAL_LOAD


def test_weekends_differ_from_weekdays_on_a_commercial_site() -> None:
    """A commercial site's Saturday noon load is well below its Monday noon load."""
    model = LoadModel(LoadProfile.COMMERCIAL, 0.5, 0.0, random.Random(1))
    monday_noon = START_TS + 12 * 3600.0
    week = [model.at(monday_noon + k * 3600.0) for k in range(7 * 24)]
    assert week[5 * 24] < 0.6 * week[0]


def test_seasons_drift_the_load_slowly() -> None:
    """The same flat site draws more in January than in July (heating and lighting)."""
    january = LoadModel(LoadProfile.FLAT, 0.4, 0.0, random.Random(5))
    july = LoadModel(LoadProfile.FLAT, 0.4, 0.0, random.Random(5))
    jan = statistics.mean(january.at(START_TS + k * 600.0) for k in range(1000))
    jul = statistics.mean(july.at(START_TS + 181 * DAY_S + k * 600.0) for k in range(1000))
    assert jan > 1.08 * jul
