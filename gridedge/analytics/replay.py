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
import codecs
import contextlib
import csv
import datetime as dt
import itertools
import math
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, TextIO

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


LABEL_COLUMNS = frozenset(
    {"anomaly", "anomalies", "fault", "faults", "label", "labels", "is_anomaly", "truth"}
)
"""Ground-truth columns (``gridedge simulate`` writes ``anomaly`` and ``fault``): never inputs
unless ``--columns`` names them."""

MAX_VALUE = 1e12
"""Largest magnitude of a value: beyond any meter reading, far from overflowing the detectors."""

_UTF16_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _text_lines(f: BinaryIO, source: Path) -> Iterator[str]:
    """The lines of ``f`` as text; one that is not UTF-8 is an error naming its row and byte."""
    for number, raw in enumerate(f, start=1):
        if number == 1:
            if raw.startswith(_UTF16_BOMS):
                raise ConfigError("", "saved as UTF-16 or UTF-32; save it as UTF-8", str(source))
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"row {number}",
                f"not UTF-8 at byte {exc.start} of the row (0x{raw[exc.start]:02x}); "
                "save the file as UTF-8",
                str(source),
            ) from None


def _open_rows(lines: Iterator[str], source: Path) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) of every row, the header first; the separator is read from it."""
    header = next(lines, "")
    if not header:
        return
    delimiter = ";" if header.count(";") > header.count(",") else ","
    reader = csv.reader(itertools.chain([header], lines), delimiter=delimiter, strict=True)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ConfigError(f"row {reader.line_num}", f"not CSV: {exc}", str(source)) from None
        yield reader.line_num, row


def _columns(
    header: list[str], timestamp: str | None, wanted: Sequence[str] | None, source: Path
) -> tuple[int, list[tuple[int, str]]]:
    names = [h.strip() for h in header]
    if not any(names):
        raise ConfigError("row 1", "expected a header row naming the columns", str(source))
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise ConfigError("row 1", f"column {twice!r} appears twice in the header", str(source))
    shown = ", ".join(repr(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")
    ts_name = timestamp or names[0]
    if ts_name not in names:
        raise ConfigError("--timestamp-column", f"no column {ts_name!r} in {shown}")
    ts_col = names.index(ts_name)
    if wanted:
        missing = [w for w in wanted if w not in names]
        if missing:
            raise ConfigError("--columns", f"no column {missing[0]!r} in {shown}")
        return ts_col, [(names.index(w), w) for w in wanted]
    value_cols = [
        (i, n) for i, n in enumerate(names) if i != ts_col and n.lower() not in LABEL_COLUMNS
    ]
    if not value_cols:
        raise ConfigError("row 1", "expected at least one value column", str(source))
    return ts_col, value_cols


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
    Columns named in :data:`LABEL_COLUMNS` are left out unless ``columns`` names them. The
    output appears only once complete (written next to ``target``, then renamed): a replay
    that fails leaves nothing behind.

    Raises:
        ConfigError: an unreadable file, unknown columns, an unreadable timestamp or a
            non-numeric value (the message names the row and column), or a target that cannot
            be written.
    """
    try:
        with source.open("rb") as fin, _atomic_output(target) as fout:
            return _replay(
                _open_rows(_text_lines(fin, source), source),
                fout,
                config,
                source=source,
                timestamp_column=timestamp_column,
                columns=columns,
                horizons=horizons,
                limits=limits,
            )
    except IsADirectoryError:
        raise ConfigError("", "is a folder, expected a CSV file", str(source)) from None
    except OSError as exc:
        where = exc.filename or source
        raise ConfigError("", f"cannot read or write: {exc.strerror or exc}", str(where)) from None


def _replay(
    rows: Iterator[tuple[int, list[str]]],
    fout: TextIO,
    config: AnalyticsConfig,
    *,
    source: Path,
    timestamp_column: str | None,
    columns: Sequence[str] | None,
    horizons: Sequence[int],
    limits: Limits | None,
) -> int:
    first = next(rows, None)
    if first is None:
        raise ConfigError("", "empty file: expected a header row and data rows", str(source))
    ts_col, value_cols = _columns(first[1], timestamp_column, columns, source)
    names = [n for _, n in value_cols]
    if horizons:
        config = with_forecasts(config, names, horizons)
    analytics = Analytics(config, {DEVICE: limits} if limits else None)
    writer = csv.writer(fout, lineterminator="\n")
    extra = [f"{n}_forecast_{h}" for n in names for h in horizons]
    writer.writerow(["timestamp", "anomaly_score", "alert", "alert_active", *extra])
    count = 0
    active = False
    for line, row in rows:
        if not row:
            continue
        sample = _sample(row, line, ts_col, value_cols, source)
        stamp = row[ts_col].strip()
        if not sample.values:
            cells = [stamp, "0.000000", "0", "1" if active else "0"]
            writer.writerow([*cells, *([""] * len(extra))])
            count += 1
            continue
        result = analytics.process(sample)
        active = result.active
        cells = [stamp, f"{result.score:.6f}", "1" if result.raised else "0"]
        cells.append("1" if active else "0")
        for n in names:
            fc = result.forecasts.get(n, {})
            cells.extend(_fmt(fc.get(h)) for h in horizons)
        writer.writerow(cells)
        count += 1
    return count


@contextlib.contextmanager
def _atomic_output(target: Path) -> Iterator[TextIO]:
    """A text file that becomes ``target`` only when the block ends without an exception."""
    folder = target.parent
    if not folder.is_dir():
        raise ConfigError("--out", f"folder {folder} does not exist")
    if target.is_dir():
        raise ConfigError("--out", f"{target} is a folder; name a file")
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ConfigError("--out", f"cannot write in {folder}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fout:
            yield fout
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _sample(
    row: list[str], line: int, ts_col: int, value_cols: list[tuple[int, str]], source: Path
) -> Sample:
    try:
        ts = parse_timestamp(row[ts_col])
    except (ValueError, OverflowError, OSError, IndexError):
        cell = row[ts_col] if ts_col < len(row) else ""
        raise ConfigError(
            f"row {line}",
            f"expected an ISO 8601 timestamp, got {_short(cell)}",
            str(source),
        ) from None
    values: dict[str, float] = {}
    for i, name in value_cols:
        cell = row[i].strip() if i < len(row) else ""
        value = _value(cell)
        if value is None:
            continue
        if isinstance(value, str):
            raise ConfigError(
                f"row {line}",
                f"column {name!r}: {value}, got {_short(cell)} (--columns picks the value columns)",
                str(source),
            )
        values[name] = value
    return Sample(DEVICE, ts, values)


def _value(cell: str) -> float | str | None:
    """The number in ``cell``, None for a missing value, or what is wrong with it."""
    if not cell or cell.lower() in ("nan", "na", "null"):
        return None
    try:
        # A decimal comma is common in semicolon-separated files.
        value = float(cell.replace(",", ".") if "," in cell else cell)
    except ValueError:
        return "expected a number"
    if not math.isfinite(value) or abs(value) > MAX_VALUE:
        return f"expected a finite number within +-{MAX_VALUE:g}"
    return value


def _short(cell: str) -> str:
    return repr(cell) if len(cell) <= 30 else repr(cell[:27] + "...")


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
    if not source.exists():
        raise ConfigError("", "input file not found", str(source))
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    horizons: list[int] = []
    if args.forecast_horizons:
        try:
            horizons = [int(h) for h in args.forecast_horizons.split(",") if h.strip()]
        except ValueError:
            raise ConfigError("--forecast-horizons", "expected integers such as 1,6,12") from None
        if not horizons or min(horizons) < 1 or max(horizons) > 10_000:
            raise ConfigError("--forecast-horizons", "expected integers 1..10000")
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
