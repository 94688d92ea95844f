"""The NAB scorer in bench/ reproduces SCORING.md's test vectors and the published scoreboard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import nab_score as ns


@pytest.fixture(scope="module")
def nab() -> Path:
    """The reduced NAB copy in the repository; its absence is a failure, never a skip."""
    return ns.default_nab_dir()


@pytest.fixture(scope="module")
def corpus(nab: Path) -> list[ns.LabelledFile]:
    """Every labelled NAB file."""
    return ns.load_corpus(nab)


def _toy() -> tuple[list[ns.LabelledFile], dict[str, ns.Floats]]:
    stamps = tuple(f"t{i:03d}" for i in range(100))
    toy = ns.LabelledFile("toy.csv", stamps, ((40, 49), (70, 74)))
    scores = np.zeros(100)
    scores[[10, 20, 42, 51, 65, 90]] = 0.9
    return [toy], {"toy.csv": scores}


@pytest.mark.parametrize(
    ("profile", "expected"),
    [("standard", -0.40838), ("reward_low_FP_rate", -0.79386), ("reward_low_FN_rate", -1.40838)],
)
def test_toy_file_scores_match_the_specification(nab: Path, profile: str, expected: float) -> None:
    """The 100-row example of SCORING.md section 9 gives the documented file score."""
    corpus, scores = _toy()
    p = ns.load_profiles(nab)[profile]
    assert ns.raw_at(corpus, scores, p, 0.5) == pytest.approx(expected, abs=1e-4)


def test_row_weights_follow_the_scaled_sigmoid(nab: Path) -> None:
    """Weights inside and after windows match the reference values of the specification."""
    weights, window_of = ns.row_weights(
        100, [(40, 49), (70, 74)], ns.load_profiles(nab)["standard"]
    )
    assert weights[40] == pytest.approx(1.0)
    assert weights[42] == pytest.approx(0.97711, abs=1e-5)
    assert weights[49] == pytest.approx(0.24824, abs=1e-5)
    assert weights[51] == pytest.approx(-0.05551, abs=1e-5)
    assert weights[20] == pytest.approx(-0.11)
    assert window_of[45] == 0
    assert window_of[72] == 1
    assert window_of[60] == -1


@pytest.mark.parametrize(
    ("detector", "expected"),
    [("numenta", (70.10, 63.21, 74.32))],
)
def test_reference_detectors_reproduce_the_published_scores(
    nab: Path, corpus: list[ns.LabelledFile], detector: str, expected: tuple[float, ...]
) -> None:
    """Scoring the published per-row outputs gives the scoreboard to two decimals."""
    scores = ns.reference_scores(nab, corpus, detector)
    profiles = ns.load_profiles(nab)
    names = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
    got = tuple(ns.score(corpus, scores, profiles[n]).normalised for n in names)
    assert got == pytest.approx(expected, abs=0.006)


def test_null_detector_scores_zero(corpus: list[ns.LabelledFile], nab: Path) -> None:
    """A constant score normalises to 0 and the perfect detector to 100."""
    profile = ns.load_profiles(nab)["reward_low_FN_rate"]
    const = {f.name: np.full(len(f.timestamps), 0.5) for f in corpus}
    assert ns.score(corpus, const, profile).normalised == pytest.approx(0.0)
    perfect = {}
    for f in corpus:
        s = np.zeros(len(f.timestamps))
        for a, _ in f.windows:
            s[a] = 1.0
        perfect[f.name] = s
    assert ns.score(corpus, perfect, profile).normalised == pytest.approx(100.0)


def test_compressed_copy_matches_the_corpus_size(corpus: list[ns.LabelledFile]) -> None:
    """The vendored corpus holds NAB's 58 files, 365,558 rows and 116 windows."""
    assert len(corpus) == 58
    assert sum(len(f.timestamps) for f in corpus) == 365_558
    assert sum(len(f.windows) for f in corpus) == 116


def test_uncompressed_csv_is_read_as_it_is(tmp_path: Path) -> None:
    """An uncompressed CSV, as in a full NAB checkout, is read as it is."""
    (tmp_path / "a.csv").write_text("timestamp,anomaly_score\nt0,0.25\nt1,0.5\n")
    assert ns.read_column(tmp_path / "a.csv", "anomaly_score").tolist() == [0.25, 0.5]
    assert ns.read_timestamps(tmp_path / "a.csv") == ("t0", "t1")
