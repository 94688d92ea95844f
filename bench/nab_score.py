"""NAB scorer (Numenta Anomaly Benchmark), written from ``bench/nab/SCORING.md``, and gridedge's
own NAB figures.

The scorer: per-row weights from the scaled sigmoid around the labelled windows, one global
threshold per profile found by an exact sweep over every distinct score, normalised with the
null and perfect detectors. Run as a script it replays every NAB file through
``gridedge replay``'s code path and prints one JSON object::

    python bench/nab_score.py [--nab DIR] [--config FILE] [--jobs N]
    python bench/nab_score.py --detector numenta      # score a published reference detector

The NAB folder defaults to ``bench/nab`` in the repository (the corpus, labels and the
``numenta`` reference scores, xz-compressed); a full NAB checkout works too, since every CSV is
read as ``NAME`` or, when that is missing, ``NAME.xz``.
"""

from __future__ import annotations

import argparse
import csv
import json
import lzma
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

REPO = Path(__file__).resolve().parents[1]
NAB_DIR = REPO / "bench" / "nab"
"""The reduced NAB copy kept in the repository (see its README)."""
NO_DETECTION = 1.1
"""The candidate threshold that flags nothing."""


def default_nab_dir() -> Path:
    """``bench/nab`` in the repository, or fail with a message saying where it was looked for."""
    if not (NAB_DIR / "labels" / "combined_windows.json").is_file():
        raise FileNotFoundError(
            f"NAB corpus not found at {NAB_DIR} (data, labels, config, results)"
        )
    return NAB_DIR


def open_csv(path: Path) -> IO[str]:
    """Open a CSV for reading as text: ``path`` itself, or ``path`` plus ``.xz`` when missing."""
    if path.is_file():
        return path.open(newline="")
    return lzma.open(path.with_name(path.name + ".xz"), "rt", newline="")


@dataclass(frozen=True, slots=True)
class Profile:
    """An application profile's cost matrix."""

    name: str
    tp: float
    fp: float
    fn: float


@dataclass(frozen=True, slots=True)
class LabelledFile:
    """One corpus file: its row timestamps and labelled windows as inclusive row ranges."""

    name: str
    timestamps: tuple[str, ...]
    windows: tuple[tuple[int, int], ...]

    @property
    def probation(self) -> int:
        """Rows at the start that are never scored."""
        n = len(self.timestamps)
        return min(math.floor(0.15 * n), 750)


@dataclass(frozen=True, slots=True)
class Score:
    """The outcome for one profile."""

    profile: str
    threshold: float
    raw: float
    normalised: float


def load_profiles(nab: Path) -> dict[str, Profile]:
    """The cost matrices in ``config/profiles.json``."""
    data = json.loads((nab / "config" / "profiles.json").read_text())
    out = {}
    for name, body in data.items():
        m = body["CostMatrix"]
        out[name] = Profile(name, m["tpWeight"], m["fpWeight"], m["fnWeight"])
    return out


def read_timestamps(path: Path) -> tuple[str, ...]:
    """The first column of a NAB-style CSV, header skipped."""
    with open_csv(path) as f:
        rows = csv.reader(f)
        next(rows)
        return tuple(row[0] for row in rows if row)


def load_corpus(nab: Path) -> list[LabelledFile]:
    """Every labelled file, with its windows mapped onto row indices by exact timestamp."""
    labels = json.loads((nab / "labels" / "combined_windows.json").read_text())
    corpus = []
    for name in sorted(labels):
        stamps = read_timestamps(nab / "data" / name)
        index = {ts: i for i, ts in enumerate(stamps)}
        windows = []
        for start, end in labels[name]:
            a, b = index[_strip_micros(start)], index[_strip_micros(end)]
            windows.append((a, b))
        corpus.append(LabelledFile(name, stamps, tuple(windows)))
    return corpus


def _strip_micros(ts: str) -> str:
    return ts.removesuffix(".000000")


def sigma(x: float) -> float:
    """NAB's scaled sigmoid: ``-tanh(2.5 x)`` up to 3, then -1."""
    return -1.0 if x > 3.0 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def row_weights(
    n: int, windows: Iterable[tuple[int, int]], profile: Profile
) -> tuple[Floats, Ints]:
    """Per-row weight of a detection and the row's window number (-1 outside windows)."""
    weights = np.full(n, -profile.fp)
    window_of = np.full(n, -1, dtype=np.int64)
    edge = sigma(-1.0)
    spans = sorted(windows)
    for k, (a, b) in enumerate(spans):
        width = b - a + 1
        for i in range(a, b + 1):
            weights[i] = profile.tp * sigma(-(b - i + 1) / width) / edge
            window_of[i] = k
        # Rows after this window and before the next are measured from its end.
        stop = spans[k + 1][0] if k + 1 < len(spans) else n
        for i in range(b + 1, stop):
            weights[i] = profile.fp * sigma((i - b) / (width - 1)) if width > 1 else -profile.fp
    return weights, window_of


def _pooled(
    corpus: list[LabelledFile], scores: Mapping[str, Floats], profile: Profile
) -> tuple[Floats, Floats, int]:
    """Every scorable row as (score, change of the corpus total when it becomes a detection).

    Within a window only the best (earliest) detection counts, so a window row contributes
    the rise of its window's running maximum when rows are taken in descending score order.
    """
    all_scores: list[Floats] = []
    all_deltas: list[Floats] = []
    windows = 0
    for f in corpus:
        s = np.asarray(scores[f.name], dtype=np.float64)
        if len(s) != len(f.timestamps):
            raise ValueError(f"{f.name}: {len(s)} scores for {len(f.timestamps)} rows")
        if np.any((s < 0.0) | (s > 1.0)) or np.any(np.isnan(s)):
            raise ValueError(f"{f.name}: scores must lie in [0, 1]")
        w, win = row_weights(len(s), f.windows, profile)
        p = f.probation
        s, w, win = s[p:], w[p:], win[p:]
        deltas = np.where(win < 0, w, 0.0)
        for k in np.unique(win[win >= 0]):
            idx = np.flatnonzero(win == k)
            order = idx[np.argsort(-s[idx], kind="stable")]
            best = np.maximum.accumulate(w[order])
            previous = np.concatenate(([-profile.fn], best[:-1]))
            deltas[order] = best - previous
            windows += 1
        all_scores.append(s)
        all_deltas.append(deltas)
    return np.concatenate(all_scores), np.concatenate(all_deltas), windows


def sweep(
    corpus: list[LabelledFile], scores: Mapping[str, Floats], profile: Profile
) -> tuple[float, float]:
    """The best threshold and its raw corpus score (ties: the highest threshold)."""
    s, deltas, windows = _pooled(corpus, scores, profile)
    base = -profile.fn * windows
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    totals = base + np.cumsum(deltas[order])
    # The total at threshold v counts every row scoring >= v: take each run's last index.
    last_of_run = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))
    candidates = np.concatenate(([NO_DETECTION], s_sorted[last_of_run]))
    values = np.concatenate(([base], totals[last_of_run]))
    best = int(np.argmax(values))
    return float(candidates[best]), float(values[best])


def raw_at(
    corpus: list[LabelledFile], scores: Mapping[str, Floats], profile: Profile, threshold: float
) -> float:
    """The raw corpus score when rows scoring at least ``threshold`` are detections."""
    s, deltas, windows = _pooled(corpus, scores, profile)
    # Deltas telescope per window in descending order, so summing the detected ones works.
    return float(-profile.fn * windows + deltas[s >= threshold].sum())


def normaliser(corpus: list[LabelledFile], profile: Profile) -> tuple[float, float]:
    """(null, perfect) raw scores: the constant-0.5 detector and a perfect one."""
    const = {f.name: np.full(len(f.timestamps), 0.5) for f in corpus}
    _, null = sweep(corpus, const, profile)
    perfect = profile.tp * sum(len(f.windows) for f in corpus)
    return null, perfect


def score(corpus: list[LabelledFile], scores: Mapping[str, Floats], profile: Profile) -> Score:
    """Optimise the threshold for ``profile`` and normalise to 0..100."""
    threshold, raw = sweep(corpus, scores, profile)
    null, perfect = normaliser(corpus, profile)
    return Score(profile.name, threshold, raw, 100.0 * (raw - null) / (perfect - null))


def score_fixed(
    corpus: list[LabelledFile], scores: Mapping[str, Floats], profile: Profile, threshold: float
) -> Score:
    """Normalised score at a given threshold (for 0/1 alert columns)."""
    raw = raw_at(corpus, scores, profile, threshold)
    null, perfect = normaliser(corpus, profile)
    return Score(profile.name, threshold, raw, 100.0 * (raw - null) / (perfect - null))


def read_column(path: Path, column: str) -> Floats:
    """One numeric column of a CSV with a header."""
    with open_csv(path) as f:
        rows = csv.DictReader(f)
        return np.array([float(r[column]) for r in rows], dtype=np.float64)


def reference_scores(nab: Path, corpus: list[LabelledFile], detector: str) -> dict[str, Floats]:
    """A published detector's per-row scores from ``results/<detector>/``."""
    out = {}
    for f in corpus:
        category, base = f.name.split("/")
        path = nab / "results" / detector / category / f"{detector}_{base}"
        out[f.name] = read_column(path, "anomaly_score")
    return out


def _replay_one(job: tuple[str, str, str, str | None]) -> tuple[str, Floats, Floats]:
    from gridedge.analytics.replay import replay_file
    from gridedge.analytics.settings import load_analytics

    name, data, out, config = job
    settings = load_analytics(Path(config) if config else None)
    replay_file(Path(data), Path(out), settings)
    return name, read_column(Path(out), "anomaly_score"), read_column(Path(out), "alert")


def replay_corpus(
    nab: Path, corpus: list[LabelledFile], config: str | None, jobs: int
) -> tuple[dict[str, Floats], dict[str, Floats]]:
    """Replay every file; returns (anomaly scores, alert columns) by file name."""
    scores, alerts = {}, {}
    with tempfile.TemporaryDirectory(prefix="gridedge-nab-") as tmp:
        work = [
            (
                f.name,
                str(_plain(nab / "data" / f.name, Path(tmp) / f"{i}.in.csv")),
                str(Path(tmp) / f"{i}.csv"),
                config,
            )
            for i, f in enumerate(corpus)
        ]
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for name, s, a in pool.map(_replay_one, work):
                scores[name], alerts[name] = s, a
    return scores, alerts


def _plain(path: Path, scratch: Path) -> Path:
    """``path`` when it is a plain file, else its ``.xz`` twin decompressed into ``scratch``."""
    if path.is_file():
        return path
    with open_csv(path) as src, scratch.open("w", newline="") as dst:
        dst.write(src.read())
    return scratch


def _figures(
    corpus: list[LabelledFile], profiles: dict[str, Profile], scores: Mapping[str, Floats]
) -> dict[str, dict[str, float]]:
    out = {}
    for p in profiles.values():
        r = score(corpus, scores, p)
        out[p.name] = {"score": round(r.normalised, 2), "threshold": r.threshold, "raw": r.raw}
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the NAB figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nab", help="NAB folder (default: bench/nab in the repo)")
    parser.add_argument("--config", help="a gridedge config whose [analytics] section to use")
    parser.add_argument("--detector", help="score results/<detector>/ instead of gridedge")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    nab = Path(args.nab) if args.nab else default_nab_dir()
    corpus = load_corpus(nab)
    profiles = load_profiles(nab)
    result: dict[str, object] = {"files": len(corpus)}
    if args.detector:
        result[args.detector] = _figures(
            corpus, profiles, reference_scores(nab, corpus, args.detector)
        )
    else:
        scores, alerts = replay_corpus(nab, corpus, args.config, args.jobs)
        result["anomaly_score"] = _figures(corpus, profiles, scores)
        result["alert_column"] = {
            p.name: round(score_fixed(corpus, alerts, p, 0.5).normalised, 2)
            for p in profiles.values()
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
