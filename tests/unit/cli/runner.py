"""Run the command line in-process and check the shape of its answer."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from gridedge.cli.main import main


@dataclass(frozen=True)
class Outcome:
    """What one run of ``gridedge`` printed and returned."""

    status: int
    out: str
    err: str


def run(argv: Sequence[str]) -> Outcome:
    """``gridedge ARGV`` in this process, stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    # Some commands configure logging for the whole process; later tests expect the default.
    saved = structlog.get_config()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(list(argv))
    finally:
        structlog.configure(**saved)
    return Outcome(status, out.getvalue(), err.getvalue())


def assert_refused(outcome: Outcome, *needles: str) -> None:
    """Exit 2 with exactly one line on stderr that contains every needle, and no traceback."""
    assert outcome.status == 2, outcome
    assert outcome.err.endswith("\n"), outcome.err
    assert outcome.err.count("\n") == 1, outcome.err
    assert "Traceback" not in outcome.err + outcome.out
    for needle in needles:
        assert needle in outcome.err, (needle, outcome.err)


def assert_clean(outcome: Outcome) -> None:
    """Exit 0 or a refusal of the shape :func:`assert_refused` checks: never a crash."""
    if outcome.status != 0:
        assert_refused(outcome)
