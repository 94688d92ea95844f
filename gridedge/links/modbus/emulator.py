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

import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from gridedge.drivers import Channel, DataType, Driver, RegisterTable
from gridedge.errors import CodecError, DeviceFaultError, DeviceUnreachableError
from gridedge.links.modbus.codec import encode, encode_channel
from gridedge.links.modbus.server import serve_modbus
from gridedge.links.modbus.settings import SerialEndpoint, TcpEndpoint
from gridedge.links.modbus.sunspec import (
    COMMON_FIELDS,
    COMMON_LENGTH,
    COMMON_MODEL,
    END_MODEL,
    CommonInfo,
    ModelInstance,
    bind,
    encode_string,
)
from gridedge.links.modbus.sunspec import (
    SUNSPEC_MARKER as SUNSPEC_MARKER,  # re-exported: scan and tests know it from here
)
from gridedge.links.simulated import log_fault
from gridedge.log import get_logger
from gridedge.signals import signal_trigger
from gridedge.simulator.faults import FaultPlan
from gridedge.simulator.physics import MeterSimulator, SimulationParams

_log = get_logger("emulator")

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

    def __init__(
        self, unit_id: int, settings: EmulatorSettings, now: float, frame: Mapping[int, int]
    ) -> None:
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
        self.refresh(settings, now, frame)

    def refresh(self, settings: EmulatorSettings, now: float, frame: Mapping[int, int]) -> None:
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
        self.image[RegisterTable.HOLDING].update(frame)


def sunspec_frame(driver: Driver, base: int) -> tuple[Driver, dict[int, int]]:
    """A SunSpec driver served as a SunSpec device with its map at ``base``.

    Returns:
        The driver moved to sit behind a common model at ``base`` + 2 (itself at ``base`` + 2
        for model 1), and the chain's registers: the common model's header and identity
        strings, the model's header (ID, L) and the end marker. A driver without a
        ``[sunspec]`` table comes back unchanged with no frame.
    """
    if driver.sunspec is None:
        return driver, {}
    model = driver.sunspec.model
    shift = 0 if model == 1 else 2 + COMMON_LENGTH
    header = base + 2 + shift
    ends = [ch.address + ch.count for ch in driver.channels]
    ends += [ch.scale_factor_address + 1 for ch in driver.channels if ch.scale_factor_address]
    length = max(ends) - driver.sunspec.header_address - 2
    if model == 1:
        length = max(length, COMMON_LENGTH)
    bound = bind(driver, ModelInstance(model, header, length))
    identity = CommonInfo("gridedge", f"emulated {driver.id}"[:32], "", "", "emulated")
    if model == 1:  # the driver is the common model itself: its DA follows the strings
        return bound, chain_image(base, [], identity)
    chain = chain_image(base, [(bound, {}, length)], identity)
    # The model's data stays out of the frame: each refresh encodes it from the reading.
    return bound, {a: w for a, w in chain.items() if not header + 2 <= a < header + 2 + length}


class Emulator:
    """The register source behind ``gridedge emulate``: ``read`` answers one request.

    Args:
        settings: what to serve.
        clock: wall-clock UTC epoch seconds (the simulators' time).
    """

    def __init__(self, settings: EmulatorSettings, clock: Callable[[], float] = time.time) -> None:
        self._frame: dict[int, int] = {}
        if settings.sunspec_base is not None:
            driver, self._frame = sunspec_frame(settings.driver, settings.sunspec_base)
            settings = dataclasses.replace(settings, driver=driver)
        self._settings = settings
        self._clock = clock
        self._spans = register_spans(settings.driver, settings.sunspec_base)
        if self._frame:
            held = self._spans[RegisterTable.HOLDING]
            low, high = min(held.start, *self._frame), max(held.stop, max(self._frame) + 1)
            self._spans[RegisterTable.HOLDING] = range(low, high)
        now = clock()
        self._units = {u: _Unit(u, settings, now, self._frame) for u in settings.unit_ids}

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
            unit.refresh(self._settings, now, self._frame)
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
    or SIGINT); logs ``emulator.listening`` with the address once requests are answered.
    """
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


def chain_image(
    base: int,
    models: Sequence[tuple[Driver, Mapping[str, float], int]],
    common: CommonInfo | None = None,
) -> dict[int, int]:
    """The holding registers of a device serving ``models`` in order after ``"SunS"`` at ``base``.

    Args:
        base: the marker's address.
        models: (driver, values, length L) per model; the values are encoded through the
            driver bound where the model lands.
        common: when given, a common model 1 is put first with these strings.
    """
    image: dict[int, int] = {base: SUNSPEC_MARKER[0], base + 1: SUNSPEC_MARKER[1]}
    address = base + 2
    if common is not None:
        image[address], image[address + 1] = COMMON_MODEL, COMMON_LENGTH
        for key, (at, n) in COMMON_FIELDS.items():
            for i, word in enumerate(encode_string(getattr(common, key), n)):
                image[address + at + i] = word
        address += 2 + COMMON_LENGTH
    for driver, values, length in models:
        if driver.sunspec is None:
            raise ValueError(f"driver {driver.id} has no [sunspec] table")
        instance = ModelInstance(driver.sunspec.model, address, length)
        image[address], image[address + 1] = instance.model, length
        for a in range(address + 2, instance.end):
            image.setdefault(a, 0)
        image.update(encode_readings(bind(driver, instance), values)[RegisterTable.HOLDING])
        address = instance.end
    image[address], image[address + 1] = END_MODEL, 0
    return image


def image_source(image: Mapping[int, int], device: str = "sunspec") -> _ImageSource:
    """A register source (for :func:`~gridedge.links.modbus.bus.serve_modbus`) over ``image``."""
    return _ImageSource(image, device)


class _ImageSource:
    def __init__(self, image: Mapping[int, int], device: str) -> None:
        self.image = dict(image)
        self._device = device

    def __call__(self, unit_id: int, table: RegisterTable, address: int, count: int) -> list[int]:
        span = range(address, address + count)
        if table is not RegisterTable.HOLDING or any(a not in self.image for a in span):
            raise DeviceFaultError(f"{self._device}-{unit_id}", 2, address)
        return [self.image[a] for a in span]
