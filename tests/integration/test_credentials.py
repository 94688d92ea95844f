"""An MQTT password read from a file never leaks: not in a running daemon's logs (at debug
level), not in `gridedge check`, not in /metrics or /health, whether the broker accepts it or
not.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.broker import mosquitto_binary
from tests.integration.daemonproc import running_daemon, wait_for
from tests.integration.opsproc import LogTail, get, health, require
from tests.integration.processes import free_port

pytestmark = pytest.mark.integration

PASSWORD = "Zq7-unguessable-Pa55"
WRONG = "Xw4-also-unguessable-Pa55"


@contextmanager
def broker_with_password(folder: Path) -> Iterator[int]:
    """A real mosquitto on loopback that admits only user ``gw`` with PASSWORD; yields its port."""
    port = free_port()
    passwords = folder / "mosquitto.passwd"
    subprocess.run(
        [require("mosquitto_passwd"), "-c", "-b", str(passwords), "gw", PASSWORD], check=True
    )
    config = folder / "mosquitto.conf"
    config.write_text(
        f"user root\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\n"
    )
    proc = subprocess.Popen([mosquitto_binary(), "-c", str(config)], stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: accepts(port) or proc.poll() is not None, 10, "mosquitto listening")
        assert proc.poll() is None, "mosquitto exited"
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def gateway_config(folder: Path, broker_port: int, password: str) -> Path:
    (folder / "mqtt-password").write_text(password + "\n")
    path = folder / "gridedge.toml"
    path.write_text(
        '[gateway]\nid = "gw-test"\n[log]\nformat = "json"\nlevel = "debug"\n'
        '[http]\nport = 0\n[outbox]\npath = "outbox.sqlite3"\n'
        '[[meters]]\nid = "a"\ndriver = "eastron-sdm120"\ninterval_s = 0.2\n'
        '[meters.link]\ntype = "simulated"\n'
        f'[[upstreams]]\nname = "cloud"\nhost = "127.0.0.1"\nport = {broker_port}\ntls = false\n'
        'username = "gw"\npassword_file = "mqtt-password"\nreconnect_min_s = 0.2\n'
        "reconnect_max_s = 0.5\n"
    )
    return path


@pytest.mark.parametrize(
    ("password", "connects"), [(PASSWORD, True), (WRONG, False)], ids=["accepted", "rejected"]
)
def test_the_mqtt_password_never_shows_in_logs_check_or_http(
    tmp_path: Path, password: str, connects: bool
) -> None:
    """Whether the broker takes the password or refuses it, no output ever contains it."""
    with broker_with_password(tmp_path) as port:
        config = gateway_config(tmp_path, port, password)
        check = subprocess.run(
            [sys.executable, "-m", "gridedge", "check", "-c", str(config)],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr
        with running_daemon(config) as proc:
            tail = LogTail(proc)
            base = tail.http_base()
            report = wait_for(lambda: upstream_seen(base, connects), 30, "the broker's verdict")
            pages = [get(base + "/metrics")[1].decode(), get(base + "/health")[1].decode()]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
            tail.wait_event("daemon.stopped")  # every line is in
    cloud = report["upstreams"]["cloud"]
    assert cloud["connected"] is connects
    assert connects or "authorized" in cloud["last_error"]  # the password was tried, and refused
    outputs = [check.stdout, check.stderr, *tail.lines, *pages]
    assert "mqtt-password" in check.stdout  # the file is named; its content is not
    assert not [text for text in outputs if password in text]


def upstream_seen(base: str, connects: bool) -> dict[str, Any] | None:
    """The /health report once the upstream has connected and acked, or failed to connect."""
    _, report = health(base)
    cloud = report.get("upstreams", {}).get("cloud")
    if cloud is None:
        return None
    if connects and cloud["connected"] and (cloud["acked"] or 0) > 0:
        return report
    if not connects and cloud["last_error"]:
        return report
    return None
