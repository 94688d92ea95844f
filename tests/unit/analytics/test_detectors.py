"""Online detectors: scores in [0, 1], strictly online, rare values score high, repeats held off."""

from __future__ import annotations

import math
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gridedge.analytics.calibrate import SurpriseBank
from gridedge.analytics.detectors import DetectorBank, DetectorParams, HoldoffBank

T0 = 1_767_571_200.0


def _noise(n: int, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [230.0 + 2.0 * math.sin(i / 50.0) + rng.gauss(0.0, 0.5) for i in range(n)]


ALL = slice(None)
ONE = np.zeros(1, np.intp)


def _scores(values: list[float], params: DetectorParams | None = None) -> list[float]:
    """One channel's scores from a bank of one."""
    det = DetectorBank(params, 1)
    return [
        float(det.update(T0 + 60.0 * i, np.array([v]), ALL, ONE)[0]) for i, v in enumerate(values)
    ]


def test_channels_of_one_bank_stay_apart() -> None:
    """Whatever one channel of a bank sees (here a spike), the other channels score exactly
    the same, with a channel missing from a sample now and then.
    """
    rng = random.Random(5)
    series = [[rng.gauss(10.0 * (c + 1), 1.0 + c) for _ in range(700)] for c in range(3)]
    spiked = [list(s) for s in series]
    spiked[1][600] += 40.0
    plain, other = DetectorBank(None, 3), DetectorBank(None, 3)
    for i in range(700):
        ts = T0 + 60.0 * i
        cols = np.array([c for c in range(3) if (i + c) % 97], np.intp)
        a = plain.update(ts, np.array([series[c][i] for c in cols]), cols, cols)
        b = other.update(ts, np.array([spiked[c][i] for c in cols]), cols, cols)
        for k, c in enumerate(cols.tolist()):
            if c != 1:
                assert a[k] == b[k]
            elif i == 600:
                assert b[k] > 0.5 > a[k]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=400))
def test_scores_stay_within_unit_interval(values: list[float]) -> None:
    """Any finite series yields scores in [0, 1]."""
    params = DetectorParams(warmup_samples=5)
    assert all(0.0 <= s <= 1.0 for s in _scores(values, params))


def test_a_score_depends_only_on_earlier_values() -> None:
    """Changing the future leaves every earlier score unchanged (no look-ahead)."""
    values = _noise(800)
    altered = values[:500] + [v * 3.0 for v in values[500:]]
    assert _scores(values)[:500] == _scores(altered)[:500]


def test_warm_up_scores_zero() -> None:
    """The first warmup_samples values score 0 while the detector learns."""
    scores = _scores(_noise(400), DetectorParams(warmup_samples=300))
    assert set(scores[:300]) == {0.0}


def test_a_spike_after_a_calm_history_scores_above_the_alert_threshold() -> None:
    """A 30-sigma spike is rarer than anything seen, so it scores above 0.5."""
    values = _noise(2000)
    values[1500] += 15.0
    scores = _scores(values)
    assert scores[1500] > 0.5
    assert max(scores[1000:1500]) < scores[1500]


def test_a_level_shift_is_noticed() -> None:
    """A lasting jump of a few deviations scores above 0.5 soon after it starts."""
    values = _noise(2000)
    values[1500:] = [v + 6.0 for v in values[1500:]]
    assert max(_scores(values)[1500:1510]) > 0.5


def test_surprise_grows_with_rarity() -> None:
    """A value beyond everything seen is more surprising than a typical one."""
    s = SurpriseBank(views=1, channels=1, memory=1000)

    def update(x: float) -> float:
        return float(s.update(np.array([[x]]), ALL, ONE)[0, 0])

    rng = random.Random(3)
    for _ in range(2000):
        update(abs(rng.gauss(0.0, 1.0)))
    assert update(0.5) < 1.0 < 3.0 < update(10.0) < update(100.0)


def test_surprise_views_and_channels_are_calibrated_apart() -> None:
    """A distance common in one row of the bank is rare in a row that never saw it."""
    s = SurpriseBank(views=2, channels=2, memory=1000)
    rng = random.Random(4)
    for _ in range(1500):
        wide, narrow = abs(rng.gauss(0.0, 10.0)), abs(rng.gauss(0.0, 0.1))
        s.update(np.array([[wide, narrow], [narrow, wide]]), ALL, np.arange(2))
    out = s.update(np.full((2, 2), 8.0), ALL, np.arange(2))
    assert out[0, 0] < 1.0 < 3.0 < out[0, 1]
    assert out[1, 1] < 1.0 < 3.0 < out[1, 0]


def test_a_quiet_view_scores_zero_and_is_learnt_only_when_asked() -> None:
    """View 1 quiet and not learnt: it scores 0 and a distance of 8 stays rare in it; quiet but
    learnt: it scores 0 and 8 becomes common; view 0 is scored as usual throughout.
    """
    rng = random.Random(5)
    muted, learnt = (SurpriseBank(views=2, channels=1, memory=1000) for _ in range(2))
    for _ in range(1500):
        d = np.array([[abs(rng.gauss(0.0, 1.0))], [abs(rng.gauss(8.0, 1.0))]])
        out_m = muted.update(d, ALL, ONE, quiet=1, learn_quiet=False)
        out_l = learnt.update(d, ALL, ONE, quiet=1, learn_quiet=True)
        assert out_m[1, 0] == 0.0
        assert out_l[1, 0] == 0.0
    probe = np.array([[0.5], [8.0]])
    assert muted.update(probe, ALL, ONE)[1, 0] > 3.0
    assert learnt.update(probe, ALL, ONE)[1, 0] < 1.0
    assert muted.update(probe, ALL, ONE)[0, 0] < 1.0


def test_the_daily_profile_is_silent_on_a_bin_s_first_day() -> None:
    """Day one of a fresh bank never scores the seasonal view, however far a value is from the
    minutes before it; from the second day it does.
    """
    det = DetectorBank(DetectorParams(warmup_samples=10), 1)
    rng = random.Random(6)
    phases = []
    for i in range(3 * 288):  # three days at 5 minutes
        ts = T0 + 300.0 * i
        z = np.zeros(1)
        det.update(ts, np.array([rng.gauss(0.0, 1.0)]), ALL, ONE)
        phases.append(det._seasonal(ts + 1.0, np.array([50.0]), ALL, z))
        if i < 288:
            assert z[0] == 0.0
    assert set(phases[:288]) == {0}
    assert phases[-1] == 2


def test_holdoff_passes_one_detection_per_burst() -> None:
    """After a detection, the rest of the burst is zeroed or halved below the threshold."""
    h = HoldoffBank(samples=10, threshold=0.5, channels=1)
    burst = [0.1, 0.6, 0.7, 0.65, 0.55, 0.2, 0.1]
    out = [float(h.update(np.array([x]), ALL)[0]) for x in burst]
    assert out[1] == 0.6
    assert all(x < 0.5 for i, x in enumerate(out) if i != 1)


def test_holdoff_forgets_a_detection_after_its_window() -> None:
    """A score counts again once the larger one is more than the window behind it."""
    h = HoldoffBank(samples=10, threshold=0.9, channels=1)
    out = [float(h.update(np.array([x]), ALL)[0]) for x in [0.8] + [0.0] * 12 + [0.6]]
    assert out[0] == 0.8
    assert out[-1] == 0.6


def _jumpiness(series: list[list[float]]) -> list[float]:
    """The bank's second largest jumpiness after each sample of several channels."""
    det = DetectorBank(None, len(series))
    cols = np.arange(len(series))
    out = []
    for i, values in enumerate(zip(*series, strict=True)):
        det.update(T0 + 10.0 * i, np.array(values), ALL, cols)
        out.append(det.jumpiest[0])
    return out


def test_channels_that_keep_jumping_are_jumpy_and_noise_is_not() -> None:
    """Two channels modulated by a 60 s sine of 20 % (sampled every 10 s) pass the default
    jump level within a dozen samples and stay near it; the same channels without it stay
    well below, and one oscillating channel among calm ones is not enough.
    """
    rng = random.Random(2)
    n, start = 1500, 1200

    def channel(base: float, oscillating: bool) -> list[float]:
        out = []
        for i in range(n):
            wave = (
                0.2 * math.sin(2.0 * math.pi * 10.0 * i / 60.0)
                if oscillating and i >= start
                else 0.0
            )
            out.append(base * (1.0 + 0.01 * rng.gauss(0.0, 1.0)) * (1.0 + wave))
        return out

    level = DetectorParams().jump_level
    both = _jumpiness([channel(30.0, True), channel(7000.0, True), channel(230.0, False)])
    assert max(both[400:start]) < level - 0.5
    assert max(both[start : start + 12]) >= level
    assert sum(j >= level - 0.4 for j in both[start + 12 :]) >= 0.8 * (n - start - 12)
    alone = _jumpiness([channel(30.0, True), channel(7000.0, False), channel(230.0, False)])
    assert max(alone[400:]) < level - 0.5


def test_the_holdoff_halving_starts_at_the_threshold_it_is_given() -> None:
    """A raw score of 0.6 starts the halving at the bank's threshold of 0.5 (a later, larger
    score is halved), but not at a given threshold of 0.7 (it passes whole).
    """
    burst = [0.6] + [0.0] * 11 + [0.65]
    h = HoldoffBank(samples=20, threshold=0.5, channels=1)
    halved = [float(h.update(np.array([x]), ALL)[0]) for x in burst]
    h = HoldoffBank(samples=20, threshold=0.5, channels=1)
    kept = [float(h.update(np.array([x]), ALL, 0.7)[0]) for x in burst]
    assert halved[0] == kept[0] == 0.6
    assert halved[-1] == 0.325
    assert kept[-1] == 0.65
