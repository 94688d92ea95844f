"""The driver library end to end: every driver served by `gridedge emulate` and read back by the
daemon over Modbus TCP, a sample cross-read by mbpoll, and a SunSpec chain discovered live.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import pytest

from gridedge import daemon
from gridedge.config import parse_config
from gridedge.drivers import BUILTIN_DRIVERS_DIR, Driver, RegisterTable, load_drivers
from gridedge.links.modbus.bus import open_modbus_bus
from gridedge.links.modbus.codec import compute, decode_response, read_scale_factors
from gridedge.links.modbus.emulator import chain_image, image_source
from gridedge.links.modbus.link import ModbusLink
from gridedge.links.modbus.server import serve_modbus
from gridedge.links.modbus.settings import ModbusTcpLinkConfig, TcpEndpoint
from gridedge.links.modbus.sunspec import (
    CommonInfo,
    ModelInstance,
    SunSpecLink,
    bind,
)
from tests.integration.modbusparts import emulator_subprocess, require, until

pytestmark = pytest.mark.integration

DRIVERS = load_drivers([BUILTIN_DRIVERS_DIR])
# SunSpec, integer holding-register maps, input-register maps and 16-bit integer maps.
MBPOLL_SAMPLE: tuple[str, ...] = ("sunspec-inverter-103", "sunspec-meter-213", "sunspec-mppt-160")
MBPOLL_SAMPLE += ("abb-b23", "eastron-sdm72d-m", "lovato-dmg210", "saia-burgess-ale3")
MBPOLL_SAMPLE += ("carlo-gavazzi-em330",)
MBPOLL_TABLES = {RegisterTable.HOLDING: "4:hex", RegisterTable.INPUT: "3:hex"}
Reading = tuple[dict[str, float], dict[str, float], list[list[int]]]


def _emulators(stack: ExitStack, ids: list[str]) -> dict[str, str]:
    """Start one frozen emulator process per driver, in parallel; their addresses by driver."""
    addresses: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = {d: pool.submit(_enter, d) for d in ids}
        errors = []
        for driver_id, future in futures.items():
            try:
                cm, address = future.result()
            except Exception as exc:  # every started process must still be stopped
                errors.append(exc)
                continue
            stack.push(cm.__exit__)
            addresses[driver_id] = address
    if errors:
        raise errors[0]
    return addresses


def _enter(driver_id: str) -> tuple[AbstractContextManager[tuple[Any, str]], str]:
    """Start a frozen emulator of ``driver_id``; the entered context and its address."""
    cm = emulator_subprocess(
        "--driver", driver_id, "--unit-ids", "1", "--tcp", "127.0.0.1:0", "--freeze"
    )
    return cm, cm.__enter__()[1]


def _meter_id(driver_id: str) -> str:
    return driver_id.replace("-", "_")


async def _raw_reads(driver: Driver, address: str) -> tuple[dict[str, float], list[list[int]]]:
    """Every planned request read with the bus alone, decoded with the codec's pure functions."""
    host, _, port = address.rpartition(":")
    async with open_modbus_bus(ModbusTcpLinkConfig(host=host, port=int(port))) as bus:
        plan = ModbusLink("raw", driver, bus, unit_id=1, timeout_s=5).plan
        raw = [await bus.read("raw", 1, r.table, r.address, r.count, timeout_s=5) for r in plan]
    factors: dict[int, int] = {}
    for request, registers in zip(plan, raw, strict=True):
        factors.update(read_scale_factors(request, registers))
    values: dict[str, float] = {}
    for request, registers in zip(plan, raw, strict=True):
        values.update(decode_response(request, registers, factors))
    values.update(compute(driver.computed, values))
    return values, raw


def _daemon_samples(tmp: Path, addresses: dict[str, str]) -> dict[str, dict[str, float]]:
    """Run the daemon over every emulator until each meter stored a sample; the first of each."""
    meters = []
    for driver_id, address in addresses.items():
        host, _, port = address.rpartition(":")
        link = {"type": "modbus-tcp", "host": host, "port": int(port), "timeout_s": 5.0}
        meters.append(
            {"id": _meter_id(driver_id), "driver": driver_id, "interval_s": 0.5, "link": link}
        )
    doc = {
        "outbox": {"path": "outbox.sqlite3"},
        "http": {"enabled": False},
        "analytics": {"enabled": False},
        "meters": meters,
    }
    config = parse_config(doc, source="t.toml", base_dir=tmp)
    runtime = daemon.Runtime()

    def all_sampled() -> bool:
        states = runtime.meters.values()
        return len(runtime.meters) == len(meters) and all(s.samples >= 1 for s in states)

    async def run() -> None:
        async with asyncio.timeout(90):
            await daemon.run(
                config,
                shutdown_trigger=lambda: until(all_sampled, 80, "a sample from every meter"),
                runtime=runtime,
            )

    asyncio.run(run())
    with sqlite3.connect(tmp / "outbox.sqlite3") as db:
        rows = db.execute(
            "SELECT device, body FROM envelopes WHERE kind = 'sample' ORDER BY seq"
        ).fetchall()
    first: dict[str, dict[str, float]] = {}
    for device, body in rows:
        first.setdefault(device, json.loads(body)["values"])
    return first


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Reading]]:
    """Every driver emulated, read by the daemon and read raw; kept for the parametrised test."""
    tmp = tmp_path_factory.mktemp("library")
    with ExitStack() as stack:
        addresses = _emulators(stack, sorted(DRIVERS))
        samples = _daemon_samples(tmp, addresses)
        readings: dict[str, Reading] = {}
        for driver_id, address in addresses.items():
            raw_values, raw = asyncio.run(_raw_reads(DRIVERS[driver_id], address))
            readings[driver_id] = (samples.get(_meter_id(driver_id), {}), raw_values, raw)
        yield readings


@pytest.mark.timeout(300)
@pytest.mark.parametrize("driver_id", sorted(DRIVERS))
def test_the_daemon_reads_every_driver_as_the_emulator_encoded_it(
    library: dict[str, Reading], driver_id: str
) -> None:
    """The sample the daemon stored holds every channel, each equal to the value the emulated
    registers encode (read again with the bus alone and decoded by the codec).
    """
    stored, encoded, _ = library[driver_id]
    driver = DRIVERS[driver_id]
    assert set(stored) == set(driver.channel_names)
    assert stored == encoded
    for ch in driver.channels:  # a simulated reading is plausible, so within every limit
        low = -math.inf if ch.min is None else ch.min
        high = math.inf if ch.max is None else ch.max
        assert low <= stored[ch.name] <= high, ch.name
    if "frequency" in stored:
        assert stored["frequency"] == pytest.approx(driver.nominal.frequency_hz, abs=1.0)


def _mbpoll_words(port: str, table: RegisterTable, address: int, count: int) -> list[int]:
    done = subprocess.run(
        [
            *(require("mbpoll"), "-m", "tcp", "-p", port, "-a", "1", "-0"),
            *("-r", str(address), "-c", str(count), "-t", MBPOLL_TABLES[table], "-1", "127.0.0.1"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    words = {}
    for line in done.stdout.splitlines():
        if line.startswith("["):
            ref, _, value = line.partition(":")
            words[int(ref.strip("[]"))] = int(value.strip(), 16)
    return [words[address + i] for i in range(count)]


@pytest.mark.parametrize("driver_id", MBPOLL_SAMPLE)
def test_mbpoll_reads_the_registers_the_daemon_decoded(driver_id: str) -> None:
    """Mbpoll (libmodbus) reads the same raw registers from the emulator as gridedge does."""
    require("mbpoll")
    driver = DRIVERS[driver_id]
    with emulator_subprocess(
        "--driver", driver_id, "--unit-ids", "1", "--tcp", "127.0.0.1:0", "--freeze"
    ) as (_, address):
        values, raw = asyncio.run(_raw_reads(driver, address))
        port = address.rpartition(":")[2]
        plan = ModbusLink("p", driver, _NoBus(), unit_id=1, timeout_s=1).plan
        for request, registers in zip(plan, raw, strict=True):
            words = _mbpoll_words(port, request.table, request.address, request.count)
            assert words == registers
    assert set(values) == set(driver.channel_names)


class _NoBus:
    """A bus for building a plan only."""

    name = "none"

    async def read(self, *args: object, **kwargs: object) -> list[int]:
        raise AssertionError("not for reading")


COMMON = CommonInfo("Fronius", "Symo 10.0-3-M", "", "1.2.3", "34119104")
INVERTER_VALUES = {"active_power": 6543.0, "frequency": 49.98, "voltage_l1": 232.1}
INVERTER_VALUES |= {"energy_export": 12345.678, "temperature_cabinet": 41.5}
MPPT_VALUES = {"dc_power_s1": 3300.0, "dc_voltage_s1": 598.2, "dc_current_s1": 5.52}
MPPT_VALUES |= {"dc_power_s2": 3400.0, "dc_voltage_s2": 603.9, "dc_current_s2": 5.63}
METER_VALUES = {"active_power": -2500.0, "voltage_l1": 231.0, "energy_import": 9876.543}
METER2_VALUES = {"active_power": 1200.0, "voltage_l1": 229.4, "energy_import": 4321.5}
METER2_VALUES |= {"reactive_power": -300.0, "frequency": 50.02}


def _chain(base: int) -> dict[int, int]:
    """Models 1, 103, 160 (2 strings), 203 and a second 203; 103's heatsink temperature and the
    first 203's reactive power scale factor hold the "not implemented" sentinel.
    """
    models = [
        (DRIVERS["sunspec-inverter-103"], INVERTER_VALUES, 50),
        (DRIVERS["sunspec-mppt-160"], MPPT_VALUES, 8 + 2 * 20),
        (DRIVERS["sunspec-meter-203"], METER_VALUES, 105),
        (DRIVERS["sunspec-meter-203"], METER2_VALUES, 105),
    ]
    image = chain_image(base, models, COMMON)
    inverter = bind(DRIVERS["sunspec-inverter-103"], ModelInstance(103, base + 70, 50))
    image[inverter.channel("temperature_heatsink").address] = 0x8000
    meter = bind(DRIVERS["sunspec-meter-203"], ModelInstance(203, base + 172, 105))
    sf = meter.channel("reactive_power").scale_factor_address
    assert sf is not None
    image[sf] = 0x8000
    return image


@pytest.mark.parametrize(("base", "configured"), [(40000, None), (50000, None), (1000, 1000)])
async def test_a_sunspec_chain_is_discovered_and_each_model_polled(
    base: int, configured: int | None
) -> None:
    """Over real Modbus TCP, each model of the chain is found behind the others and read with
    its scale factors; sentinels leave exactly their channels out.
    """
    source = image_source(_chain(base))
    async with serve_modbus(source, TcpEndpoint(port=0)) as where:
        host, _, port = where.rpartition(":")
        async with open_modbus_bus(ModbusTcpLinkConfig(host=host, port=int(port))) as bus:
            links = {
                d: SunSpecLink(d, DRIVERS[d], bus, unit_id=1, timeout_s=2, base=configured)
                for d in ("sunspec-inverter-103", "sunspec-mppt-160", "sunspec-meter-203")
            }
            second = SunSpecLink(
                "m2",
                DRIVERS["sunspec-meter-203"],
                bus,
                unit_id=1,
                timeout_s=2,
                base=configured,
                index=2,
            )
            inverter = await links["sunspec-inverter-103"].read()
            mppt = await links["sunspec-mppt-160"].read()
            meter = await links["sunspec-meter-203"].read()
            meter2 = await second.read()
    chain = links["sunspec-meter-203"].chain
    assert chain is not None
    assert chain.base == base
    assert [m.model for m in chain.models] == [1, 103, 160, 203, 203]
    assert second.inner is not None
    assert second.inner.plan[0].address > base + 279  # the second 203, after the first
    for name, value in METER2_VALUES.items():
        assert meter2[name] == pytest.approx(value, abs=0.011), name
    assert second.complete_channels() == len(meter2)  # all of the second instance's channels
    # Model 160 declares 4 strings, this instance has 2: complete means the 2 strings' channels.
    mppt_link = links["sunspec-mppt-160"]
    assert mppt_link.complete_channels() == len(mppt) < len(DRIVERS["sunspec-mppt-160"].channels)
    assert chain.common == COMMON
    for values, expected in ((inverter, INVERTER_VALUES), (mppt, MPPT_VALUES)):
        for name, value in expected.items():
            assert values[name] == pytest.approx(value, abs=0.0011), name
    assert meter["active_power"] == pytest.approx(-2500.0)
    assert meter["energy_import"] == pytest.approx(9876.543, abs=0.0011)
    assert "temperature_heatsink" not in inverter
    assert not any(name.startswith("reactive_power") for name in meter)
    assert not any(name.endswith("_s3") for name in mppt)
    assert all(link.inner is not None and not link.inner.errors for link in links.values())


async def test_the_daemon_polls_each_sunspec_model_instance_as_a_device(tmp_path: Path) -> None:
    """With `sunspec = true` and `sunspec_base = 1000`, four meters on one unit poll its four
    model instances (103, 160, and 203 twice via `sunspec_index`): each stores its own values,
    scaled; a sentinel makes a sample partial, a 160 with 2 of its 4 strings is complete.
    """
    async with serve_modbus(image_source(_chain(1000)), TcpEndpoint(port=0)) as where:
        host, _, port = where.rpartition(":")
        link = {"type": "modbus-tcp", "host": host, "port": int(port), "timeout_s": 2.0}
        link |= {"sunspec": True, "sunspec_base": 1000}
        polled = {
            "pv": ("sunspec-inverter-103", 1),
            "mppt": ("sunspec-mppt-160", 1),
            "grid": ("sunspec-meter-203", 1),
            "grid2": ("sunspec-meter-203", 2),
        }
        meters = [
            {
                "id": meter_id,
                "driver": driver_id,
                "interval_s": 0.1,
                "link": link | {"sunspec_index": index},
            }
            for meter_id, (driver_id, index) in polled.items()
        ]
        doc = {
            "outbox": {"path": "outbox.sqlite3"},
            "http": {"enabled": False},
            "analytics": {"enabled": False},
            "meters": meters,
        }
        config = parse_config(doc, source="t.toml", base_dir=tmp_path)
        runtime = daemon.Runtime()

        def sampled() -> bool:
            states = runtime.meters
            return len(states) == len(polled) and all(m.samples >= 2 for m in states.values())

        async with asyncio.timeout(30):
            await daemon.run(
                config, shutdown_trigger=lambda: until(sampled, 20, "2 samples"), runtime=runtime
            )
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
        rows = db.execute(
            "SELECT device, body FROM envelopes WHERE kind = 'sample' ORDER BY seq"
        ).fetchall()
    first: dict[str, dict[str, Any]] = {}
    for device, body in rows:
        first.setdefault(device, json.loads(body))
    assert set(first) == set(polled)
    quality = {device: sample["quality"] for device, sample in first.items()}
    assert quality == {"pv": "partial", "mppt": "good", "grid": "partial", "grid2": "good"}
    expected = {"pv": INVERTER_VALUES, "mppt": MPPT_VALUES, "grid": METER_VALUES}
    expected["grid2"] = METER2_VALUES
    for device, values in expected.items():
        for name, value in values.items():
            assert first[device]["values"][name] == pytest.approx(value, abs=0.011), (device, name)
    assert "reactive_power" not in first["grid"]["values"]
    assert "temperature_heatsink" not in first["pv"]["values"]
    assert not any(name.endswith(("_s3", "_s4")) for name in first["mppt"]["values"])


async def test_the_daemon_discovers_an_emulate_process_at_a_non_standard_base(
    tmp_path: Path,
) -> None:
    """`gridedge emulate --sunspec-base 50000` serves a discoverable chain; the daemon, told
    only `sunspec = true`, finds model 103 behind the common model and stores full samples.
    """
    with emulator_subprocess(
        "--driver",
        "sunspec-inverter-103",
        "--unit-ids",
        "1",
        "--tcp",
        "127.0.0.1:0",
        "--sunspec-base",
        "50000",
    ) as (_, address):
        host, _, port = address.rpartition(":")
        link = {"type": "modbus-tcp", "host": host, "port": int(port), "timeout_s": 2.0}
        doc = {
            "outbox": {"path": "outbox.sqlite3"},
            "http": {"enabled": False},
            "analytics": {"enabled": False},
            "meters": [
                {
                    "id": "pv",
                    "driver": "sunspec-inverter-103",
                    "interval_s": 0.1,
                    "link": link | {"sunspec": True},
                }
            ],
        }
        config = parse_config(doc, source="t.toml", base_dir=tmp_path)
        runtime = daemon.Runtime()

        def sampled() -> bool:
            return bool(runtime.meters) and runtime.meters["pv"].samples >= 1

        async with asyncio.timeout(30):
            await daemon.run(
                config, shutdown_trigger=lambda: until(sampled, 20, "a sample"), runtime=runtime
            )
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
        body = db.execute("SELECT body FROM envelopes WHERE kind = 'sample' LIMIT 1").fetchone()[0]
    sample = json.loads(body)
    assert sample["quality"] == "good"
    assert set(sample["values"]) == set(DRIVERS["sunspec-inverter-103"].channel_names)
    assert 45 <= sample["values"]["frequency"] <= 65
