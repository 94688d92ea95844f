"""Render a validated configuration back to TOML, secrets redacted.

``gridedge check`` prints this: the effective configuration with every default filled in, in a
form that can be read back. Dataclass field metadata steers the rendering: ``hidden`` fields
are left out, and so is an empty ``tables`` field (an array of tables with no entry),
``secret`` values are replaced by ``"<redacted>"``, ``flatten`` writes a nested value's fields
into its parent table, and ``first`` puts a field at the top of its table.
"""

from __future__ import annotations

import json
import math
from dataclasses import Field, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

REDACTED = "<redacted>"


def dump_toml(obj: Any) -> str:
    """Render a dataclass instance (the root table) as TOML text."""
    out: list[str] = []
    _table(obj, "", out, array=False)
    return "\n".join(out).strip() + "\n"


def _is_table(value: Any) -> bool:
    return is_dataclass(value) and not isinstance(value, type)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, tuple | list) and bool(value) and all(_is_table(v) for v in value)


def _entries(obj: Any) -> list[tuple[str, Any, Field[Any]]]:
    """The (key, value, field) triples of a table, flattened and ordered."""
    result: list[tuple[str, Any, Field[Any]]] = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("hidden") or (f.metadata.get("tables") and not value):
            continue
        if f.metadata.get("flatten"):
            result.extend(_entries(value))
        elif f.metadata.get("first"):
            result.insert(0, (f.name, value, f))
        else:
            result.append((f.name, value, f))
    return result


def _table(obj: Any, path: str, out: list[str], *, array: bool) -> None:
    entries = _entries(obj)
    scalars = [(k, v, f) for k, v, f in entries if not (_is_table(v) or _is_table_array(v))]
    nested = [(k, v) for k, v, _ in entries if _is_table(v) or _is_table_array(v)]
    if path:
        out.append("")
        out.append(f"[[{path}]]" if array else f"[{path}]")
    for key, value, f in scalars:
        if value is None:
            continue
        shown = REDACTED if f.metadata.get("secret") else value
        out.append(f"{key} = {_scalar(shown)}")
    for key, value in nested:
        sub = f"{path}.{key}" if path else key
        if _is_table(value):
            _table(value, sub, out, array=False)
        else:
            for item in value:
                _table(item, sub, out, array=True)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return json.dumps(str(value.value))
    if isinstance(value, Path | str):
        return json.dumps(str(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__} as TOML")
