"""Rules: physical limits, rate of change, stuck values and dropouts."""

from __future__ import annotations

from gridedge.analytics.rules import ChannelRules, DropoutRule, RuleParams


def _run(rules: ChannelRules, values: list[float], step_s: float = 10.0) -> list[str | None]:
    out = []
    for i, v in enumerate(values):
        hit = rules.check(1000.0 + step_s * i, v)
        out.append(hit[0] if hit else None)
    return out


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
