"""``gridedge drivers --search TEXT`` and ``gridedge drivers --check FILE``.

``--search`` matches every word of TEXT (case-insensitive) against a driver's id, manufacturer,
model and aliases. ``--check`` is the test a contributor runs on a new driver file: it loads and
validates the file, plans its reads within the file's own request limits, encodes one simulated
reading into registers through the emulator's codec and decodes it back, and checks that each
value survives the round trip to within one raw step and lies within the channel's limits.
Problems are printed one per line, naming the file and channel; the exit status is 2 if any.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from gridedge.drivers import Driver, load_driver
from gridedge.errors import CodecError, DriverError
from gridedge.links.modbus.codec import compute, decode_value, read_scale_factors
from gridedge.links.modbus.planner import plan_reads
from gridedge.simulator.faults import FaultPlan
from gridedge.simulator.physics import MeterSimulator, SimulationParams

_CHECK_TS = 1767614400.0  # 2026-01-05 12:00 UTC: a weekday noon, so the load is not idle


def add_driver_options(p: argparse.ArgumentParser) -> None:
    """Add ``--search`` and ``--check`` to the ``drivers`` command."""
    p.add_argument("--search", metavar="TEXT", help="only drivers matching manufacturer/model")
    p.add_argument("--check", metavar="FILE", help="validate a driver file and round-trip it")


def matches(driver: Driver, text: str) -> bool:
    """True when every word of ``text`` occurs in the driver's id, names or aliases."""
    haystack = " ".join((driver.id, driver.manufacturer, driver.model, *driver.aliases)).lower()
    return all(word in haystack for word in text.lower().split())


def print_search(drivers: Mapping[str, Driver], text: str, as_json: bool) -> int:
    """Print the drivers matching ``text``; exit status 0 when any, 1 when none."""
    found = sorted((d for d in drivers.values() if matches(d, text)), key=lambda d: d.id)
    if as_json:
        rows = [
            {
                "id": d.id,
                "manufacturer": d.manufacturer,
                "model": d.model,
                "aliases": list(d.aliases),
                "source": d.source,
            }
            for d in found
        ]
        print(json.dumps(rows, indent=2))
    else:
        for d in found:
            also = f" (also sold as {', '.join(d.aliases)})" if d.aliases else ""
            print(f"{d.id:<28} {d.manufacturer} {d.model}{also}")
    return 0 if found else 1


def check_file(path: Path) -> int:
    """Run ``--check`` on ``path``; prints "ok" or one line per problem (exit status 2).

    Raises:
        DriverError: the file does not load (main turns it into one line and exit 2).
    """
    driver = load_driver(path)
    try:
        plan = plan_reads(
            driver.channels, driver.max_registers_per_request, driver.max_gap_registers
        )
    except ValueError as exc:
        raise DriverError("modbus", str(exc), str(path)) from None
    problems = list(round_trip_problems(driver))
    for problem in problems:
        print(f"{path}: {problem}")
    if problems:
        return 2
    print(
        f"ok: {driver.id}: {len(driver.channel_names)} channels in {len(plan)} "
        f"request(s) per poll; a simulated reading round-trips"
    )
    return 0


def round_trip_problems(driver: Driver) -> Iterable[str]:
    """What goes wrong when a simulated reading is encoded and decoded through ``driver``."""
    sim = MeterSimulator("check", driver, SimulationParams(), FaultPlan(rate_per_hour=0.0), 1)
    truth = sim.step(_CHECK_TS) or {}
    # Deferred: the emulator pulls in pymodbus' server (and aiohttp), which a daemon never needs.
    from gridedge.links.modbus.emulator import encode_readings

    image = encode_readings(driver, truth)
    plan = plan_reads(driver.channels, driver.max_registers_per_request, driver.max_gap_registers)
    responses = [
        (r, [image[r.table].get(a, 0) for a in range(r.address, r.address + r.count)]) for r in plan
    ]
    factors: dict[int, int] = {}
    for request, registers in responses:
        factors.update(read_scale_factors(request, registers))
    values: dict[str, float] = {}
    for request, registers in responses:
        for ch in request.channels:
            at = ch.address - request.address
            sf = None if ch.scale_factor_address is None else factors[ch.scale_factor_address]
            try:
                value = decode_value(ch, registers[at : at + ch.count], sf)
            except CodecError as exc:
                yield f"channels.{ch.name}: does not decode: {exc}"
                continue
            if value is None:
                yield f"channels.{ch.name}: a plausible reading encodes to its na sentinel"
                continue
            values[ch.name] = value
            expected = truth.get(ch.name, 0.0)
            step = abs(ch.scale) * 10.0 ** (sf or 0)
            tolerance = abs(expected) * 1e-6 if ch.type.is_float else step / 2 + 1e-9
            if not math.isclose(value, expected, abs_tol=tolerance):
                yield (
                    f"channels.{ch.name}: {expected} read back as {value} "
                    f"(does {ch.type.value} with scale {ch.scale} hold it?)"
                )
            if (ch.min is not None and value < ch.min) or (ch.max is not None and value > ch.max):
                yield f"channels.{ch.name}: a plausible {value} {ch.unit} is outside its limits"
    for name, value in compute(driver.computed, values).items():
        if not math.isfinite(value):
            yield f"computed.{name}: not finite"
