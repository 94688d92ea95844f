"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.broker import Broker, Certs, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA, a server certificate for localhost and a client certificate, from trustme."""
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def fresh_broker(tmp_path: Path, certs: Certs) -> Iterator[Broker]:
    """A mosquitto of this test's own, killed at its end."""
    running = Broker(tmp_path / "broker", certs)
    running.start()
    try:
        yield running
    finally:
        running.kill()
