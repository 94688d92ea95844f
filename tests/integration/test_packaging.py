"""The systemd unit, the sysusers snippet and the container image, checked with real tools:
systemd-analyze, systemd-sysusers, hadolint, and the image's own health check command run
against a real daemon.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.daemonproc import running_daemon, wait_for, write_config
from tests.integration.opsproc import LogTail, health, require

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "gridedge.service"
DOCKERFILE = ROOT / "Dockerfile"
MAX_EXPOSURE = 2.5


def unit_with_real_binary(folder: Path) -> Path:
    """A copy of the unit whose ExecStart names an executable that exists on this machine."""
    text = UNIT.read_text()
    text, n = re.subn(
        r"^ExecStart=\S+", f"ExecStart={sys.executable} -m gridedge", text, flags=re.M
    )
    assert n == 1
    copy = folder / "gridedge.service"
    copy.write_text(text)
    return copy


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_service_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd-analyze verify reports nothing at all about the unit."""
    tool = require("systemd-analyze")
    result = subprocess.run(
        [tool, "verify", str(unit_with_real_binary(tmp_path))], capture_output=True, text=True
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_service_unit_exposure_is_at_most_2_5(tmp_path: Path) -> None:
    """systemd-analyze security rates the unit's exposure 2.5 or better ("OK")."""
    tool = require("systemd-analyze")
    result = subprocess.run(
        [
            tool,
            "security",
            "--offline=true",
            f"--threshold={int(MAX_EXPOSURE * 10)}",
            str(unit_with_real_binary(tmp_path)),
        ],
        capture_output=True,
        text=True,
    )
    found = re.search(r"Overall exposure level for gridedge\.service: ([\d.]+)", result.stdout)
    assert found is not None, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE
    assert result.returncode == 0, result.stderr


def test_service_unit_is_notify_with_watchdog_restart_and_a_dedicated_user() -> None:
    """The unit asks for readiness, a watchdog, restarts and the hardening the issue names."""
    s = unit_settings()
    assert s["Type"] == ["notify"]
    assert s["WatchdogSec"]
    assert s["Restart"] == ["on-failure"]
    assert s["RestartPreventExitStatus"] == ["2"]
    assert s["WorkingDirectory"] == ["/var/lib/gridedge"]
    assert s["User"] == ["gridedge"]
    assert s["SupplementaryGroups"] == ["dialout"]
    assert s["StateDirectory"] == ["gridedge"]
    assert s["ConfigurationDirectory"] == ["gridedge"]
    assert s["ProtectSystem"] == ["strict"]
    assert s["NoNewPrivileges"] == ["yes"]
    assert s["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert s["CapabilityBoundingSet"] == [""]
    assert "@system-service" in s["SystemCallFilter"]
    assert s["ExecStart"][0].split()[1:] == ["run", "-c", "/etc/gridedge/gridedge.toml"]


def test_sysusers_snippet_creates_the_service_user(tmp_path: Path) -> None:
    """systemd-sysusers, run on an empty root, creates the gridedge user and group."""
    tool = require("systemd-sysusers")
    (tmp_path / "etc").mkdir()
    snippet = ROOT / "systemd" / "gridedge.sysusers"
    result = subprocess.run(
        [tool, f"--root={tmp_path}", str(snippet)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text()
    assert re.search(r"^gridedge:x:\d+:\d+:.*:/var/lib/gridedge:/usr/sbin/nologin$", passwd, re.M)
    group = (tmp_path / "etc" / "group").read_text()
    assert re.search(r"^gridedge:x:\d+:", group, re.M)
    assert re.search(r"^dialout:x:\d+:gridedge$", group, re.M)


def test_dockerfile_passes_hadolint() -> None:
    """Hadolint finds nothing to say about the Dockerfile, not even at info level."""
    hadolint = require("hadolint")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, args = line.strip().partition(" ")
            out.append((keyword.upper(), args.strip()))
    return out


def test_image_is_multi_stage_slim_non_root_with_a_volume_and_no_compiler() -> None:
    """Two python:3.11-slim stages; the runtime runs as a numeric non-root user."""
    steps = instructions()
    stages = [a for k, a in steps if k == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    assert any(a.startswith("PYTHON_IMAGE=python:3.11-slim") for k, a in steps if k == "ARG")
    runtime = steps[[k for k, _ in steps].index("FROM", 1) :]
    (user,) = [a for k, a in runtime if k == "USER"]
    assert user.split(":")[0].isdigit()
    assert int(user.split(":")[0]) != 0
    assert ("VOLUME", '["/var/lib/gridedge"]') in runtime
    assert ("COPY", "--from=build /opt/gridedge /opt/gridedge") in runtime
    everything = " ".join(a for _, a in steps)
    for tool in ("gcc", "build-essential", "apt-get", "curl", "wget"):
        assert tool not in everything
    assert "--only-binary=:all:" in everything


def test_dockerignore_admits_every_file_the_build_copies() -> None:
    """Each COPY source passes .dockerignore, and local clutter (outboxes, .git) does not."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def admitted(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            body = pattern.removeprefix("!").rstrip("/").removeprefix("**/")
            parts = path.split("/")
            hit = any(fnmatch.fnmatch("/".join(parts[: i + 1]), body) for i in range(len(parts)))
            hit = hit or any(fnmatch.fnmatch(part, body) for part in parts)
            if hit:
                keep = negate
        return keep

    sources = [
        src.rstrip("/")
        for keyword, args in instructions()
        if keyword == "COPY" and not args.startswith("--from")
        for src in args.split()[:-1]
    ]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), src
        assert admitted(src), src
    for clutter in (".git", ".venv", "outbox.sqlite3", "gridedge/x.sqlite3-wal", "tests"):
        assert not admitted(clutter), clutter


def test_image_config_is_valid() -> None:
    """The configuration baked into the image passes gridedge check."""
    result = subprocess.run(
        [sys.executable, "-m", "gridedge", "check", "-c", str(ROOT / "docker" / "gridedge.toml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert 'path = "/var/lib/gridedge/outbox.sqlite3"' in result.stdout


def healthcheck_command(port: int) -> list[str]:
    """The image's HEALTHCHECK command, aimed at ``port`` instead of 9108."""
    (args,) = [a for k, a in instructions() if k == "HEALTHCHECK"]
    exec_form = args[args.index("CMD ") + 4 :]
    command = [str(part) for part in json.loads(exec_form)]
    assert command[:2] == ["python", "-c"]
    return [sys.executable, "-c", command[2].replace(":9108/", f":{port}/")]


def test_image_healthcheck_passes_on_200_and_fails_on_503(tmp_path: Path) -> None:
    """The HEALTHCHECK command exits 0 while /health is 200 and non-zero while it is 503."""
    meter = (
        '[[meters]]\nid = "m"\ndriver = "eastron-sdm120"\ninterval_s = 0.2\noffline_after = 1\n'
        'max_backoff_s = 0.4\n[meters.link]\ntype = "simulated"\n'
        '[[meters.link.faults.schedule]]\nkind = "dropout"\nat_s = 0.0\nduration_s = 3.0\n'
    )
    with running_daemon(write_config(tmp_path, meter)) as proc:
        tail = LogTail(proc)
        base = tail.http_base()
        command = healthcheck_command(int(base.rsplit(":", 1)[1]))
        wait_for(lambda: health(base)[0] == 503, 30, "503 during the dropout")
        failing = subprocess.run(command, capture_output=True, timeout=30)
        wait_for(lambda: health(base)[0] == 200, 30, "200 after the dropout")
        passing = subprocess.run(command, capture_output=True, timeout=30)
    assert failing.returncode != 0
    assert b"503" in failing.stderr
    assert passing.returncode == 0, passing.stderr
