"""A real ``gridedge run`` killed with SIGKILL mid-publish loses nothing on restart."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from gridedge.outbox.store import read_stats
from tests.integration.broker import Broker, Certs, make_certs
from tests.integration.daemonproc import running_daemon, wait_for
from tests.integration.forwardkit import committed_seq, stored_seqs, subscribed

pytestmark = pytest.mark.integration

WINDOW = 8
LOAD_PER_S = 250  # 50 meters, 5 samples/s each


def _config(folder: Path, port: int, certs: Certs) -> Path:
    path = folder / "gridedge.toml"
    path.write_text(
        f"""
[gateway]
id = "gw-crash"
site = "lab"

[log]
format = "json"

[outbox]
path = "outbox.sqlite3"
commit_interval_s = 0.1

[http]
enabled = false

[[meters]]
id = "m"
driver = "eastron-sdm630"
count = 50
interval_s = 0.2
[meters.link]
type = "simulated"

[[upstreams]]
name = "up"
host = "127.0.0.1"
port = {port}
ca_file = "{certs.ca}"
window = {WINDOW}
max_batch_bytes = 4096
reconnect_min_s = 0.2
reconnect_max_s = 1.0
"""
    )
    return path


def _resumed_cursor(output: bytes) -> int | None:
    for line in output.decode().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "forward.connected":
            return int(event["cursor"])
    return None


def test_kill_9_mid_publish_loses_nothing_and_resends_only_past_the_saved_cursor(
    tmp_path: Path,
) -> None:
    """After SIGKILL and a restart every committed seq arrives; repeats lie past the cursor."""
    certs = make_certs(tmp_path / "certs")
    broker = Broker(tmp_path / "broker", certs)
    broker.start()
    try:
        config = _config(tmp_path, broker.ports["tls"], certs)
        db = tmp_path / "outbox.sqlite3"
        with subscribed(broker.ports["plain"], "sub-crash") as sub:
            with running_daemon(config) as proc:
                wait_for(lambda: sub.count() >= 500, 30, "publishing under way")
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
            saved, committed = read_stats(db).cursors["up"], committed_seq(db)
            with running_daemon(config) as proc:
                every = set(range(1, committed + 1))
                wait_for(lambda: sub.received().keys() >= every, 30, "every seq committed")
                wait_for(lambda: read_stats(db).cursors["up"] > committed, 30, "new deliveries")
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=10) == 0
                assert proc.stdout is not None
                resumed = _resumed_cursor(proc.stdout.read())
    finally:
        broker.kill()
    received = sub.received()
    assert resumed == saved
    assert set(range(1, committed_seq(db) + 1)) <= received.keys() | stored_seqs(db)
    repeated = sorted(seq for seq, n in received.items() if n > 1)
    # Only what was in flight or acknowledged after the cursor's last commit is sent again.
    assert all(saved < seq <= committed for seq in repeated)
    assert len(repeated) <= WINDOW * sub.largest_message + LOAD_PER_S
