"""A real mosquitto on loopback, and a paho subscriber that records every envelope it gets.

Shared by the forwarding tests. The broker runs from a generated config with listeners on
ephemeral loopback ports; its certificates come from trustme. It keeps sessions on disk, so a
persistent subscriber misses nothing across a broker restart.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import trustme
from paho.mqtt.enums import CallbackAPIVersion

from gridedge.forward.payload import unpack
from tests.integration.processes import free_port

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "mosquitto")
BROKER_INFLIGHT = 10
"""The broker's per-client window towards the subscriber (``max_inflight_messages``)."""


def mosquitto_binary() -> str:
    """The mosquitto executable; fails the test (never skips) when it is not installed."""
    for candidate in MOSQUITTO_PATHS:
        found = shutil.which(candidate)
        if found:
            return found
    pytest.fail("mosquitto is not installed (scripts/test installs the Debian package)")


@dataclass(frozen=True)
class Certs:
    """PEM files: a CA, a broker certificate for 127.0.0.1, one for another name, a client
    certificate, and a second CA that signed none of them.
    """

    ca: Path
    server_cert: Path
    server_key: Path
    other_name_cert: Path
    other_name_key: Path
    client_cert: Path
    client_key: Path
    wrong_ca: Path


def make_certs(folder: Path) -> Certs:
    """Write a fresh set of certificates into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    paths: dict[str, Path] = {}

    def write(name: str, blob: trustme.Blob) -> None:
        paths[name] = folder / f"{name}.pem"
        blob.write_to_path(str(paths[name]))

    server = ca.issue_cert("127.0.0.1")
    other = ca.issue_cert("broker.example.invalid")
    client = ca.issue_cert("gateway.example.invalid")
    write("ca", ca.cert_pem)
    write("server_cert", server.cert_chain_pems[0])
    write("server_key", server.private_key_pem)
    write("other_name_cert", other.cert_chain_pems[0])
    write("other_name_key", other.private_key_pem)
    write("client_cert", client.cert_chain_pems[0])
    write("client_key", client.private_key_pem)
    write("wrong_ca", trustme.CA().cert_pem)
    return Certs(**paths)


class Broker:
    """A mosquitto process with five listeners, each on its own port.

    ``plain`` (TCP, anonymous), ``tls`` (certificate for 127.0.0.1), ``other_name`` (TLS with
    a certificate for another host name), ``mtls`` (TLS, client certificate required) and
    ``auth`` (TLS, user ``gw`` with password ``secret`` only).
    """

    LISTENERS = ("plain", "tls", "other_name", "mtls", "auth")

    def __init__(self, folder: Path, certs: Certs) -> None:
        self.folder = folder
        self.certs = certs
        self.ports = {name: free_port() for name in self.LISTENERS}
        self._proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "mosquitto.log"
        self.config = folder / "mosquitto.conf"
        passwords = folder / "passwords"
        passwords.touch()
        # mosquitto_passwd -b: the password on the command line is fine for a test broker.
        subprocess.run(["mosquitto_passwd", "-b", str(passwords), "gw", "secret"], check=True)
        self.config.write_text(self._config_text(passwords))

    def _config_text(self, passwords: Path) -> str:
        c = self.certs
        tls = f"cafile {c.ca}\ncertfile {c.server_cert}\nkeyfile {c.server_key}\n"
        p = self.ports
        return (
            "per_listener_settings true\nuser root\n"
            f"persistence true\npersistence_location {self.folder}/\n"
            f"max_inflight_messages {BROKER_INFLIGHT}\nmax_queued_messages 0\n"
            f"log_dest file {self.log}\nlog_type all\n"
            f"\nlistener {p['plain']} 127.0.0.1\nallow_anonymous true\n"
            f"\nlistener {p['tls']} 127.0.0.1\n{tls}allow_anonymous true\n"
            f"\nlistener {p['other_name']} 127.0.0.1\ncafile {c.ca}\n"
            f"certfile {c.other_name_cert}\nkeyfile {c.other_name_key}\nallow_anonymous true\n"
            f"\nlistener {p['mtls']} 127.0.0.1\n{tls}require_certificate true\n"
            "allow_anonymous true\n"
            f"\nlistener {p['auth']} 127.0.0.1\n{tls}allow_anonymous false\n"
            f"password_file {passwords}\n"
        )

    def start(self) -> None:
        """Start mosquitto and wait until every listener accepts connections."""
        assert self._proc is None, "already running"
        self._proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        for port in self.ports.values():
            while not _accepts(port):
                if self._proc.poll() is not None:
                    raise AssertionError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"mosquitto does not listen on {port}")
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM: sessions are saved) and wait for the exit."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)
            self._proc.wait(timeout=10)
            self._proc = None

    def kill(self) -> None:
        """SIGKILL, for teardown."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Subscriber:
    """A QoS 1 subscriber with a persistent session (fixed client id, clean_session False),
    recording the seq of every envelope and every status message it receives.
    """

    def __init__(self, port: int, client_id: str, topic: str = "gridedge/#") -> None:
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.seqs: list[int] = []
        self.statuses: list[tuple[str, bool]] = []
        self.largest_message = 0
        self._topic = topic
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        client.reconnect_delay_set(1, 1)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        self._port = port

    def start(self) -> Subscriber:
        """Connect, subscribe (QoS 1) and wait for the SUBACK."""
        self._client.connect("127.0.0.1", self._port, keepalive=10)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError("no SUBACK within 10 s")
        return self

    def stop(self) -> None:
        """Disconnect (the session stays on the broker) and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe(self._topic, qos=1)

    def _on_subscribe(self, *_: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            if message.topic.endswith("/status"):
                self.statuses.append((message.payload.decode(), bool(message.retain)))
                return
            if message.topic.endswith(("/health", "/state")):
                return  # the gateway's health report and Home Assistant's state: no envelopes
            entries = unpack(bytes(message.payload))
            self.seqs.extend(int(e["seq"]) for e in entries)
            self.largest_message = max(self.largest_message, len(entries))

    def received(self) -> Counter[int]:
        """How often each seq arrived."""
        with self._lock:
            return Counter(self.seqs)

    def count(self) -> int:
        """Envelopes received, duplicates included."""
        with self._lock:
            return len(self.seqs)
