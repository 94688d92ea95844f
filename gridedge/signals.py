"""Stop triggers for long-running commands (``run``, ``emulate``)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack


def signal_trigger(stack: AsyncExitStack) -> Callable[[], Awaitable[object]]:
    """A trigger that returns on the first SIGTERM or SIGINT; handlers go when ``stack`` closes.

    Must be called with the event loop running.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
        stack.callback(loop.remove_signal_handler, sig)
    return stop.wait
