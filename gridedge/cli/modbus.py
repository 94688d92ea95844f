"""The ``emulate`` and ``scan`` commands: their arguments and what they run."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from gridedge.drivers import BUILTIN_DRIVERS_DIR, Driver, RegisterTable, load_drivers
from gridedge.errors import ConfigError, LinkError
from gridedge.links.modbus.bus import ModbusBus
from gridedge.links.modbus.settings import (
    ModbusLinkConfig,
    ModbusRtuLinkConfig,
    ModbusTcpLinkConfig,
    Parity,
    RtuOverTcpLinkConfig,
    SerialEndpoint,
    TcpEndpoint,
    parse_unit_ids,
    rtu_frame_gap_s,
)
from gridedge.log import LogFormat, LogLevel, configure
from gridedge.simulator.faults import FaultKind, FaultPlan

DEFAULT_TCP = "127.0.0.1:5020"
PROBE_TIMEOUT_S = 0.1
"""Default wait for a unit's first answer: a Modbus device on a healthy bus answers a one-register
read well within this; a silent unit id costs this much, so 247 of them take about 25 s."""


def add_emulate_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gridedge emulate``."""
    p = sub.add_parser("emulate", help="serve simulated meters over real Modbus (TCP or RTU)")
    p.add_argument("--driver", default="eastron-sdm630", help="the meter model of every unit")
    p.add_argument("--dir", action="append", default=[], help="extra drivers folder")
    p.add_argument("--unit-ids", default="1", help="units that answer, e.g. 1-10 or 1,3,5")
    _bus_arguments(p, tcp_help=f"listen on HOST:PORT (default {DEFAULT_TCP}; port 0: any)")
    p.add_argument("--seed", type=_natural, default=1, help="unit u is seeded with seed + u")
    p.add_argument("--exception-unit-ids", default="", help="units that answer with exceptions")
    p.add_argument(
        "--exception-code", type=_exception_code, default=4, help="their Modbus exception code"
    )
    p.add_argument(
        "--fault-rate", type=_bounded(0, 3600), default=0.0, help="random faults per unit-hour"
    )
    p.add_argument("--faults", default=",".join(k.value for k in FaultKind), help="fault kinds")
    p.add_argument(
        "--refresh-s", type=_bounded(0, 86400), default=1.0, help="least time between readings"
    )
    p.add_argument("--freeze", action="store_true", help="serve each unit's first reading forever")
    p.add_argument("--sunspec-base", type=_address, help="put the SunSpec marker at this address")
    p.add_argument(
        "--engine",
        choices=("pymodbus", "gridedge"),
        default="pymodbus",
        help="Modbus TCP server: pymodbus (default) or gridedge's own framing, about half the "
        "CPU per request (plain --tcp only)",
    )
    p.set_defaults(func=_cmd_emulate)


def add_scan_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gridedge scan``."""
    p = sub.add_parser("scan", help="find the unit ids that answer on a bus and their drivers")
    _bus_arguments(p, tcp_help="connect to HOST:PORT")
    p.add_argument("--unit-ids", default="1-247", help="units to probe, e.g. 1-247 or 1,3,5")
    p.add_argument(
        "--probe-timeout-s",
        type=_bounded(0.01, 10),
        default=PROBE_TIMEOUT_S,
        help=f"wait for a unit's first answer (default {PROBE_TIMEOUT_S}; a slow bus needs more)",
    )
    p.add_argument(
        "--timeout-s",
        type=_bounded(0.01, 60),
        default=0.3,
        help="wait for each answer of a unit that answered the probe",
    )
    p.add_argument("--dir", action="append", default=[], help="extra drivers folder")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_scan)


def _exception_code(text: str) -> int:
    code = int(text) if text.isdigit() else 0
    if not 1 <= code <= 255:
        raise argparse.ArgumentTypeError(f"expected an exception code 1..255, got {text!r}")
    return code


def _natural(text: str) -> int:
    if not text.isdigit() or int(text) >= 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer 0..{2**32 - 1}, got {text!r}")
    return int(text)


def _address(text: str) -> int:
    if not text.isdigit() or int(text) > 65535 - 2:
        raise argparse.ArgumentTypeError(f"expected a register address 0..65533, got {text!r}")
    return int(text)


def _bounded(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a number {low:g}..{high:g}, got {text!r}")
        return value

    return parse


def _bus_arguments(p: argparse.ArgumentParser, *, tcp_help: str) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--tcp", metavar="HOST:PORT", help=tcp_help)
    where.add_argument("--serial", metavar="DEVICE", help="a serial port (Modbus RTU)")
    p.add_argument("--rtu-over-tcp", action="store_true", help="RTU frames over the TCP link")
    p.add_argument("--baud", type=_baud, default=9600, help="serial baud rate")
    p.add_argument("--parity", choices=[parity.value for parity in Parity], default="N")
    p.add_argument("--stopbits", type=int, choices=[1, 2], default=1)


def _baud(text: str) -> int:
    if not text.isdigit() or not 300 <= int(text) <= 4_000_000:
        raise argparse.ArgumentTypeError(f"expected a baud rate 300..4000000, got {text!r}")
    return int(text)


def _driver(args: argparse.Namespace) -> Driver:
    drivers = _drivers(args)
    if args.driver not in drivers:
        known = ", ".join(sorted(drivers))
        raise ConfigError("--driver", f"unknown driver {args.driver!r}; available: {known}")
    return drivers[args.driver]


def _drivers(args: argparse.Namespace) -> dict[str, Driver]:
    return load_drivers([BUILTIN_DRIVERS_DIR, *(Path(d) for d in args.dir)])


def _unit_ids(text: str, option: str) -> tuple[int, ...]:
    try:
        return parse_unit_ids(text) if text else ()
    except ValueError as exc:
        raise ConfigError(option, str(exc)) from None


def _host_port(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon:
        host, port = "127.0.0.1", text
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError("--tcp", f"expected HOST:PORT with a port 0..65535, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _cmd_emulate(args: argparse.Namespace) -> int:
    from gridedge.links.modbus.emulator import EmulatorSettings, run_emulator

    try:
        kinds = tuple(FaultKind(k.strip()) for k in args.faults.split(",") if k.strip())
        plan = FaultPlan(rate_per_hour=args.fault_rate, kinds=kinds)
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise ConfigError("--faults", f"expected fault kinds among {known}") from None
    settings = EmulatorSettings(
        driver=_driver(args),
        unit_ids=_unit_ids(args.unit_ids, "--unit-ids"),
        seed=args.seed,
        exception_unit_ids=frozenset(_unit_ids(args.exception_unit_ids, "--exception-unit-ids")),
        exception_code=args.exception_code,
        faults=plan,
        refresh_s=args.refresh_s,
        frozen=args.freeze,
        sunspec_base=args.sunspec_base,
    )
    endpoint: TcpEndpoint | SerialEndpoint
    own_framing = args.engine == "gridedge"
    if own_framing and (args.serial or args.rtu_over_tcp):
        raise ConfigError("--engine", "gridedge serves plain Modbus TCP only (--tcp)")
    if args.serial:
        _check_serial(args.serial)
        endpoint = SerialEndpoint(args.serial, args.baud, Parity(args.parity), args.stopbits)
    else:
        host, port = _host_port(args.tcp or DEFAULT_TCP)
        _check_listen(host, port)
        endpoint = TcpEndpoint(host, port, rtu_framing=args.rtu_over_tcp, own_framing=own_framing)
    configure(LogLevel.INFO, LogFormat.AUTO)
    asyncio.run(run_emulator(settings, endpoint))
    return 0


def _check_listen(host: str, port: int) -> None:
    """Fail early, with the OS's reason, when ``host:port`` cannot be listened on."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = "; choose another port, or port 0 for any free one"
        reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else str(exc)
        raise ConfigError("--tcp", f"cannot listen on {host}:{port}: {reason}{hint}") from None


def _check_serial(device: str) -> None:
    if not os.path.exists(device):
        raise ConfigError("--serial", f"no such device {device}")


def _scan_link(args: argparse.Namespace) -> ModbusLinkConfig:
    if args.serial:
        return ModbusRtuLinkConfig(
            port=args.serial,
            baudrate=args.baud,
            parity=Parity(args.parity),
            stopbits=args.stopbits,
            frame_gap_s=rtu_frame_gap_s(args.baud),
        )
    if not args.tcp:
        raise ConfigError("--tcp", "scan needs --tcp HOST:PORT or --serial DEVICE")
    host, port = _host_port(args.tcp)
    if args.rtu_over_tcp:
        return RtuOverTcpLinkConfig(host=host, port=port)
    return ModbusTcpLinkConfig(host=host, port=port)


def _cmd_scan(args: argparse.Namespace) -> int:
    from gridedge.links.modbus.bus import open_modbus_bus

    configure(LogLevel.ERROR, LogFormat.AUTO)
    link = _scan_link(args)
    unit_ids = _unit_ids(args.unit_ids, "--unit-ids")
    if not unit_ids:
        raise ConfigError("--unit-ids", "expected at least one unit id")
    drivers = _drivers(args)
    progress = sys.stderr if sys.stderr.isatty() else None
    option = "--serial" if args.serial else "--tcp"

    async def scan() -> list[dict[str, object]]:
        async with open_modbus_bus(link) as bus:
            await _first_contact(bus, unit_ids[0], args.probe_timeout_s, option)
            print(
                f"scanning {len(unit_ids)} unit ids ({args.unit_ids}) on {link.bus}, "
                f"{args.probe_timeout_s:g} s per silent unit (at most {_duration(args, unit_ids)})",
                file=sys.stderr,
                flush=True,
            )
            return await _scan_units(bus, unit_ids, drivers, args, progress)

    found = asyncio.run(scan())
    if args.json:
        print(json.dumps(found, indent=2))
    elif not found:
        print(f"no unit answered on {link.bus}")
    return 0


def _duration(args: argparse.Namespace, unit_ids: tuple[int, ...]) -> str:
    seconds = len(unit_ids) * args.probe_timeout_s
    return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"


async def _scan_units(
    bus: ModbusBus,
    unit_ids: tuple[int, ...],
    drivers: dict[str, Driver],
    args: argparse.Namespace,
    progress: TextIO | None,
) -> list[dict[str, object]]:
    """Probe each unit id, printing each unit that answers as soon as it is identified."""
    from gridedge.links.modbus.scan import describe, probe, scan_bus

    found: list[dict[str, object]] = []
    started = time.monotonic()
    for n, unit_id in enumerate(unit_ids, start=1):
        if progress is not None:
            progress.write(f"\rscanning unit {unit_id} ({n}/{len(unit_ids)})\x1b[K")
            progress.flush()
        if not await probe(bus, unit_id, args.probe_timeout_s):
            continue
        reports = await scan_bus(bus, [unit_id], drivers, timeout_s=args.timeout_s)
        for report in reports:
            if progress is not None:
                progress.write("\r\x1b[K")
            if not args.json:
                print(describe(report), flush=True)
            found.append(asdict(report))
    if progress is not None:
        progress.write(
            f"\r\x1b[Kscanned {len(unit_ids)} units in {time.monotonic() - started:.1f} s\n"
        )
    return found


async def _first_contact(bus: ModbusBus, unit_id: int, timeout_s: float, option: str) -> None:
    """Raise the bus's reason (refused, no such device, ...) when it cannot even be opened."""
    try:
        await bus.read("scan", unit_id, RegisterTable.HOLDING, 0, 1, timeout_s=timeout_s)
    except LinkError as exc:
        if bus.connects == 0:
            raise ConfigError(option, exc.detail) from None
