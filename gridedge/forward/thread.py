"""A blocking call in a daemon thread, awaited as a future."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")


def in_thread(work: Callable[[], _T]) -> asyncio.Future[_T]:
    """Run blocking ``work`` (which must not raise) in a daemon thread; its result as a future.

    Not the loop's default executor: a connect to an unreachable broker may block for
    ``connect_timeout_s``, and ``asyncio.run`` waits for executor threads before the process
    can exit. A daemon thread still running then is simply dropped.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[_T] = loop.create_future()

    def settle(result: _T) -> None:
        if not done.done():
            done.set_result(result)

    def run() -> None:
        result = work()
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, result)

    threading.Thread(target=run, name="gridedge-mqtt-connect", daemon=True).start()
    return done
