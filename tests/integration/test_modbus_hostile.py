"""A hostile Modbus TCP server next to healthy units: nothing garbled is accepted or fatal."""

from __future__ import annotations

import json
import math
import sqlite3
import struct
import time
from pathlib import Path

import pytest

from gridedge.drivers import RegisterTable
from gridedge.errors import FrameError
from gridedge.links.modbus.bus import open_modbus_bus
from gridedge.links.modbus.settings import ModbusTcpLinkConfig
from tests.integration.daemonproc import running_daemon, samples_by_device, wait_for
from tests.integration.hostile_modbus import (
    DRIVER,
    HEALTHY_VALUES,
    Behaviour,
    HostileServer,
    fuzz,
    image,
    serving,
    serving_in_thread,
)

pytestmark = pytest.mark.integration


async def test_fuzzed_frames_never_reach_asyncio_and_keep_the_connection() -> None:
    """3000 framed random PDUs: each is values or our error, no exception reaches asyncio,
    nothing invalid is accepted, and one connection carries them all.
    """
    report = await fuzz(3000)
    outcomes = report["outcomes"]
    assert isinstance(outcomes, dict)
    assert sum(outcomes.values()) == 3000
    assert report["exceptions_reaching_asyncio"] == 0
    assert report["accepted_but_invalid"] == 0
    assert outcomes.get("frame", 0) > 1000
    assert outcomes.get("accepted", 0) == report["well_formed_sent"]
    assert outcomes.get("accepted", 0) >= 100
    assert report["connections"] == report["server_connections"] == 1


@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour.RANDOM,
        Behaviour.WRONG_FUNCTION,
        Behaviour.BAD_BYTE_COUNT,
        Behaviour.EXCEPTION_NO_CODE,
        Behaviour.TRUNCATED,
    ],
)
async def test_each_hostile_answer_is_a_frame_error(behaviour: Behaviour) -> None:
    """Random bytes, another function code, a bad byte count, a codeless exception or a
    truncated frame: every request fails as ``frame``, never as data or a timeout.
    """
    server = HostileServer({1: behaviour, 2: Behaviour.HEALTHY})
    async with serving(server) as port:
        config = ModbusTcpLinkConfig(host="127.0.0.1", port=port, timeout_s=0.2)
        async with open_modbus_bus(config) as bus:
            for _ in range(8):
                with pytest.raises(FrameError):
                    await bus.read("h", 1, RegisterTable.INPUT, 0, 4, timeout_s=0.2)
                healthy = await bus.read("ok", 2, RegisterTable.INPUT, 0, 4, timeout_s=0.2)
                assert healthy == list(struct.unpack(">4H", image(HEALTHY_VALUES)[:8]))


# --- the daemon next to a hostile bus ---------------------------------------------------------

HOSTILE_UNITS = {
    10: Behaviour.RANDOM,
    11: Behaviour.WRONG_FUNCTION,
    12: Behaviour.BAD_BYTE_COUNT,
    13: Behaviour.EXCEPTION_NO_CODE,
    14: Behaviour.TRUNCATED,
    15: Behaviour.SILENT,
    16: Behaviour.FUZZ,
}
ABSURD_UNIT = 20
HEALTHY_UNITS = (1, 2, 3)
INTERVAL_S = 0.25
RUN_S = 15.0


def _config(folder: Path, port: int) -> Path:
    drivers = folder / "drivers"
    drivers.mkdir()
    (drivers / "hostile-test.toml").write_text(DRIVER)
    meters = ""
    units = dict.fromkeys(HEALTHY_UNITS, "healthy") | {ABSURD_UNIT: "absurd"}
    units |= {u: b.value for u, b in HOSTILE_UNITS.items()}
    for unit, name in units.items():
        meters += (
            f'[[meters]]\nid = "{name}-{unit}"\ndriver = "hostile-test"\n'
            f"interval_s = {INTERVAL_S}\n"
            f'[meters.link]\ntype = "modbus-tcp"\nhost = "127.0.0.1"\nport = {port}\n'
            f"unit_id = {unit}\ntimeout_s = 0.1\n\n"
        )
    path = folder / "gridedge.toml"
    path.write_text(
        '[gateway]\nid = "gw-test"\nsite = "lab"\ndrivers_dir = "drivers"\n\n'
        '[log]\nformat = "json"\n\n[http]\nport = 0\n\n[analytics]\nenabled = true\n\n'
        f'[outbox]\npath = "outbox.sqlite3"\n\n{meters}'
    )
    return path


def _samples(db: Path) -> dict[str, list[tuple[float, dict[str, float]]]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute(
            "SELECT device, ts, body FROM envelopes WHERE kind = 'sample' ORDER BY seq"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, list[tuple[float, dict[str, float]]]] = {}
    for device, ts, body in rows:
        out.setdefault(str(device), []).append((float(ts), json.loads(body)["values"]))
    return out


def _rate_ratio(samples: list[tuple[float, dict[str, float]]]) -> float:
    """Samples stored per interval of the span they cover (1.0 = every tick)."""
    span = samples[-1][0] - samples[0][0]
    return (len(samples) - 1) * INTERVAL_S / span


def test_daemon_next_to_hostile_units_keeps_healthy_rates_and_accepts_nothing_bad(
    tmp_path: Path,
) -> None:
    """A real daemon polling 3 healthy, 1 absurd and 7 hostile units on one connection: no
    traceback, no hostile value stored, healthy units at >= 90 % of their poll rate.
    """
    server = HostileServer(
        dict.fromkeys(HEALTHY_UNITS, Behaviour.HEALTHY)
        | {ABSURD_UNIT: Behaviour.ABSURD}
        | HOSTILE_UNITS
    )
    db = tmp_path / "outbox.sqlite3"
    with serving_in_thread(server) as port, running_daemon(_config(tmp_path, port)) as proc:
        started = time.monotonic()
        wait_for(lambda: "healthy-1" in samples_by_device(db), 30, "first samples")
        wait_for(lambda: time.monotonic() - started >= RUN_S, RUN_S + 5, "the run")
        assert proc.poll() is None, "the daemon ended"
        proc.terminate()
        code = proc.wait(timeout=10)
        assert proc.stdout is not None
        lines = proc.stdout.read().decode().splitlines()
    assert code == 0
    not_json = [line for line in lines if not _is_json(line)]
    assert not_json == []
    assert not [line for line in lines if "Traceback" in line or "Fatal error" in line]
    samples = _samples(db)
    ratios = {f"healthy-{u}": _rate_ratio(samples[f"healthy-{u}"]) for u in HEALTHY_UNITS}
    print(json.dumps({"rate_ratio": ratios, "requests": dict(server.sent)}))
    assert min(ratios.values()) >= 0.9, ratios
    healthy = dict(zip(_names(), HEALTHY_VALUES, strict=True))
    for unit, behaviour in HOSTILE_UNITS.items():
        stored = samples.get(f"{behaviour.value}-{unit}", [])
        if behaviour is Behaviour.FUZZ:
            # A well-formed answer (random registers under the right function code and byte
            # count) is data as far as anyone can tell; nothing else may be stored.
            assert len(stored) <= server.well_formed
        else:
            assert stored == [], behaviour
    for device, rows in samples.items():
        for _, values in rows:
            assert all(math.isfinite(v) for v in values.values())
            if device.startswith("healthy"):
                assert values == healthy
    absurd = samples[f"absurd-{ABSURD_UNIT}"]
    assert len(absurd) > 10
    # The finite extremes are stored as measured, so they went through the analytics too.
    assert any(abs(v) >= 1e308 for _, values in absurd for v in values.values())
    events = [json.loads(line) for line in lines]
    first_failures: dict[str, str] = {}
    for e in events:
        if e["event"] == "poll.failed":
            first_failures.setdefault(e["device"], e["error"])
    for unit, behaviour in HOSTILE_UNITS.items():
        expected = "timeout" if behaviour is Behaviour.SILENT else "frame"
        assert first_failures[f"{behaviour.value}-{unit}"] == expected, behaviour
    assert not [e for e in events if e["event"] == "poll.internal.failed"]


def _names() -> list[str]:
    return ["voltage_l1", "current_l1", "energy_import", "active_power"]


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
