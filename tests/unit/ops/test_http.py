"""The [http] section and the endpoint itself, served for real on a loopback port."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gridedge.config import parse_config
from gridedge.daemon import Runtime
from gridedge.errors import ConfigError
from gridedge.ops.http import serve_http
from gridedge.ops.metrics import Metrics
from gridedge.ops.settings import HttpConfig
from tests.unit.ops.fakes import make_runtime, meter_state


def test_http_listens_on_loopback_9108_by_default(tmp_path: Path) -> None:
    """Without an [http] table the endpoint is on, bound to 127.0.0.1:9108."""
    config = parse_config({}, source=None, base_dir=tmp_path)
    assert config.http == HttpConfig(enabled=True, host="127.0.0.1", port=9108)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"port": 70000}, "http.port: expected at most 65535, got 70000"),
        ({"port": "9108"}, "http.port: expected an integer, got a string '9108'"),
        ({"enabled": "yes"}, "http.enabled: expected true or false"),
        ({"host": "0.0.0.0 "}, "http.host: expected an address without spaces"),
        ({"prot": 1}, "http.prot: unknown key; did you mean 'port'?"),
    ],
)
def test_bad_http_settings_name_the_key(
    tmp_path: Path, table: dict[str, object], message: str
) -> None:
    """Every mistake in [http] is a ConfigError naming the dotted key."""
    with pytest.raises(ConfigError) as caught:
        parse_config({"http": table}, source=None, base_dir=tmp_path)
    assert message in str(caught.value)


def fetch(url: str) -> tuple[int, str, str]:
    """Status, Content-Type and body of a GET (errors are answers too)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()


async def serve_and_fetch(runtime: Runtime, *paths: str) -> list[tuple[int, str, str]]:
    config = HttpConfig(host="127.0.0.1", port=0)
    async with serve_http(config, runtime, Metrics(runtime, process=False)) as bound:
        assert bound is not None
        host, port = bound
        return [await asyncio.to_thread(fetch, f"http://{host}:{port}{p}") for p in paths]


async def test_endpoint_serves_metrics_health_and_an_index() -> None:
    """/metrics is Prometheus text, /health JSON with 200 while ok, / is the page linking both."""
    runtime = make_runtime(meter_state("a", samples=3))
    (metrics, health, index, missing) = await serve_and_fetch(
        runtime, "/metrics", "/health", "/", "/nope"
    )
    assert metrics[0] == 200
    assert metrics[1].startswith("text/plain; version=")
    assert 'gridedge_samples_total{device="a"} 3.0' in metrics[2]
    assert health[:2] == (200, "application/json; charset=utf-8")
    assert json.loads(health[2])["status"] == "ok"
    assert index[0] == 200
    assert index[1].startswith("text/html")
    assert 'href="metrics"' in index[2]
    assert 'href="health"' in index[2]
    assert missing[0] == 404


async def test_health_answers_503_while_failing() -> None:
    """Every meter offline: /health says failing with status 503."""
    runtime = make_runtime(meter_state("a", online=False))
    ((status, _, body),) = await serve_and_fetch(runtime, "/health")
    assert status == 503
    assert json.loads(body)["problems"] == ["every meter is offline"]


async def test_a_port_in_use_is_a_config_error_naming_the_address() -> None:
    """Binding a taken port fails with a ConfigError that says where."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runtime = make_runtime()
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with serve_http(HttpConfig(port=port), runtime, Metrics(runtime)):
                pass


async def test_disabled_endpoint_binds_nothing() -> None:
    """Enabled = false: the block runs without a server."""
    runtime = make_runtime()
    async with serve_http(HttpConfig(enabled=False), runtime, Metrics(runtime)) as bound:
        assert bound is None
