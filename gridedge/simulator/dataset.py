"""Labelled datasets of simulated meters, for training and scoring anomaly detectors.

:func:`write_dataset` writes one CSV file per meter with the readings and, per row, whether a
fault was acting on it, plus ``faults.csv`` with the ground truth of every fault.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

from gridedge.drivers import Driver
from gridedge.simulator.faults import FaultEvent, FaultPlan
from gridedge.simulator.physics import MeterSimulator, SimulationParams

FAULTS_FILE = "faults.csv"
"""Name of the ground-truth file written next to the meter files."""
FAULTS_HEADER = ("device", "kind", "start", "end", "channels", "magnitude")


def iso_utc(ts: float) -> str:
    """ISO 8601 UTC with a ``Z`` suffix; milliseconds only when the time has any."""
    ms = round(ts * 1000.0)
    seconds, millis = divmod(ms, 1000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def device_id(index: int) -> str:
    """The device id of the dataset's ``index``-th meter, counting from 0 (``sim-0001``)."""
    return f"sim-{index + 1:04d}"


def write_dataset(
    out_dir: Path,
    driver: Driver,
    *,
    meters: int,
    days: float,
    interval_s: float,
    seed: int,
    plan: FaultPlan,
    params: SimulationParams,
    start_ts: float,
) -> list[Path]:
    """Simulate ``meters`` meters and write their readings and ground truth as CSV.

    Each meter file ``{device}.csv`` has the columns ``timestamp``, every simulated channel,
    ``anomaly`` (1 when any fault acts on the row, dropouts included) and ``fault`` (the kinds
    acting, joined by ``+``). A dropout row has empty channel cells. ``faults.csv`` lists every
    fault: ``device,kind,start,end,channels,magnitude``, channels joined by ``;``.

    Args:
        out_dir: where to write; created when missing.
        driver: the meter model of every meter.
        meters: how many meters; meter ``i`` (from 0) is ``sim-{i+1:04d}`` with seed ``seed + i``.
        days: how long to simulate.
        interval_s: time between readings.
        seed: seed of the first meter.
        plan: faults injected into every meter.
        params: site behaviour of every meter.
        start_ts: UTC epoch seconds of the first reading.

    Returns:
        the meter files in order, then the faults file.

    Raises:
        ValueError: ``meters``, ``days`` or ``interval_s`` is not positive.
    """
    if meters < 1 or not days > 0 or not interval_s > 0:
        raise ValueError("meters, days and interval_s must be positive")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = math.floor(days * 86400.0 / interval_s + 1e-9)
    times = [start_ts + k * interval_s for k in range(rows)]
    stamps = [iso_utc(ts) for ts in times]
    paths: list[Path] = []
    events: list[FaultEvent] = []
    for i in range(meters):
        device = device_id(i)
        sim = MeterSimulator(device, driver, params, plan, seed + i)
        path = out_dir / f"{device}.csv"
        _write_meter(path, sim, times, stamps)
        paths.append(path)
        events.extend(sim.faults)
    faults_path = out_dir / FAULTS_FILE
    _write_faults(faults_path, events)
    paths.append(faults_path)
    return paths


def _write_meter(path: Path, sim: MeterSimulator, times: list[float], stamps: list[str]) -> None:
    channels = sim.channels
    empty = [""] * len(channels)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("timestamp", *channels, "anomaly", "fault"))
        for ts, stamp in zip(times, stamps, strict=True):
            values = sim.step(ts)
            cells = empty if values is None else [values[c] for c in channels]
            active = sim.active_faults
            kinds = "+".join(sorted({e.kind.value for e in active}))
            writer.writerow((stamp, *cells, 1 if active else 0, kinds))


def _write_faults(path: Path, events: list[FaultEvent]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(FAULTS_HEADER)
        for e in events:
            writer.writerow(
                (
                    e.device,
                    e.kind.value,
                    iso_utc(e.start_ts),
                    iso_utc(e.end_ts),
                    ";".join(e.channels),
                    e.magnitude,
                )
            )
