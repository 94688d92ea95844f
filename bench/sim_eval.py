"""Detection quality on simulated meters with known faults: per fault kind, precision, recall
and detection delay, through ``gridedge replay``'s code path.

For each fault kind, ``gridedge simulate`` writes a dataset with only that kind injected; every
meter file is replayed with the driver's physical limits, and the raised alerts are matched
against ``faults.csv``. An alert matches a fault of its device when it is raised between the
fault's start and ``GRACE_S`` after its end. Precision is matched alerts over all alerts raised
after the warm-up; recall is faults with at least one matching alert over all faults that start
after the warm-up; delay is the median time from a fault's start to its first matching alert.
``active_f1`` scores replay's ``alert_active`` column point by point against the rows a fault
acts on (after the warm-up): an alert should be active while its fault lasts, and only then.
With ``--default-magnitudes`` every fault has its kind's default size.

    python bench/sim_eval.py [--meters 3] [--days 1] [--interval-s 10] [--fault-rate 0.2]
                             [--default-magnitudes]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DRIVER = "eastron-sdm630"
START = "2026-01-05T00:00:00"
GRACE_S = 300.0


def _simulate(out: Path, kind: str, args: argparse.Namespace) -> list[Path]:
    import datetime as dt

    from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_drivers
    from gridedge.simulator.dataset import write_dataset
    from gridedge.simulator.faults import FaultKind, FaultPlan
    from gridedge.simulator.physics import SimulationParams

    driver = load_drivers([BUILTIN_DRIVERS_DIR])[DRIVER]
    plan = FaultPlan(args.fault_rate, (FaultKind(kind),), (), args.default_magnitudes)
    paths = write_dataset(
        out,
        driver,
        meters=args.meters,
        days=args.days,
        interval_s=args.interval_s,
        seed=args.seed,
        plan=plan,
        params=SimulationParams(),
        start_ts=dt.datetime.fromisoformat(START).replace(tzinfo=dt.UTC).timestamp(),
    )
    return [p for p in paths if p.name.startswith("sim-")]


def _alerts(path: Path, out: Path) -> tuple[list[float], float, tuple[int, int, int]]:
    """Times of raised alerts in one meter file, the end of its warm-up, and the point-wise
    (true positive, false positive, false negative) counts of ``alert_active``.
    """
    from gridedge.analytics.replay import _driver_limits, parse_timestamp, replay_file
    from gridedge.analytics.settings import AnalyticsConfig

    with path.open(newline="") as f:
        header = next(csv.reader(f))
    columns = [c for c in header if c not in ("timestamp", "anomaly", "fault")]
    config = AnalyticsConfig()
    replay_file(path, out, config, columns=columns, limits=_driver_limits(DRIVER))
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    skip = min(config.detector.warmup_samples, len(rows) - 1)
    warm = parse_timestamp(rows[skip]["timestamp"])
    raised = [parse_timestamp(r["timestamp"]) for r in rows if r["alert"] == "1"]
    with path.open(newline="") as f:
        truth = [r["anomaly"] == "1" for r in csv.DictReader(f)]
    tp = fp = fn = 0
    for row, fault in zip(rows[skip:], truth[skip:], strict=True):
        active = row["alert_active"] == "1"
        tp += active and fault
        fp += active and not fault
        fn += fault and not active
    return raised, warm, (tp, fp, fn)


def _faults(path: Path, interval_s: float, t0: float) -> dict[str, list[tuple[float, float]]]:
    """Fault windows per device; a fault no reading can show (between two readings, or on a
    channel the meter does not have) is left out.
    """
    from gridedge.analytics.replay import parse_timestamp

    faults: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            a, b = parse_timestamp(r["start"]), parse_timestamp(r["end"])
            sampled = math.floor((b - t0) / interval_s) >= math.ceil((a - t0) / interval_s)
            if sampled and (r["channels"] or r["kind"] == "dropout"):
                faults[r["device"]].append((a, b))
    return faults


def evaluate_kind(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Precision, recall and delay for one fault kind."""
    matched = alerts = found = total = 0
    tp = fp = fn = 0
    delays: list[float] = []
    with tempfile.TemporaryDirectory(prefix="gridedge-sim-") as tmp:
        folder = Path(tmp)
        files = _simulate(folder / "data", kind, args)
        from gridedge.analytics.replay import parse_timestamp

        t0 = parse_timestamp(START)
        truth = _faults(folder / "data" / "faults.csv", args.interval_s, t0)
        for path in files:
            raised, warm, counts = _alerts(path, folder / "scores.csv")
            tp, fp, fn = tp + counts[0], fp + counts[1], fn + counts[2]
            spans = [s for s in truth.get(path.stem, []) if s[0] >= warm]
            later = [t for t in raised if t >= warm]
            alerts += len(later)
            matched += sum(any(a <= t <= b + GRACE_S for a, b in spans) for t in later)
            for a, b in spans:
                total += 1
                hits = [t for t in later if a <= t <= b + GRACE_S]
                if hits:
                    found += 1
                    delays.append(min(hits) - a)
    return {
        "faults": total,
        "alerts": alerts,
        "precision": round(matched / alerts, 3) if alerts else None,
        "recall": round(found / total, 3) if total else None,
        "median_delay_s": round(statistics.median(delays), 1) if delays else None,
        "active_f1": round(2 * tp / (2 * tp + fp + fn), 3) if tp + fp + fn else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Print per-kind figures as JSON."""
    from gridedge.simulator.faults import FaultKind

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--meters", type=int, default=3)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--interval-s", type=float, default=10.0)
    parser.add_argument("--fault-rate", type=float, default=0.2, help="faults per meter-hour")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--default-magnitudes", action="store_true", help="no random sizes")
    parser.add_argument("--kinds", default=",".join(k.value for k in FaultKind))
    args = parser.parse_args(argv)
    result = {kind: evaluate_kind(kind, args) for kind in args.kinds.split(",") if kind}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
