"""The shipped Grafana dashboard: every panel's query returns data from a real Prometheus."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path

import pytest

from tests.integration.broker import Broker, Certs
from tests.integration.daemonproc import meter, running_daemon, wait_for, write_config
from tests.integration.opsproc import LogTail, get, running_prometheus

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parents[2] / "contrib" / "grafana" / "gridedge.json"


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target, with Grafana's variables filled in as 'All'."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "10s").replace("$job", "gridedge")
            expr = re.sub(r"\$(device|upstream)", ".*", expr)
            queries.append((panel["title"], expr))
    return queries


def returns_data(base: str, expr: str) -> bool:
    """Whether an instant query of ``expr`` gives at least one series."""
    status, body = get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    return status == 200 and bool(json.loads(body)["data"]["result"])


def test_the_dashboard_is_importable_with_a_prometheus_input_and_stable_uid() -> None:
    """__inputs names a Prometheus data source; uid and the device/upstream variables exist."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
    assert dashboard["uid"] == "gridedge-gateway"
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"device", "upstream"} <= names
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"


def test_every_panel_returns_data_while_the_daemon_runs(tmp_path: Path, certs: Certs) -> None:
    """A daemon with readings, analytics and one upstream, scraped by Prometheus every second."""
    broker = Broker(tmp_path / "broker", certs)
    broker.start()
    try:
        config = write_config(
            tmp_path,
            meter("a", "eastron-sdm630", 0.5, 1)
            + meter("b", "eastron-sdm120", 0.5, 2)
            + '[[upstreams]]\nname = "lab"\nhost = "127.0.0.1"\n'
            f"port = {broker.ports['plain']}\ntls = false\n",
            http="port = 0\nreadings = true",
        )
        with running_daemon(config) as proc:
            log = LogTail(proc)
            target = log.http_base().removeprefix("http://")
            with running_prometheus(tmp_path, target) as prom:
                queries = panel_queries()
                assert len(queries) >= 15

                def missing() -> list[str]:
                    return [title for title, q in queries if not returns_data(prom, q)]

                # Rates need two scrapes, the drop counters a first commit: wait for them all.
                try:
                    wait_for(lambda: not missing() or None, 45, "every panel to return data")
                except AssertionError as exc:
                    raise AssertionError(f"panels without data: {missing()}") from exc
    finally:
        broker.kill()
