"""Labelled datasets: one CSV per meter plus the ground truth, consistent with each other."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest

from gridedge.simulator.dataset import iso_utc, write_dataset
from gridedge.simulator.faults import FaultKind, FaultPlan, ScheduledFault
from gridedge.simulator.physics import MeterSimulator, SimulationParams
from tests.unit.simulator.fixtures import SINGLE_PHASE, START_TS, THREE_PHASE

PARAMS = SimulationParams()
NOISY = FaultPlan(
    rate_per_hour=4.0,
    schedule=(ScheduledFault(FaultKind.DROPOUT, at_s=3600.0, duration_s=300.0),),
)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def _write(tmp_path: Path, plan: FaultPlan, *, meters: int = 2, days: float = 0.5) -> list[Path]:
    return write_dataset(
        tmp_path / "out",
        THREE_PHASE,
        meters=meters,
        days=days,
        interval_s=30.0,
        seed=5,
        plan=plan,
        params=PARAMS,
        start_ts=START_TS,
    )


def test_writes_one_file_per_meter_then_the_ground_truth(tmp_path: Path) -> None:
    """The returned paths are sim-0001.csv, sim-0002.csv and faults.csv, all written."""
    paths = _write(tmp_path, NOISY)
    assert [p.name for p in paths] == ["sim-0001.csv", "sim-0002.csv", "faults.csv"]
    assert all(p.is_file() and p.parent == tmp_path / "out" for p in paths)
    with paths[-1].open(encoding="utf-8") as f:
        assert f.readline().strip() == "device,kind,start,end,channels,magnitude"


def test_meter_files_have_timestamp_channels_and_label_columns(tmp_path: Path) -> None:
    """Columns are timestamp, the driver's channels in order, anomaly and fault."""
    paths = write_dataset(
        tmp_path,
        SINGLE_PHASE,
        meters=1,
        days=0.01,
        interval_s=60.0,
        seed=1,
        plan=FaultPlan(),
        params=PARAMS,
        start_ts=START_TS,
    )
    with paths[0].open(encoding="utf-8") as f:
        header = f.readline().strip().split(",")
    assert header == ["timestamp", *SINGLE_PHASE.channel_names, "anomaly", "fault"]


def test_rows_are_iso_utc_timestamps_at_the_interval(tmp_path: Path) -> None:
    """Half a day at 30 s gives 1440 rows stamped 2026-01-05T00:00:00Z onwards."""
    rows = _rows(_write(tmp_path, FaultPlan(), meters=1)[0])
    assert len(rows) == 1440
    assert rows[0]["timestamp"] == "2026-01-05T00:00:00Z"
    assert rows[1]["timestamp"] == "2026-01-05T00:00:30Z"
    assert [_ts(r["timestamp"]) for r in rows] == [START_TS + 30.0 * k for k in range(1440)]


def test_labels_match_the_ground_truth_windows(tmp_path: Path) -> None:
    """A row is labelled with exactly the kinds whose faults.csv window contains it."""
    paths = _write(tmp_path, NOISY)
    faults = _rows(paths[-1])
    assert len(faults) > 10
    labelled = 0
    for path in paths[:-1]:
        device = path.stem
        windows = [
            (_ts(f["start"]), _ts(f["end"]), f["kind"]) for f in faults if f["device"] == device
        ]
        for row in _rows(path):
            ts = _ts(row["timestamp"])
            kinds = {kind for start, end, kind in windows if start <= ts <= end}
            assert set(filter(None, row["fault"].split("+"))) == kinds
            assert row["anomaly"] == ("1" if kinds else "0")
            labelled += bool(kinds)
    assert labelled > 100


def test_dropout_rows_have_empty_channel_cells(tmp_path: Path) -> None:
    """Rows where the meter did not answer have empty cells and a dropout label."""
    rows = _rows(_write(tmp_path, NOISY, meters=1)[0])
    channels = THREE_PHASE.channel_names
    dropouts = [r for r in rows if "dropout" in r["fault"].split("+")]
    assert len(dropouts) >= 10
    assert all(r[c] == "" for r in dropouts for c in channels)
    assert all(r[c] != "" for r in rows if r not in dropouts for c in channels)


def test_meter_i_is_simulated_with_seed_plus_i(tmp_path: Path) -> None:
    """sim-0002 holds the readings of a simulator seeded with seed + 1."""
    paths = _write(tmp_path, NOISY, days=0.05)
    sim = MeterSimulator("sim-0002", THREE_PHASE, PARAMS, NOISY, 6)
    for row in _rows(paths[1]):
        values = sim.step(_ts(row["timestamp"]))
        cells = {c: row[c] for c in THREE_PHASE.channel_names}
        expected = (
            dict.fromkeys(cells, "") if values is None else {c: str(values[c]) for c in cells}
        )
        assert cells == expected


def test_fault_free_dataset_has_no_anomalies(tmp_path: Path) -> None:
    """With an empty plan, no row is labelled and faults.csv has only its header."""
    paths = _write(tmp_path, FaultPlan(), meters=1, days=0.1)
    assert all(r["anomaly"] == "0" and r["fault"] == "" for r in _rows(paths[0]))
    assert _rows(paths[-1]) == []


def test_iso_utc_shows_milliseconds_only_when_present() -> None:
    """Whole seconds print without a fraction, other times with milliseconds."""
    assert iso_utc(START_TS) == "2026-01-05T00:00:00Z"
    assert iso_utc(START_TS + 1.25) == "2026-01-05T00:00:01.250Z"


def test_non_positive_sizes_are_refused(tmp_path: Path) -> None:
    """Zero meters, days or interval raise ValueError before writing anything."""
    with pytest.raises(ValueError, match="positive"):
        write_dataset(
            tmp_path / "never",
            THREE_PHASE,
            meters=0,
            days=1.0,
            interval_s=60.0,
            seed=1,
            plan=FaultPlan(),
            params=PARAMS,
            start_ts=START_TS,
        )
    assert not (tmp_path / "never").exists()
