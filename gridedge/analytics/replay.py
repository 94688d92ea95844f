"""``gridedge replay``: the daemon's analytics, run offline over a recorded CSV series.

Input: a header row, a timestamp column (ISO 8601, or ``YYYY-MM-DD hh:mm:ss`` read as UTC), one
or more numeric columns, separated by ``,`` or ``;`` (detected from the header). Empty cells are
missing values. Output: one row per input row, ``timestamp,anomaly_score,alert,alert_active``:
the device score in [0, 1] (the largest channel score), 1 on the rows where an alert was
raised, and 1 on every row while any alert is active (a missed row keeps the state); with
forecast horizons, one column ``<column>_forecast_<h>`` per value column and horizon (the value
forecast ``h`` rows ahead, made at this row).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from gridedge.analytics.engine import Analytics, Limits
from gridedge.analytics.settings import AnalyticsConfig, TrendChannel, load_analytics
from gridedge.errors import ConfigError
from gridedge.model import Sample

DEVICE = "replay"


def parse_timestamp(text: str) -> float:
    """UTC epoch seconds of an ISO 8601 or ``YYYY-MM-DD hh:mm:ss`` timestamp (naive = UTC)."""
    stamp = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def _open_rows(f: TextIO) -> Iterator[list[str]]:
    header = f.readline()
    delimiter = ";" if header.count(";") > header.count(",") else ","
    yield next(csv.reader([header], delimiter=delimiter))
    yield from csv.reader(f, delimiter=delimiter)


def _columns(
    header: list[str], timestamp: str | None, wanted: Sequence[str] | None
) -> tuple[int, list[tuple[int, str]]]:
    names = [h.strip() for h in header]
    ts_name = timestamp or names[0]
    if ts_name not in names:
        raise ConfigError("--timestamp-column", f"no column {ts_name!r} in {', '.join(names)}")
    ts_col = names.index(ts_name)
    if wanted:
        missing = [w for w in wanted if w not in names]
        if missing:
            raise ConfigError("--columns", f"no column {missing[0]!r} in {', '.join(names)}")
        return ts_col, [(names.index(w), w) for w in wanted]
    return ts_col, [(i, n) for i, n in enumerate(names) if i != ts_col]


def with_forecasts(
    config: AnalyticsConfig, columns: Sequence[str], horizons: Sequence[int]
) -> AnalyticsConfig:
    """``config`` with forecasts of ``columns`` at ``horizons`` (samples) switched on."""
    known = {t.channel for t in config.trend.channels}
    extra = tuple(TrendChannel(c) for c in columns if c not in known)
    trend = replace(config.trend, horizons=tuple(horizons), channels=config.trend.channels + extra)
    return replace(config, trend=trend)


def replay_file(
    source: Path,
    target: Path,
    config: AnalyticsConfig,
    *,
    timestamp_column: str | None = None,
    columns: Sequence[str] | None = None,
    horizons: Sequence[int] = (),
    limits: Limits | None = None,
) -> int:
    """Replay ``source`` into ``target``; returns the number of rows written.

    A row without any value is a missed reading: it scores 0 and is not analysed (the gap
    then counts as a dropout). ``limits`` gives physical limits per column (from a driver).

    Raises:
        ConfigError: unknown columns, an unreadable timestamp or a non-numeric value (the
            message names the row).
    """
    with source.open(newline="", encoding="utf-8") as fin:
        rows = _open_rows(fin)
        header = next(rows, None)
        if header is None:
            raise ConfigError("", "empty file", str(source))
        ts_col, value_cols = _columns(header, timestamp_column, columns)
        names = [n for _, n in value_cols]
        if horizons:
            config = with_forecasts(config, names, horizons)
        analytics = Analytics(config, {DEVICE: limits} if limits else None)
        with target.open("w", newline="", encoding="utf-8") as fout:
            writer = csv.writer(fout, lineterminator="\n")
            extra = [f"{n}_forecast_{h}" for n in names for h in horizons]
            writer.writerow(["timestamp", "anomaly_score", "alert", "alert_active", *extra])
            count = 0
            active = False
            for line, row in enumerate(rows, start=2):
                if not row:
                    continue
                sample = _sample(row, line, ts_col, value_cols, source)
                if not sample.values:
                    cells = [row[ts_col], "0.000000", "0", "1" if active else "0"]
                    writer.writerow([*cells, *([""] * len(extra))])
                    count += 1
                    continue
                result = analytics.process(sample)
                active = result.active
                cells = [row[ts_col], f"{result.score:.6f}", "1" if result.raised else "0"]
                cells.append("1" if active else "0")
                for n in names:
                    fc = result.forecasts.get(n, {})
                    cells.extend(_fmt(fc.get(h)) for h in horizons)
                writer.writerow(cells)
                count += 1
    return count


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _sample(
    row: list[str], line: int, ts_col: int, value_cols: list[tuple[int, str]], source: Path
) -> Sample:
    try:
        ts = parse_timestamp(row[ts_col])
    except (ValueError, IndexError):
        raise ConfigError(f"row {line}", "unreadable timestamp", str(source)) from None
    values: dict[str, float] = {}
    for i, name in value_cols:
        cell = row[i].strip() if i < len(row) else ""
        if not cell:
            continue
        try:
            # A decimal comma is common in semicolon-separated files.
            values[name] = float(cell) if "," not in cell else float(cell.replace(",", "."))
        except ValueError:
            raise ConfigError(
                f"row {line}", f"column {name!r}: not a number: {cell!r}", str(source)
            ) from None
    return Sample(DEVICE, ts, values)


def add_replay_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gridedge replay`` on the command line's subparsers."""
    p = sub.add_parser("replay", help="run the analytics over a recorded CSV; write scores")
    p.add_argument("input", help="CSV with a header, a timestamp column and numeric columns")
    p.add_argument("-o", "--out", required=True, help="where to write the scores (CSV)")
    p.add_argument("-c", "--config", help="a config file whose [analytics] section to use")
    p.add_argument("--timestamp-column", help="name of the timestamp column (default: first)")
    p.add_argument("--columns", help="comma-separated value columns (default: all others)")
    p.add_argument("--driver", help="apply this driver's physical limits to same-named columns")
    p.add_argument(
        "--forecast-horizons", help="comma-separated horizons in rows, e.g. 1,6,12 (adds columns)"
    )
    p.set_defaults(func=_cmd_replay)


def _cmd_replay(args: argparse.Namespace) -> int:
    config = load_analytics(Path(args.config) if args.config else None)
    source = Path(args.input)
    if not source.is_file():
        raise ConfigError("", "input file not found", str(source))
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    horizons: list[int] = []
    if args.forecast_horizons:
        try:
            horizons = [int(h) for h in args.forecast_horizons.split(",") if h.strip()]
        except ValueError:
            raise ConfigError("--forecast-horizons", "expected integers such as 1,6,12") from None
        if not horizons or min(horizons) < 1:
            raise ConfigError("--forecast-horizons", "expected integers of at least 1")
    rows = replay_file(
        source,
        Path(args.out),
        config,
        timestamp_column=args.timestamp_column,
        columns=columns,
        horizons=horizons,
        limits=_driver_limits(args.driver) if args.driver else None,
    )
    print(f"{rows} rows scored into {args.out}", file=sys.stderr)
    return 0


def _driver_limits(driver_id: str) -> Limits:
    from gridedge.analytics.stage import channel_limits
    from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_drivers

    drivers = load_drivers([BUILTIN_DRIVERS_DIR])
    if driver_id not in drivers:
        known = ", ".join(sorted(drivers))
        raise ConfigError("--driver", f"unknown driver {driver_id!r}; available: {known}")
    return channel_limits(drivers[driver_id])
