"""Small helpers for tests that run real servers and tools as subprocesses."""

from __future__ import annotations

import socket
import subprocess

_GIVEN: set[int] = set()


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (for servers that need a fixed one).

    Never the same port twice in one test run: the kernel may hand a just-closed port out
    again, and a broker asking for five listeners in a row would then get two alike.
    """
    for _ in range(1000):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port
    raise AssertionError("no fresh loopback port in 1000 tries")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s; close the pipes the test opened."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
