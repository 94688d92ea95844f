"""Command line: ``gridedge run | check | drivers | outbox | simulate | replay | bench | emulate |
scan``.

Exit status: 0 success, 2 bad configuration or input, 1 anything unexpected.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import errno
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, cast

from gridedge import __version__
from gridedge.analytics.replay import add_replay_command
from gridedge.cli.configs import config_or_example
from gridedge.cli.drivers import add_driver_options, check_file, print_search
from gridedge.cli.modbus import add_emulate_command, add_scan_command
from gridedge.cli.outbox import add_outbox_command
from gridedge.cli.preflight import preflight
from gridedge.cli.soak import add_soak_options, soak_plan_of
from gridedge.cli.tail import add_tail_command
from gridedge.config import dump_toml, load_config
from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_drivers
from gridedge.errors import ConfigError, GridedgeError, LinkError, OutboxError
from gridedge.log import LogFormat, LogLevel, configure, get_logger

EXIT_OK, EXIT_CRASH, EXIT_USAGE = 0, 1, 2


def _cmd_run(args: argparse.Namespace) -> int:
    from gridedge import daemon  # deferred: the other commands need not import the daemon

    config = config_or_example(args.config)
    configure(config.log.level, config.log.format)
    asyncio.run(daemon.run(config))
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    config = config_or_example(args.config)
    for warning in preflight(config):
        print(f"gridedge check: warning: {warning}", file=sys.stderr)
    sys.stdout.write(dump_toml(config))
    return EXIT_OK


def _cmd_drivers(args: argparse.Namespace) -> int:
    if args.check is not None:
        return check_file(Path(args.check))
    dirs = [BUILTIN_DRIVERS_DIR]
    if args.config is not None:
        dirs = [BUILTIN_DRIVERS_DIR]
        gw = load_config(Path(args.config)).gateway
        if gw.drivers_dir is not None:
            dirs.append(gw.drivers_dir)
    dirs.extend(Path(d) for d in args.dir)
    drivers = load_drivers(dirs)
    if args.search is not None:
        return print_search(drivers, args.search, args.json)
    if args.json:
        rows = [
            {
                "id": d.id,
                "manufacturer": d.manufacturer,
                "model": d.model,
                "phases": d.phases,
                "channels": list(d.channel_names),
                "source": d.source,
                "path": str(d.path),
            }
            for d in drivers.values()
        ]
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    print(f"{'id':<24} {'phases':>6} {'channels':>8}  model")
    for d in sorted(drivers.values(), key=lambda d: d.id):
        print(f"{d.id:<24} {d.phases:>6} {len(d.channels):>8}  {d.manufacturer} {d.model}")
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    from gridedge.simulator.dataset import write_dataset
    from gridedge.simulator.faults import FaultPlan
    from gridedge.simulator.physics import LoadProfile, SimulationParams

    drivers = load_drivers([BUILTIN_DRIVERS_DIR, *(Path(d) for d in args.dir)])
    if args.driver not in drivers:
        raise ConfigError(
            "--driver", f"unknown driver {args.driver!r}; available: " + ", ".join(sorted(drivers))
        )
    kinds = _fault_kinds(args.faults)
    try:
        start = dt.datetime.fromisoformat(args.start).replace(tzinfo=dt.UTC).timestamp()
    except (ValueError, OverflowError):
        raise ConfigError("--start", f"expected an ISO 8601 time, got {args.start!r}") from None
    rows = args.days * 86400.0 / args.interval_s
    if rows * args.meters > MAX_SIMULATED_ROWS:
        raise ConfigError(
            "--days",
            f"{args.meters} meters x {rows:.0f} rows is more than {MAX_SIMULATED_ROWS} rows; "
            "fewer --days or --meters, or a longer --interval-s",
        )
    out = _output_folder(Path(args.out), "--out")
    paths = write_dataset(
        out,
        drivers[args.driver],
        meters=args.meters,
        days=args.days,
        interval_s=args.interval_s,
        seed=args.seed,
        plan=FaultPlan(rate_per_hour=args.fault_rate, kinds=kinds),
        params=SimulationParams(profile=LoadProfile(args.profile)),
        start_ts=start,
    )
    for path in paths:
        print(path)
    return EXIT_OK


MAX_SIMULATED_ROWS = 50_000_000
"""Most rows ``gridedge simulate`` writes in one run (about 10 GB of CSV)."""


def _fault_kinds(text: str) -> tuple[Any, ...]:
    from gridedge.simulator.faults import FaultKind

    kinds = []
    for name in (k.strip() for k in text.split(",")):
        if not name:
            continue
        try:
            kinds.append(FaultKind(name))
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise ConfigError("--faults", f"unknown fault {name!r}; known: {known}") from None
    return tuple(kinds)


def _output_folder(path: Path, option: str) -> Path:
    """``path`` as a folder to write into, created when missing."""
    if path.exists() and not path.is_dir():
        raise ConfigError(option, f"{path} exists and is not a folder; name a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(option, f"cannot create folder {path}: {exc.strerror}") from None
    return path


def _cmd_bench(args: argparse.Namespace) -> int:
    from gridedge.bench.run import run_bench

    configure(LogLevel.WARNING, LogFormat.JSON)
    result = run_bench(
        only=args.only,
        seconds=args.seconds,
        drain_backlog=args.drain_backlog,
        soak=soak_plan_of(args),
        meters=args.meters,
        connections=args.connections,
        headroom=args.headroom,
        farm_engine=args.farm_engine,
        farm_batch_scope=args.farm_batch_scope,
        fleet_meters=args.fleet_meters,
        fleet_minutes=args.fleet_minutes,
    )
    print(json.dumps(result, indent=2))
    return EXIT_OK


def _bounded(
    convert: Callable[[str], float], ok: Callable[[float], bool], expected: str
) -> Callable[[str], Any]:
    """An argparse type: ``convert`` the text, then refuse what ``ok`` rejects, in one line."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = math.nan  # fails every bound below
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_float = _bounded(float, lambda v: 0 < v <= 1e9, "a number greater than 0")
_positive_int = _bounded(int, lambda v: 0 < v <= 1_000_000_000, "an integer greater than 0")
_seed = _bounded(int, lambda v: 0 <= v < 2**32, f"an integer 0..{2**32 - 1}")
_fault_rate = _bounded(float, lambda v: 0 <= v <= 3600, "faults per hour 0..3600")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line on stderr and exit 2 (via :func:`main`)."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError("", f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = _Parser(prog="gridedge", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gridedge {__version__}")
    sub = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True),
    )

    def with_config(p: argparse.ArgumentParser, required: bool = False) -> None:
        help_ = "config file (TOML)" + ("" if required else "; default: the embedded example")
        p.add_argument("-c", "--config", required=required, help=help_)

    p = sub.add_parser("run", help="run the gateway until SIGTERM/SIGINT")
    with_config(p)
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("check", help="validate a config and print it with defaults filled in")
    with_config(p)
    p.set_defaults(func=_cmd_check)
    p = sub.add_parser("drivers", help="list the available meter drivers")
    with_config(p)
    p.add_argument("--dir", action="append", default=[], help="extra drivers folder")
    p.add_argument("--json", action="store_true", help="print JSON with every channel")
    add_driver_options(p)
    p.set_defaults(func=_cmd_drivers)
    add_tail_command(add_outbox_command(sub, config_or_example, with_config))
    p = sub.add_parser("simulate", help="write a labelled dataset of simulated meters (CSV)")
    p.add_argument("--driver", default="eastron-sdm630")
    p.add_argument("--dir", action="append", default=[], help="extra drivers folder")
    p.add_argument("--meters", type=_positive_int, default=3)
    p.add_argument("--days", type=_positive_float, default=1.0)
    p.add_argument("--interval-s", type=_positive_float, default=60.0)
    p.add_argument("--seed", type=_seed, default=1)
    p.add_argument(
        "--fault-rate", type=_fault_rate, default=0.5, help="random faults per meter-hour"
    )
    p.add_argument("--faults", default=",".join(_fault_names()), help="comma-separated kinds")
    p.add_argument(
        "--profile",
        default="commercial",
        choices=["residential", "commercial", "industrial", "flat"],
    )
    p.add_argument("--start", default="2026-01-05T00:00:00", help="UTC start, ISO 8601")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.set_defaults(func=_cmd_simulate)
    add_replay_command(sub)
    p = sub.add_parser("bench", help="measure capacity on this machine; prints JSON")
    p.add_argument(
        "--only",
        choices=[
            "pipeline",
            "modbus",
            "analytics",
            "forward",
            "drain",
            "wire",
            "reconnect",
            "farm",
            "soak",
            "fleet",
        ],
        help="run one section (reconnect, farm, soak and fleet run only when named: minutes each)",
    )
    p.add_argument(
        "--seconds", type=_positive_float, default=None, help="length of each run (10; farm: 30)"
    )
    p.add_argument(
        "--drain-backlog",
        type=_positive_int,
        default=None,
        help="samples in the drain section's backlog (default 1000000)",
    )
    add_soak_options(p)
    p.add_argument("--meters", type=_positive_int, default=None, help="farm: meters (200)")
    p.add_argument(
        "--connections", type=_positive_int, default=None, help="farm: Modbus TCP connections (4)"
    )
    p.add_argument(
        "--headroom", action="store_true", help="farm: add meters until delivery drops below 99 %%"
    )
    p.add_argument(
        "--farm-engine",
        choices=("pymodbus", "gridedge"),
        default="pymodbus",
        help="farm: the emulators' Modbus TCP server (gridedge: about half the CPU per request)",
    )
    p.add_argument(
        "--farm-batch-scope",
        choices=("device", "gateway"),
        default="device",
        help="farm: the upstream's batch_scope (gateway: one message for many meters)",
    )
    p.add_argument(
        "--fleet-meters",
        type=_positive_int,
        default=None,
        help="simulated meters in the fleet section (default 5000)",
    )
    p.add_argument(
        "--fleet-minutes",
        type=_positive_float,
        default=None,
        help="simulated minutes of the fleet section (default 30)",
    )
    p.set_defaults(func=_cmd_bench)
    add_emulate_command(sub)
    add_scan_command(sub)
    return parser


def _fault_names() -> list[str]:
    from gridedge.simulator.faults import FaultKind

    return [k.value for k in FaultKind]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gridedge`` console script.

    Every mistake in the arguments, the files they name or the config is one line on stderr
    and exit status 2; anything unexpected is exit status 1.
    """
    command = "gridedge"
    try:
        args = build_parser().parse_args(argv)
        command = f"gridedge {args.command}"
        return int(args.func(args))
    except (ConfigError, OutboxError, LinkError) as exc:
        return _say(command, str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        return EXIT_OK  # the reader went away (``| head``): not a failure of ours
    except OSError as exc:
        return _say(command, _os_problem(exc), EXIT_USAGE)
    except GridedgeError as exc:
        return _say(command, str(exc), EXIT_CRASH)
    except Exception as exc:
        # A bug: the traceback is logged, the message kept short (an exception may carry a
        # whole file's bytes, as UnicodeDecodeError does).
        get_logger("cli").exception("gridedge.crashed", error=repr(exc)[:300])
        return EXIT_CRASH


def _say(command: str, message: str, status: int) -> int:
    """Print ``message`` as exactly one line on stderr; returns ``status``."""
    line = " ".join(message.split())
    print(f"{command}: {line}", file=sys.stderr)
    return status


def _os_problem(exc: OSError) -> str:
    """An OS error as "file: reason", with a hint for a port that is taken."""
    where = f"{exc.filename}: " if exc.filename else ""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        reason += "; choose another port (or port = 0 for any free one)"
    return where + reason
