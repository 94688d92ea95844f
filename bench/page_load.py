"""How fast the status page shows its first view, measured in a real headless browser.

Starts ``gridedge run`` with N simulated meters (default 200) on a free loopback port, opens the
page in headless Chromium over the DevTools protocol, and prints one JSON object: the time from
navigation until the page marked its first view as drawn (status, alerts and the first meter's
plots), for several cold loads, plus the history's memory per channel as the daemon reports it.

    python -m bench.page_load [--meters 200] [--loads 5]

The :class:`Browser` driver is shared with the integration test of the page.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # the browser runs as root in CI containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


class BrowserError(RuntimeError):
    """The browser could not be started or a page command failed."""


class Page:
    """One tab, driven over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Run one DevTools command and return its result (events on the way are skipped)."""
        msg_id = next(self._ids)
        await self._ws.send_json({"id": msg_id, "method": method, "params": params})
        async with asyncio.timeout(30):
            while True:
                reply = await self._ws.receive_json()
                if reply.get("id") != msg_id:
                    continue
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises are awaited)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float) -> Any:
        """Poll ``expression`` until it is truthy; its value, or BrowserError at the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out after {timeout_s} s waiting for {expression!r}")
            await asyncio.sleep(0.05)  # a polling interval, not a synchronisation

    async def goto(self, url: str, width: int = 1280, height: int = 900) -> None:
        """Navigate to ``url`` in a window of the given size."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        await self.send("Page.navigate", url=url)

    async def screenshot(self) -> bytes:
        """The whole page as a PNG."""
        size = await self.evaluate("[document.body.scrollWidth, document.body.scrollHeight]")
        clip = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
        shot = await self.send(
            "Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True
        )
        return base64.b64decode(shot["data"])


class Browser:
    """A headless Chromium with a fresh profile, reachable over DevTools on loopback."""

    def __init__(self, http: aiohttp.ClientSession, devtools: str) -> None:
        self._http = http
        self._devtools = devtools

    @asynccontextmanager
    async def page(self) -> AsyncIterator[Page]:
        """A new tab, closed on the way out."""
        async with self._http.put(f"{self._devtools}/json/new?about:blank") as r:
            target = await r.json()
        try:
            async with self._http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield Page(ws)
        finally:
            async with self._http.get(f"{self._devtools}/json/close/{target['id']}"):
                pass


@asynccontextmanager
async def open_browser() -> AsyncIterator[Browser]:
    """Start ``chromium`` (it must be installed: a missing browser raises BrowserError)."""
    exe = shutil.which("chromium")
    if exe is None:
        raise BrowserError("chromium is not installed (Debian package 'chromium')")
    with tempfile.TemporaryDirectory(prefix="gridedge-browser-") as profile:
        proc = await asyncio.create_subprocess_exec(
            exe,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stderr is not None
            async with asyncio.timeout(30):
                while not (match := _LISTENING.search(await proc.stderr.readline())):
                    if proc.stderr.at_eof():
                        raise BrowserError("chromium exited before DevTools listened")
            ws_url = match.group(1).decode()
            devtools = "http://" + ws_url.split("/")[2]
            drain = asyncio.create_task(_drain(proc.stderr))
            async with aiohttp.ClientSession() as http:
                yield Browser(http, devtools)
            drain.cancel()
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    async with asyncio.timeout(10):
                        await proc.wait()
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


FIRST_VIEW = "document.body && Number(document.body.dataset.firstViewMs || 0)"


def _config(folder: Path, meters: int) -> Path:
    path = folder / "gridedge.toml"
    path.write_text(
        '[gateway]\nid = "bench"\nsite = "lab"\n\n[log]\nformat = "json"\n\n'
        '[http]\nport = 0\n\n[outbox]\npath = "outbox.sqlite3"\n\n'
        f'[[meters]]\nid = "m"\ncount = {meters}\ndriver = "eastron-sdm630"\ninterval_s = 1.0\n'
        '[meters.link]\ntype = "simulated"\nseed = 1\n'
    )
    return path


def _http_base(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stdout is not None
    for raw in proc.stdout:
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if event.get("event") == "http.listening":
            # Keep reading the log so the daemon never blocks on a full pipe.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return f"http://{event['host']}:{event['port']}"
    raise BrowserError(f"the daemon exited ({proc.wait()}) before it listened")


async def measure(base: str, loads: int) -> dict[str, Any]:
    """Cold loads of the page at ``base``; first-view times and the daemon's history size."""
    times = []
    async with open_browser() as browser:
        for _ in range(loads):
            async with browser.page() as page:
                await page.goto(base + "/")
                times.append(float(await page.wait_for(FIRST_VIEW, 30)))
        async with aiohttp.ClientSession() as http, http.get(base + "/api/status") as r:
            status = await r.json()
    hist = status["history"]
    return {
        "meters": len(status["meters"]),
        "first_view_ms": [round(t, 1) for t in times],
        "first_view_ms_median": round(statistics.median(times), 1),
        "history_points_per_channel": hist["points"],
        "history_bytes_per_channel": hist["bytes_per_channel"],
        "history_channels": hist["channels"],
    }


def main(argv: list[str] | None = None) -> None:
    """Run the measurement and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=200)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--warmup-s", type=float, default=5.0, help="polling before loading")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gridedge-page-") as tmp:
        config = _config(Path(tmp), args.meters)
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridedge", "run", "-c", str(config)],
            stdout=subprocess.PIPE,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        try:
            base = _http_base(proc)
            time.sleep(args.warmup_s)  # let the meters fill the history; not a synchronisation
            print(json.dumps(asyncio.run(measure(base, args.loads)), indent=2))
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
