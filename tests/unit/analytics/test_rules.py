"""Rules: physical limits, rate of change, stuck values and dropouts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gridedge.analytics.engine import supply_band
from gridedge.analytics.rules import (
    BAND_SCORE,
    LIMIT_SCORE,
    RULES,
    DropoutRule,
    RuleBank,
    RuleParams,
)


class ChannelRules:
    """One channel's view of a rule bank: the rule that fired and its score, or None."""

    def __init__(self, params: RuleParams) -> None:
        self.bank = RuleBank([params])

    def check(self, ts: float, value: float) -> tuple[str, float] | None:
        hit = self.bank.check(ts, np.array([value]), slice(None))
        if hit is None:
            return None
        code, score = hit
        return (RULES[int(code[0])], float(score[0])) if code[0] else None


def _run(rules: ChannelRules, values: list[float], step_s: float = 10.0) -> list[str | None]:
    out = []
    for i, v in enumerate(values):
        hit = rules.check(1000.0 + step_s * i, v)
        out.append(hit[0] if hit else None)
    return out


def test_each_channel_of_a_bank_has_its_own_rules_and_state() -> None:
    """A limit on one channel, a flatline on another, and a missing value that leaves its
    channel's state alone.
    """
    bank = RuleBank([RuleParams(min=0.0, max=10.0), RuleParams(flatline_samples=3)])
    fired = []
    for i, (a, b) in enumerate([(5.0, 1.0), (5.0, 2.0), (11.0, 3.0)] + [(5.0, 3.0)] * 4):
        cols = np.arange(2) if i != 4 else np.array([1])
        values = np.array([a, b])[cols]
        hit = bank.check(10.0 * i, values, cols)
        code = hit[0] if hit is not None else np.zeros(len(cols), np.intp)
        fired.append({int(c): RULES[int(k)] for c, k in zip(cols, code, strict=True) if k})
    assert fired[2] == {0: "limit"}
    assert fired[5] == {1: "flatline"}
    assert fired[6] == {1: "flatline"}
    assert not any(fired[:2] + fired[3:5])


def test_values_outside_the_physical_range_break_the_limit_rule() -> None:
    """Below min or above max is a limit violation; inside is fine."""
    rules = ChannelRules(RuleParams(min=0.0, max=300.0))
    assert _run(rules, [230.0, 301.0, -1.0, 250.0]) == [None, "limit", "limit", None]


def test_changes_faster_than_the_rate_limit_are_flagged() -> None:
    """A jump of 50 in 10 s breaks a 1 per second rate limit."""
    rules = ChannelRules(RuleParams(max_rate_per_s=1.0))
    assert _run(rules, [10.0, 15.0, 65.0, 66.0]) == [None, None, "rate", None]


def test_a_stuck_value_after_movement_is_a_flatline() -> None:
    """Repeating one non-zero value for flatline_samples readings fires once it moved before."""
    rules = ChannelRules(RuleParams(flatline_samples=5))
    out = _run(rules, [1.0, 2.0, 3.0] + [4.0] * 8)
    assert out[:8] == [None] * 8
    assert out[8:] == ["flatline"] * 3


def test_a_signal_that_plateaus_by_nature_is_not_a_flatline() -> None:
    """Runs no longer than the first plateau (a square wave) never fire."""
    rules = ChannelRules(RuleParams(flatline_samples=5))
    wave = ([1.0] * 20 + [2.0] * 20) * 4
    assert set(_run(rules, wave)) == {None}


def test_a_constant_series_is_not_a_flatline() -> None:
    """A channel that never moved (e.g. export energy at 0) never fires."""
    rules = ChannelRules(RuleParams(flatline_samples=3))
    assert set(_run(rules, [7.0] * 50)) == {None}


def test_a_gap_much_longer_than_usual_is_a_dropout() -> None:
    """Gaps more than factor times the usual interval are reported with their length."""
    rule = DropoutRule(factor=3.0)
    stamps = [0.0, 10.0, 20.0, 30.0, 100.0, 110.0]
    assert [rule.check(t) for t in stamps] == [None, None, None, None, 70.0, None]


def test_a_source_whose_long_gaps_are_common_stops_raising_dropouts() -> None:
    """A source with a 20 s gap after every ninth 10 s gap (irregular by nature) raises a
    dropout for its first few long gaps only; a regular meter's rare gaps all count, and a gap
    far longer than the usual long ones still does.
    """
    irregular = DropoutRule(factor=1.5)
    stamps = [0.0]
    for i in range(1, 3001):
        stamps.append(stamps[-1] + (40.0 if i % 10 == 0 else 10.0))
    found = [rule_gap for t in stamps if (rule_gap := irregular.check(t)) is not None]
    assert 1 <= len(found) <= 10  # 300 long gaps, only the first few before they are usual
    assert irregular.check(stamps[-1] + 2000.0) == 2000.0
    regular = DropoutRule(factor=3.0)
    ts, hits = 0.0, 0
    for i in range(1, 5001):
        ts += 60.0 if i % 500 == 0 else 10.0
        hits += regular.check(ts) is not None
    assert hits == 10  # one in 500 gaps is rare: every one is a dropout


def test_dropout_memory_is_fixed() -> None:
    """Learning 60,000 gaps of every length (past a rescale of the counts) leaves the rule's
    state the same size and finite.
    """
    rule = DropoutRule(factor=3.0)
    rule.check(0.0)
    before = len(rule._long)
    ts = 0.0
    for i in range(1, 60001):
        ts += 10.0 * (1 + (i * 7919) % 997)
        rule.check(ts)
    assert len(rule._long) == before
    assert all(math.isfinite(c) for c in rule._long)


def test_a_voltage_outside_its_supply_band_breaks_the_band_rule() -> None:
    """A sag to 161 V on a 230 V supply is a band violation; 225 V is normal."""
    rules = ChannelRules(RuleParams(0.0, 300.0, band_min=207.0, band_max=253.0))
    assert rules.check(0.0, 225.0) is None
    assert rules.check(1.0, 161.0) == ("band", BAND_SCORE)
    assert rules.check(2.0, 301.0) == ("limit", LIMIT_SCORE)


def test_a_current_above_its_rating_is_an_overload() -> None:
    """A current channel with only an upper band reports an overload above the rating."""
    rules = ChannelRules(RuleParams(0.0, 120.0, band_max=100.0))
    assert rules.check(0.0, 99.0) is None
    assert rules.check(1.0, 104.0) == ("overload", BAND_SCORE)


def test_supply_bands_come_from_the_nominal_values() -> None:
    """Voltage bands follow nominal +- band, currents the rating, other channels none."""
    assert supply_band("voltage_l1", 230.0, 0.1) == pytest.approx((207.0, 253.0))
    assert supply_band("current_l2", 100.0, 0.1) == (None, 100.0)
    assert supply_band("frequency", 50.0, 0.1) == (None, None)
    assert supply_band("voltage_l1", 230.0, 0.0) == (None, None)


def test_a_channel_that_never_repeats_is_flat_after_a_few_repeats() -> None:
    """With a rate of repeats learnt from 1000 moving values (about one in a thousand), a run
    of four repeats is rarer than the flatline surprise, two are not (the long
    flatline_samples path is off here).
    """
    rules = ChannelRules(RuleParams(flatline_samples=10_000))
    moving = [100.0 + 0.37 * i for i in range(1000)]
    out = _run(rules, [*moving, 50.0, 50.0, 50.0, 50.0, 50.0])
    assert set(out[:1003]) == {None}  # the change to 50 and the first two repeats
    assert out[1004] == "flatline"


def test_a_channel_that_often_repeats_needs_a_longer_run() -> None:
    """A channel that repeats two values in three needs a run of dozens of repeats."""
    rules = ChannelRules(RuleParams(flatline_samples=10_000))
    often = [float(i // 3) + 1.0 for i in range(600)]  # every value three times
    out = _run(rules, often + [700.0] * 80)
    assert set(out[:630]) == {None}
    assert "flatline" in out[630:]


def test_a_frozen_meter_is_flat_from_its_first_repeat() -> None:
    """Ten channels that never repeat, all repeating at once: rare together at once."""
    bank = RuleBank([RuleParams(flatline_samples=10_000)] * 10)
    hits = []
    for i in range(210):
        frozen = i >= 200
        step = 199 if frozen else i
        values = np.array([5.0 + 0.1 * step * (c + 1) for c in range(10)])
        hit = bank.check(10.0 * i, values, slice(None))
        hits.append(hit is not None and bool((hit[0] == RULES.index("flatline")).all()))
    assert not any(hits[:200])
    assert hits[200]  # the first sample that repeats the one before
