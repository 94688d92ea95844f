"""The status page's JSON API, its credential check and the [http] credential settings."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridedge.config import parse_config
from gridedge.drivers import load_drivers
from gridedge.errors import ConfigError
from gridedge.links.settings import MeterConfig, SimulatedLinkConfig
from gridedge.model import Sample
from gridedge.ops.http import authorized, serve_http
from gridedge.ops.metrics import Metrics
from gridedge.ops.settings import HttpConfig
from gridedge.ops.status.board import StatusBoard, status_board
from tests.unit.ops.fakes import T0, make_runtime, meter_state
from tests.unit.ops.test_http import fetch

DRIVERS = load_drivers([Path(__file__).parents[3] / "drivers"])


def _board() -> StatusBoard:
    meters = [MeterConfig("m1", "eastron-sdm630", SimulatedLinkConfig(1), interval_s=1.0)]
    return status_board("gw-1", meters, DRIVERS, HttpConfig(), started_ts=T0 - 90)


async def _serve(board: StatusBoard, *paths: str) -> list[tuple[int, str, str]]:
    runtime = make_runtime(meter_state("m1", polls=4))
    runtime.status = board
    config = HttpConfig(host="127.0.0.1", port=0)
    async with serve_http(config, runtime, Metrics(runtime, process=False)) as bound:
        assert bound is not None
        base = f"http://{bound[0]}:{bound[1]}"
        return [await asyncio.to_thread(fetch, base + p) for p in paths]


async def test_api_reports_meters_grouped_values_series_and_alerts() -> None:
    """Status, meter, series and alerts answer JSON built from the board's history."""
    board = _board()
    ring = board.history.meter("m1")
    ring.add(T0, {"voltage_l1": 230.5, "frequency": 50.01, "x_vendor": 3.0}, {"voltage_l1": 0.2})
    status, meter, series, alerts, missing, bad = await _serve(
        board,
        "/api/status",
        "/api/meters/m1",
        "/api/meters/m1/series?channel=voltage_l1&since=0",
        "/api/alerts",
        "/api/meters/nope",
        "/api/meters/m1/series?channel=voltage_l1&since=yesterday",
    )
    s = json.loads(status[2])
    assert s["gateway"] == "gw-1"
    assert s["uptime_s"] > 90
    assert s["health"]["status"] == "ok"
    assert s["meters"][0]["headline"]["voltage_l1"] == {"value": 230.5, "unit": "V"}
    groups = {g["key"]: g for g in json.loads(meter[2])["groups"]}
    assert [c["name"] for c in groups["voltage"]["channels"]] == ["voltage_l1"]
    assert groups["frequency"]["channels"][0]["unit"] == "Hz"
    assert groups["other"]["channels"][0]["name"] == "x_vendor"
    points = json.loads(series[2])
    assert (points["ts"], points["values"], points["scores"]) == ([T0], [230.5], [0.2])
    assert json.loads(alerts[2]) == {"active": [], "recent": []}
    assert missing[0] == 404
    assert "nope" in missing[2]
    assert bad[0] == 400
    assert "since" in bad[2]


async def test_the_api_says_503_when_no_board_runs() -> None:
    """Without a status board (a runtime outside the daemon) the API answers 503, not a crash."""
    runtime = make_runtime()
    config = HttpConfig(host="127.0.0.1", port=0)
    async with serve_http(config, runtime, Metrics(runtime, process=False)) as bound:
        assert bound is not None
        code, _, _ = await asyncio.to_thread(fetch, f"http://{bound[0]}:{bound[1]}/api/status")
    assert code == 503


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_only_the_right_token_is_authorized() -> None:
    """Bearer or basic password with the token passes; anything else is refused."""
    token = "t0ken"
    assert authorized(f"Bearer {token}", token)
    assert authorized(_basic("anyone", token), token)
    for header in (
        None,
        "",
        "Bearer",
        "Bearer t0ke",
        _basic(token, "x"),
        "Digest t0ken",
        "Basic !!!notbase64",
    ):
        assert not authorized(header, token), header


@given(st.text(max_size=80))
def test_any_authorization_header_is_answered_without_an_exception(header: str) -> None:
    """Arbitrary header text is refused (or, being the token, accepted), never a crash."""
    assert authorized(header, "t0ken") in (True, False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "gateway.local"])
def test_an_open_host_without_a_token_is_refused(tmp_path: Path, host: str) -> None:
    """Beyond loopback the config must name a credential; the error names http.host."""
    with pytest.raises(ConfigError) as caught:
        parse_config({"http": {"host": host}}, source=None, base_dir=tmp_path)
    assert "http.host" in str(caught.value)
    assert "token_file" in str(caught.value)


def test_a_token_file_opens_the_host_and_a_bad_one_is_named(tmp_path: Path) -> None:
    """A readable token file makes 0.0.0.0 valid; a missing or empty one names the key."""
    (tmp_path / "tok").write_text("abc\n")
    (tmp_path / "empty").write_text("\n")
    ok = parse_config(
        {"http": {"host": "0.0.0.0", "token_file": "tok"}}, source=None, base_dir=tmp_path
    )
    assert ok.http.token_file == tmp_path / "tok"
    assert not ok.http.loopback
    for name in ("missing", "empty"):
        with pytest.raises(ConfigError) as caught:
            parse_config(
                {"http": {"host": "0.0.0.0", "token_file": name}}, source=None, base_dir=tmp_path
            )
        assert "http.token_file" in str(caught.value)


def test_samples_reach_the_api_through_the_sink_the_daemon_uses() -> None:
    """A board's wrap() sink feeds the history the API reads, with the analytics' scores."""

    class _Inner:
        async def put(self, records: object) -> None:
            return None

    board = _board()
    sink = board.wrap(_Inner())
    board.use_scores({"m1": {"frequency": 0.75}})
    asyncio.run(sink.put([Sample("m1", T0, {"frequency": 50.0})]))
    assert board.history.meter("m1").series("frequency").scores == [0.75]


def test_a_container_may_open_the_host_only_by_saying_so(tmp_path: Path) -> None:
    """``require_token = false`` is the one way to bind 0.0.0.0 without a token."""
    cfg = parse_config(
        {"http": {"host": "0.0.0.0", "require_token": False}}, source=None, base_dir=tmp_path
    )
    assert cfg.http.token_file is None
    assert not cfg.http.require_token
