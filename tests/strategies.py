"""Hypothesis strategies for the parsers' fuzz tests: structured mutations of valid inputs.

Random bytes mostly exercise the first line of a parser. These strategies start from documents
that are valid and change one thing the way people and tools do: a key deleted or misspelt, a
value of the wrong type, a huge or non-finite number, odd unicode, a truncated file, a Latin-1
byte, a byte order mark, a file saved as UTF-16.
"""

from __future__ import annotations

import codecs
import copy
import json
import math
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

Doc = dict[str, Any]
Path_ = tuple[str | int, ...]

# --- TOML text ---------------------------------------------------------------------------------


def toml_value(value: object) -> str:
    """``value`` as TOML text (tables inline, so any nesting fits on one line)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{_toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
        )
    raise TypeError(type(value).__name__)


def _toml_string(text: str) -> str:
    # JSON escapes are TOML basic-string escapes, except that TOML wants DEL escaped too.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_document(doc: Doc) -> str:
    """A whole document: one ``key = value`` line per top-level key."""
    return "".join(f"{_toml_string(k)} = {toml_value(v)}\n" for k, v in doc.items())


# --- values --------------------------------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
HUGE_NUMBERS = st.sampled_from(
    [10**19, -(10**19), 10**400, 2**63, 2**64 - 1, 1e308, -1e308, 1.7976931348623157e308, 5e-324]
)
"""Integers past 64 bits and floats at the edge of their range."""
ODD_STRINGS = st.sampled_from(
    ["", " ", "Zähler", "😀", "a/b", "a+b#", "../..", "\u202e", "x" * 300, "\t", "NaN", "0x10"]
)

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    HUGE_NUMBERS,
    ODD_STRINGS,
    _text,
)
"""Any TOML scalar: every type, the ranges' edges, and strings people do not expect."""

toml_values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(_text, scalars, max_size=2),
)


# --- structured mutations ------------------------------------------------------------------------


def paths(doc: object, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every key path in ``doc`` (tables and array items included), parents first."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield (*prefix, i)
            yield from paths(value, (*prefix, i))


def _parent(doc: Any, path: Path_) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


@st.composite
def mutated(draw: st.DrawFn, base: Doc) -> Doc:
    """``base`` with one change: a value replaced, a key deleted, misspelt or added."""
    doc = copy.deepcopy(base)
    path = draw(st.sampled_from(list(paths(doc))))
    parent = _parent(doc, path)
    last = path[-1]
    action = draw(st.sampled_from(["replace", "replace", "delete", "rename", "add"]))
    if action == "replace":
        parent[last] = draw(toml_values)
    elif action == "delete":
        del parent[last]
    elif isinstance(parent, dict) and isinstance(last, str):
        if action == "rename":
            parent[last + draw(st.sampled_from(["s", "_", "x"]))] = parent.pop(last)
        else:
            parent[draw(_text.filter(lambda k: k not in parent))] = draw(toml_values)
    return doc


@st.composite
def damaged(draw: st.DrawFn, text: str) -> bytes:
    """``text`` as bytes the way files get damaged: truncated, a foreign byte, BOMs, UTF-16."""
    data = text.encode("utf-8")
    if draw(st.booleans()):
        return data  # half of the examples test the structured mutation alone
    damage = draw(st.sampled_from(["truncate", "latin1", "byte", "bom8", "utf16", "nul"]))
    at = draw(st.integers(0, len(data)))
    if damage == "truncate":
        return data[:at]
    if damage == "latin1":  # a German comment saved by an editor set to Latin-1
        return data[:at] + b"# Z\xe4hler\n" + data[at:]
    if damage == "byte":
        return data[:at] + bytes([draw(st.integers(0x80, 0xFF))]) + data[at:]
    if damage == "bom8":
        return codecs.BOM_UTF8 + data
    if damage == "utf16":
        return text.encode("utf-16")
    return data[:at] + b"\0" + data[at:]


# --- documents -------------------------------------------------------------------------------


def base_config() -> Doc:
    """A valid config using most sections: simulated and Modbus meters, an upstream, analytics."""
    return {
        "gateway": {"id": "gw", "site": "lab"},
        "log": {"level": "info", "format": "json"},
        "outbox": {"path": "data/outbox.sqlite3", "max_bytes": 1048576, "on_full": "drop_oldest"},
        "http": {"port": 0},
        "analytics": {"alerts": {"raise_threshold": 0.6, "clear_threshold": 0.4}},
        "meters": [
            {
                "id": "sim",
                "driver": "eastron-sdm630",
                "interval_s": 5.0,
                "count": 2,
                "link": {
                    "type": "simulated",
                    "seed": 3,
                    "rated_current_a": 80.0,
                    "faults": {
                        "rate_per_hour": 1.0,
                        "schedule": [{"kind": "sag", "at_s": 60.0, "magnitude": 0.3}],
                    },
                },
            },
            {
                "id": "tcp",
                "driver": "eastron-sdm120",
                "link": {"type": "modbus-tcp", "host": "127.0.0.1", "port": 502, "unit_id": 1},
            },
        ],
        "upstreams": [
            {"name": "cloud", "host": "127.0.0.1", "port": 1883, "tls": False, "window": 8}
        ],
    }


def base_driver() -> Doc:
    """A valid driver file with every kind of channel setting."""
    return {
        "driver": {
            "id": "fuzz-meter",
            "manufacturer": "Acme",
            "model": "F1",
            "phases": 1,
            "source": "made up for tests",
        },
        "nominal": {"voltage_v": 230.0, "frequency_hz": 50.0, "current_a": 60.0},
        "modbus": {"byte_order": "big", "word_order": "little", "max_registers_per_request": 40},
        "channels": {
            "voltage_l1": {"address": 0, "type": "float32", "min": 0.0, "max": 500.0},
            "current_l1": {"address": 6, "type": "uint16", "scale": 0.01, "table": "input"},
            "energy_import": {"address": 72, "type": "uint32", "scale": 0.001, "offset": 1.0},
            "frequency": {"address": 70, "type": "int16", "scale_factor_address": 80},
        },
    }


CSV_NAMES = st.sampled_from(
    ["voltage_l1", "power", "anomaly", "fault", "label", "ts", "Zähler", "note", "", "timestamp"]
)
_readings = st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: f"{v:.4f}")
_cells = st.one_of(
    _readings,
    _readings,
    _readings,
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["", "nan", "1,5", "spike", "sag+swell", "1e308", "-1e400", '"q"', "0x1"]),
    _text,
)
_good_stamps = st.integers(0, 10**6).map(
    lambda s: f"2026-01-05T{s // 3600 % 24:02d}:{s // 60 % 60:02d}:00Z"
)
_stamps = st.one_of(
    _good_stamps,
    _good_stamps,
    _good_stamps,
    st.sampled_from(["2026-01-05 00:00:00", "", "yesterday", "9999-12-31T23:59:59-23:59", "1"]),
)


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    """A recorded series as ``gridedge simulate`` or a spreadsheet writes it, or nearly."""
    sep = draw(st.sampled_from([",", ";"]))
    names = ["timestamp", *draw(st.lists(CSV_NAMES, min_size=0, max_size=4, unique=True))]
    lines = [sep.join(names)]
    dirty = draw(st.integers(0, 12))  # this row (if any) is where the file goes wrong
    for row in range(draw(st.integers(0, 12))):
        if row != dirty:
            cells = [draw(_good_stamps)] + [draw(_readings) for _ in names[1:]]
        else:
            width = draw(st.integers(max(0, len(names) - 2), len(names) + 1))
            cells = [draw(_stamps)] + [draw(_cells) for _ in range(width - 1)]
        lines.append(sep.join(cells))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))
