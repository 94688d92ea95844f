"""``gridedge outbox tail``: the stored envelopes as JSON lines, the newest last.

The outbox file is opened read-only (SQLite ``mode=ro``), so tailing never blocks or changes
what a running daemon does. ``--follow`` then polls for envelopes after the last one printed,
at a bounded interval, until SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from gridedge.errors import ConfigError, OutboxError
from gridedge.model import Envelope, Kind
from gridedge.outbox.schema import decode

_COLUMNS = "seq, kind, device, ts, urgent, body"
_FOLLOW_BATCH = 1000
MIN_INTERVAL_S, MAX_INTERVAL_S = 0.05, 60.0
"""Bounds of ``--interval-s``: often enough to feel live, never a busy loop."""


def add_tail_command(outbox: argparse.ArgumentParser) -> None:
    """Register ``gridedge outbox tail`` under the ``outbox`` command's parser."""
    sub = outbox.add_subparsers(dest="outbox_command", metavar="{tail}")
    p = sub.add_parser("tail", help="print stored envelopes as JSON lines")
    # SUPPRESS: an absent -c here must not hide one given before "tail".
    p.add_argument("-c", "--config", default=argparse.SUPPRESS, help="config file (TOML)")
    p.add_argument("--path", help="the outbox file (instead of the config's outbox.path)")
    p.add_argument("-n", type=_count, default=10, help="how many of the newest (default 10)")
    p.add_argument("--kind", choices=[k.value for k in Kind], help="only envelopes of this kind")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new envelopes")
    p.add_argument(
        "--interval-s",
        type=_interval,
        default=0.5,
        help=f"how often --follow looks ({MIN_INTERVAL_S}..{MAX_INTERVAL_S} s, default 0.5)",
    )
    p.set_defaults(func=_cmd_tail)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) > 1_000_000:
        raise argparse.ArgumentTypeError(f"expected an integer 0..1000000, got {text!r}")
    return int(text)


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:
        raise argparse.ArgumentTypeError(
            f"expected seconds {MIN_INTERVAL_S}..{MAX_INTERVAL_S}, got {text!r}"
        )
    return value


def _cmd_tail(args: argparse.Namespace) -> int:
    path = _outbox_path(args)
    kind = Kind(args.kind) if args.kind else None
    with _open_read_only(path) as db:
        # The end is read first: what is committed while the last lines print is followed.
        end = _last_seq(db) if args.follow else 0
        last = 0
        for envelope in read_last(db, args.n, kind):
            last = _print(envelope, sys.stdout)
        if not args.follow:
            return 0
        last = max(last, end)
        while True:
            for envelope in read_after(db, last, kind):
                last = _print(envelope, sys.stdout)
            sys.stdout.flush()
            time.sleep(args.interval_s)  # a poll interval, ended by SIGINT


def _outbox_path(args: argparse.Namespace) -> Path:
    if args.path is not None:
        return Path(args.path)
    from gridedge.cli.configs import config_or_example

    path: Path = config_or_example(getattr(args, "config", None)).outbox.path
    return path


@contextlib.contextmanager
def _open_read_only(path: Path) -> Iterator[sqlite3.Connection]:
    if not path.is_file():
        raise ConfigError("outbox.path", f"no outbox file at {path}")
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot open outbox {path} read-only: {exc}") from None
    try:
        db.execute("SELECT seq FROM envelopes LIMIT 0")
    except sqlite3.DatabaseError as exc:
        db.close()
        raise OutboxError(f"{path} is not a gridedge outbox: {exc}") from None
    try:
        yield db
    finally:
        db.close()


def read_last(db: sqlite3.Connection, n: int, kind: Kind | None) -> list[Envelope]:
    """The ``n`` newest envelopes (of ``kind``, when given), oldest first."""
    where, params = _kind_filter(kind)
    rows = _query(
        db,
        f"SELECT {_COLUMNS} FROM envelopes{where} ORDER BY seq DESC LIMIT ?",
        (*params, n),
    )
    return [decode(*row) for row in reversed(rows)]


def read_after(db: sqlite3.Connection, seq: int, kind: Kind | None) -> list[Envelope]:
    """Envelopes after ``seq`` (of ``kind``, when given), in seq order, at most one batch."""
    where, params = _kind_filter(kind)
    where = f"{where} AND seq > ?" if where else " WHERE seq > ?"
    return [
        decode(*row)
        for row in _query(
            db,
            f"SELECT {_COLUMNS} FROM envelopes{where} ORDER BY seq LIMIT ?",
            (*params, seq, _FOLLOW_BATCH),
        )
    ]


def _last_seq(db: sqlite3.Connection) -> int:
    rows = _query(db, "SELECT COALESCE(MAX(seq), 0) FROM envelopes", ())
    return int(rows[0][0])


def _kind_filter(kind: Kind | None) -> tuple[str, tuple[str, ...]]:
    return (" WHERE kind = ?", (kind.value,)) if kind is not None else ("", ())


def _query(db: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> list[Any]:
    try:
        # A read in autocommit mode: each query sees the newest committed state.
        return list(db.execute(sql, params))
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot read outbox: {exc}") from None


def envelope_json(envelope: Envelope) -> str:
    """One envelope as one compact JSON line: seq, kind, device, ts (RFC 3339), urgent, body."""
    ts = dt.datetime.fromtimestamp(envelope.ts, dt.UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {
            "seq": envelope.seq,
            "kind": envelope.kind.value,
            "device": envelope.device,
            "ts": ts,
            "urgent": envelope.urgent,
            "body": envelope.body,
        },
        separators=(",", ":"),
    )


def _print(envelope: Envelope, out: TextIO) -> int:
    out.write(envelope_json(envelope) + "\n")
    return envelope.seq or 0
