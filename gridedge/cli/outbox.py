"""The ``outbox`` command: statistics of the outbox file, or moving a damaged one aside."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from gridedge.config import Config
from gridedge.outbox.schema import OutboxStats


def add_outbox_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    load: Callable[[str | None], Config],
    with_config: Callable[[argparse.ArgumentParser], None],
) -> argparse.ArgumentParser:
    """Register ``gridedge outbox``; ``load`` reads the ``-c`` config (or the default).

    Returns:
        the command's parser, for subcommands such as ``tail``.
    """
    p = sub.add_parser(
        "outbox",
        help="print outbox statistics (works while the daemon runs), or move a damaged file aside",
    )
    with_config(p)
    p.add_argument(
        "--move-aside",
        action="store_true",
        help="rename the outbox file (and its WAL) with a timestamp so that the next start"
        " creates a fresh one under a new epoch; refused while a daemon owns it",
    )
    p.set_defaults(func=functools.partial(_cmd_outbox, load=load))
    return p


def _cmd_outbox(args: argparse.Namespace, *, load: Callable[[str | None], Config]) -> int:
    from gridedge.outbox.files import OwnerLock, move_aside
    from gridedge.outbox.store import read_stats

    path = load(args.config).outbox.path
    if args.move_aside:
        lock = OwnerLock(path)
        lock.acquire()  # a running daemon keeps its file: OutboxError naming its pid
        try:
            moved = move_aside(path, dt.datetime.now(dt.UTC))
        finally:
            lock.release()
        print(json.dumps({"moved": [str(p) for p in moved], "fresh_outbox_at": str(path)}))
        return 0
    print(json.dumps(_jsonable(read_stats(path)), indent=2, default=str))
    return 0


def _jsonable(stats: OutboxStats) -> dict[str, object]:
    out = asdict(stats)
    for key in ("oldest_ts", "newest_ts"):
        if isinstance(out.get(key), float):
            out[key.removesuffix("_ts")] = _iso(out[key])
    out["upstreams"] = _upstreams(out)
    return out


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
            "quarantined": stats.get("quarantined", {}).get(name, {}),
        }
    return view


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")
