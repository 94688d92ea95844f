"""Fixtures the integration tests share."""

from __future__ import annotations

import pytest

from tests.integration.broker import Certs, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA, a server certificate for localhost and a client certificate, from trustme."""
    return make_certs(tmp_path_factory.mktemp("certs"))
