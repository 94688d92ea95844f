"""Stop triggers for long-running commands (``run``, ``emulate``)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack


def signal_trigger(
    stack: AsyncExitStack, *, on_hangup: Callable[[], None] | None = None
) -> Callable[[], Awaitable[object]]:
    """A trigger that returns on the first SIGTERM or SIGINT; handlers go when ``stack`` closes.

    Must be called with the event loop running.

    Args:
        stack: closes the handlers again.
        on_hangup: called on every SIGHUP instead of letting it end the process (its default
            action, which would skip the graceful stop); without it SIGHUP keeps that default.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
        stack.callback(loop.remove_signal_handler, sig)
    if on_hangup is not None:
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
        stack.callback(loop.remove_signal_handler, signal.SIGHUP)
    return stop.wait
