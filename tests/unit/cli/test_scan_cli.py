"""``gridedge scan`` against a real emulator: announces its range, prints each unit found."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.integration.processes import free_port, stop_process
from tests.unit.cli.runner import run


@pytest.fixture
def emulator_port() -> Iterator[int]:
    """A real ``gridedge emulate`` serving units 2 and 4 on a free loopback port."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gridedge",
            "emulate",
            "--tcp",
            f"127.0.0.1:{port}",
            "--unit-ids",
            "2,4",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "the emulator exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the emulator never listened"
        yield port
    finally:
        stop_process(proc)


def test_scan_names_its_range_and_prints_every_answering_unit(emulator_port: int) -> None:
    """Units 1-6: stderr says what is scanned; stdout has units 2 and 4, one line each."""
    outcome = run(["scan", "--tcp", f"127.0.0.1:{emulator_port}", "--unit-ids", "1-6"])
    assert outcome.status == 0, outcome.err
    assert "scanning 6 unit ids (1-6)" in outcome.err
    lines = outcome.out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["unit 2", "unit 4"]
    assert all("eastron-sdm630" in line for line in lines)
