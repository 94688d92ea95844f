"""daemon.run in-process: READY before STOPPING, and one failing activity ends the whole run."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gridedge import daemon
from gridedge.config import Config, parse_config
from gridedge.ops.runtime import Runtime
from gridedge.ops.systemd import Notifier
from tests.helpers import until


def demo_config(folder: Path) -> Config:
    """Two simulated meters polled fast, an outbox in ``folder``, nothing listening."""
    doc = {
        "gateway": {"id": "unit", "site": "lab"},
        "outbox": {"path": "outbox.sqlite3", "commit_interval_s": 0.0},
        "http": {"enabled": False},
        "analytics": {"enabled": False},
        "meters": [
            {
                "id": "m",
                "driver": "eastron-sdm120",
                "count": 2,
                "interval_s": 0.01,
                "link": {"type": "simulated", "seed": 3},
            }
        ],
    }
    return parse_config(doc, source="<unit>", base_dir=folder)


@contextmanager
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A real Unix datagram socket as systemd gives a Type=notify service, in $NOTIFY_SOCKET."""
    with tempfile.TemporaryDirectory(prefix="ge-") as folder:
        path = str(Path(folder) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        try:
            yield sock
        finally:
            sock.close()


def received(sock: socket.socket) -> list[str]:
    """Every datagram waiting on ``sock``, decoded."""
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


async def test_ready_comes_after_polling_started_and_stopping_before_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Systemd hears READY once meters poll, then STOPPING when the trigger returns."""
    runtime = Runtime()
    stop = asyncio.Event()

    async def trigger() -> None:
        await until(lambda: all(m.samples >= 3 for m in runtime.meters.values()), 10, "samples")
        stop.set()

    with notify_socket(monkeypatch) as sock:
        await daemon.run(demo_config(tmp_path), shutdown_trigger=trigger, runtime=runtime)
        messages = received(sock)
    ready = next(i for i, m in enumerate(messages) if "READY=1" in m)
    stopping = next(i for i, m in enumerate(messages) if "STOPPING=1" in m)
    assert ready < stopping
    assert stop.is_set()
    assert len(runtime.meters) == 2


async def test_one_activity_raising_cancels_the_others_and_run_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the daemon's own wiring (here: the supervisor) ends run with that error."""
    runtime = Runtime()

    async def broken_supervisor(notifier: Notifier, rt: Runtime) -> None:
        del notifier
        await until(lambda: all(m.samples >= 2 for m in rt.meters.values()), 10, "samples")
        raise RuntimeError("supervisor bug")

    async def never() -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(daemon, "supervise_forever", broken_supervisor)
    with pytest.raises(ExceptionGroup) as caught:
        async with asyncio.timeout(20):
            await daemon.run(demo_config(tmp_path), shutdown_trigger=never, runtime=runtime)
    assert caught.group_contains(RuntimeError, match="supervisor bug")
    polled = {m.device: m.polls for m in runtime.meters.values()}
    await asyncio.sleep(0.05)  # the poll loops run every 10 ms: any live one would poll again
    assert {m.device: m.polls for m in runtime.meters.values()} == polled
