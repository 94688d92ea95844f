"""Simulated meters served over real Modbus: ``gridedge emulate``.

Each unit id gets its own :class:`~gridedge.simulator.physics.MeterSimulator` (seeded by the
unit id), and its readings are written into register tables through the same driver map and
codec that gridedge reads them with (:func:`~gridedge.links.modbus.codec.encode_channel`),
so any Modbus tool reading the emulator sees what a meter of that model would send.

Time: a unit's registers are refreshed when a request arrives and ``refresh_s`` has passed since
the last refresh, so all requests of one poll see one consistent reading. ``frozen`` keeps the
first reading forever (for comparing tools). Faults: a simulated ``dropout`` leaves requests
unanswered; units in ``exception_unit_ids`` answer every request with ``exception_code``; unit
ids that are not served stay silent, as absent devices on a real bus do. Reads outside the
driver's register map get exception 2 (illegal data address), as from real meters.

The Modbus server itself is :func:`gridedge.links.modbus.bus.serve_modbus`; this module knows no
Modbus library.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from gridedge.drivers import Channel, DataType, Driver, RegisterTable
from gridedge.errors import CodecError, DeviceFaultError, DeviceUnreachableError
from gridedge.links.modbus.codec import encode, encode_channel
from gridedge.links.modbus.server import serve_modbus
from gridedge.links.modbus.settings import SerialEndpoint, TcpEndpoint
from gridedge.links.simulated import log_fault
from gridedge.log import get_logger
from gridedge.signals import signal_trigger
from gridedge.simulator.faults import FaultPlan
from gridedge.simulator.physics import MeterSimulator, SimulationParams

_log = get_logger("emulator")

SUNSPEC_MARKER = (0x5375, 0x6E53)
"""``"SunS"``: the two holding registers that open a SunSpec register map."""

ILLEGAL_ADDRESS = 2
"""The Modbus exception code for a read outside the device's register map."""

_SCALE_FACTORS = range(-4, 11)
"""Scale factors tried, most precise first, when encoding SunSpec-style values."""


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    """What ``gridedge emulate`` serves.

    Attributes:
        driver: the meter model of every unit.
        unit_ids: the units that answer.
        seed: unit ``u`` is seeded with ``seed + u``.
        exception_unit_ids: units that answer every request with ``exception_code``.
        exception_code: the Modbus exception code those units send.
        faults: faults injected into every unit (a dropout leaves requests unanswered).
        params: how the simulated sites behave.
        refresh_s: least time between two readings of one unit.
        frozen: keep every unit's first reading.
        sunspec_base: put the ``SunS`` marker into holding registers at this address.
    """

    driver: Driver
    unit_ids: tuple[int, ...]
    seed: int = 1
    exception_unit_ids: frozenset[int] = frozenset()
    exception_code: int = 4
    faults: FaultPlan = field(default_factory=lambda: FaultPlan(rate_per_hour=0.0))
    params: SimulationParams = field(default_factory=SimulationParams)
    refresh_s: float = 1.0
    frozen: bool = False
    sunspec_base: int | None = None


def encode_readings(
    driver: Driver, values: Mapping[str, float]
) -> dict[RegisterTable, dict[int, int]]:
    """The registers (by table and address) a meter of ``driver`` holds for ``values``.

    Channels without a value (vendor channels the simulator does not produce) read as 0; a value
    its channel's type cannot hold (a negative power in an unsigned register) is left at 0.
    Scale-factor registers get the most precise factor that fits every channel using them.
    """
    image: dict[RegisterTable, dict[int, int]] = {table: {} for table in RegisterTable}
    groups: dict[tuple[RegisterTable, int], list[Channel]] = {}
    for ch in driver.channels:
        if ch.scale_factor_address is not None:
            groups.setdefault((ch.table, ch.scale_factor_address), []).append(ch)
    factors = {key: _scale_factor(chs, values) for key, chs in groups.items()}
    for (table, address), factor in factors.items():
        image[table][address] = encode(factor, DataType.INT16)[0]
    for ch in driver.channels:
        sf_address = ch.scale_factor_address
        sf = None if sf_address is None else factors[(ch.table, sf_address)]
        try:
            words = encode_channel(ch, values.get(ch.name, 0.0), sf)
        except CodecError:
            continue
        for offset, word in enumerate(words):
            image[ch.table][ch.address + offset] = word
    return image


def _scale_factor(channels: list[Channel], values: Mapping[str, float]) -> int:
    for sf in _SCALE_FACTORS:
        try:
            for ch in channels:
                encode_channel(ch, values.get(ch.name, 0.0), sf)
        except CodecError:
            continue
        return sf
    return 0


def register_spans(driver: Driver, sunspec_base: int | None = None) -> dict[RegisterTable, range]:
    """The addresses of each table a meter of ``driver`` answers for: first to last mapped."""
    ends: dict[RegisterTable, list[int]] = {}
    for ch in driver.channels:
        span = ends.setdefault(ch.table, [ch.address, ch.address + ch.count])
        span[0], span[1] = min(span[0], ch.address), max(span[1], ch.address + ch.count)
        if ch.scale_factor_address is not None:
            span[0] = min(span[0], ch.scale_factor_address)
            span[1] = max(span[1], ch.scale_factor_address + 1)
    if sunspec_base is not None:
        span = ends.setdefault(RegisterTable.HOLDING, [sunspec_base, sunspec_base + 2])
        span[0], span[1] = min(span[0], sunspec_base), max(span[1], sunspec_base + 2)
    return {table: range(low, high) for table, (low, high) in ends.items()}


class _Unit:
    """One emulated meter: its simulator and its current register image."""

    def __init__(self, unit_id: int, settings: EmulatorSettings, now: float) -> None:
        self.simulator = MeterSimulator(
            f"unit-{unit_id}",
            settings.driver,
            settings.params,
            settings.faults,
            settings.seed + unit_id,
            on_fault=log_fault,
        )
        self.values: dict[str, float] | None = None
        self.image: dict[RegisterTable, dict[int, int]] | None = None
        self.stepped_at = now
        self.refresh(settings, now)

    def refresh(self, settings: EmulatorSettings, now: float) -> None:
        self.stepped_at = now
        self.values = self.simulator.step(now)
        if self.values is None:  # a simulated dropout: the unit stays silent
            self.image = None
            return
        self.image = encode_readings(settings.driver, self.values)
        if settings.sunspec_base is not None:
            base = settings.sunspec_base
            self.image[RegisterTable.HOLDING].update({base: SUNSPEC_MARKER[0]})
            self.image[RegisterTable.HOLDING].update({base + 1: SUNSPEC_MARKER[1]})


class Emulator:
    """The register source behind ``gridedge emulate``: ``read`` answers one request.

    Args:
        settings: what to serve.
        clock: wall-clock UTC epoch seconds (the simulators' time).
    """

    def __init__(self, settings: EmulatorSettings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._spans = register_spans(settings.driver, settings.sunspec_base)
        now = clock()
        self._units = {u: _Unit(u, settings, now) for u in settings.unit_ids}

    def values(self, unit_id: int) -> dict[str, float] | None:
        """The reading unit ``unit_id`` currently serves (None during a dropout)."""
        return self._units[unit_id].values

    def read(self, unit_id: int, table: RegisterTable, address: int, count: int) -> list[int]:
        """Answer one read request (a :data:`~gridedge.links.modbus.bus.RegisterSource`).

        Raises:
            DeviceUnreachableError: the unit is not served or is in a dropout (no answer).
            DeviceFaultError: the unit is set to answer with an exception, or the read leaves
                the driver's register map (code 2).
        """
        device = f"unit-{unit_id}"
        unit = self._units.get(unit_id)
        if unit is None:
            raise DeviceUnreachableError(device, "not served")
        if unit_id in self._settings.exception_unit_ids:
            raise DeviceFaultError(device, self._settings.exception_code, address)
        now = self._clock()
        if not self._settings.frozen and now - unit.stepped_at >= self._settings.refresh_s:
            unit.refresh(self._settings, now)
        if unit.image is None:
            raise DeviceUnreachableError(device, "simulated dropout")
        span = self._spans.get(table)
        if span is None or address < span.start or address + count > span.stop:
            raise DeviceFaultError(device, ILLEGAL_ADDRESS, address)
        registers = unit.image[table]
        return [registers.get(a, 0) for a in range(address, address + count)]


async def run_emulator(
    settings: EmulatorSettings,
    endpoint: TcpEndpoint | SerialEndpoint,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Serve ``settings`` on ``endpoint`` until ``shutdown_trigger`` returns (default: SIGTERM
    or SIGINT); logs ``emulator.listening`` with the address once requests are answered."""
    emulator = Emulator(settings)
    async with AsyncExitStack() as stack:
        if shutdown_trigger is None:
            shutdown_trigger = signal_trigger(stack)
        where = await stack.enter_async_context(serve_modbus(emulator.read, endpoint))
        _log.info(
            "emulator.listening",
            address=where,
            driver=settings.driver.id,
            unit_ids=list(settings.unit_ids),
            exception_unit_ids=sorted(settings.exception_unit_ids),
        )
        await shutdown_trigger()
    _log.info("emulator.stopped")
