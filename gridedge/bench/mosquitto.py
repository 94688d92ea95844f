"""A mosquitto of the bench's own on a loopback port: started, stopped and started again."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

_START_TIMEOUT_S = 10.0


class Mosquitto:
    """A mosquitto process on 127.0.0.1, anonymous, plain TCP, its config in ``folder``.

    With ``persistence`` it keeps sessions and queued messages in ``folder`` across a stop
    (SIGTERM: mosquitto saves them on the way out) and the next start, and queues without
    limit for a subscriber that is away, so that what the broker acknowledged reaches a
    persistent subscriber whatever the broker went through.
    """

    def __init__(self, folder: Path, *, persistence: bool = False) -> None:
        binary = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
        if binary is None:
            raise RuntimeError("bench: mosquitto is not installed (Debian package mosquitto)")
        self._binary = binary
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._conf = folder / "mosquitto.conf"
        keep = (
            f"persistence true\npersistence_location {folder}/\n"
            "max_queued_messages 0\nmax_queued_bytes 0\n"
            if persistence
            else "persistence false\n"
        )
        if os.geteuid() == 0:
            keep += "user root\n"  # else it drops to user mosquitto, who cannot write here
        self._conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{keep}log_dest none\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The running broker's pid."""
        assert self._proc is not None, "not running"
        return self._proc.pid

    def start(self) -> None:
        """Start it and wait until it accepts connections.

        Raises:
            RuntimeError: it exited or did not listen within 10 s.
        """
        assert self._proc is None, "already running"
        proc = self._proc = subprocess.Popen(
            [self._binary, "-c", str(self._conf)], stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("bench: mosquitto did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM (sessions are saved) and wait for the exit; SIGKILL after 10 s."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def running_mosquitto(folder: Path) -> Iterator[tuple[int, int]]:
    """A mosquitto without persistence for the length of the block; yields (port, pid)."""
    broker = Mosquitto(folder)
    broker.start()
    try:
        yield broker.port, broker.pid
    finally:
        broker.stop()
