"""A Debian 12 root booted under its own systemd with systemd-nspawn, for the system tests.

The root is made once with debootstrap and cached (``GRIDEDGE_TEST_CACHE``, default
``/var/cache/gridedge-test``); every run boots a fresh copy of it, so the install steps always
start from a clean system. The container shares the host's network (pip reaches PyPI through
it) and the host's CA bundle (for CI behind a TLS-inspecting proxy). Commands run inside with
``nsenter`` and a clean environment, so nothing of the host's shell leaks in.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("GRIDEDGE_TEST_CACHE", "/var/cache/gridedge-test"))
SUITE = "bookworm"
PACKAGES = "systemd,systemd-sysv,dbus,python3,python3-venv"
MIRROR = "http://deb.debian.org/debian"
CLONE = "/root/gridedge"
"""Where the copy of this repository goes inside the container."""

T = TypeVar("T")

_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


def require(tool: str) -> str:
    """The path of ``tool``; its absence fails the test, never skips it."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not found: apt-get install debootstrap systemd-container util-linux")
    return path


def wait_until(probe: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """Poll ``probe`` until it returns something other than None, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)  # polling interval of a condition with a deadline


def holds(probe: Callable[[], bool], for_s: float) -> bool:
    """Whether ``probe`` is true at every look for ``for_s`` seconds (false at the first miss)."""
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        if not probe():
            return False
        time.sleep(0.5)  # polling interval of a condition with a deadline
    return probe()


def pristine_root() -> Path:
    """The cached Debian 12 root, made with debootstrap (minbase) on first use."""
    root = CACHE / "debian12-root"
    if (root / "usr" / "bin" / "python3").is_file():
        return root
    debootstrap = require("debootstrap")
    partial = CACHE / "debian12-root.partial"
    shutil.rmtree(partial, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [debootstrap, "--variant=minbase", f"--include={PACKAGES}", SUITE, partial, MIRROR],
        check=True,
        capture_output=True,
        timeout=900,
    )
    partial.rename(root)
    return root


def copy_repository(dest: Path) -> None:
    """Copy the repository's files (as a clone has them, plus uncommitted edits) to ``dest``."""
    listed = subprocess.run(
        ["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        src = ROOT / os.fsdecode(name)
        if src.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


@dataclass
class Machine:
    """A booted container: run commands inside it and read its units' properties."""

    leader: int
    """The container's systemd (PID 1 inside), as the host numbers it."""

    def run(self, *argv: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside the container; never raises on a non-zero exit."""
        return subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", *argv],
            env=_ENV,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def sh(self, script: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a bash script inside the container (``set -euo pipefail``), in the clone."""
        return self.run(
            "bash", "-c", f"set -euo pipefail; cd {CLONE}; {script}", timeout_s=timeout_s
        )

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """Properties of ``unit`` as ``systemctl show`` reports them."""
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in props))
        assert out.returncode == 0, out.stderr
        return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def _leader(nspawn: subprocess.Popen[bytes]) -> int | None:
    """The container's PID 1: the child of systemd-nspawn running systemd."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == nspawn.pid and comm == "systemd":
            return int(entry.name)
    return None


def _booted(machine: Machine) -> str | None:
    state = machine.run("systemctl", "is-system-running").stdout.strip()
    return state if state in ("running", "degraded") else None


@contextmanager
def booted_machine(work: Path) -> Iterator[Machine]:
    """A fresh copy of the cached root with this repository in it, booted; gone afterwards."""
    if os.geteuid() != 0:
        pytest.fail("the system tests boot a container with systemd-nspawn: run them as root")
    for tool in ("systemd-nspawn", "nsenter", "git"):
        require(tool)
    pristine = pristine_root()
    root = work / "root"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    subprocess.run(["cp", "-a", "--reflink=auto", pristine, root], check=True, timeout=300)
    copy_repository(root / CLONE.lstrip("/"))
    host_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if host_ca.is_file():
        shutil.copyfile(host_ca, root / "etc/ssl/certs/ca-certificates.crt")
    pip_cache = CACHE / "pip"
    pip_cache.mkdir(parents=True, exist_ok=True)
    log = (work / "console.log").open("wb")
    nspawn = subprocess.Popen(
        [
            "systemd-nspawn",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--console=passive",
            f"--directory={root}",
            "--machine=gridedge-test",
            f"--bind={pip_cache}:/root/.cache/pip",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        leader = wait_until(lambda: _leader(nspawn), 30, "the container's systemd")
        machine = Machine(leader)
        state = wait_until(lambda: _booted(machine), 120, "the container to finish booting")
        failed = machine.run("systemctl", "--failed", "--no-legend").stdout
        assert state == "running", f"container is {state}; failed units:\n{failed}"
        yield machine
    finally:
        nspawn.send_signal(signal.SIGTERM)  # nspawn powers the container off in order
        try:
            nspawn.wait(timeout=60)
        except subprocess.TimeoutExpired:
            nspawn.kill()
            nspawn.wait(timeout=30)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
