"""``gridedge bench --only soak`` options: the soak's plan from the command line."""

from __future__ import annotations

import argparse
import dataclasses

from gridedge.bench.soak import SoakPlan
from gridedge.errors import ConfigError

# option -> (SoakPlan field, type, smallest value allowed, help)
_OPTIONS: dict[str, tuple[str, type[int] | type[float], float, str]] = {
    "--soak-cycles": ("cycles", int, 1, "daemon starts, each ended by SIGKILL"),
    "--soak-cycle-s": ("cycle_s", float, 0.1, "longest run of the daemon per cycle, seconds"),
    "--soak-outage-s": ("outage_s", float, 0, "how long the broker is down, seconds"),
    "--soak-outage-cycle": ("outage_cycle", int, 0, "cycle at whose start the broker stops"),
    "--soak-move-aside-cycle": (
        "move_aside_cycle",
        int,
        0,
        "cycle before which the outbox is moved aside (0: never)",
    ),
    "--soak-meters": ("meters", int, 1, "simulated SDM630 meters"),
    "--soak-interval-s": ("interval_s", float, 0.01, "their polling interval, seconds"),
    "--soak-seed": ("seed", int, 0, "seed of the kill times"),
}


def add_soak_options(parser: argparse.ArgumentParser) -> None:
    """Add one option per :class:`SoakPlan` field, defaulting to the full soak's value."""
    defaults = SoakPlan()
    for option, (field, kind, _, text) in _OPTIONS.items():
        parser.add_argument(
            option,
            dest=f"soak_{field}",
            type=kind,
            default=getattr(defaults, field),
            help=f"soak: {text} (default {getattr(defaults, field)})",
        )


def soak_plan_of(args: argparse.Namespace) -> SoakPlan:
    """The plan the options describe.

    Raises:
        ConfigError: a value below its bound, or a cycle number past ``--soak-cycles``.
    """
    values = {field: getattr(args, f"soak_{field}") for field, *_ in _OPTIONS.values()}
    for option, (field, _, least, _) in _OPTIONS.items():
        if values[field] < least:
            raise ConfigError(option, f"must be at least {least}, got {values[field]}")
    for field in ("outage_cycle", "move_aside_cycle"):
        if values[field] > values["cycles"]:
            option = "--soak-" + field.replace("_", "-")
            raise ConfigError(option, f"cycle {values[field]} is past --soak-cycles")
    return dataclasses.replace(SoakPlan(), **values)
