"""Fault injection: each kind shows in the readings and in the ground truth."""

from __future__ import annotations

import math
import statistics

import pytest

from gridedge.simulator.faults import (
    RANDOM_DURATION_S,
    FaultEvent,
    FaultKind,
    FaultPlan,
    ScheduledFault,
)
from gridedge.simulator.physics import LoadProfile, SimulationParams
from tests.unit.simulator.fixtures import (
    SINGLE_PHASE,
    START_TS,
    Reading,
    readings,
    run,
    simulator,
    times,
)

FLAT = SimulationParams(profile=LoadProfile.FLAT)
AT_S = 600.0


def _twins(
    fault: ScheduledFault, count: int = 180, interval_s: float = 10.0
) -> tuple[list[Reading | None], list[Reading], list[float], list[FaultEvent]]:
    """Readings of a faulty meter and of its fault-free twin (same seed), the times, the events."""
    stamps = times(count, interval_s)
    events: list[FaultEvent] = []
    faulty = run(simulator(params=FLAT, faults=(fault,), events=events), stamps)
    clean = readings(simulator(params=FLAT), stamps)
    return faulty, clean, stamps, events


def _inside(fault: ScheduledFault, ts: float) -> bool:
    return START_TS + fault.at_s <= ts <= START_TS + fault.at_s + fault.duration_s


def _split(
    fault: ScheduledFault, faulty: list[Reading | None], clean: list[Reading], stamps: list[float]
) -> tuple[list[tuple[Reading, Reading]], list[tuple[Reading, Reading]]]:
    """(faulty, clean) pairs inside the fault's window and outside it."""
    inside: list[tuple[Reading, Reading]] = []
    outside: list[tuple[Reading, Reading]] = []
    for row, twin, ts in zip(faulty, clean, stamps, strict=True):
        assert row is not None
        (inside if _inside(fault, ts) else outside).append((row, twin))
    assert inside
    return inside, outside


def _only_event(events: list[FaultEvent], kind: FaultKind) -> FaultEvent:
    assert [e.kind for e in events] == [kind]
    return events[0]


def test_sag_lowers_the_chosen_phase_voltage_and_is_recorded() -> None:
    """A 30 % sag on phase 2 brings its voltage to about 70 %, leaving phase 1 alone."""
    fault = ScheduledFault(FaultKind.SAG, at_s=AT_S, duration_s=120.0, phase=2)
    faulty, clean, stamps, events = _twins(fault)
    inside, outside = _split(fault, faulty, clean, stamps)
    for row, twin in inside:
        assert 0.68 < row["voltage_l2"] / twin["voltage_l2"] < 0.72
        assert row["voltage_l1"] == twin["voltage_l1"]
        assert row["voltage_l1_l2"] < 0.9 * twin["voltage_l1_l2"]
        assert row["voltage_l3_l1"] == twin["voltage_l3_l1"]
        assert row["current_l2"] < twin["current_l2"]
    assert all(row["voltage_l2"] == twin["voltage_l2"] for row, twin in outside)
    event = _only_event(events, FaultKind.SAG)
    assert (event.start_ts, event.end_ts) == (START_TS + AT_S, START_TS + AT_S + 120.0)
    assert event.magnitude == 0.3
    assert event.channels == ("voltage_l2", "voltage_l1_l2", "voltage_l2_l3")


def test_sag_without_a_phase_lowers_every_phase() -> None:
    """A sag with no phase given hits all three phases."""
    fault = ScheduledFault(FaultKind.SAG, at_s=AT_S, duration_s=60.0, magnitude=0.5)
    faulty, clean, stamps, events = _twins(fault)
    inside, _ = _split(fault, faulty, clean, stamps)
    for row, twin in inside:
        for p in ("l1", "l2", "l3"):
            assert 0.48 < row[f"voltage_{p}"] / twin[f"voltage_{p}"] < 0.52
    assert {"voltage_l1", "voltage_l2", "voltage_l3"} <= set(events[0].channels)


def test_swell_raises_voltage() -> None:
    """A swell raises the phase voltage by its magnitude (15 % by default)."""
    fault = ScheduledFault(FaultKind.SWELL, at_s=AT_S, duration_s=30.0, phase=3)
    faulty, clean, stamps, events = _twins(fault)
    inside, _ = _split(fault, faulty, clean, stamps)
    for row, twin in inside:
        assert 1.14 < row["voltage_l3"] / twin["voltage_l3"] < 1.17
    assert _only_event(events, FaultKind.SWELL).magnitude == 0.15


def test_dropout_returns_none_during_its_window_only() -> None:
    """The meter does not answer during a dropout and answers before and after it."""
    fault = ScheduledFault(FaultKind.DROPOUT, at_s=AT_S, duration_s=95.0)
    faulty, _, stamps, events = _twins(fault)
    for row, ts in zip(faulty, stamps, strict=True):
        assert (row is None) is _inside(fault, ts)
    assert sum(row is None for row in faulty) == 10
    assert _only_event(events, FaultKind.DROPOUT).channels == ()


def test_flatline_on_a_channel_repeats_its_last_value_exactly() -> None:
    """A stuck channel repeats the value it had just before the fault; others move on."""
    fault = ScheduledFault(FaultKind.FLATLINE, at_s=AT_S, duration_s=300.0, channel="current_l1")
    faulty, clean, stamps, events = _twins(fault)
    before = faulty[stamps.index(START_TS + AT_S) - 1]
    assert before is not None
    inside, _ = _split(fault, faulty, clean, stamps)
    assert {row["current_l1"] for row, _ in inside} == {before["current_l1"]}
    assert len({row["current_l2"] for row, _ in inside}) > 1
    assert _only_event(events, FaultKind.FLATLINE).channels == ("current_l1",)


def test_flatline_without_a_channel_freezes_the_whole_meter() -> None:
    """With no channel, every reading repeats: a stuck meter."""
    fault = ScheduledFault(FaultKind.FLATLINE, at_s=AT_S, duration_s=300.0)
    faulty, clean, stamps, events = _twins(fault)
    before = faulty[stamps.index(START_TS + AT_S) - 1]
    inside, outside = _split(fault, faulty, clean, stamps)
    assert all(row == before for row, _ in inside)
    assert outside[-1][0] != before
    assert len(events[0].channels) == len(clean[0])


def test_phase_loss_zeroes_one_phase() -> None:
    """A lost phase reads near-zero voltage and no current or power; the others carry on."""
    fault = ScheduledFault(FaultKind.PHASE_LOSS, at_s=AT_S, duration_s=300.0, phase=3)
    faulty, clean, stamps, events = _twins(fault)
    inside, _ = _split(fault, faulty, clean, stamps)
    for row, _twin in inside:
        assert row["voltage_l3"] < 5.0
        assert row["current_l3"] == row["active_power_l3"] == row["apparent_power_l3"] == 0.0
        assert row["voltage_l1"] > 200.0
        assert row["current_l1"] > 1.0
    assert "current_l3" in _only_event(events, FaultKind.PHASE_LOSS).channels


def test_phase_loss_without_a_phase_picks_one() -> None:
    """A phase loss with no phase given drops exactly one phase, named in the ground truth."""
    fault = ScheduledFault(FaultKind.PHASE_LOSS, at_s=AT_S, duration_s=60.0)
    faulty, clean, stamps, events = _twins(fault)
    inside, _ = _split(fault, faulty, clean, stamps)
    for row, _twin in inside:
        dead = [p for p in ("l1", "l2", "l3") if row[f"voltage_{p}"] < 5.0]
        assert len(dead) == 1
        assert f"voltage_{dead[0]}" in events[0].channels


def test_overheating_raises_temperature_beyond_the_fault_free_twin() -> None:
    """Overheating adds magnitude °C per hour on top of the twin's temperature."""
    fault = ScheduledFault(FaultKind.OVERHEATING, at_s=AT_S, duration_s=3600.0, magnitude=12.0)
    faulty, clean, stamps, events = _twins(fault, count=60 * 3, interval_s=60.0)
    inside, _ = _split(fault, faulty, clean, stamps)
    excess = [row["temperature"] - twin["temperature"] for row, twin in inside]
    assert excess == sorted(excess)
    assert 11.7 < excess[-1] < 12.3
    assert _only_event(events, FaultKind.OVERHEATING).channels == ("temperature",)


def test_drift_error_grows_with_time() -> None:
    """A drift's relative error on its channel grows linearly at magnitude per hour."""
    fault = ScheduledFault(
        FaultKind.DRIFT, at_s=AT_S, duration_s=7200.0, magnitude=0.1, channel="voltage_l1"
    )
    faulty, clean, stamps, events = _twins(fault, count=150, interval_s=60.0)
    inside, _ = _split(fault, faulty, clean, stamps)
    errors = [row["voltage_l1"] / twin["voltage_l1"] - 1.0 for row, twin in inside]
    assert errors[0] == pytest.approx(0.0, abs=1e-4)
    assert errors[60] == pytest.approx(0.1, abs=1e-3)
    assert errors[-1] == pytest.approx(0.2, abs=1e-3)
    assert all(row["current_l1"] == twin["current_l1"] for row, twin in inside)
    assert _only_event(events, FaultKind.DRIFT).channels == ("voltage_l1",)


def test_load_oscillation_modulates_current_and_power() -> None:
    """An oscillation of a current swings that phase's current and power around the twin's."""
    fault = ScheduledFault(
        FaultKind.OSCILLATION, at_s=AT_S, duration_s=600.0, magnitude=0.3, channel="current_l1"
    )
    faulty, clean, stamps, events = _twins(fault, count=300, interval_s=5.0)
    inside, outside = _split(fault, faulty, clean, stamps)
    for channel in ("current_l1", "active_power_l1"):
        ratio = [row[channel] / twin[channel] for row, twin in inside]
        assert statistics.pstdev(ratio) > 0.1
        assert max(ratio) < 1.31
    assert all(row["current_l1"] == twin["current_l1"] for row, twin in outside[:100])
    assert {"current_l1", "active_power_l1", "active_power"} <= set(events[0].channels)


def test_oscillation_of_a_voltage_reading_leaves_the_load_alone() -> None:
    """An oscillation of a reading that is not a load quantity changes only that reading."""
    fault = ScheduledFault(FaultKind.OSCILLATION, at_s=AT_S, duration_s=600.0, channel="voltage_l2")
    faulty, clean, stamps, events = _twins(fault, count=300, interval_s=5.0)
    inside, _ = _split(fault, faulty, clean, stamps)
    assert (
        statistics.pstdev([row["voltage_l2"] / twin["voltage_l2"] for row, twin in inside]) > 0.05
    )
    assert all(row["current_l2"] == twin["current_l2"] for row, twin in inside)
    assert events[0].channels == ("voltage_l2",)


def test_spike_is_a_single_outlier() -> None:
    """A zero-length spike multiplies one reading of one channel by 1 + magnitude."""
    fault = ScheduledFault(FaultKind.SPIKE, at_s=AT_S + 5.0, duration_s=0.0, channel="current_l2")
    faulty, clean, _stamps, events = _twins(fault)
    differing = [(row, twin) for row, twin in zip(faulty, clean, strict=True) if row != twin]
    assert len(differing) == 1
    row, twin = differing[0]
    assert row is not None
    assert row["current_l2"] / twin["current_l2"] == pytest.approx(3.0, rel=1e-4)
    assert {k for k in row if row[k] != twin[k]} == {"current_l2"}
    event = _only_event(events, FaultKind.SPIKE)
    assert event.start_ts == event.end_ts == START_TS + AT_S + 10.0


def test_faults_leave_unaffected_channels_equal_to_the_twin() -> None:
    """Faults draw their randomness apart from the physics, so the noise is unchanged."""
    plan = FaultPlan(rate_per_hour=20.0, kinds=(FaultKind.SAG, FaultKind.SPIKE, FaultKind.DRIFT))
    stamps = times(720, 10.0)
    faulty = run(simulator(params=FLAT, plan=plan), stamps)
    clean = readings(simulator(params=FLAT), stamps)
    assert [r["frequency"] for r in faulty if r] == [r["frequency"] for r in clean]


def test_each_fault_is_reported_once_when_it_starts() -> None:
    """on_fault receives each fault exactly once, at its start, matching the ground truth."""
    schedule = (
        ScheduledFault(FaultKind.SAG, at_s=100.0, duration_s=30.0),
        ScheduledFault(FaultKind.DROPOUT, at_s=200.0, duration_s=30.0),
    )
    events: list[FaultEvent] = []
    sim = simulator(faults=schedule, events=events)
    seen_at: list[int] = []
    for k, ts in enumerate(times(40, 10.0)):
        before = len(events)
        sim.step(ts)
        seen_at.extend([k] * (len(events) - before))
    assert seen_at == [10, 20]
    assert list(sim.faults) == events
    assert [e.kind for e in events] == [FaultKind.SAG, FaultKind.DROPOUT]


def test_active_faults_name_the_faults_acting_on_the_latest_step() -> None:
    """active_faults lists a fault while it acts and forgets it afterwards."""
    fault = ScheduledFault(FaultKind.SWELL, at_s=20.0, duration_s=10.0)
    sim = simulator(faults=(fault,))
    kinds = []
    for ts in times(6, 10.0):
        sim.step(ts)
        kinds.append(tuple(e.kind for e in sim.active_faults))
    swell = (FaultKind.SWELL,)
    assert kinds == [(), (), swell, swell, (), ()]


def test_random_fault_count_is_within_poisson_bounds() -> None:
    """Over ten days at 2 faults per hour, the count is within four sigmas of 480."""
    sim = simulator(plan=FaultPlan(rate_per_hour=2.0))
    run(sim, times(10 * 144, 600.0))
    expected = 2.0 * 240
    assert abs(len(sim.faults) - expected) < 4.0 * math.sqrt(expected)
    assert {e.kind for e in sim.faults} == set(FaultKind)


def test_random_faults_use_the_plan_kinds_and_plausible_durations() -> None:
    """Random faults are of the plan's kinds, with durations in their kind's range."""
    kinds = (FaultKind.SAG, FaultKind.DRIFT, FaultKind.SPIKE)
    sim = simulator(plan=FaultPlan(rate_per_hour=5.0, kinds=kinds))
    run(sim, times(2 * 144, 600.0))
    assert sim.faults
    for event in sim.faults:
        assert event.kind in kinds
        low, high = RANDOM_DURATION_S[event.kind]
        assert low <= event.end_ts - event.start_ts <= high + 1e-6


def test_random_faults_are_deterministic_for_a_seed() -> None:
    """The same seed gives the same faults; another seed gives others."""
    plan = FaultPlan(rate_per_hour=3.0)
    stamps = times(2 * 144, 600.0)
    runs: dict[int, list[list[FaultEvent]]] = {}
    for seed in (7, 7, 8):
        sim = simulator(seed=seed, plan=plan)
        run(sim, stamps)
        runs.setdefault(seed, []).append(list(sim.faults))
    assert runs[7][0] == runs[7][1]
    assert runs[7][0] != runs[8][0]


def test_no_faults_without_a_rate_or_a_schedule() -> None:
    """A meter with an empty plan never faults and always answers."""
    sim = simulator(plan=FaultPlan())
    rows = run(sim, times(3 * 288, 300.0))
    assert all(row is not None for row in rows)
    assert sim.faults == ()


def test_invalid_scheduled_faults_are_refused() -> None:
    """Negative times and impossible phases are refused with ValueError."""
    with pytest.raises(ValueError, match="negative"):
        ScheduledFault(FaultKind.SAG, at_s=-1.0, duration_s=1.0)
    with pytest.raises(ValueError, match="phase"):
        ScheduledFault(FaultKind.SAG, at_s=1.0, duration_s=1.0, phase=4)
    with pytest.raises(ValueError, match="phase 2"):
        simulator(SINGLE_PHASE, faults=(ScheduledFault(FaultKind.SAG, 1.0, 1.0, phase=2),))
    with pytest.raises(ValueError, match="rate_per_hour"):
        FaultPlan(rate_per_hour=-1.0)
