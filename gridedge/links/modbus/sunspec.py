"""SunSpec discovery: walk a device's model chain and poll a model wherever the device has it.

A SunSpec device opens its map with ``"SunS"`` at a base address (40000, 0 or 50000, or
wherever a configured ``sunspec_base`` says), followed by models one after another, each a
header (model id, length L) and L data registers, up to id 0xFFFF. Model 1 (common) carries the
manufacturer, model, version and serial number as strings.

A generated SunSpec driver (``drivers/sunspec-*.toml``) assumes its model's header at one
address (its ``[sunspec]`` table). :func:`bind` moves the driver to a model instance found in a
device's chain and drops the channels the instance is too short for (a model 160 with 2
strings, generated with 4). :class:`SunSpecLink` discovers the chain at its first read and then
reads through a :class:`~gridedge.links.modbus.link.ModbusLink` of the bound driver; a failed
discovery is retried at the next read.

:func:`gridedge.links.modbus.emulator.chain_image` is the inverse, for emulators and tests:
the registers of a device serving a given chain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from gridedge.drivers import Driver, RegisterTable
from gridedge.errors import DeviceFaultError, FrameError
from gridedge.links.modbus.link import ModbusLink, RegisterBus
from gridedge.log import get_logger

_log = get_logger("sunspec")

SUNSPEC_MARKER = (0x5375, 0x6E53)
"""``"SunS"``: the two holding registers that open a SunSpec register map."""

SUNSPEC_BASES = (40000, 0, 50000)
"""Where a SunSpec map may start, in the order the SunSpec specification lists them."""

END_MODEL = 0xFFFF
MAX_MODELS = 32
"""Longest chain followed; a longer one is garbage (or a loop on a broken device)."""

COMMON_MODEL = 1
COMMON_LENGTH = 66
# Model 1 data, by offset from the header (sunspec/models json/model_1.json): Mn 2-17,
# Md 18-33, Opt 34-41, Vr 42-49, SN 50-65, DA 66.
COMMON_FIELDS = {"manufacturer": (2, 16), "model": (18, 16), "options": (34, 8)}
COMMON_FIELDS |= {"version": (42, 8), "serial": (50, 16)}
"""Model 1's strings: (offset from the header, registers), by :class:`CommonInfo` field."""


@dataclass(frozen=True, slots=True)
class ModelInstance:
    """One model in a device's chain: its id, header address and length (L)."""

    model: int
    header: int
    length: int

    @property
    def end(self) -> int:
        """The first address after the model's data."""
        return self.header + 2 + self.length


@dataclass(frozen=True, slots=True)
class CommonInfo:
    """What the common model says about the device."""

    manufacturer: str
    model: str
    options: str
    version: str
    serial: str


@dataclass(frozen=True, slots=True)
class SunSpecChain:
    """A device's SunSpec map: where it starts, its models in order, and its identity."""

    base: int
    models: tuple[ModelInstance, ...]
    common: CommonInfo | None

    def instance(self, model: int, index: int = 1) -> ModelInstance | None:
        """The ``index``-th (from 1) instance of ``model``, or None."""
        found = [m for m in self.models if m.model == model]
        return found[index - 1] if 0 < index <= len(found) else None


def decode_string(words: Sequence[int]) -> str:
    """A SunSpec string: two ASCII bytes per register, NUL-padded."""
    data = b"".join(int(w).to_bytes(2, "big") for w in words)
    return data.split(b"\0", 1)[0].decode("ascii", errors="replace").strip()


def encode_string(text: str, registers: int) -> list[int]:
    """The registers of a SunSpec string field (truncated or NUL-padded to fit)."""
    data = text.encode("ascii", errors="replace")[: 2 * registers].ljust(2 * registers, b"\0")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


async def find_base(
    bus: RegisterBus, device: str, unit_id: int, timeout_s: float, base: int | None = None
) -> int | None:
    """The address of the ``"SunS"`` marker (only ``base`` when given), or None."""
    for candidate in SUNSPEC_BASES if base is None else (base,):
        try:
            words = await bus.read(
                device, unit_id, RegisterTable.HOLDING, candidate, 2, timeout_s=timeout_s
            )
        except DeviceFaultError:
            continue  # an exception: nothing there, try the next base
        if tuple(words) == SUNSPEC_MARKER:
            return candidate
    return None


async def read_chain(
    bus: RegisterBus, device: str, unit_id: int, timeout_s: float, base: int | None = None
) -> SunSpecChain:
    """Walk the SunSpec chain of one unit.

    Raises:
        FrameError: no ``"SunS"`` marker where one may be.
        LinkError: the unit does not answer (as from the bus).
    """
    start = await find_base(bus, device, unit_id, timeout_s, base)
    if start is None:
        where = ", ".join(map(str, SUNSPEC_BASES)) if base is None else str(base)
        raise FrameError(device, f"no SunSpec marker 'SunS' at {where}")
    models: list[ModelInstance] = []
    address = start + 2
    while len(models) < MAX_MODELS and address + 2 <= 0x10000:
        try:
            model_id, length = await bus.read(
                device, unit_id, RegisterTable.HOLDING, address, 2, timeout_s=timeout_s
            )
        except DeviceFaultError:
            break  # a device that ends its map without the end marker
        if model_id in (0, END_MODEL):
            break
        models.append(ModelInstance(model_id, address, length))
        address += 2 + length
    common = None
    first = models[0] if models else None
    if first is not None and first.model == COMMON_MODEL and first.length >= COMMON_LENGTH - 1:
        words = await bus.read(
            device, unit_id, RegisterTable.HOLDING, first.header, 66, timeout_s=timeout_s
        )
        common = CommonInfo(
            **{k: decode_string(words[at : at + n]) for k, (at, n) in COMMON_FIELDS.items()}
        )
    return SunSpecChain(start, tuple(models), common)


def bind(driver: Driver, instance: ModelInstance) -> Driver:
    """``driver`` moved to ``instance``: addresses shifted, channels past its end dropped.

    Raises:
        ValueError: the driver has no ``[sunspec]`` table or is for another model.
    """
    if driver.sunspec is None or driver.sunspec.model != instance.model:
        raise ValueError(f"driver {driver.id} is not for SunSpec model {instance.model}")
    shift = instance.header - driver.sunspec.header_address
    channels = []
    for ch in driver.channels:
        sf = ch.scale_factor_address
        moved = dataclasses.replace(
            ch, address=ch.address + shift, scale_factor_address=None if sf is None else sf + shift
        )
        last = max(moved.address + moved.count, (moved.scale_factor_address or 0) + 1)
        if last <= instance.end:
            channels.append(moved)
    kept = {ch.name for ch in channels}
    computed = tuple(c for c in driver.computed if set(c.operands) <= kept)
    return dataclasses.replace(
        driver,
        channels=tuple(channels),
        computed=computed,
        sunspec=dataclasses.replace(driver.sunspec, header_address=instance.header),
    )


class SunSpecLink:
    """A meter polled through SunSpec discovery (``sunspec = true`` on its link).

    Args:
        device: the meter id.
        driver: a SunSpec driver (with a ``[sunspec]`` table) naming the model to poll.
        bus: the bus the unit is on.
        unit_id: the unit.
        timeout_s: per request.
        retries: per request, while the unit answers.
        base: where the ``"SunS"`` marker is; None searches the standard bases.
        index: which instance of the model to poll when the chain has several (from 1).
    """

    def __init__(
        self,
        device: str,
        driver: Driver,
        bus: RegisterBus,
        *,
        unit_id: int,
        timeout_s: float,
        retries: int = 1,
        base: int | None = None,
        index: int = 1,
    ) -> None:
        if driver.sunspec is None:
            raise ValueError(f"driver {driver.id} has no [sunspec] table")
        self._device = device
        self._driver = driver
        self._model = driver.sunspec.model
        self._bus = bus
        self._unit_id = unit_id
        self._timeout_s = timeout_s
        self._retries = retries
        self._base = base
        self._index = index
        self._inner: ModbusLink | None = None
        self.chain: SunSpecChain | None = None
        """The chain found at the last discovery."""

    @property
    def device(self) -> str:
        """The meter id."""
        return self._device

    @property
    def inner(self) -> ModbusLink | None:
        """The link to the bound model, once discovered."""
        return self._inner

    def complete_channels(self) -> int:
        """How many values a complete read returns: those of the model instance found (a
        model 160 with 2 strings has fewer than its driver declares), the driver's before.
        """
        if self._inner is None:
            return len(self._driver.channel_names)
        return self._inner.channel_count

    @property
    def read_ts(self) -> float | None:
        """When the last read of the bound model went out (see :class:`ModbusLink`)."""
        return None if self._inner is None else self._inner.read_ts

    async def read(self) -> dict[str, float]:
        """Discover the chain (the first time), then read the bound model.

        Raises:
            FrameError: the device has no SunSpec map, or not the driver's model.
            LinkError: as :meth:`ModbusLink.read`.
        """
        if self._inner is None:
            self._inner = await self._discover()
        return await self._inner.read()

    async def _discover(self) -> ModbusLink:
        chain = await read_chain(
            self._bus, self._device, self._unit_id, self._timeout_s, self._base
        )
        self.chain = chain
        instance = chain.instance(self._model, self._index)
        if instance is None:
            found = ", ".join(str(m.model) for m in chain.models) or "none"
            raise FrameError(
                self._device,
                f"SunSpec model {self._model} (instance {self._index}) not in the chain "
                f"at {chain.base} (models: {found})",
            )
        common = chain.common
        _log.info(
            "sunspec.discovered",
            device=self._device,
            base=chain.base,
            models=[f"{m.model}@{m.header}" for m in chain.models],
            polling=f"{instance.model}@{instance.header}",
            manufacturer=common.manufacturer if common else None,
            model=common.model if common else None,
            serial=common.serial if common else None,
            version=common.version if common else None,
        )
        return ModbusLink(
            self._device,
            bind(self._driver, instance),
            self._bus,
            unit_id=self._unit_id,
            timeout_s=self._timeout_s,
            retries=self._retries,
        )
