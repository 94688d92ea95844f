"""The embedded demo config shows its analytics working within its first simulated minute."""

from __future__ import annotations

from pathlib import Path

from gridedge.analytics.stage import AnalyticsSink, driver_limits
from gridedge.cli.configs import EXAMPLE_CONFIG
from gridedge.config import parse_config
from gridedge.links.settings import SimulatedLinkConfig
from gridedge.model import Envelope, Kind, Record, Sample
from gridedge.simulator.physics import MeterSimulator
from gridedge.tomlread import load_toml

START_TS = 1767604800.0  # Monday 2026-01-05 09:00 UTC: office hours on the demo's sites


class _Collect:
    async def put(self, records: object) -> None:
        del records


def _first_minute(seconds: int = 60) -> list[Envelope]:
    """The alert envelopes the daemon's analytics stage stores while the demo runs, on a
    simulated clock ticking every second.
    """
    config = parse_config(load_toml(EXAMPLE_CONFIG), source="<embedded>", base_dir=Path.cwd())
    meters = [(m.id, config.drivers[m.driver]) for m in config.meters]
    stage = AnalyticsSink(_Collect(), config.analytics, driver_limits(meters))
    sims = []
    for m in config.meters:
        assert isinstance(m.link, SimulatedLinkConfig)
        link = m.link
        sim = MeterSimulator(m.id, config.drivers[m.driver], link.params, link.faults, link.seed)
        sims.append((m.id, m.interval_s, sim))
    alerts: list[Envelope] = []
    for t in range(seconds + 1):
        for device, interval_s, sim in sims:
            if t % interval_s:
                continue
            values = sim.step(START_TS + t)
            if values is None:
                continue
            records: list[Record] = [Sample(device, START_TS + t, values)]
            out = stage.process(records)
            alerts += [r for r in out if isinstance(r, Envelope) and r.kind is Kind.ALERT]
    return alerts


def test_the_demo_raises_alerts_for_its_injected_faults_within_a_minute() -> None:
    """The scheduled sag on mains and the dropout on workshop are both raised in the first
    minute, and no predictive trend alert is raised on the demo's steady voltage.
    """
    raised = [a for a in _first_minute() if a.body["state"] == "raised"]
    seen = {(a.device, a.body["rule"], a.body["channel"]) for a in raised}
    assert ("mains", "band", "voltage_l2") in seen
    assert any(device == "workshop" and rule == "dropout" for device, rule, _ in seen)
    assert not [a for a in raised if a.body["rule"] == "trend"]
