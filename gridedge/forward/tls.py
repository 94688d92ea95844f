"""Client TLS settings and readable reasons for failed connections (standard library only).

Kept apart from :mod:`gridedge.forward.mqtt` so that what TLS means for gridedge (which CAs,
which versions, what is checked) reads on its own.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from gridedge.errors import ForwardError
from gridedge.forward.settings import UpstreamConfig


def describe_connect_error(exc: BaseException) -> str:
    """A short, specific reason for a failed TCP connect or TLS handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: broker certificate rejected: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {getattr(exc, 'reason', None) or exc}"
    if isinstance(exc, ssl.CertificateError):
        return f"TLS: broker certificate rejected: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "no answer (connect timed out)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc.strerror}"
    if isinstance(exc, OSError):
        return f"cannot connect: {exc.strerror or exc}"
    return f"cannot connect: {exc}"


class TlsContext(ssl.SSLContext):
    """An SSLContext that remembers the socket it wrapped last.

    paho wraps and handshakes inside ``connect`` and drops the socket when the handshake fails;
    keeping it lets the caller close it at once instead of leaving it to the garbage collector.
    """

    last_socket: ssl.SSLSocket | None = None

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        """Wrap as usual, keeping the socket made (see the class docstring)."""
        self.last_socket = super().wrap_socket(*args, **kwargs)
        return self.last_socket


def tls_context(config: UpstreamConfig) -> ssl.SSLContext:
    """The client TLS settings: the configured (or system) CAs, TLS 1.2 or newer, hostname
    checked unless ``verify_hostname = false``, and the client certificate for mutual TLS.

    Raises:
        ForwardError: a CA, certificate or key file cannot be read or is not valid PEM.
    """
    context = TlsContext(ssl.PROTOCOL_TLS_CLIENT)  # verify_mode CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = config.verify_hostname
    try:
        if config.ca_file is not None:
            context.load_verify_locations(cafile=str(config.ca_file))
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if config.cert_file is not None:
            key = str(config.key_file) if config.key_file is not None else None
            context.load_cert_chain(str(config.cert_file), key)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ForwardError(config.broker, f"cannot load TLS files: {exc}") from None
    return context
