"""The status page in a real headless Chromium against a real daemon, and its credential rules."""

from __future__ import annotations

import base64
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bench.page_load import Page, open_browser
from tests.integration.daemonproc import meter, running_daemon, write_config
from tests.integration.opsproc import LogTail, get

pytestmark = pytest.mark.integration

METERS = ("cab-1", "cab-2", "cab-3")
FAULTY = "cab-2"
# A 60 % swell takes the voltage past the driver's 300 V limit: a critical "limit" alert.
SWELL = '[meters.link.faults]\nschedule = [{ kind = "swell", at_s = 1.0, magnitude = 0.6 }]\n'

ROWS_WITH_VALUES = """
[...document.querySelectorAll('#meters tbody tr[data-meter]')]
  .filter(tr => tr.querySelector('td.values span'))
  .map(tr => tr.dataset.meter)
"""
PLOT_PIXELS = """
(() => {
  const box = [...document.querySelectorAll('#plots .plot')]
    .find(b => Number(b.dataset.points || 0) >= 3);
  if (!box) return 0;
  let inked = 0;
  for (const c of box.querySelectorAll('canvas')) {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i]) inked++;
  }
  return inked;
})()
"""
ALERT_ROWS = """
[...document.querySelectorAll('#alerts-active tbody tr[data-device]')]
  .map(tr => [...tr.cells].map(td => td.textContent))
"""


def _config(tmp_path: Path) -> Path:
    tables = [
        meter(m, "eastron-sdm630", 0.2, seed=i, extra=SWELL if m == FAULTY else "")
        for i, m in enumerate(METERS)
    ]
    return write_config(tmp_path, "\n".join(tables), http="port = 0\nhistory_s = 60")


async def _rendered(page: Page) -> tuple[list[str], int, list[list[str]]]:
    rows = await page.wait_for(
        f"(() => {{ const r = {ROWS_WITH_VALUES}; return r.length === {len(METERS)} && r; }})()", 30
    )
    inked = await page.wait_for(PLOT_PIXELS, 30)
    alerts = await page.wait_for(
        f"(() => {{ const a = {ALERT_ROWS}; return a.length && a; }})()", 30
    )
    return rows, inked, alerts


async def test_page_shows_every_meter_a_drawn_plot_and_the_faults_alert(tmp_path: Path) -> None:
    """Headless Chromium renders every meter with values, a plot with points, and the alert."""
    with running_daemon(_config(tmp_path)) as proc:
        base = LogTail(proc).http_base()
        async with open_browser() as browser, browser.page() as page:
            await page.goto(f"{base}/#{FAULTY}")
            rows, inked, alerts = await _rendered(page)
            groups = await page.evaluate(
                "[...document.querySelectorAll('#groups .group')].map(g => g.dataset.group)"
            )
            await page.wait_for(
                "document.querySelectorAll('#plots .plot[data-points]').length > 30", 30
            )
            png = await page.screenshot()
    (tmp_path / "status-page.png").write_bytes(png)
    assert sorted(rows) == sorted(METERS)
    assert inked > 100
    assert {"voltage", "current", "active_power", "energy", "frequency"} <= set(groups)
    assert any(a[0] == FAULTY and a[2] == "limit" and a[3] == "critical" for a in alerts), alerts
    assert png.startswith(b"\x89PNG")


def _get(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def test_check_refuses_an_open_host_without_a_credential(tmp_path: Path) -> None:
    """``gridedge check`` exits 2 with one line naming http.host when 0.0.0.0 has no token."""
    config = write_config(tmp_path, meter("m1", "eastron-sdm120", 1.0, 1), http='host = "0.0.0.0"')
    done = subprocess.run(
        [sys.executable, "-m", "gridedge", "check", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "http.host" in lines[0]
    assert "token_file" in lines[0]


def test_an_open_host_answers_401_without_the_token_and_200_with_it(tmp_path: Path) -> None:
    """Bound to 0.0.0.0, every path needs the token, as bearer or as basic password."""
    token = "s3cret-token-for-the-test"
    (tmp_path / "http.token").write_text(token + "\n")
    http = 'host = "0.0.0.0"\nport = 0\ntoken_file = "http.token"'
    config = write_config(tmp_path, meter("m1", "eastron-sdm120", 0.5, 1), http=http)
    with running_daemon(config) as proc:
        tail = LogTail(proc)
        event: dict[str, Any] = tail.wait_event("http.listening")
        base = f"http://127.0.0.1:{event['port']}"
        basic = base64.b64encode(f"engineer:{token}".encode()).decode()
        codes = {
            path: (
                get(base + path)[0],
                _get(base + path, {"Authorization": "Bearer wrong"}),
                _get(base + path, {"Authorization": f"Bearer {token}"}),
                _get(base + path, {"Authorization": f"Basic {basic}"}),
            )
            for path in ("/", "/api/status", "/metrics", "/static/app.js")
        }
    assert event["auth"] == "token"
    assert not any(e.get("event") == "http.unauthenticated" for e in tail.events)
    assert all(c == (401, 401, 200, 200) for c in codes.values()), codes
    assert not any(token in line for line in tail.lines)
