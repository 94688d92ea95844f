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
