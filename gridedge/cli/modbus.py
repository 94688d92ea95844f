"""The ``emulate`` and ``scan`` commands: their arguments and what they run."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict
from pathlib import Path

from gridedge.drivers import BUILTIN_DRIVERS_DIR, Driver, load_drivers
from gridedge.errors import ConfigError, LinkError
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


def add_emulate_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gridedge emulate``."""
    p = sub.add_parser("emulate", help="serve simulated meters over real Modbus (TCP or RTU)")
    p.add_argument("--driver", default="eastron-sdm630", help="the meter model of every unit")
    p.add_argument("--dir", action="append", default=[], help="extra drivers folder")
    p.add_argument("--unit-ids", default="1", help="units that answer, e.g. 1-10 or 1,3,5")
    _bus_arguments(p, tcp_help=f"listen on HOST:PORT (default {DEFAULT_TCP}; port 0: any)")
    p.add_argument("--seed", type=int, default=1, help="unit u is seeded with seed + u")
    p.add_argument("--exception-unit-ids", default="", help="units that answer with exceptions")
    p.add_argument(
        "--exception-code", type=_exception_code, default=4, help="their Modbus exception code"
    )
    p.add_argument("--fault-rate", type=float, default=0.0, help="random faults per unit-hour")
    p.add_argument("--faults", default=",".join(k.value for k in FaultKind), help="fault kinds")
    p.add_argument("--refresh-s", type=float, default=1.0, help="least time between readings")
    p.add_argument("--freeze", action="store_true", help="serve each unit's first reading forever")
    p.add_argument("--sunspec-base", type=int, help="put the SunSpec marker at this address")
    p.set_defaults(func=_cmd_emulate)


def add_scan_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gridedge scan``."""
    p = sub.add_parser("scan", help="find the unit ids that answer on a bus and their drivers")
    _bus_arguments(p, tcp_help="connect to HOST:PORT")
    p.add_argument("--unit-ids", default="1-247", help="units to probe, e.g. 1-247 or 1,3,5")
    p.add_argument("--timeout-s", type=float, default=0.3, help="wait for each answer")
    p.add_argument("--dir", action="append", default=[], help="extra drivers folder")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_scan)


def _exception_code(text: str) -> int:
    code = int(text)
    if not 1 <= code <= 255:
        raise argparse.ArgumentTypeError(f"expected an exception code 1..255, got {text}")
    return code


def _bus_arguments(p: argparse.ArgumentParser, *, tcp_help: str) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--tcp", metavar="HOST:PORT", help=tcp_help)
    where.add_argument("--serial", metavar="DEVICE", help="a serial port (Modbus RTU)")
    p.add_argument("--rtu-over-tcp", action="store_true", help="RTU frames over the TCP link")
    p.add_argument("--baud", type=int, default=9600, help="serial baud rate")
    p.add_argument("--parity", choices=[parity.value for parity in Parity], default="N")
    p.add_argument("--stopbits", type=int, choices=[1, 2], default=1)


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

    configure(LogLevel.INFO, LogFormat.AUTO)
    try:
        kinds = tuple(FaultKind(k) for k in args.faults.split(",") if k)
        plan = FaultPlan(rate_per_hour=args.fault_rate, kinds=kinds)
    except ValueError as exc:
        raise ConfigError("--faults", str(exc)) from None
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
    if args.serial:
        endpoint = SerialEndpoint(args.serial, args.baud, Parity(args.parity), args.stopbits)
    else:
        host, port = _host_port(args.tcp or DEFAULT_TCP)
        endpoint = TcpEndpoint(host, port, rtu_framing=args.rtu_over_tcp)
    asyncio.run(run_emulator(settings, endpoint))
    return 0


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
    from gridedge.links.modbus.scan import describe, scan_bus

    configure(LogLevel.ERROR, LogFormat.AUTO)
    link = _scan_link(args)
    unit_ids = _unit_ids(args.unit_ids, "--unit-ids")
    drivers = _drivers(args)

    async def scan() -> list[dict[str, object]]:
        async with open_modbus_bus(link) as bus:
            reports = await scan_bus(bus, unit_ids, drivers, timeout_s=args.timeout_s)
            if bus.connects == 0:
                raise LinkError(bus.name, "cannot connect")
        for report in reports:
            if not args.json:
                print(describe(report))
        if not reports and not args.json:
            print(f"no unit answered on {link.bus}")
        return [asdict(r) for r in reports]

    found = asyncio.run(scan())
    if args.json:
        print(json.dumps(found, indent=2))
    return 0
