"""The service as a field engineer installs it: the README's steps in a fresh Debian 12 root,
then readiness, the watchdog, a clean stop, a bad config and the unit's exposure, all checked
under the container's own systemd.

One booted container serves every test of this module, in file order: each test leaves the
service running with the shipped config, except the ones that say otherwise.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.system.machine import CACHE, ROOT, Machine, booted_machine, holds, wait_until

pytestmark = [pytest.mark.system, pytest.mark.timeout(1200)]

UNIT = "gridedge.service"
CONFIG = "/etc/gridedge/gridedge.toml"
EXPOSURE_LIMIT = 2.0
"""systemd-analyze security rates the unit 1.5 on systemd 252; a weakened unit fails this."""


def readme_install_steps() -> str:
    """The first ``sh`` block under the README's "Run it as a service" heading."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Run it as a service", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "README: no sh block under 'Run it as a service'"
    return match.group(1)


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    """A fresh Debian 12 container, booted, with a copy of this repository in it."""
    with booted_machine(CACHE / "run") as m:
        yield m


@pytest.fixture(scope="module")
def installed(machine: Machine) -> subprocess.CompletedProcess[str]:
    """The outcome of running the README's install steps inside the container."""
    return machine.sh(readme_install_steps(), timeout_s=900)


def _state(machine: Machine) -> dict[str, str]:
    return machine.show(
        UNIT,
        "ActiveState",
        "SubState",
        "Result",
        "MainPID",
        "NRestarts",
        "StatusText",
        "ExecMainCode",
        "ExecMainStatus",
    )


def _running(machine: Machine) -> dict[str, str] | None:
    s = _state(machine)
    return s if (s["ActiveState"], s["SubState"]) == ("active", "running") else None


def _failed(machine: Machine) -> dict[str, str] | None:
    s = _state(machine)
    return s if s["ActiveState"] == "failed" else None


def test_readme_install_steps_succeed_on_fresh_debian_12(
    machine: Machine, installed: subprocess.CompletedProcess[str]
) -> None:
    """The README's steps install the user, config, venv and unit, and start the service."""
    assert installed.returncode == 0, installed.stdout + installed.stderr
    groups = machine.run("id", "-nG", "gridedge").stdout.split()
    assert groups == ["gridedge", "dialout"]
    mode = machine.run("stat", "-c", "%a %U %G", CONFIG).stdout.split()
    assert mode == ["640", "root", "gridedge"]
    assert machine.run("systemctl", "is-enabled", UNIT).stdout.strip() == "enabled"


def test_service_is_ready_with_a_status_line_and_healthy(
    machine: Machine, installed: subprocess.CompletedProcess[str]
) -> None:
    """Type=notify reaches active/running only after READY=1; STATUS= and /health follow."""
    wait_until(lambda: _running(machine), 60, "gridedge to be active/running")
    status = wait_until(
        lambda: _state(machine)["StatusText"] or None, 30, "a STATUS= line from gridedge"
    )
    assert "no meters" in status or "meters polling" in status
    probe = machine.run(
        "python3",
        "-c",
        "import urllib.request; print(urllib.request.urlopen("
        "'http://127.0.0.1:9108/health', timeout=5).read().decode())",
    )
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout)["status"] == "ok"
    outbox = machine.run("stat", "-c", "%U", "/var/lib/gridedge/outbox.sqlite3").stdout.strip()
    assert outbox == "gridedge"


def test_install_again_keeps_the_config_and_restarts_the_service(
    machine: Machine, installed: subprocess.CompletedProcess[str]
) -> None:
    """A second scripts/install run leaves an edited config alone and the service running."""
    machine.sh(f"echo '# edited on site' >> {CONFIG}")
    before = _state(machine)["MainPID"]
    again = machine.sh("scripts/install", timeout_s=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"keeping {CONFIG}" in again.stdout
    assert "# edited on site" in machine.run("cat", CONFIG).stdout
    after = wait_until(lambda: _running(machine), 60, "gridedge to be running again")
    assert after["MainPID"] != before


def test_watchdog_restarts_a_stalled_daemon(
    machine: Machine, installed: subprocess.CompletedProcess[str]
) -> None:
    """A main process that stops pinging (SIGSTOP) is killed by the watchdog and restarted.

    A drop-in shortens the unit's 30 s watchdog and 5 s restart delay for this test only: the
    daemon pings at half of whatever WATCHDOG_USEC systemd hands it.
    """
    dropin = f"/etc/systemd/system/{UNIT}.d/50-watchdog-test.conf"
    shorter = machine.sh(
        f"mkdir -p $(dirname {dropin}) && printf '[Service]\\nWatchdogSec=6s\\nRestartSec=1s\\n'"
        f" > {dropin} && systemctl daemon-reload && systemctl restart {UNIT}"
    )
    assert shorter.returncode == 0, shorter.stderr
    try:
        before = wait_until(lambda: _running(machine), 60, "gridedge to be running")
        watchdog_s = int(machine.show(UNIT, "WatchdogUSec")["WatchdogUSec"].removesuffix("s"))
        assert watchdog_s == 6
        stop = machine.run("systemctl", "kill", "--kill-whom=main", "--signal=SIGSTOP", UNIT)
        assert stop.returncode == 0, stop.stderr

        def restarted() -> dict[str, str] | None:
            s = _running(machine)
            if s is None or s["MainPID"] == before["MainPID"]:
                return None
            return s

        after = wait_until(restarted, watchdog_s + 60, "the watchdog to restart gridedge")
        assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
        journal = machine.run("journalctl", "-u", UNIT, "--no-pager", "-o", "cat").stdout
        assert "Watchdog timeout" in journal
        assert "Failed with result 'watchdog'" in journal
    finally:
        machine.sh(f"rm -f {dropin} && systemctl daemon-reload && systemctl restart {UNIT}")


def test_systemctl_stop_ends_the_daemon_cleanly(
    machine: Machine, installed: subprocess.CompletedProcess[str]
) -> None:
    """SIGTERM from systemctl stop ends the main process with status 0, not a failure."""
    wait_until(lambda: _running(machine), 60, "gridedge to be running")
    stop = machine.run("systemctl", "stop", UNIT, timeout_s=60)
    assert stop.returncode == 0, stop.stderr
    s = _state(machine)
    assert (s["ActiveState"], s["Result"]) == ("inactive", "success")
    assert (s["ExecMainCode"], s["ExecMainStatus"]) == ("1", "0")  # CLD_EXITED, status 0
    journal = machine.run("journalctl", "-u", UNIT, "--no-pager", "-o", "cat").stdout
    assert "Deactivated successfully" in journal


def test_bad_config_fails_once_without_a_restart_loop(
    machine: Machine, installed: subprocess.CompletedProcess[str]
) -> None:
    """A config gridedge check rejects ends in failed with status 2 and is never restarted."""
    machine.sh(f"cp -p {CONFIG} {CONFIG}.good && echo 'bogus_key = 1' >> {CONFIG}")
    try:
        machine.run("systemctl", "reset-failed", UNIT)
        start = machine.run("systemctl", "start", UNIT, timeout_s=60)
        assert start.returncode != 0
        s = wait_until(lambda: _failed(machine), 30, "gridedge to fail")
        assert (s["Result"], s["ExecMainStatus"], s["NRestarts"]) == ("exit-code", "2", "0")
        restart_s = float(machine.show(UNIT, "RestartUSec")["RestartUSec"].removesuffix("s"))

        # Watch it for twice RestartSec: a restart would show up as a new state or counter.
        assert holds(
            lambda: (
                (_state(machine)["ActiveState"], _state(machine)["NRestarts"]) == ("failed", "0")
            ),
            2 * restart_s,
        )
        journal = machine.run("journalctl", "-u", UNIT, "--no-pager", "-o", "cat").stdout
        assert "bogus_key" in journal
    finally:
        machine.sh(f"mv {CONFIG}.good {CONFIG}")
        machine.run("systemctl", "reset-failed", UNIT)
    restart = machine.run("systemctl", "start", UNIT, timeout_s=60)
    journal = machine.run("journalctl", "-u", UNIT, "--no-pager", "-n", "30").stdout
    assert restart.returncode == 0, journal


def test_unit_exposure_is_below_the_limit(
    machine: Machine, installed: subprocess.CompletedProcess[str]
) -> None:
    """systemd-analyze security on the installed, loaded unit rates it below the limit."""
    out = machine.run("systemd-analyze", "security", UNIT, "--no-pager").stdout
    match = re.search(r"Overall exposure level for gridedge\.service: ([\d.]+)", out)
    assert match, out
    exposure = float(match.group(1))
    print(f"systemd-analyze security {UNIT}: {exposure}")
    assert exposure < EXPOSURE_LIMIT
