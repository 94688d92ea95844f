"""Client TLS settings: verified by default, TLS 1.2 at least, unreadable files reported."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from gridedge.errors import ForwardError
from gridedge.forward.settings import UpstreamConfig
from gridedge.forward.tls import describe_connect_error, tls_context

UP = UpstreamConfig("up", "broker.test", 8883)


def test_the_broker_certificate_and_name_are_checked_with_tls_1_2_at_least() -> None:
    """By default the certificate must verify, name the host, and TLS is 1.2 or newer."""
    context = tls_context(UP)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_verify_hostname_false_still_verifies_the_certificate() -> None:
    """Turning off the name check keeps the chain check."""
    context = tls_context(UpstreamConfig("up", "10.0.0.5", 8883, verify_hostname=False))
    assert not context.check_hostname
    assert context.verify_mode is ssl.CERT_REQUIRED


def test_a_missing_ca_or_key_file_is_a_forward_error_naming_it(tmp_path: Path) -> None:
    """A CA, certificate or key that cannot be loaded fails the attempt with a ForwardError."""
    with pytest.raises(ForwardError, match="cannot load TLS files"):
        tls_context(UpstreamConfig("up", "h", 8883, ca_file=tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ForwardError, match="cannot load TLS files"):
        tls_context(UpstreamConfig("up", "h", 8883, cert_file=tmp_path / "junk.pem"))


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (TimeoutError("timed out"), "connect timed out"),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "TLS handshake"),
        (OSError(113, "No route to host"), "No route to host"),
    ],
)
def test_connect_failures_read_as_short_reasons(error: OSError, reason: str) -> None:
    """Socket and TLS errors become one-line reasons for the log."""
    assert reason in describe_connect_error(error)
