"""The simulated meter's physics: consistent quantities, plausible ranges, daily curves."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridedge.channels import CHANNELS
from gridedge.simulator.faults import FaultKind, ScheduledFault
from gridedge.simulator.physics import LoadProfile, SimulationParams
from tests.unit.simulator.fixtures import (
    DAY_S,
    SINGLE_PHASE,
    SINGLE_PHASE_NAMES,
    START_TS,
    Reading,
    make_driver,
    readings,
    simulator,
    times,
)

PHASES = ("l1", "l2", "l3")
HOUR_S = 3600.0


def _day_of_readings(profile: LoadProfile = LoadProfile.COMMERCIAL) -> list[Reading]:
    """One weekday of three-phase readings every 5 minutes."""
    sim = simulator(params=SimulationParams(profile=profile))
    return readings(sim, times(288, 300.0))


def _mean_between(
    rows: list[Reading], stamps: list[float], channel: str, start_h: float, end_h: float
) -> float:
    """Mean of ``channel`` over the rows whose UTC hour of day is in ``[start_h, end_h)``."""
    picked = [
        row[channel]
        for row, ts in zip(rows, stamps, strict=True)
        if start_h <= (ts % DAY_S) / HOUR_S < end_h
    ]
    assert picked
    return statistics.fmean(picked)


def test_active_power_is_voltage_times_current_times_power_factor_per_phase() -> None:
    """Each phase's active power equals V·I·PF within the rounding of the four readings."""
    for row in _day_of_readings():
        for p in PHASES:
            v, i, pf = row[f"voltage_{p}"], row[f"current_{p}"], row[f"power_factor_{p}"]
            bound = 0.005 * i + 0.0005 * v + 0.00005 * v * i + 0.05 + 1e-6
            assert abs(row[f"active_power_{p}"] - v * i * pf) <= bound


def test_apparent_power_is_voltage_times_current_and_the_hypotenuse_of_p_and_q() -> None:
    """S equals V·I and S² equals P² + Q² per phase, within rounding."""
    for row in _day_of_readings():
        for p in PHASES:
            v, i = row[f"voltage_{p}"], row[f"current_{p}"]
            s, pw, q = (
                row[f"{k}_{p}"] for k in ("apparent_power", "active_power", "reactive_power")
            )
            assert abs(s - v * i) <= 0.005 * i + 0.0005 * v + 0.05 + 1e-6
            assert abs(s - math.hypot(pw, q)) <= 0.15


def test_reactive_power_is_inductive() -> None:
    """Reactive power is never negative: the simulated loads are inductive."""
    for row in _day_of_readings(LoadProfile.RESIDENTIAL):
        assert all(row[f"reactive_power_{p}"] >= 0 for p in PHASES)
        assert row["reactive_power"] >= 0


def test_totals_are_sums_of_phases_and_total_power_factor_is_p_over_s() -> None:
    """Total P, Q and S are the sums of the phases, and the total PF is P/S."""
    for row in _day_of_readings():
        for quantity in ("active_power", "reactive_power", "apparent_power"):
            phases = sum(row[f"{quantity}_{p}"] for p in PHASES)
            assert abs(row[quantity] - phases) <= 0.2
        assert abs(row["power_factor"] - row["active_power"] / row["apparent_power"]) <= 1e-4


def test_line_voltages_follow_from_phase_voltages_120_degrees_apart() -> None:
    """V_ab = sqrt(Va² + Vb² + Va·Vb) for each pair of phases, within rounding."""
    for row in _day_of_readings():
        for a, b in (("l1", "l2"), ("l2", "l3"), ("l3", "l1")):
            va, vb = row[f"voltage_{a}"], row[f"voltage_{b}"]
            assert abs(row[f"voltage_{a}_{b}"] - math.sqrt(va * va + vb * vb + va * vb)) <= 0.02


def test_neutral_current_is_the_phasor_sum_of_phase_currents() -> None:
    """The neutral current is the magnitude of the phase currents' phasor sum."""
    for row in _day_of_readings():
        re = im = bound = 0.0
        for k, p in enumerate(PHASES):
            amps, pf = row[f"current_{p}"], row[f"power_factor_{p}"]
            angle = -2.0 * math.pi * k / 3.0 - math.acos(pf)
            re += amps * math.cos(angle)
            im += amps * math.sin(angle)
            bound += 0.0006 + amps * 0.00006 / max(math.sqrt(1.0 - pf * pf), 0.01)
        assert abs(row["current_n"] - math.hypot(re, im)) <= bound + 0.001


def test_energy_never_decreases_and_grows_by_power_times_interval() -> None:
    """Imported energy is monotonic and each step adds P·dt (kWh), within rounding."""
    rows = readings(simulator(), times(500, 10.0))
    for before, after in itertools.pairwise(rows):
        added = after["energy_import"] - before["energy_import"]
        assert added >= 0
        assert abs(added - after["active_power"] * 10.0 / 3.6e6) <= 0.0011
        reactive = after["reactive_energy_import"] - before["reactive_energy_import"]
        assert abs(reactive - after["reactive_power"] * 10.0 / 3.6e6) <= 0.0011


def test_export_counters_stay_constant_without_generation() -> None:
    """With no generation, the export counters never move."""
    rows = _day_of_readings()
    assert len({row["energy_export"] for row in rows}) == 1
    assert len({row["reactive_energy_export"] for row in rows}) == 1


def test_repeating_a_timestamp_adds_no_energy() -> None:
    """A second step at the same time integrates over dt = 0."""
    sim = simulator()
    first = sim.step(START_TS)
    again = sim.step(START_TS)
    assert first is not None
    assert again is not None
    assert again["energy_import"] == first["energy_import"]


def test_frequency_stays_within_half_a_hertz_of_nominal_but_varies() -> None:
    """Frequency wanders around nominal, never by more than 0.5 Hz."""
    rows = readings(simulator(), times(3 * 1440, 60.0))
    freq = [row["frequency"] for row in rows]
    assert all(abs(f - 50.0) <= 0.5 for f in freq)
    assert statistics.pstdev(freq) > 0.005


def test_voltage_stays_near_nominal_and_drops_with_load() -> None:
    """Phase voltages stay within a few percent of 230 V, lower under a heavier load."""
    stamps = times(288 * 2, 300.0)
    heavy = readings(simulator(params=SimulationParams(load_fraction=0.9)), stamps)
    light = readings(simulator(params=SimulationParams(load_fraction=0.2)), stamps)
    for row, twin in zip(heavy, light, strict=True):
        for p in PHASES:
            assert 210.0 < row[f"voltage_{p}"] < twin[f"voltage_{p}"] < 245.0


def test_voltage_wanders_slowly_around_nominal() -> None:
    """At light, steady load the voltage still wanders by about half a percent, slowly."""
    params = SimulationParams(profile=LoadProfile.FLAT, load_fraction=0.05)
    volts = [row["voltage_l1"] for row in readings(simulator(params=params), times(2880, 60.0))]
    assert 0.004 * 230.0 < statistics.pstdev(volts) < 0.015 * 230.0
    steps = [abs(b - a) for a, b in itertools.pairwise(volts)]
    assert statistics.fmean(steps) < 0.3 * statistics.pstdev(volts)


def test_commercial_midday_load_exceeds_night_and_weekend_load() -> None:
    """A commercial site draws most on weekday office hours."""
    stamps = times(288 * 7, 300.0)
    rows = readings(simulator(), stamps)
    weekdays, weekend = stamps[: 288 * 5], stamps[288 * 5 :]
    midday = _mean_between(rows[: 288 * 5], weekdays, "current_l1", 11.0, 15.0)
    night = _mean_between(rows[: 288 * 5], weekdays, "current_l1", 1.0, 5.0)
    saturday_midday = _mean_between(rows[288 * 5 :], weekend, "current_l1", 11.0, 15.0)
    assert midday > 2.0 * night
    assert midday > 2.0 * saturday_midday


def test_residential_evening_peak_exceeds_early_morning() -> None:
    """A residential site draws more in the evening than before dawn."""
    stamps = times(288 * 2, 300.0)
    rows = readings(simulator(params=SimulationParams(profile=LoadProfile.RESIDENTIAL)), stamps)
    evening = _mean_between(rows, stamps, "active_power", 18.5, 21.0)
    dawn = _mean_between(rows, stamps, "active_power", 2.0, 5.0)
    assert evening > 1.5 * dawn


def test_utc_offset_moves_the_daily_curve_to_local_time() -> None:
    """At UTC+9 the commercial peak is around 03:00 UTC (noon local)."""
    stamps = times(288 * 2, 300.0)
    rows = readings(simulator(params=SimulationParams(utc_offset_h=9.0)), stamps)
    local_noon = _mean_between(rows, stamps, "current_l1", 2.0, 5.0)
    local_evening = _mean_between(rows, stamps, "current_l1", 12.0, 15.0)
    assert local_noon > 2.0 * local_evening


def test_light_load_lowers_power_factor_and_raises_current_distortion() -> None:
    """PF is lower and current THD higher at night (light load) than at midday."""
    stamps = times(288, 300.0)
    rows = readings(simulator(), stamps)

    def night_minus_midday(channel: str) -> float:
        night = _mean_between(rows, stamps, channel, 1.0, 5.0)
        return night - _mean_between(rows, stamps, channel, 11.0, 15.0)

    assert night_minus_midday("power_factor_l1") < -0.02
    assert night_minus_midday("thd_current_l1") > 2.0


def test_distortion_stays_in_typical_ranges() -> None:
    """Voltage THD stays within 1-3 % and current THD within 5-30 %."""
    for row in _day_of_readings(LoadProfile.RESIDENTIAL):
        for p in PHASES:
            assert 1.0 <= row[f"thd_voltage_{p}"] <= 3.0
            assert 5.0 <= row[f"thd_current_{p}"] <= 30.0


def test_temperature_lags_a_step_in_load() -> None:
    """When the load vanishes, temperature falls over tens of minutes, not at once."""
    params = SimulationParams(profile=LoadProfile.FLAT, load_fraction=0.9)
    loss = ScheduledFault(FaultKind.PHASE_LOSS, at_s=2 * HOUR_S, duration_s=4 * HOUR_S)
    stamps = times(6 * 60, 60.0)
    driver = make_driver((*SINGLE_PHASE_NAMES, "temperature"), 1, "test-1p-temperature")
    faulty = readings(simulator(driver, params=params, faults=(loss,)), stamps)
    twin = readings(simulator(driver, params=params), stamps)
    start = 120
    assert faulty[start]["current_l1"] == 0.0

    def cooled(minutes: int) -> float:
        return twin[start + minutes]["temperature"] - faulty[start + minutes]["temperature"]

    assert cooled(120) > 10.0
    assert cooled(1) < 0.2 * cooled(120)
    assert cooled(1) < cooled(10) < cooled(60)


def test_demand_is_a_slow_average_of_power() -> None:
    """After a drop in power, demand follows over minutes, not at once."""
    params = SimulationParams(profile=LoadProfile.FLAT)
    loss = ScheduledFault(FaultKind.PHASE_LOSS, at_s=2 * HOUR_S, duration_s=4 * HOUR_S, phase=1)
    rows = readings(simulator(params=params, faults=(loss,)), times(5 * 60, 60.0))
    drop = rows[120]
    assert drop["active_power_demand"] > 1.3 * drop["active_power"]
    settled = rows[239]
    assert abs(settled["active_power_demand"] / settled["active_power"] - 1.0) < 0.05


def test_rated_current_parameter_scales_the_currents() -> None:
    """rated_current_a overrides the driver's nominal current as full load."""
    stamps = times(100, 10.0)
    default = readings(simulator(), stamps)
    small = readings(simulator(params=SimulationParams(rated_current_a=10.0)), stamps)
    for big, little in zip(default, small, strict=True):
        assert abs(little["current_l2"] / big["current_l2"] - 0.1) < 0.001


def test_non_positive_rated_current_is_refused() -> None:
    """A rated current of zero cannot size a load and raises ValueError."""
    with pytest.raises(ValueError, match="rated current"):
        simulator(params=SimulationParams(rated_current_a=0.0))


def test_readings_are_rounded_to_channel_resolution() -> None:
    """Every value is a whole number of its channel's resolution steps."""
    for row in _day_of_readings()[:50]:
        for name, value in row.items():
            steps = value / CHANNELS[name].resolution
            assert abs(steps - round(steps)) < 1e-6, name


def test_readings_cover_canonical_channels_and_skip_vendor_ones() -> None:
    """The reading has every canonical channel of the driver, in order, and no x_ channel."""
    names = ("x_status", "voltage_l1", "current_l1", "x_serial", "frequency")
    sim = simulator(make_driver(names, 1, "vendor"))
    row = sim.step(START_TS)
    assert row is not None
    assert tuple(row) == ("voltage_l1", "current_l1", "frequency")
    assert sim.channels == ("voltage_l1", "current_l1", "frequency")


def test_single_phase_driver_reports_l1_channels_and_totals_equal_to_l1() -> None:
    """A single-phase meter reports its channels only, and its totals are its l1 values."""
    rows = readings(simulator(SINGLE_PHASE), times(200, 10.0))
    for row in rows:
        assert tuple(row) == SINGLE_PHASE_NAMES
        for quantity in ("active_power", "reactive_power", "apparent_power"):
            assert row[quantity] == row[f"{quantity}_l1"]
        assert abs(row["power_factor"] - row["power_factor_l1"]) <= 1e-4


def test_same_seed_and_times_give_identical_readings() -> None:
    """The simulator is deterministic for a given seed and timestamp sequence."""
    stamps = times(300, 7.5)
    assert readings(simulator(seed=42), stamps) == readings(simulator(seed=42), stamps)


def test_different_seeds_give_different_noise() -> None:
    """Two seeds give different readings at the same times."""
    stamps = times(20, 10.0)
    one, other = readings(simulator(seed=1), stamps), readings(simulator(seed=2), stamps)
    assert all(a["voltage_l1"] != b["voltage_l1"] for a, b in zip(one, other, strict=True))


@settings(max_examples=40, deadline=None, database=None)
@given(
    seed=st.integers(0, 2**32),
    profile=st.sampled_from(LoadProfile),
    load_fraction=st.floats(0.05, 1.5),
    power_factor=st.floats(0.5, 1.0),
    utc_offset_h=st.floats(-12.0, 14.0),
    interval_s=st.floats(0.5, 900.0),
    start=st.floats(START_TS, START_TS + 30 * DAY_S),
)
def test_invariants_hold_for_any_site_and_seed(
    seed: int,
    profile: LoadProfile,
    load_fraction: float,
    power_factor: float,
    utc_offset_h: float,
    interval_s: float,
    start: float,
) -> None:
    """PF bounds, inductive Q, frequency band, voltage band and monotonic energy always hold."""
    params = SimulationParams(profile, load_fraction, power_factor, utc_offset_h)
    rows = readings(simulator(seed=seed, params=params), times(30, interval_s, start))
    for before, row in itertools.pairwise(rows):
        assert row["energy_import"] >= before["energy_import"]
        assert row["reactive_energy_import"] >= before["reactive_energy_import"]
    for row in rows:
        assert abs(row["frequency"] - 50.0) <= 0.5
        for p in PHASES:
            assert 0.5 <= row[f"power_factor_{p}"] <= 1.0
            assert row[f"reactive_power_{p}"] >= 0.0
            assert 0.88 * 230.0 < row[f"voltage_{p}"] < 1.08 * 230.0
