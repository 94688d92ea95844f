"""sd_notify: tell systemd (``Type=notify``) when the daemon is ready, what it is doing, that it
is alive, and that it is stopping. Does nothing when ``NOTIFY_SOCKET`` is not set.
"""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    """Sends datagrams to ``$NOTIFY_SOCKET``; every failure is ignored (never fatal)."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        # An address starting with '@' is in the Linux abstract namespace.
        if address and address.startswith("@"):
            address = "\0" + address[1:]
        self._address = address or None
        self._sock: socket.socket | None = None
        if self._address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        """True when running under a notify-aware supervisor."""
        return self._sock is not None

    def send(self, **fields: str | int) -> None:
        """Send ``KEY=value`` lines, e.g. ``send(READY=1, STATUS="3 meters online")``."""
        if self._sock is None or self._address is None:
            return
        message = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        # systemd gone or socket full: the daemon's job goes on regardless.
        with contextlib.suppress(OSError):
            self._sock.sendto(message, self._address)

    def watchdog_interval_s(self) -> float | None:
        """Half the watchdog timeout systemd asked for, or None when no watchdog is set."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 2e6
        except ValueError:
            return None

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
