"""Helpers for the operations tests: a daemon's log stream, HTTP probes, a notify socket and a
Prometheus server, all real and on loopback.
"""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.helpers import require as require  # re-exported for the tests that use this kit
from tests.integration.processes import free_port, stop_process


class LogTail:
    """Reads a daemon's stdout on a thread and keeps every JSON log event."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._new: queue.Queue[None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append(line)
                with suppress(ValueError):  # a line that is not a JSON event
                    self.events.append(json.loads(line))
                self._new.put(None)
        except (ValueError, OSError):
            return  # the pipe was closed under us as the test ended

    def wait_event(self, name: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """The first event called ``name``, waiting for it to be logged."""
        deadline = time.monotonic() + timeout_s
        while True:
            for event in self.events:
                if event.get("event") == name:
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {name} event in {timeout_s} s: {self.lines[-5:]}")
            with suppress(queue.Empty):
                self._new.get(timeout=left)

    def http_base(self) -> str:
        """The daemon's HTTP address, as its ``http.listening`` event reports it."""
        event = self.wait_event("http.listening")
        return f"http://{event['host']}:{event['port']}"


def get(url: str) -> tuple[int, bytes]:
    """Status and body of a GET; HTTP errors are answers, refused connections are (0, b"")."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


def health(base: str) -> tuple[int, dict[str, Any]]:
    """Status and parsed report of ``/health``."""
    status, body = get(base + "/health")
    return status, json.loads(body) if body else {}


class NotifySocket:
    """A Unix datagram socket standing in for systemd's ``NOTIFY_SOCKET``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.messages: list[dict[str, str]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)

    def close(self) -> None:
        self._sock.close()

    def _receive(self, timeout_s: float) -> dict[str, str] | None:
        self._sock.settimeout(max(timeout_s, 0.001))
        try:
            data = self._sock.recv(4096)
        except TimeoutError:
            return None
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append(fields)
        return fields

    def wait_for(
        self, match: Callable[[dict[str, str]], bool], timeout_s: float, what: str
    ) -> None:
        """Receive until a message matches, failing after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            message = self._receive(left)
            if message is not None and match(message):
                return
        raise AssertionError(f"no {what} within {timeout_s} s; got {self.messages[-5:]}")

    def collect_for(self, seconds: float) -> list[dict[str, str]]:
        """Every message that arrives during the next ``seconds`` (an observation window)."""
        got: list[dict[str, str]] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            message = self._receive(left)
            if message is not None:
                got.append(message)
        return got


@contextmanager
def notify_socket() -> Iterator[NotifySocket]:
    """A bound notify socket in a short temporary folder (socket paths are limited to ~100)."""
    with tempfile.TemporaryDirectory(prefix="ge-") as folder:
        sock = NotifySocket(Path(folder) / "notify")
        try:
            yield sock
        finally:
            sock.close()


@contextmanager
def running_prometheus(folder: Path, target: str) -> Iterator[str]:
    """A real Prometheus server scraping ``target`` every second; yields its base URL."""
    port = free_port()
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: gridedge\n    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    proc = subprocess.Popen(
        [
            require("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while get(base + "/-/ready")[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise AssertionError(f"prometheus did not become ready: {err[-2000:]}")
            time.sleep(0.1)
        yield base
    finally:
        stop_process(proc)


def prometheus_value(base: str, query: str) -> float | None:
    """The single value of an instant query, None while Prometheus has no sample."""
    status, body = get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    if status != 200:
        return None
    result = json.loads(body)["data"]["result"]
    return float(result[0]["value"][1]) if result else None
