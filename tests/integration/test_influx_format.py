"""gridedge's line protocol against a real InfluxDB: written, read back, replays harmless."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridedge.forward.influx import pack_lines
from gridedge.forward.payload import Identity
from gridedge.model import Envelope, Kind
from tests.helpers import require
from tests.integration.processes import free_port, stop_process

pytestmark = pytest.mark.integration

ID = Identity("gridedge", "site-a", "gw-1")
T0 = 1_767_571_200.0
DB = "gridedge"


class Influx:
    """A throwaway influxd on loopback with its data in a temporary folder."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        config = folder / "influxdb.conf"
        config.write_text(
            f'reporting-enabled = false\nbind-address = "127.0.0.1:{free_port()}"\n'
            f'[meta]\n  dir = "{folder}/meta"\n'
            f'[data]\n  dir = "{folder}/data"\n  wal-dir = "{folder}/wal"\n'
            "  query-log-enabled = false\n"
            f'[http]\n  enabled = true\n  bind-address = "127.0.0.1:{self.port}"\n'
            "  log-enabled = false\n"
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
        )
        self.proc = subprocess.Popen(
            [require("influxd"), "-config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/ping", timeout=1).close()
                break
            except OSError:
                assert self.proc.poll() is None, "influxd exited at start"
                assert time.monotonic() < deadline, "influxd did not answer /ping in 30 s"
                time.sleep(0.1)  # polling a condition with a deadline

    @property
    def url(self) -> str:
        """The HTTP API's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def query(self, q: str) -> dict[str, object]:
        """Run an InfluxQL query against the test database."""
        params = urllib.parse.urlencode({"db": DB, "q": q})
        with urllib.request.urlopen(f"{self.url}/query?{params}", data=b"", timeout=10) as r:
            result: dict[str, object] = json.loads(r.read())
        return result

    def write(self, payload: bytes) -> int:
        """POST line protocol with nanosecond precision; returns the HTTP status."""
        url = f"{self.url}/write?db={DB}&precision=ns"
        with urllib.request.urlopen(url, data=payload, timeout=10) as response:
            return int(response.status)


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influx]:
    """A running influxd with an empty ``gridedge`` database."""
    server = Influx(tmp_path_factory.mktemp("influx"))
    try:
        server.query(f"CREATE DATABASE {DB}")
        yield server
    finally:
        stop_process(server.proc)


def envelopes() -> list[Envelope]:
    """Samples of two meters, an alert and an aggregate, as the outbox would hand them out."""
    out = [
        Envelope(
            Kind.SAMPLE,
            f"meter {d}",  # a space in a device id must survive as a tag value
            T0 + i,
            {"values": {"voltage_l1": 230.0 + i / 10, "energy_import": 1000.5 + i}},
            seq=2 * i + d,
        )
        for i in range(20)
        for d in (1, 2)
    ]
    out.append(
        Envelope(
            Kind.ALERT,
            "meter 1",
            T0 + 5,
            {"rule": "limit", "channel": "voltage_l1", "value": 260.0, "state": "raised"},
            urgent=True,
            seq=100,
        )
    )
    out.append(
        Envelope(
            Kind.AGGREGATE,
            "meter 1",
            T0 + 60,
            {"window_s": 60, "channels": {"voltage_l1": {"mean": 231.0, "count": 20}}},
            seq=101,
        )
    )
    return out


def count(influx: Influx, measurement: str) -> int:
    """Points in ``measurement`` (counted on ``seq``, which every line carries)."""
    result = influx.query(f'SELECT COUNT("seq") FROM "{measurement}"')
    series = result["results"][0].get("series")  # type: ignore[index]
    return 0 if not series else int(series[0]["values"][0][1])


def test_what_gridedge_writes_reads_back_and_replays_leave_the_point_count_unchanged(
    influx: Influx,
) -> None:
    """Every line is accepted; samples, alerts, aggregates land; a replay adds no points."""
    messages = pack_lines(envelopes(), ID, max_bytes=2048, epoch="e-1")
    for message in messages:
        assert influx.write(message.payload) == 204
    assert count(influx, "gridedge_sample") == 40
    assert count(influx, "gridedge_alert") == 1
    assert count(influx, "gridedge_aggregate") == 1
    result = influx.query(
        "SELECT voltage_l1 FROM gridedge_sample WHERE device = 'meter 1' ORDER BY time DESC LIMIT 1"
    )
    row = result["results"][0]["series"][0]["values"][0]  # type: ignore[index]
    assert row[0] == "2026-01-05T00:00:19Z"
    assert row[1] == pytest.approx(231.9)
    for message in messages:  # the same envelopes again, as after a reconnect
        assert influx.write(message.payload) == 204
    assert count(influx, "gridedge_sample") == 40
    assert count(influx, "gridedge_alert") == 1
