"""Alert lifecycle: persistence, no repeats, hysteresis, minimum duration, severity, envelopes."""

from __future__ import annotations

from gridedge.analytics.alerts import AlertMachine, AlertParams, AlertState, Severity
from gridedge.model import Kind

PARAMS = AlertParams(
    raise_threshold=0.5,
    clear_threshold=0.3,
    raise_after_samples=2,
    clear_after_samples=2,
    min_active_samples=4,
)


def _feed(scores: list[float], rule: str = "detector") -> list[tuple[int, AlertState]]:
    m = AlertMachine("voltage_l1", PARAMS)
    out = []
    for i, s in enumerate(scores):
        event = m.update(float(i), s, 230.0 + i, rule)
        if event is not None:
            out.append((i, event.state))
    return out


def test_an_alert_is_raised_only_after_the_persistence() -> None:
    """One high score is not enough with raise_after_samples=2; two in a row are."""
    assert _feed([0.9, 0.1, 0.9, 0.9]) == [(3, AlertState.RAISED)]


def test_an_active_alert_is_not_raised_again() -> None:
    """High scores while active produce no further raised events."""
    events = _feed([0.9] * 20)
    assert events == [(1, AlertState.RAISED)]


def test_scores_between_the_thresholds_keep_an_alert_active() -> None:
    """Hysteresis: 0.4 is below raise but above clear, so the alert stays."""
    assert _feed([0.9, 0.9] + [0.4] * 10) == [(1, AlertState.RAISED)]


def test_an_alert_clears_after_calm_and_minimum_duration() -> None:
    """It clears once active min_active_samples and calm clear_after_samples in a row."""
    assert _feed([0.9, 0.9, 0.0, 0.0, 0.0, 0.0]) == [
        (1, AlertState.RAISED),
        (4, AlertState.CLEARED),
    ]


def test_limit_violations_and_high_scores_are_critical() -> None:
    """Severity is critical for the limit rule or a score past critical_threshold."""
    m = AlertMachine("current_l1", AlertParams())
    limit = m.update(0.0, 1.0, 130.0, "limit")
    assert limit is not None
    assert limit.severity is Severity.CRITICAL
    m2 = AlertMachine("current_l1", AlertParams())
    warn = m2.update(0.0, 0.6, 10.0, "detector")
    assert warn is not None
    assert warn.severity is Severity.WARNING


def test_alert_envelopes_are_urgent_and_carry_the_evidence() -> None:
    """The envelope names channel, value, score and rule, and is marked urgent."""
    m = AlertMachine("frequency", AlertParams())
    event = m.update(5.0, 0.8, 51.2, "detector", channel="frequency")
    assert event is not None
    env = event.envelope("mains")
    assert env.kind is Kind.ALERT
    assert env.urgent
    assert env.device == "mains"
    assert env.body == {
        "state": "raised",
        "severity": "warning",
        "channel": "frequency",
        "value": 51.2,
        "score": 0.8,
        "rule": "detector",
    }


def test_a_cleared_alert_is_not_raised_again_before_it_re_arms() -> None:
    """With rearm_after_samples=6 an alert that cleared is raised again only once six values
    have passed since it was raised.
    """
    params = AlertParams(
        raise_threshold=0.5,
        clear_threshold=0.3,
        clear_after_samples=1,
        min_active_samples=1,
        rearm_after_samples=6,
    )
    m = AlertMachine("voltage_l1", params)
    scores = [0.9, 0.0, 0.9, 0.9, 0.0, 0.0, 0.9, 0.0]
    states = [m.update(float(i), s, 230.0, "band") for i, s in enumerate(scores)]
    got = [(i, e.state) for i, e in enumerate(states) if e is not None]
    assert got == [
        (0, AlertState.RAISED),
        (1, AlertState.CLEARED),
        (6, AlertState.RAISED),
        (7, AlertState.CLEARED),
    ]


def test_a_machine_re_arming_is_not_idle_and_ticks_down() -> None:
    """After clearing, the machine counts its re-arming down with tick() (three values after
    the raise) and is then idle.
    """
    params = AlertParams(clear_after_samples=1, min_active_samples=1, rearm_after_samples=3)
    m = AlertMachine("x", params)
    m.update(0.0, 0.9, 1.0, "flatline")
    m.update(1.0, 0.0, 1.0, "flatline")
    assert m.active is None
    assert not m.idle
    m.tick()
    assert not m.idle
    m.tick()
    assert m.idle


def test_a_rule_raised_at_once_re_arms_like_any_other() -> None:
    """raise_now (dropout) is refused while the alert is active or re-arming, so gaps that
    recur within rearm_after_samples values of the first are one alert.
    """
    params = AlertParams(clear_after_samples=1, min_active_samples=1, rearm_after_samples=4)
    m = AlertMachine("device", params)
    first = m.raise_now(0.0, 70.0, "dropout", Severity.WARNING)
    assert first is not None
    assert first.state is AlertState.RAISED
    assert m.raise_now(1.0, 70.0, "dropout", Severity.WARNING) is None  # still active
    cleared = m.update(2.0, 0.0, 0.0, "dropout")
    assert cleared is not None
    assert cleared.state is AlertState.CLEARED
    assert m.raise_now(3.0, 70.0, "dropout", Severity.WARNING) is None  # re-arming
    m.tick()
    m.tick()
    again = m.raise_now(6.0, 70.0, "dropout", Severity.WARNING)
    assert again is not None
    assert again.ts == 6.0
