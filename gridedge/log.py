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

    The first failure of a streak is logged at WARNING, the repeats at DEBUG, and the first
    success after failures at INFO with the number of failures in between.

    Args:
        log: the logger to write to.
        event: dotted event prefix; ``.failed`` and ``.recovered`` are appended.
        fields: fields bound to every event of this streak (``device=...``).
    """

    def __init__(self, log: Any, event: str, **fields: object) -> None:
        self._log = log
        self._event = event
        self._fields = fields
        self.count = 0

    @property
    def failing(self) -> bool:
        """True while the streak is open."""
        return self.count > 0

    def failed(self, error: str, **fields: object) -> None:
        """Record one failure; only the first of a streak is a WARNING."""
        self.count += 1
        emit = self._log.warning if self.count == 1 else self._log.debug
        emit(f"{self._event}.failed", error=error, attempt=self.count, **self._fields, **fields)

    def succeeded(self, **fields: object) -> None:
        """Close a streak (logging recovery once) or do nothing if none is open."""
        if self.count:
            self._log.info(
                f"{self._event}.recovered", failures=self.count, **self._fields, **fields
            )
            self.count = 0
