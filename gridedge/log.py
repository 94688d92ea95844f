"""Structured logging: the one place structlog is configured.

Events are dotted keys with fields (``poll.failed device=m1 error=timeout``): JSON lines when
stdout is not a terminal (journald, Docker), a readable console rendering when it is.
"""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from typing import Any

import structlog


class LogFormat(StrEnum):
    """How log events are rendered."""

    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class LogLevel(StrEnum):
    """Lowest level that is written."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


Logger = structlog.stdlib.BoundLogger


def configure(level: LogLevel = LogLevel.INFO, fmt: LogFormat = LogFormat.AUTO) -> None:
    """Set up structlog for the whole process; safe to call again (tests, reloads)."""
    console = fmt is LogFormat.CONSOLE or (fmt is LogFormat.AUTO and sys.stdout.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
        if console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.value.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )


def get_logger(component: str) -> Any:
    """A logger bound to a component name (``outbox``, ``poll``, ...)."""
    return structlog.get_logger(component=component)


class FailureStreak:
    """Logs a run of repeated failures once, not once per attempt.

    The first failure of a streak is logged at WARNING, the repeats at DEBUG, and the end of the
    streak at INFO with the number of failures in it. With ``settle`` above 1 the streak ends
    only after that many successes in a row: a link that flaps (answers, fails, answers) stays
    in one streak, logged once however often it flaps, and the recovery says how many times it
    failed again after answering (``flaps``).

    Args:
        log: the logger to write to.
        event: dotted event prefix; ``.failed`` and ``.recovered`` are appended.
        settle: successes in a row that end a streak.
        fields: fields bound to every event of this streak (``device=...``).
    """

    def __init__(self, log: Any, event: str, *, settle: int = 1, **fields: object) -> None:
        self._log = log
        self._event = event
        self._settle = max(1, settle)
        self._fields = fields
        self.count = 0
        self.flaps = 0
        self._held = 0

    @property
    def failing(self) -> bool:
        """True while the streak is open."""
        return self.count > 0

    def failed(self, error: str, **fields: object) -> None:
        """Record one failure; only the first of a streak is a WARNING."""
        self.count += 1
        if self._held:
            self.flaps += 1  # it had answered since the streak began: one more flap
        self._held = 0
        emit = self._log.warning if self.count == 1 else self._log.debug
        emit(f"{self._event}.failed", error=error, attempt=self.count, **self._fields, **fields)

    def succeeded(self, **fields: object) -> None:
        """Count a success; log the recovery once ``settle`` have come in a row."""
        if not self.count:
            return
        self._held += 1
        if self._held < self._settle:
            return
        if self._settle > 1:
            fields = {"flaps": self.flaps, **fields}
        self._log.info(f"{self._event}.recovered", failures=self.count, **self._fields, **fields)
        self.count = self.flaps = self._held = 0
