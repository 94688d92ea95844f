"""How meters are reached: the ``[meters.link]`` settings of the Modbus link types.

Pure values and parsing, no I/O. :mod:`gridedge.config` reads the rest of the file and
dispatches here by ``type``. Several meters may share one physical bus (a serial port, or one
``host:port``): :class:`BusCheck` makes sure they agree on its settings and use distinct unit ids,
so the daemon can open one connection per bus.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gridedge.errors import ConfigError
from gridedge.tomlread import Table


class LinkType(StrEnum):
    """How a meter is reached."""

    SIMULATED = "simulated"
    MODBUS_TCP = "modbus-tcp"
    """Modbus TCP (MBAP framing) to a meter or a TCP-to-RS-485 gateway."""
    MODBUS_RTU = "modbus-rtu"
    """Modbus RTU on a local serial port (RS-485 adapter)."""
    RTU_OVER_TCP = "rtu-over-tcp"
    """Modbus RTU frames (with CRC) tunnelled through a TCP connection to a serial server."""


class Parity(StrEnum):
    """Serial parity."""

    NONE = "N"
    EVEN = "E"
    ODD = "O"


MIN_UNIT_ID, MAX_UNIT_ID = 1, 247
"""Unit ids a serial bus can address (0 is broadcast, 248..255 are reserved)."""

MAX_TCP_UNIT_ID = 255
"""Modbus TCP devices may use 0 or 255 as their own unit id."""

_BITS_PER_CHAR = 11  # start bit, 8 data bits, parity or a second stop bit, stop bit


def rtu_frame_gap_s(baudrate: int) -> float:
    """The Modbus RTU silent interval between frames: 3.5 character times, 1.75 ms above 19200."""
    if baudrate > 19200:
        return 0.00175
    return 3.5 * _BITS_PER_CHAR / baudrate


def _parse_sunspec(t: Table) -> dict[str, Any]:
    """``sunspec``, ``sunspec_base``, ``sunspec_index`` (SunSpec discovery, see the fields)."""
    on: bool = t.boolean("sunspec", False)
    base: int | None = t.integer("sunspec_base", None, min=0, max=65534)
    index: int = t.integer("sunspec_index", 1, min=1, max=32)
    # sunspec_base and sunspec_index are accepted (and ignored) with sunspec = false, so that
    # `gridedge check` output, which prints every field, reads back unchanged.
    return {"sunspec": on, "sunspec_base": base, "sunspec_index": index}


@dataclass(frozen=True, slots=True)
class _TcpEndpointLink:
    """What the two TCP-carried link types share; each subclass says how frames are made."""

    host: str
    port: int = 502
    unit_id: int = 1
    timeout_s: float = 1.0
    retries: int = 1
    frame_gap_s: float = 0.0
    sunspec: bool = False
    """Find the driver's SunSpec model in the device's chain instead of trusting its layout."""
    sunspec_base: int | None = None
    """Where the ``"SunS"`` marker is; None searches 40000, 0 and 50000."""
    sunspec_index: int = 1
    """Which instance of the model to poll when the chain has several (from 1)."""

    @property
    def bus(self) -> str:
        """The identity of the physical bus this meter is on."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ModbusTcpLinkConfig(_TcpEndpointLink):
    """A meter reached over Modbus TCP; every meter on the same ``host:port`` shares one
    connection.
    """

    type: LinkType = field(default=LinkType.MODBUS_TCP, metadata={"first": True})


@dataclass(frozen=True, slots=True)
class RtuOverTcpLinkConfig(_TcpEndpointLink):
    """A meter on an RS-485 bus behind a transparent serial server: RTU frames over TCP."""

    type: LinkType = field(default=LinkType.RTU_OVER_TCP, metadata={"first": True})


@dataclass(frozen=True, slots=True)
class ModbusRtuLinkConfig:
    """A meter on a local serial port (RS-485); every meter on the port shares it."""

    port: str
    baudrate: int = 9600
    parity: Parity = Parity.NONE
    stopbits: int = 1
    bytesize: int = 8
    unit_id: int = 1
    timeout_s: float = 1.0
    retries: int = 1
    frame_gap_s: float = rtu_frame_gap_s(9600)
    sunspec: bool = False
    sunspec_base: int | None = None
    sunspec_index: int = 1
    type: LinkType = field(default=LinkType.MODBUS_RTU, metadata={"first": True})

    @property
    def bus(self) -> str:
        """The identity of the physical bus this meter is on."""
        return self.port


ModbusLinkConfig = ModbusTcpLinkConfig | RtuOverTcpLinkConfig | ModbusRtuLinkConfig
"""Any Modbus link; ``link.bus`` names its physical bus."""

MODBUS_LINK_TYPES = frozenset({LinkType.MODBUS_TCP, LinkType.MODBUS_RTU, LinkType.RTU_OVER_TCP})


def parse_modbus_link(t: Table) -> ModbusLinkConfig:
    """Read a ``[meters.link]`` table of one of the Modbus types."""
    link_type = t.choice("type", LinkType)
    timeout_s = t.number("timeout_s", 1.0, min=0.01, max=60.0)
    retries = t.integer("retries", 1, min=0, max=5)
    link: ModbusLinkConfig
    if link_type is LinkType.MODBUS_RTU:
        baudrate = t.integer("baudrate", 9600, min=300, max=4_000_000)
        link = ModbusRtuLinkConfig(
            port=t.string("port"),
            baudrate=baudrate,
            parity=t.choice("parity", Parity, Parity.NONE),
            stopbits=_one_of(t, "stopbits", (1, 2), 1),
            bytesize=_one_of(t, "bytesize", (7, 8), 8),
            unit_id=t.integer("unit_id", 1, min=MIN_UNIT_ID, max=MAX_UNIT_ID),
            timeout_s=timeout_s,
            retries=retries,
            frame_gap_s=t.number("frame_gap_s", rtu_frame_gap_s(baudrate), min=0.0, max=1.0),
            **_parse_sunspec(t),
        )
    else:
        top = MAX_UNIT_ID if link_type is LinkType.RTU_OVER_TCP else MAX_TCP_UNIT_ID
        low = MIN_UNIT_ID if link_type is LinkType.RTU_OVER_TCP else 0
        cls = RtuOverTcpLinkConfig if link_type is LinkType.RTU_OVER_TCP else ModbusTcpLinkConfig
        link = cls(
            host=t.string("host"),
            port=t.integer("port", 502, min=1, max=65535),
            unit_id=t.integer("unit_id", 1, min=low, max=top),
            timeout_s=timeout_s,
            retries=retries,
            frame_gap_s=t.number("frame_gap_s", 0.0, min=0.0, max=1.0),
            **_parse_sunspec(t),
        )
    t.finish()
    return link


def _one_of(t: Table, key: str, allowed: tuple[int, ...], default: int) -> int:
    value: int = t.integer(key, default)
    if value not in allowed:
        raise t.fail(key, f"expected one of {', '.join(map(str, allowed))}, got {value}")
    return value


def check_count(link: ModbusLinkConfig, count: int) -> str | None:
    """Why ``count`` consecutive unit ids from ``link.unit_id`` do not fit, or None."""
    top = MAX_TCP_UNIT_ID if isinstance(link, ModbusTcpLinkConfig) else MAX_UNIT_ID
    last = link.unit_id + count - 1
    if last > top:
        return f"{count} meters from unit_id {link.unit_id} would end at {last}, past {top}"
    return None


def nth_link(link: ModbusLinkConfig, i: int) -> ModbusLinkConfig:
    """The link of the ``i``-th (from 1) meter a ``count`` table expands into."""
    return dataclasses.replace(link, unit_id=link.unit_id + i - 1)


class BusCheck:
    """Checks, meter by meter, that meters sharing a bus agree on how to talk to it."""

    def __init__(self) -> None:
        self._buses: dict[str, tuple[ModbusLinkConfig, str]] = {}
        # Per unit: (what each meter polls there, meter id); None is the whole unit.
        self._units: dict[tuple[str, int], list[tuple[tuple[int, int] | None, str]]] = {}

    def add(
        self, meter_id: str, link: ModbusLinkConfig, t: Table, sunspec_model: int | None = None
    ) -> None:
        """Register a meter read from table ``t``.

        A unit is one meter, except under SunSpec discovery: then each instance of a model in
        the unit's chain (``sunspec_model``, ``link.sunspec_index``) is a meter of its own.

        Raises:
            ConfigError: the bus is already used with other settings, or another meter on it
                polls the same unit (the same model instance, under SunSpec discovery).
        """
        first = self._buses.setdefault(link.bus, (link, meter_id))
        differs = _bus_settings(first[0]) != _bus_settings(link)
        if differs:
            raise ConfigError(
                t.key_path("link"),
                f"bus {link.bus!r} is also used by meter {first[1]!r} with other settings "
                f"({_describe(first[0])}); meters on one bus share its type and settings",
                t.source,
            )
        part = (sunspec_model, link.sunspec_index) if link.sunspec and sunspec_model else None
        taken = self._units.setdefault((link.bus, link.unit_id), [])
        for other_part, other in taken:
            if part is None or other_part is None:
                raise ConfigError(
                    t.key_path("link.unit_id"),
                    f"unit id {link.unit_id} on bus {link.bus!r} is already used by meter "
                    f"{other!r}",
                    t.source,
                )
            if part == other_part:
                raise ConfigError(
                    t.key_path("link.sunspec_index"),
                    f"instance {part[1]} of SunSpec model {part[0]} of unit {link.unit_id} on "
                    f"bus {link.bus!r} is already polled by meter {other!r}; a further instance "
                    f"needs sunspec_index = {part[1] + 1}",
                    t.source,
                )
        taken.append((part, meter_id))


def _bus_settings(link: ModbusLinkConfig) -> tuple[object, ...]:
    if isinstance(link, ModbusRtuLinkConfig):
        return (
            link.type,
            link.baudrate,
            link.parity,
            link.stopbits,
            link.bytesize,
            link.frame_gap_s,
        )
    return (link.type, link.frame_gap_s)


def _describe(link: ModbusLinkConfig) -> str:
    names: tuple[str, ...] = ("type", "frame_gap_s")
    if isinstance(link, ModbusRtuLinkConfig):
        names = ("type", "baudrate", "parity", "stopbits", "bytesize", "frame_gap_s")
    return ", ".join(f"{n} = {getattr(link, n)}" for n in names)


@dataclass(frozen=True, slots=True)
class TcpEndpoint:
    """Where a Modbus server (``gridedge emulate``) listens on TCP; ``rtu_framing`` serves RTU
    frames over TCP, ``own_framing`` plain Modbus TCP through gridedge's own framing instead of
    the pymodbus server.
    """

    host: str = "127.0.0.1"
    port: int = 5020
    rtu_framing: bool = False
    own_framing: bool = False

    @property
    def bound(self) -> str:
        """``host:port`` as configured (port 0: the server picks one)."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SerialEndpoint:
    """A serial device a server answers on (Modbus RTU)."""

    port: str
    baudrate: int = 9600
    parity: Parity = Parity.NONE
    stopbits: int = 1
    bytesize: int = 8


def parse_unit_ids(text: str) -> tuple[int, ...]:
    """Unit ids from ``"1-10"``, ``"3"`` or ``"1,4,7-9"``, in order and without repeats.

    Raises:
        ValueError: the text is malformed or an id is outside 0..255.
    """
    ids: dict[int, None] = {}
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.strip().isdigit() or (dash and not high.strip().isdigit()):
            raise ValueError(f"expected unit ids like '1-10' or '1,3,5', got {text!r}")
        first, last = int(low), int(high) if dash else int(low)
        if not 0 <= first <= last <= MAX_TCP_UNIT_ID:
            raise ValueError(f"unit ids run from 0 to {MAX_TCP_UNIT_ID}, low to high: {part!r}")
        ids.update(dict.fromkeys(range(first, last + 1)))
    return tuple(ids)
