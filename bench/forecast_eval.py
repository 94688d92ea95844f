"""Forecast accuracy: mean absolute error at horizons 1, 6 and 12 rows against a last-value
forecast, on NAB's two temperature series, through ``gridedge replay``'s code path.

    python bench/forecast_eval.py [--nab DIR] [--config FILE]

Prints one JSON object: per series and horizon, ``mae``, ``mae_last_value`` and their ratio
(below 1 means better than repeating the last value).
"""

from __future__ import annotations

import argparse
import csv
import json
import lzma
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAB_DIR = REPO / "bench" / "nab"
SERIES = (
    "realKnownCause/machine_temperature_system_failure.csv",
    "realKnownCause/ambient_temperature_system_failure.csv",
)
HORIZONS = (1, 6, 12)


def _nab_dir(given: str | None) -> Path:
    nab = Path(given) if given else NAB_DIR
    if not (nab / "data").is_dir():
        raise SystemExit(f"NAB corpus not found at {nab} (expected bench/nab in the repo)")
    return nab


def evaluate(path: Path, config: Path | None) -> dict[str, dict[str, float]]:
    """MAE of gridedge's forecasts and of the last value, per horizon, for one series."""
    from gridedge.analytics.replay import replay_file
    from gridedge.analytics.settings import load_analytics

    # bench/nab keeps each CSV xz-compressed; a full NAB checkout has the plain file.
    if path.is_file():
        text = path.read_text()
    else:
        with lzma.open(f"{path}.xz", "rt") as f:
            text = f.read()
    values = [float(r["value"]) for r in csv.DictReader(text.splitlines())]
    with tempfile.TemporaryDirectory(prefix="gridedge-forecast-") as tmp:
        source = Path(tmp) / "series.csv"
        source.write_text(text)
        out = Path(tmp) / "scores.csv"
        replay_file(source, out, load_analytics(config), columns=["value"], horizons=HORIZONS)
        with out.open(newline="") as f:
            rows = list(csv.DictReader(f))
    result = {}
    for h in HORIZONS:
        column = f"value_forecast_{h}"
        errors, naive = [], []
        for t in range(len(values) - h):
            errors.append(abs(values[t + h] - float(rows[t][column])))
            naive.append(abs(values[t + h] - values[t]))
        mae, base = sum(errors) / len(errors), sum(naive) / len(naive)
        result[str(h)] = {
            "mae": round(mae, 4),
            "mae_last_value": round(base, 4),
            "ratio": round(mae / base, 4),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    """Print the forecast figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nab", help="NAB folder (default: bench/nab in the repo)")
    parser.add_argument("--config", help="a gridedge config whose [analytics] section to use")
    args = parser.parse_args(argv)
    nab = _nab_dir(args.nab)
    config = Path(args.config) if args.config else None
    result = {name: evaluate(nab / "data" / name, config) for name in SERIES}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
