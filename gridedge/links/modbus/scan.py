"""``gridedge scan``: which unit ids answer on a bus, and which driver fits each.

A unit is present when it answers a one-register read with data or with a Modbus exception
(an exception is an answer too), except the gateway codes 10 and 11, which a TCP gateway sends
for a unit behind it that does not answer. For each present unit the scan looks for the SunSpec
marker (``"SunS"`` in holding registers 40000, 0 or 50000) and the chain of models behind it
(their ids and where each starts: a SunSpec driver's addresses assume one layout, and the
chain tells whether this device has it), and then tries every driver: a driver
fits when every request of its read plan is answered and the values decode within the channel
limits. Candidates are ranked by how many channels they explain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gridedge.drivers import Driver, RegisterTable
from gridedge.errors import DeviceFaultError, LinkError
from gridedge.links.modbus.emulator import SUNSPEC_MARKER
from gridedge.links.modbus.link import ModbusLink, RegisterBus
from gridedge.links.modbus.sunspec import read_chain

SUNSPEC_BASES = (40000, 0, 50000)
"""Where a SunSpec map may start, in the order the SunSpec specification lists them."""

GATEWAY_NO_ANSWER_CODES = frozenset({10, 11})
"""Exception codes a gateway sends for a unit behind it that does not answer."""

MAX_SUNSPEC_MODELS = 32
"""Longest SunSpec model chain the scan follows."""

PLAUSIBLE_SHARE = 0.9
"""Least share of a driver's limited channels that must read within their limits."""


@dataclass(frozen=True, slots=True)
class DriverMatch:
    """How well a driver explains a unit's registers."""

    driver: str
    plausible: int
    """Channels that decoded (and lie within their limits, where the driver sets limits)."""
    channels: int


@dataclass(frozen=True, slots=True)
class UnitReport:
    """What the scan found at one unit id."""

    unit_id: int
    sunspec_base: int | None = None
    sunspec_models: tuple[tuple[int, int], ...] = ()
    """(model id, address of its header) for each SunSpec model after the marker."""
    matches: tuple[DriverMatch, ...] = field(default_factory=tuple)
    sunspec_identity: str | None = None
    """Manufacturer, model and serial number from the SunSpec common model, when present."""


async def probe(bus: RegisterBus, unit_id: int, timeout_s: float) -> bool:
    """True when unit ``unit_id`` answers at all."""
    try:
        await bus.read("scan", unit_id, RegisterTable.HOLDING, 0, 1, timeout_s=timeout_s)
    except DeviceFaultError as exc:
        return exc.code not in GATEWAY_NO_ANSWER_CODES
    except LinkError:
        return False
    return True


async def find_sunspec(bus: RegisterBus, unit_id: int, timeout_s: float) -> int | None:
    """The address of the SunSpec marker of unit ``unit_id``, or None."""
    for base in SUNSPEC_BASES:
        try:
            words = await bus.read(
                "scan", unit_id, RegisterTable.HOLDING, base, 2, timeout_s=timeout_s
            )
        except LinkError:
            continue
        if tuple(words) == SUNSPEC_MARKER:
            return base
    return None


async def sunspec_models(
    bus: RegisterBus, unit_id: int, base: int, timeout_s: float
) -> tuple[tuple[int, int], ...]:
    """The chain of SunSpec models after the marker at ``base``: (model id, header address).

    Each model starts with its id and its length; the chain ends at id 0xFFFF (or at a
    register that does not read, or after :data:`MAX_SUNSPEC_MODELS`).
    """
    models: list[tuple[int, int]] = []
    address = base + 2
    while len(models) < MAX_SUNSPEC_MODELS and address + 2 <= 0x10000:
        try:
            model_id, length = await bus.read(
                "scan", unit_id, RegisterTable.HOLDING, address, 2, timeout_s=timeout_s
            )
        except (LinkError, ValueError):
            break
        if model_id in (0, 0xFFFF):
            break
        models.append((model_id, address))
        address += 2 + length
    return tuple(models)


async def match_driver(
    bus: RegisterBus, unit_id: int, driver: Driver, timeout_s: float
) -> DriverMatch | None:
    """How well ``driver`` fits unit ``unit_id``, or None when it does not."""
    link = ModbusLink(
        f"scan-{unit_id}", driver, bus, unit_id=unit_id, timeout_s=timeout_s, retries=0
    )
    try:
        values = await link.read()
    except LinkError:
        return None
    if any(kind != "decode" for kind in link.errors):
        return None  # some request failed: registers the driver needs are not there
    plausible = 0
    limited = within = 0
    for ch in driver.channels:
        if ch.name not in values:
            continue
        value = values[ch.name]
        ok = (ch.min is None or value >= ch.min) and (ch.max is None or value <= ch.max)
        if ch.min is not None or ch.max is not None:
            limited += 1
            within += ok
        plausible += ok
    if not any(values.values()) or (limited and within < PLAUSIBLE_SHARE * limited):
        return None
    return DriverMatch(driver.id, plausible, len(driver.channels))


async def scan_bus(
    bus: RegisterBus,
    unit_ids: Iterable[int],
    drivers: Mapping[str, Driver],
    *,
    timeout_s: float,
) -> list[UnitReport]:
    """Probe ``unit_ids`` in order and report on every unit that answers."""
    reports = []
    for unit_id in unit_ids:
        if not await probe(bus, unit_id, timeout_s):
            continue
        base = await find_sunspec(bus, unit_id, timeout_s)
        models = () if base is None else await sunspec_models(bus, unit_id, base, timeout_s)
        identity = None if base is None else await _identity(bus, unit_id, base, timeout_s)
        matches = []
        for driver in drivers.values():
            match = await match_driver(bus, unit_id, driver, timeout_s)
            if match is not None:
                matches.append(match)
        matches.sort(key=lambda m: (-m.plausible, m.channels, m.driver))
        reports.append(UnitReport(unit_id, base, models, tuple(matches), identity))
    return reports


async def _identity(bus: RegisterBus, unit_id: int, base: int, timeout_s: float) -> str | None:
    try:
        common = (await read_chain(bus, "scan", unit_id, timeout_s, base)).common
    except LinkError:
        return None
    if common is None:
        return None
    return " ".join(p for p in (common.manufacturer, common.model, "SN", common.serial) if p)


def describe(report: UnitReport) -> str:
    """One line for a human: the unit, the SunSpec base and the candidate drivers."""
    parts = [f"unit {report.unit_id}: answers"]
    if report.sunspec_base is not None:
        chain = ", ".join(f"{model} at {address}" for model, address in report.sunspec_models)
        parts.append(
            f"SunSpec map at {report.sunspec_base}" + (f" (models {chain})" if chain else "")
        )
        if report.sunspec_identity:
            parts.append(report.sunspec_identity)
    if report.matches:
        best, *others = report.matches
        parts.append(f"driver {best.driver} ({best.plausible}/{best.channels} channels plausible)")
        if others:
            parts.append("also fits " + ", ".join(m.driver for m in others))
    else:
        parts.append("no known driver fits")
    return "; ".join(parts)
