"""Command line: ``gridedge run | check | drivers | outbox | simulate | replay | bench | emulate |
scan``.

Exit status: 0 success, 2 bad configuration or input, 1 anything unexpected.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gridedge import __version__
from gridedge.analytics.replay import add_replay_command
from gridedge.cli.modbus import add_emulate_command, add_scan_command
from gridedge.config import Config, load_config, parse_config
from gridedge.configdump import dump_toml
from gridedge.drivers import BUILTIN_DRIVERS_DIR, load_drivers
from gridedge.errors import ConfigError, GridedgeError, OutboxError
from gridedge.log import LogFormat, LogLevel, configure, get_logger
from gridedge.tomlread import load_toml

EXIT_OK, EXIT_CRASH, EXIT_USAGE = 0, 1, 2

_PACKAGE = Path(__file__).resolve().parents[1]  # the gridedge package, above cli/
# The wheel carries the example config inside the package; a source checkout has it at the top.
EXAMPLE_CONFIG = next(
    (
        p
        for p in (_PACKAGE / "_example_config.toml", _PACKAGE.parent / "config.example.toml")
        if p.is_file()
    ),
    _PACKAGE.parent / "config.example.toml",
)


def _config(path: str | None) -> Config:
    """Load ``path``, or the embedded example config (paths relative to the working dir)."""
    if path is not None:
        return load_config(Path(path))
    return parse_config(load_toml(EXAMPLE_CONFIG), source="<embedded default>", base_dir=Path.cwd())


def _cmd_run(args: argparse.Namespace) -> int:
    from gridedge import daemon  # deferred: the other commands need not import the daemon

    config = _config(args.config)
    configure(config.log.level, config.log.format)
    asyncio.run(daemon.run(config))
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    config = _config(args.config)
    sys.stdout.write(dump_toml(config))
    return EXIT_OK


def _cmd_drivers(args: argparse.Namespace) -> int:
    dirs = [BUILTIN_DRIVERS_DIR]
    if args.config is not None:
        dirs = [BUILTIN_DRIVERS_DIR]
        gw = load_config(Path(args.config)).gateway
        if gw.drivers_dir is not None:
            dirs.append(gw.drivers_dir)
    dirs.extend(Path(d) for d in args.dir)
    drivers = load_drivers(dirs)
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


def _cmd_outbox(args: argparse.Namespace) -> int:
    from gridedge.outbox.store import read_stats

    config = _config(args.config)
    stats = read_stats(config.outbox.path)
    print(json.dumps(_jsonable(stats), indent=2, default=str))
    return EXIT_OK


def _jsonable(stats: object) -> dict[str, object]:
    from dataclasses import asdict

    out = asdict(stats)  # type: ignore[call-overload]
    for key in ("oldest_ts", "newest_ts"):
        if isinstance(out.get(key), float):
            out[key.removesuffix("_ts")] = _iso(out[key])
    out["upstreams"] = _upstreams(out)
    return dict(out)


def _upstreams(stats: dict[str, Any]) -> dict[str, object]:
    """Per upstream: cursor, backlog, the oldest unsent envelope and its age, dropped unsent."""
    now = dt.datetime.now(dt.UTC).timestamp()
    view: dict[str, object] = {}
    for name, cursor in stats["cursors"].items():
        oldest = stats["oldest_unsent_ts"].get(name)
        view[name] = {
            "cursor": cursor,
            "backlog": stats["backlog"].get(name, 0),
            "oldest_unsent": _iso(oldest) if oldest is not None else None,
            "oldest_unsent_age_s": round(now - oldest, 1) if oldest is not None else None,
            "dropped_unsent": stats["dropped_unsent"].get(name, 0),
        }
    return view


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def _cmd_simulate(args: argparse.Namespace) -> int:
    from gridedge.simulator.dataset import write_dataset
    from gridedge.simulator.faults import FaultKind, FaultPlan
    from gridedge.simulator.physics import LoadProfile, SimulationParams

    drivers = load_drivers([BUILTIN_DRIVERS_DIR, *(Path(d) for d in args.dir)])
    if args.driver not in drivers:
        raise ConfigError(
            "--driver", f"unknown driver {args.driver!r}; available: " + ", ".join(sorted(drivers))
        )
    try:
        kinds = tuple(FaultKind(k) for k in args.faults.split(",") if k)
        start = dt.datetime.fromisoformat(args.start).replace(tzinfo=dt.UTC).timestamp()
    except ValueError as exc:
        raise ConfigError("", f"bad argument: {exc}") from None
    paths = write_dataset(
        Path(args.out),
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


def _cmd_bench(args: argparse.Namespace) -> int:
    from gridedge.bench.run import run_bench

    configure(LogLevel.WARNING, LogFormat.JSON)
    result = run_bench(only=args.only, seconds=args.seconds, drain_backlog=args.drain_backlog)
    print(json.dumps(result, indent=2))
    return EXIT_OK


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number greater than 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected an integer greater than 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(prog="gridedge", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gridedge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

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
    p.set_defaults(func=_cmd_drivers)
    p = sub.add_parser("outbox", help="print outbox statistics (works while the daemon runs)")
    with_config(p)
    p.set_defaults(func=_cmd_outbox)
    p = sub.add_parser("simulate", help="write a labelled dataset of simulated meters (CSV)")
    p.add_argument("--driver", default="eastron-sdm630")
    p.add_argument("--dir", action="append", default=[], help="extra drivers folder")
    p.add_argument("--meters", type=_positive_int, default=3)
    p.add_argument("--days", type=_positive_float, default=1.0)
    p.add_argument("--interval-s", type=_positive_float, default=60.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--fault-rate", type=float, default=0.5, help="random faults per meter-hour")
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
        choices=["pipeline", "modbus", "analytics", "forward", "drain"],
        help="run one section",
    )
    p.add_argument("--seconds", type=_positive_float, default=10.0, help="length of each run")
    p.add_argument(
        "--drain-backlog",
        type=_positive_int,
        default=None,
        help="samples in the drain section's backlog (default 1000000)",
    )
    p.set_defaults(func=_cmd_bench)
    add_emulate_command(sub)
    add_scan_command(sub)
    return parser


def _fault_names() -> list[str]:
    from gridedge.simulator.faults import FaultKind

    return [k.value for k in FaultKind]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gridedge`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"gridedge: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OutboxError as exc:
        print(f"gridedge: outbox error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except GridedgeError as exc:
        get_logger("cli").error("gridedge.failed", error=str(exc))
        return EXIT_CRASH
    except Exception as exc:
        get_logger("cli").exception("gridedge.crashed", error=repr(exc))
        return EXIT_CRASH
