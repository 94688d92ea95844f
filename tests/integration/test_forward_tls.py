"""Forwarding to a real mosquitto over TLS: what connects, and what is refused without a crash."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests.integration.broker import Broker, Certs
from tests.integration.forwardkit import (
    gateway_config,
    running_gateway,
    state_of,
    subscribed,
    until,
    upstream,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Broker]:
    broker = Broker(tmp_path_factory.mktemp("broker"), certs)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


def _ok_cases(certs: Certs) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        "tls": ("tls", {}),
        "mqtt5": ("tls", {"protocol": "5", "persistent_session": True}),
        "no_hostname_check": ("other_name", {"verify_hostname": False}),
        "mtls": ("mtls", {"cert_file": str(certs.client_cert), "key_file": str(certs.client_key)}),
        "password": ("auth", {"username": "gw", "password_env": "GRIDEDGE_TEST_MQTT_PASSWORD"}),
    }


@pytest.mark.parametrize("case", ["tls", "mqtt5", "no_hostname_check", "mtls", "password"])
async def test_tls_connection_publishes_samples_and_a_retained_online_status(
    tmp_path: Path, broker: Broker, certs: Certs, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over TLS (3.1.1, MQTT 5, unchecked name, mutual, password) samples arrive, status online."""
    monkeypatch.setenv("GRIDEDGE_TEST_MQTT_PASSWORD", "secret")
    listener, extra = _ok_cases(certs)[case]
    up = upstream("up", broker.ports[listener], certs, client_id=f"gw-{case}", **extra)
    config = gateway_config(tmp_path, [up], meters=2, interval_s=0.1)
    port = broker.ports["plain"]
    with subscribed(port, f"sub-ok-{case}") as sub:
        async with running_gateway(config) as (runtime, _task):
            state = state_of(runtime, "up")
            await until(lambda: sub.count() >= 10, 20, "ten samples at the subscriber")
            assert state.connected
            assert state.tls
            with subscribed(port, f"late-online-{case}") as late:
                await until(lambda: ("online", True) in late.statuses, 10, "retained online")
    with subscribed(port, f"late-offline-{case}") as late:
        await until(lambda: ("offline", True) in late.statuses, 10, "retained offline after stop")
    assert state.envelopes_acked >= 10
    assert sub.received().keys() >= set(range(1, 11))


def _refused_cases(certs: Certs) -> dict[str, tuple[str, dict[str, Any], str]]:
    return {
        "wrong_ca": ("tls", {"ca_file": str(certs.wrong_ca)}, "certificate rejected"),
        "wrong_hostname": ("other_name", {}, "mismatch"),
        "missing_client_cert": ("mtls", {}, "certificate"),
        "bad_credentials": (
            "auth",
            {"username": "gw", "password_file": "wrong-password"},
            "not authori",
        ),
    }


@pytest.mark.parametrize(
    "case", ["wrong_ca", "wrong_hostname", "missing_client_cert", "bad_credentials"]
)
async def test_refused_connection_is_logged_once_and_retried_without_a_crash(
    tmp_path: Path, broker: Broker, certs: Certs, case: str
) -> None:
    """A bad CA, host name, client certificate or password: a WARNING naming why, then retries."""
    (tmp_path / "wrong-password").write_text("not-the-password\n")
    listener, extra, reason = _refused_cases(certs)[case]
    up = upstream("up", broker.ports[listener], certs, reconnect_min_s=0.05, **extra)
    config = gateway_config(tmp_path, [up], meters=1, interval_s=0.1)
    with structlog.testing.capture_logs() as logs:
        async with running_gateway(config) as (runtime, task):
            state = state_of(runtime, "up")
            await until(lambda: state.reconnects >= 3, 20, "three retries")
            assert not task.done()
            assert not state.connected
            assert state.acked == 0
            outbox = runtime.outbox
            assert outbox is not None
            await until(lambda: outbox.appended_total > 0, 10, "a sample stored meanwhile")
    failures = [e for e in logs if e["event"] == "forward.connection.failed"]
    assert failures[0]["log_level"] == "warning"
    assert reason in failures[0]["error"].lower(), failures[0]["error"]
    assert {e["log_level"] for e in failures[1:]} == {"debug"}
    assert "not-the-password" not in repr(logs)
