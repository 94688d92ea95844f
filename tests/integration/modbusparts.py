"""Real parts for the Modbus integration tests: socat serial pairs and the emulator process."""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from gridedge.bench.modbus import emulator_subprocess
from tests.helpers import require, until
from tests.integration.processes import stop_process

__all__ = ["emulator_subprocess", "require", "serial_pair", "until"]

_PTY = re.compile(r"PTY is (\S+)")


@contextmanager
def serial_pair(timeout_s: float = 10.0) -> Iterator[tuple[str, str]]:
    """Two connected pseudo-terminals from ``socat``: bytes written to one arrive at the other."""
    proc = subprocess.Popen(
        [require("socat"), "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        ptys: list[str] = []
        seen = b""
        deadline = time.monotonic() + timeout_s
        while len(ptys) < 2 and (left := deadline - time.monotonic()) > 0:
            if not select.select([proc.stderr], [], [], left)[0]:
                break
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
            ptys = _PTY.findall(seen.decode(errors="replace"))
        assert len(ptys) >= 2, f"socat gave no pty pair within {timeout_s} s: {seen!r}"
        yield ptys[0], ptys[1]
    finally:
        stop_process(proc)
