"""gridedge replay: CSV in either separator, a row out per row in, the same code as the daemon."""

from __future__ import annotations

import csv
import math
import os
import random
from pathlib import Path

import pytest

from gridedge.analytics.detectors import DetectorParams
from gridedge.analytics.engine import Analytics
from gridedge.analytics.replay import DEVICE, parse_timestamp, replay_file
from gridedge.analytics.settings import AnalyticsConfig
from gridedge.cli.main import main
from gridedge.model import Sample

CONFIG = AnalyticsConfig(detector=DetectorParams(warmup_samples=20))


def _series(n: int) -> list[float]:
    rng = random.Random(5)
    values = [10.0 + math.sin(i / 10.0) + rng.gauss(0.0, 0.1) for i in range(n)]
    values[300] += 8.0
    return values


def _write(path: Path, sep: str, rows: list[list[str]]) -> None:
    path.write_text("\n".join(sep.join(r) for r in rows) + "\n")


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_nab_style_file_gets_one_score_row_per_input_row(tmp_path: Path) -> None:
    """timestamp,value input yields timestamp,anomaly_score,alert with scores in [0, 1]."""
    values = _series(400)
    rows = [["timestamp", "value"]] + [
        [f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00", f"{v:.4f}"] for i, v in enumerate(values)
    ]
    _write(tmp_path / "in.csv", ",", rows)
    assert replay_file(tmp_path / "in.csv", tmp_path / "out.csv", CONFIG) == 400
    out = _read(tmp_path / "out.csv")
    assert list(out[0]) == ["timestamp", "anomaly_score", "alert", "alert_active"]
    assert [r["timestamp"] for r in out] == [r[0] for r in rows[1:]]
    assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in out)
    assert out[300]["alert"] == "1"
    assert float(out[300]["anomaly_score"]) > 0.5


def test_semicolon_files_with_several_columns_and_forecasts(tmp_path: Path) -> None:
    """A ; separated file with decimal commas, chosen columns and forecast columns replays."""
    rows = [["time", "a", "b", "note"]] + [
        [f"2024-01-01T00:{i:02d}:00Z", f"{i},5", str(2 * i), "x"] for i in range(30)
    ]
    rows[5][2] = ""
    _write(tmp_path / "in.csv", ";", rows)
    replay_file(
        tmp_path / "in.csv",
        tmp_path / "out.csv",
        CONFIG,
        timestamp_column="time",
        columns=["a", "b"],
        horizons=(1, 6),
    )
    out = _read(tmp_path / "out.csv")
    assert list(out[0]) == [
        "timestamp",
        "anomaly_score",
        "alert",
        "alert_active",
        "a_forecast_1",
        "a_forecast_6",
        "b_forecast_1",
        "b_forecast_6",
    ]
    assert len(out) == 30
    assert float(out[29]["a_forecast_1"]) == pytest.approx(30.0, abs=1.0)  # decimal commas read


def test_replay_scores_equal_the_engine_the_daemon_runs(tmp_path: Path) -> None:
    """Replaying a file gives exactly the scores of feeding the same samples to Analytics."""
    values = _series(400)
    stamps = [f"2024-01-01T{i // 60:02d}:{i % 60:02d}:00+00:00" for i in range(400)]
    _write(
        tmp_path / "in.csv",
        ",",
        [["ts", "v"]] + [[t, repr(v)] for t, v in zip(stamps, values, strict=True)],
    )
    replay_file(tmp_path / "in.csv", tmp_path / "out.csv", CONFIG)
    engine = Analytics(CONFIG)
    direct = [
        f"{engine.process(Sample(DEVICE, parse_timestamp(t), {'v': v})).score:.6f}"
        for t, v in zip(stamps, values, strict=True)
    ]
    assert [r["anomaly_score"] for r in _read(tmp_path / "out.csv")] == direct


def test_the_command_line_reports_a_missing_column_as_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown --columns name exits with status 2 and names the column."""
    _write(tmp_path / "in.csv", ",", [["timestamp", "value"], ["2024-01-01 00:00:00", "1"]])
    status = main(
        ["replay", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"), "--columns", "x"]
    )
    assert status == 2
    assert "'x'" in capsys.readouterr().err


def test_the_command_line_reads_the_analytics_section_of_a_config(tmp_path: Path) -> None:
    """-c applies [analytics]: a raise threshold above every score yields no alerts."""
    values = _series(400)
    rows = [["timestamp", "value"]] + [
        [f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00", f"{v:.4f}"] for i, v in enumerate(values)
    ]
    _write(tmp_path / "in.csv", ",", rows)
    (tmp_path / "c.toml").write_text(
        "[analytics.detector]\nwarmup_samples = 20\n[analytics.alerts]\n"
        "raise_threshold = 1.0\nclear_threshold = 0.5\n"
    )
    argv = ["replay", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv")]
    assert main([*argv, "-c", str(tmp_path / "c.toml")]) == 0
    assert {r["alert"] for r in _read(tmp_path / "o.csv")} == {"0"}


def _replay_cli(tmp_path: Path, data: bytes, *extra: str) -> tuple[int, str]:
    """Run ``gridedge replay`` on ``data``; returns the status and stderr."""
    import contextlib
    import io

    (tmp_path / "in.csv").write_bytes(data)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(["replay", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"), *extra])
    return status, err.getvalue()


def _refused(tmp_path: Path, status: int, err: str, *needles: str) -> None:
    assert status == 2
    assert err.count("\n") == 1, err
    for needle in needles:
        assert needle in err
    assert os.listdir(tmp_path) == ["in.csv"]  # no output, no temporary file


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        (b"", ["empty file"]),
        (b"\n", ["row 1", "header"]),
        (
            b"timestamp,v\n2026-01-05T00:00:00Z,1\n2026-01-05T00:01:00Z,Z\xe4hler\n",
            ["row 3", "not UTF-8 at byte 22"],
        ),
        ("timestamp,v\n2026-01-05T00:00:00Z,1\n".encode("utf-16"), ["UTF-16"]),
        (b'timestamp,v\n2026-01-05T00:00:00Z,"' + b"9" * 200_000 + b'"\n', ["row 2", "not CSV"]),
        (b"timestamp,v\n2026-01-05T00:00:00Z,1\0\n", ["row 2"]),
        (b"timestamp,v\n2026-01-05T00:00:00Z,abc\n", ["row 2", "column 'v'", "'abc'"]),
        (b"timestamp,v\n2026-01-05T00:00:00Z,inf\n", ["row 2", "finite"]),
        (b"timestamp,v\n2026-01-05T00:00:00Z,1e308\n", ["row 2", "finite"]),
        (b"timestamp,v\nlater,1\n", ["row 2", "timestamp", "'later'"]),
        (b"timestamp,v,v\n2026-01-05T00:00:00Z,1,2\n", ["'v' appears twice"]),
        (b"timestamp,anomaly\n2026-01-05T00:00:00Z,1\n", ["value column"]),
    ],
)
def test_broken_csv_files_are_one_line_and_leave_nothing_behind(
    tmp_path: Path, data: bytes, needles: list[str]
) -> None:
    """Empty, non-UTF-8, UTF-16, over-long, NUL, non-numeric, non-finite: exit 2, one line."""
    status, err = _replay_cli(tmp_path, data)
    _refused(tmp_path, status, err, "in.csv", *needles)


def test_a_failure_half_way_leaves_the_previous_output_untouched(tmp_path: Path) -> None:
    """A bad row late in the file fails the replay; the old scores file is left as it was."""
    (tmp_path / "o.csv").write_text("old\n")
    rows = b"".join(b"2026-01-05T00:%02d:00Z,%d\n" % (i, i) for i in range(50))
    status, err = _replay_cli(tmp_path, b"timestamp,v\n" + rows + b"2026-01-05T01:00:00Z,x\n")
    assert status == 2
    assert "row 52" in err
    assert (tmp_path / "o.csv").read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["in.csv", "o.csv"]


def test_simulate_output_replays_without_its_label_columns(tmp_path: Path) -> None:
    """`gridedge simulate`'s files replay as they are: anomaly and fault are not inputs."""
    out = tmp_path / "ds"
    assert main(["simulate", "--days", "0.1", "--fault-rate", "30", "-o", str(out)]) == 0
    source = out / "sim-0001.csv"
    with source.open() as f:
        labelled = list(csv.DictReader(f))
    assert {r["fault"] for r in labelled} - {""}, "the dataset has faults"
    target = tmp_path / "scores.csv"
    assert main(["replay", str(source), "-o", str(target)]) == 0
    assert len(_read(target)) == len(labelled)


def test_a_bom_and_nan_cells_are_read_as_a_spreadsheet_means_them(tmp_path: Path) -> None:
    """A UTF-8 BOM before the header and "nan" cells (missing values) replay fine."""
    rows = b"".join(
        b"2026-01-05T00:%02d:00Z,%s\n" % (i, b"nan" if i == 3 else b"1") for i in range(9)
    )
    status, err = _replay_cli(tmp_path, b"\xef\xbb\xbftimestamp,v\n" + rows)
    assert status == 0, err
    assert [r["timestamp"] for r in _read(tmp_path / "o.csv")][:1] == ["2026-01-05T00:00:00Z"]
