"""False alarms of the default analytics on fault-free simulated meters: alerts per meter-week,
by rule, over every load profile (``device_model``: detector alerts of the multivariate
detector or a configured River model, on the device channel).

Each meter is simulated in process (no faults at all) and its samples go through the same
:class:`~gridedge.analytics.engine.Analytics` as the daemon and ``gridedge replay``, with the
driver's physical limits. Every raised alert is a false alarm. Prints one JSON object::

    python bench/false_alarms.py [--meters 12] [--days 14] [--interval-s 10] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DRIVER = "eastron-sdm630"
START_TS = 1767571200.0  # Monday 2026-01-05 00:00 UTC
WEEK_S = 7 * 86400.0


def run_meter(job: tuple[int, str, float, float, str | None]) -> dict[str, Any]:
    """Simulate one fault-free meter and count the alerts its analytics raise, by rule."""
    from gridedge.analytics.engine import Analytics
    from gridedge.analytics.settings import AnalyticsConfig, load_analytics
    from gridedge.analytics.stage import driver_limits
    from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_drivers
    from gridedge.model import Sample
    from gridedge.simulator.faults import FaultPlan
    from gridedge.simulator.physics import LoadProfile, MeterSimulator, SimulationParams

    seed, profile, days, interval_s, config_path = job
    driver = load_drivers([BUILTIN_DRIVERS_DIR])[DRIVER]
    config = load_analytics(Path(config_path)) if config_path else AnalyticsConfig()
    device = f"sim-{seed:04d}"
    params = SimulationParams(profile=LoadProfile(profile), utc_offset_h=float(seed % 3))
    sim = MeterSimulator(device, driver, params, FaultPlan(), seed)
    analytics = Analytics(config, driver_limits([(device, driver)]))
    rules: Counter[str] = Counter()
    first: list[float] = []
    for k in range(int(days * 86400.0 / interval_s)):
        ts = START_TS + k * interval_s
        values = sim.step(ts)
        if values is None:
            continue
        for event in analytics.process(Sample(device, ts, values)).raised:
            # A detector alert on the device channel comes from a device-level model.
            device_level = event.rule == "detector" and event.channel == "*"
            rules["device_model" if device_level else event.rule] += 1
            if len(first) < 5:
                first.append(round((ts - START_TS) / 3600.0, 2))
    return {"device": device, "profile": profile, "rules": dict(rules), "first_h": first}


def main(argv: list[str] | None = None) -> int:
    """Print alerts per meter-week as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--meters", type=int, default=12, help="spread over every load profile")
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--interval-s", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--config", help="a config file whose [analytics] section to use")
    args = parser.parse_args(argv)
    from gridedge.simulator.physics import LoadProfile

    profiles = list(LoadProfile)
    jobs = [
        (args.seed + i, profiles[i % len(profiles)].value, args.days, args.interval_s, args.config)
        for i in range(args.meters)
    ]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        meters = list(pool.map(run_meter, jobs))
    weeks = args.meters * args.days * 86400.0 / WEEK_S
    total: Counter[str] = Counter()
    by_profile: Counter[str] = Counter()
    for m in meters:
        total.update(m["rules"])
        by_profile[m["profile"]] += sum(m["rules"].values())
    per_profile_weeks = weeks / len(profiles)
    result = {
        "meters": args.meters,
        "days": args.days,
        "interval_s": args.interval_s,
        "meter_weeks": round(weeks, 2),
        "alerts": sum(total.values()),
        "alerts_per_meter_week": round(sum(total.values()) / weeks, 3),
        "limit_alerts": total["limit"],
        "by_rule": dict(total),
        "per_meter_week_by_profile": {
            p: round(n / per_profile_weeks, 3) for p, n in sorted(by_profile.items())
        },
        "meters_detail": meters,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
