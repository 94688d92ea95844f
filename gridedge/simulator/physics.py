"""Physics of a simulated power meter: load curves, voltages, powers, energy and temperature.

:class:`MeterSimulator` produces one meter's readings at the timestamps it is given. The load
(:mod:`~gridedge.simulator.load`) follows weekday and weekend curves in local time, switched
loads, the seasons and a slow random walk, and stays inside the meter's rating; voltage,
frequency and temperature wander around their nominal values (ambient with day and season).
Every derived quantity is computed from the per-phase voltage, current and power factor, so
the readings are consistent with one another the way a real meter's are (``P = V·I·PF``,
totals are sums of phases, energy integrates power).

Two random sources keep faults from disturbing the physics: the noise comes from ``seed``, the
faults from a source derived from it, so a faulty meter and its fault-free twin share every
draw of noise.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gridedge.channels import CHANNELS
from gridedge.drivers import Driver
from gridedge.simulator.effects import (
    PhaseEffects,
    distort_readings,
    frozen_channels,
    phase_effects,
)
from gridedge.simulator.faults import ActiveFault, FaultEvent, FaultKind, FaultPlan, FaultTimeline
from gridedge.simulator.load import LoadModel, seasonal_ambient_c
from gridedge.simulator.load import LoadProfile as LoadProfile


@dataclass(frozen=True, slots=True)
class SimulationParams:
    """How a simulated meter's site behaves.

    Attributes:
        profile: the daily load curve.
        load_fraction: mean load relative to the rated current.
        power_factor: typical power factor of the load (lower at light load).
        utc_offset_h: offset of the site's local time, which the daily curve follows.
        ambient_c: mean ambient temperature.
        rated_current_a: the current that counts as full load; None takes the driver's
            nominal current.
    """

    profile: LoadProfile = LoadProfile.COMMERCIAL
    load_fraction: float = 0.5
    power_factor: float = 0.92
    utc_offset_h: float = 0.0
    ambient_c: float = 20.0
    rated_current_a: float | None = None


# Time constants (s) and stationary standard deviations of the random processes.
_TAU_GRID_V_S, _SIGMA_GRID_V = 1200.0, 0.006
_TAU_PHASE_V_S, _SIGMA_PHASE_V = 600.0, 0.002
_TAU_FREQ_S, _SIGMA_FREQ_HZ = 60.0, 0.02
_TAU_DEMAND_S = 900.0
_MAX_FREQ_DEVIATION_HZ = 0.45
_VOLTAGE_DROP = 0.025  # fraction of nominal voltage lost in the supply cable at rated current
_RISE_AT_RATED_C = 25.0
_KWH_PER_WS = 1.0 / 3.6e6

# In the order _fill_phases writes them.
_PHASE_QUANTITIES: tuple[str, ...] = ("voltage", "current", "active_power", "reactive_power")
_PHASE_QUANTITIES += ("apparent_power", "power_factor", "thd_voltage", "thd_current")
_PHASE_KEYS = tuple(tuple(f"{q}_l{p}" for q in _PHASE_QUANTITIES) for p in (1, 2, 3))
# Phase angles of the supply voltages (0°, -120°, +120°), for the neutral current phasor sum.
_COS = (1.0, -0.5, -0.5)
_SIN = (0.0, -math.sqrt(3.0) / 2.0, math.sqrt(3.0) / 2.0)
_NO_EFFECTS = PhaseEffects([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])


class MeterSimulator:
    """One simulated meter: consistent, plausible readings at the timestamps it is given.

    Deterministic: the same arguments and the same sequence of timestamps give the same
    readings. Single-phase drivers (``driver.phases == 1``) get the l1 physics only; their
    totals equal l1 and their neutral current equals the phase current. Other drivers get
    three-phase physics.

    Args:
        device: the meter's device id, copied into fault events.
        driver: the meter model; its canonical channels are simulated, vendor ``x_`` channels
            are left out.
        params: how the site behaves.
        plan: the faults to inject.
        seed: seeds the noise and the faults.
        on_fault: called once with each fault's ground truth when the fault starts.

    Raises:
        ValueError: the rated current is not positive, or a scheduled fault names a phase the
            meter does not have.
    """

    def __init__(
        self,
        device: str,
        driver: Driver,
        params: SimulationParams,
        plan: FaultPlan,
        seed: int,
        on_fault: Callable[[FaultEvent], None] | None = None,
    ) -> None:
        self._params = params
        self._phases = 1 if driver.phases <= 1 else 3
        self._vn = driver.nominal.voltage_v
        self._fn = driver.nominal.frequency_hz
        rated = params.rated_current_a
        self._rated = driver.nominal.current_a if rated is None else rated
        if not self._rated > 0:
            raise ValueError(f"{device}: rated current must be positive, got {self._rated}")
        names = [n for n in driver.channel_names if n in CHANNELS]
        # round(x * scale) / scale gives the shortest decimal (230.12, not 230.12000000000001).
        self._spec = tuple((n, round(1.0 / CHANNELS[n].resolution)) for n in names)
        self._channels = tuple(names)
        self._rng = random.Random(seed)
        self._load_model = LoadModel(
            params.profile,
            params.load_fraction,
            params.utc_offset_h,
            random.Random(f"gridedge.simulator.load:{seed}"),
        )
        faults_rng = random.Random(f"gridedge.simulator.faults:{seed}")
        self._timeline = FaultTimeline(
            device, self._channels, self._phases, plan, faults_rng, on_fault
        )
        self._applied: list[ActiveFault] = []
        self._last: dict[str, float] = {}
        self._ts = math.nan
        self._dt = math.nan
        self._init_meter()

    def _init_meter(self) -> None:
        """Draw the meter's fixed traits and a starting state from the stationary processes."""
        rng, params = self._rng, self._params
        self._imbalance = [min(1.1, max(0.9, 1.0 + rng.gauss(0.0, 0.03))) for _ in range(3)]
        self._pf_base = [params.power_factor + rng.gauss(0.0, 0.01) for _ in range(3)]
        self._thd_v_base = [rng.uniform(1.1, 1.9) for _ in range(3)]
        self._thd_i_base = [rng.uniform(5.0, 7.0) for _ in range(3)]
        self._tau_thermal_s = rng.uniform(1200.0, 2400.0)
        self._grid_v = rng.gauss(0.0, _SIGMA_GRID_V)
        self._phase_v = [rng.gauss(0.0, _SIGMA_PHASE_V) for _ in range(3)]
        self._freq = rng.gauss(0.0, _SIGMA_FREQ_HZ)
        mean_kw = self._phases * self._vn * self._rated * params.load_fraction * 1e-3
        imported = rng.uniform(0.02, 0.3) * 8760.0 * mean_kw  # weeks to months in service
        tan_phi = math.tan(math.acos(min(1.0, max(0.5, params.power_factor))))
        self._energy = [imported, 0.0, imported * tan_phi, 0.0]
        self._rise = 0.0
        self._extra_c = 0.0
        self._demand = 0.0

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels :meth:`step` reports, in the driver's order."""
        return self._channels

    @property
    def faults(self) -> Sequence[FaultEvent]:
        """Ground truth: every fault started so far, in order of start."""
        return tuple(self._timeline.events)

    @property
    def active_faults(self) -> tuple[FaultEvent, ...]:
        """The faults that acted on the latest step (including a dropout)."""
        return tuple(f.event for f in self._applied)

    def step(self, ts: float) -> dict[str, float] | None:
        """Advance the meter to ``ts`` and read it.

        Args:
            ts: UTC epoch seconds of the reading; never less than the previous one.

        Returns:
            a value for every canonical channel of the driver, rounded to the channel's
            resolution; None when the meter does not answer (a dropout).
        """
        first = math.isnan(self._ts)
        dt = 0.0 if first else max(0.0, ts - self._ts)
        self._ts = ts if first else max(ts, self._ts)
        if dt != self._dt:
            self._set_coefficients(dt)
        active = self._applied = self._timeline.advance(ts)
        effects = phase_effects(active, ts) if active else _NO_EFFECTS
        self._advance_state()
        raw = self._physics(ts, dt, effects, first)
        if active:
            distort_readings(active, raw, ts)
        out = {name: round(raw.get(name, 0.0) * scale) / scale for name, scale in self._spec}
        if active:
            return self._stick(active, out)
        self._last = out
        return out

    def _stick(self, active: list[ActiveFault], out: dict[str, float]) -> dict[str, float] | None:
        """Apply flatlines and dropouts, which act on what the meter reports."""
        everything, stuck = frozen_channels(active)
        last = self._last
        if everything and last:
            out = dict(last)
        else:
            for name in stuck:
                if name in last:
                    out[name] = last[name]
        if any(f.kind is FaultKind.DROPOUT for f in active):
            return None
        self._last = out
        return out

    def _set_coefficients(self, dt: float) -> None:
        """Exact discretisation of the random processes for a step of ``dt`` seconds."""

        def ou(tau: float, sigma: float) -> tuple[float, float]:
            a = math.exp(-dt / tau)
            return a, sigma * math.sqrt(1.0 - a * a)

        self._dt = dt
        self._k_grid = ou(_TAU_GRID_V_S, _SIGMA_GRID_V)
        self._k_phase = ou(_TAU_PHASE_V_S, _SIGMA_PHASE_V)
        self._k_freq = ou(_TAU_FREQ_S, _SIGMA_FREQ_HZ)
        self._a_demand = math.exp(-dt / _TAU_DEMAND_S)
        self._a_thermal = math.exp(-dt / self._tau_thermal_s)

    def _advance_state(self) -> None:
        """Step the slow random processes (Ornstein-Uhlenbeck) by the current ``dt``."""
        gauss = self._rng.gauss
        a, b = self._k_grid
        self._grid_v = a * self._grid_v + b * gauss()
        a, b = self._k_phase
        phase_v = self._phase_v
        for p in range(self._phases):
            phase_v[p] = a * phase_v[p] + b * gauss()
        a, b = self._k_freq
        freq = a * self._freq + b * gauss()
        self._freq = max(-_MAX_FREQ_DEVIATION_HZ, min(_MAX_FREQ_DEVIATION_HZ, freq))

    def _physics(
        self, ts: float, dt: float, effects: PhaseEffects, first: bool
    ) -> dict[str, float]:
        """Every canonical quantity at ``ts``, unrounded."""
        load = self._load_model.at(ts)
        second = self._load_model.local_second(ts)
        raw: dict[str, float] = {}
        totals = self._fill_phases(raw, load, effects)
        p_total, q_total, s_total, neutral_re, neutral_im, heat = totals
        raw["active_power"] = p_total
        raw["reactive_power"] = q_total
        raw["apparent_power"] = s_total
        raw["power_factor"] = p_total / s_total if s_total > 0.0 else 1.0
        raw["current_n"] = math.hypot(neutral_re, neutral_im)
        self._fill_line_voltages(raw)
        jitter = min(0.04, max(-0.04, 0.002 * self._rng.gauss()))  # keeps |f - fn| < 0.5 Hz
        raw["frequency"] = self._fn + self._freq + jitter
        self._fill_energy(raw, dt, p_total, q_total, first)
        hour = second / 3600.0
        ambient = (
            self._params.ambient_c
            + seasonal_ambient_c(ts)
            + 3.0 * math.cos(2.0 * math.pi * (hour - 15.0) / 24.0)
        )
        target = _RISE_AT_RATED_C * heat / self._phases
        a = self._a_thermal
        self._rise = target if first else target + (self._rise - target) * a
        if effects.heating_c_per_h > 0.0:
            self._extra_c += effects.heating_c_per_h * dt / 3600.0
        else:
            self._extra_c *= a  # the overheated part cools with the same time constant
        raw["temperature"] = ambient + self._rise + self._extra_c + 0.05 * self._rng.gauss()
        return raw

    def _fill_phases(
        self, raw: dict[str, float], load: float, effects: PhaseEffects
    ) -> tuple[float, float, float, float, float, float]:
        """Per-phase quantities into ``raw``; returns P, Q, S, neutral phasor and heat sums."""
        gauss = self._rng.gauss
        vn, rated = self._vn, self._rated
        light = max(0.0, 0.4 - load) / 0.4  # PF and current THD worsen at light load
        thd_i_load = 18.0 * (1.0 - min(load, 1.0)) ** 2
        common_v = 1.0 + self._grid_v
        p_sum = q_sum = s_sum = re = im = heat = 0.0
        for p in range(self._phases):
            amps = rated * load * self._imbalance[p] * (1.0 + 0.01 * gauss()) * effects.current[p]
            volts = vn * (
                (common_v + self._phase_v[p] + 0.0005 * gauss()) * effects.voltage[p]
                - _VOLTAGE_DROP * amps / rated
            )
            pf = min(1.0, max(0.5, self._pf_base[p] - 0.1 * light + 0.003 * gauss()))
            thd_v = min(3.0, max(1.0, self._thd_v_base[p] + 0.4 * load + 0.05 * gauss()))
            thd_i = min(30.0, max(5.0, (self._thd_i_base[p] + thd_i_load) * (1 + 0.03 * gauss())))
            if effects.lost[p]:
                volts, amps, pf, thd_v, thd_i = effects.lost[p] * volts / vn, 0.0, 1.0, 0.0, 0.0
            s = volts * amps
            sin_phi = math.sqrt(1.0 - pf * pf)
            k = _PHASE_KEYS[p]
            raw[k[0]], raw[k[1]], raw[k[5]], raw[k[6]], raw[k[7]] = volts, amps, pf, thd_v, thd_i
            raw[k[2]], raw[k[3]], raw[k[4]] = s * pf, s * sin_phi, s
            p_sum += s * pf
            q_sum += s * sin_phi
            s_sum += s
            # Current lags its voltage by phi: angle(I) = angle(V) - phi.
            re += amps * (_COS[p] * pf + _SIN[p] * sin_phi)
            im += amps * (_SIN[p] * pf - _COS[p] * sin_phi)
            heat += (amps / rated) ** 2
        for k in _PHASE_KEYS[self._phases :]:
            for name in k:
                raw[name] = 0.0
        return p_sum, q_sum, s_sum, re, im, heat

    def _fill_line_voltages(self, raw: dict[str, float]) -> None:
        """Line-to-line voltages from phase voltages 120° apart (0 on single-phase meters)."""
        if self._phases == 1:
            raw["voltage_l1_l2"] = raw["voltage_l2_l3"] = raw["voltage_l3_l1"] = 0.0
            return
        va, vb, vc = raw["voltage_l1"], raw["voltage_l2"], raw["voltage_l3"]
        raw["voltage_l1_l2"] = math.sqrt(va * va + vb * vb + va * vb)
        raw["voltage_l2_l3"] = math.sqrt(vb * vb + vc * vc + vb * vc)
        raw["voltage_l3_l1"] = math.sqrt(vc * vc + va * va + vc * va)

    def _fill_energy(
        self, raw: dict[str, float], dt: float, p_total: float, q_total: float, first: bool
    ) -> None:
        """Integrate the energy counters over ``dt`` and update the demand average."""
        energy = self._energy
        ws = dt * _KWH_PER_WS
        if p_total >= 0.0:
            energy[0] += p_total * ws
        else:
            energy[1] -= p_total * ws
        if q_total >= 0.0:
            energy[2] += q_total * ws
        else:
            energy[3] -= q_total * ws
        raw["energy_import"], raw["energy_export"] = energy[0], energy[1]
        raw["reactive_energy_import"], raw["reactive_energy_export"] = energy[2], energy[3]
        a = self._a_demand
        self._demand = p_total if first else p_total + (self._demand - p_total) * a
        raw["active_power_demand"] = self._demand
