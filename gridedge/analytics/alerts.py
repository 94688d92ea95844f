"""Alert lifecycle: a small state machine per channel that turns scores into raised and cleared
alerts an operator can trust.

An alert is raised when the score reaches ``raise_threshold`` for ``raise_after_samples``
values in a row; while active it is never raised again; it clears once it has been active for
``min_active_samples`` values and the score stayed below ``clear_threshold`` (lower than the
raise threshold: hysteresis) for ``clear_after_samples`` values in a row. Once raised, it is
not raised again for ``rearm_after_samples`` values (counted from the raise), so a fault that
comes and goes is one alert, while the alert itself is active only as long as the fault.
Severity is
``critical`` for a limit violation or a score of at least ``critical_threshold``, else
``warning``; predictive (trend) alerts are ``info`` unless configured otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gridedge.model import Envelope, Kind


class Severity(StrEnum):
    """How urgent an alert is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertState(StrEnum):
    """What an alert envelope reports."""

    RAISED = "raised"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class AlertParams:
    """Persistence, hysteresis and duration of alerts (counted in values)."""

    raise_threshold: float = 0.5
    clear_threshold: float = 0.4
    critical_threshold: float = 0.9
    raise_after_samples: int = 1
    clear_after_samples: int = 2
    min_active_samples: int = 1
    rearm_after_samples: int = 60


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert being raised or cleared, with its evidence."""

    state: AlertState
    severity: Severity
    channel: str
    ts: float
    value: float
    score: float
    rule: str
    since: float

    def envelope(self, device: str) -> Envelope:
        """The urgent ``alert`` envelope of this event."""
        body: dict[str, object] = {
            "state": self.state.value,
            "severity": self.severity.value,
            "channel": self.channel,
            "value": self.value,
            "score": round(self.score, 4),
            "rule": self.rule,
        }
        if self.state is AlertState.CLEARED:
            body["since"] = self.since
        return Envelope(kind=Kind.ALERT, device=device, ts=self.ts, body=body, urgent=True)


class AlertMachine:
    """The alert state of one channel (or one device-level rule)."""

    __slots__ = ("_active", "_calm", "_channel", "_p", "_raised", "_rearm", "_streak")

    def __init__(self, channel: str, params: AlertParams) -> None:
        self._channel = channel
        self._p = params
        self._streak = 0
        self._active = 0
        self._calm = 0
        self._rearm = 0  # values until the alert may be raised again
        self._raised: AlertEvent | None = None

    @property
    def active(self) -> AlertEvent | None:
        """The raising event of the active alert, or None."""
        return self._raised

    @property
    def idle(self) -> bool:
        """True when no alert is active, building up or re-arming: a fresh machine's state."""
        return self._raised is None and self._streak == 0 and self._rearm == 0

    def tick(self) -> None:
        """Count one value that fed no score (re-arming goes on)."""
        if self._rearm > 0:
            self._rearm -= 1

    def update(
        self,
        ts: float,
        score: float,
        value: float,
        rule: str,
        *,
        severity: Severity | None = None,
        channel: str | None = None,
    ) -> AlertEvent | None:
        """Feed one score; returns an event when the alert is raised or cleared.

        ``severity`` fixes the severity of a raised alert instead of deriving it from the score;
        ``channel`` names the evidence channel instead of the machine's own (device alerts).
        """
        p = self._p
        raised = self._raised
        if self._rearm > 0:
            self._rearm -= 1
        if raised is None:
            if score < p.raise_threshold or self._rearm > 0:
                self._streak = 0
                return None
            self._streak += 1
            if self._streak < p.raise_after_samples:
                return None
            if severity is None:
                critical = rule == "limit" or score >= p.critical_threshold
                severity = Severity.CRITICAL if critical else Severity.WARNING
            name = channel if channel is not None else self._channel
            event = AlertEvent(AlertState.RAISED, severity, name, ts, value, score, rule, ts)
            self._raised, self._streak, self._active, self._calm = event, 0, 1, 0
            self._rearm = p.rearm_after_samples
            return event
        self._active += 1
        self._calm = self._calm + 1 if score < p.clear_threshold else 0
        if self._active < p.min_active_samples or self._calm < p.clear_after_samples:
            return None
        self._raised = None
        return AlertEvent(
            AlertState.CLEARED,
            raised.severity,
            raised.channel,
            ts,
            value,
            score,
            raised.rule,
            raised.ts,
        )

    def raise_now(
        self, ts: float, value: float, rule: str, severity: Severity
    ) -> AlertEvent | None:
        """Raise at once (device-level rules such as dropout); None when already active or
        still re-arming, so a flaky spell is one alert.
        """
        if self._rearm > 0:
            self._rearm -= 1
        if self._raised is not None or self._rearm > 0:
            return None
        event = AlertEvent(AlertState.RAISED, severity, self._channel, ts, value, 1.0, rule, ts)
        self._raised, self._active, self._calm = event, 1, 0
        self._rearm = self._p.rearm_after_samples
        return event
