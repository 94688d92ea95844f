"""Helpers every test tier shares: waiting on a condition, needing a tool, checking a database."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["integrity", "require", "until"]


async def until(
    condition: Callable[[], object], timeout_s: float = 10.0, what: str = "the condition"
) -> None:
    """Poll ``condition`` until it holds, or fail after ``timeout_s`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.005)


def require(tool: str) -> str:
    """The path of a command the test needs; a missing one fails the test (never skips).

    Looks on PATH, then beside the interpreter (tools installed into the virtual environment).
    """
    path = shutil.which(tool) or shutil.which(tool, path=str(Path(sys.executable).parent))
    assert path is not None, f"{tool} is not installed (scripts/test installs it)"
    return path


def integrity(db: Path) -> str:
    """PRAGMA integrity_check of the file (this connection also recovers the WAL)."""
    con = sqlite3.connect(db, timeout=5)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()
