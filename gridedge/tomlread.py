"""Typed, path-aware reading of parsed TOML tables.

Config and driver files are both read through :class:`Table`, so every error names the dotted
key path (``meters[2].link.port``) and what was expected. Unknown keys are errors too: call
:meth:`Table.finish` once every known key was read.
"""

from __future__ import annotations

import codecs
import difflib
import math
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from gridedge.errors import ConfigError

E = TypeVar("E", bound=StrEnum)

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Gateway, site and meter ids: they become MQTT topic levels."""
ID_RULE = "1-64 letters, digits, '_', '.', '-' (no '/', '+', '#': ids become MQTT topic levels)"
_MISSING: Any = object()

MAX_NUMBER = 1e15
"""Largest magnitude a number key takes unless its own bound says otherwise: far beyond any
physical quantity a gateway handles, far below where products and sums of them overflow."""
MAX_INTEGER = 2**63 - 1
"""Largest integer a key takes: SQLite and most arithmetic downstream hold 64-bit integers."""


def describe(value: object) -> str:
    """Name a TOML value's type and show it briefly, for error messages."""
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**40:
        # str() of a huge integer is slow, and refused past 4300 digits.
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    shown = repr(value) if isinstance(value, str) else str(value).lower()
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{names.get(type(value), type(value).__name__)} {shown}"


def load_toml(path: Path, error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """Parse a TOML file, turning I/O, encoding and syntax problems into ``error``.

    The message names the file and where the problem is (a byte offset and line for text that
    is not UTF-8, a line and column for bad TOML), never the file's contents.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error("", "file not found", str(path)) from None
    except IsADirectoryError:
        raise error("", "is a folder, expected a TOML file", str(path)) from None
    except OSError as exc:
        raise error("", f"cannot read: {exc.strerror}", str(path)) from None
    text = decode_utf8(data, lambda problem: error("", problem, str(path)))
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error("", f"invalid TOML: {exc}", str(path)) from None
    except ValueError as exc:  # tomllib's int() refuses integers of more than 4300 digits
        raise error("", f"invalid TOML: {exc}", str(path)) from None


_FOREIGN_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def decode_utf8(data: bytes, fail: Callable[[str], Exception]) -> str:
    """``data`` as text; a UTF-8 byte order mark is dropped (editors on Windows write one).

    Args:
        data: the file's bytes.
        fail: builds the exception to raise from a one-line problem.

    Raises:
        whatever ``fail`` returns: the text is UTF-16/32, holds NUL bytes or is not UTF-8 (the
            problem gives the byte offset and line, not the bytes around it).
    """
    for bom, name in _FOREIGN_BOMS:
        if data.startswith(bom):
            raise fail(f"saved as {name} (byte order mark found); save it as UTF-8")
    data = data.removeprefix(codecs.BOM_UTF8)
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise fail(f"NUL byte at byte {nul} (line {line}): not a text file, or saved as UTF-16")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise fail(
            f"not UTF-8 at byte {exc.start} (line {line}): byte 0x{data[exc.start]:02x}; "
            "save the file as UTF-8"
        ) from None


class Table:
    """A view of one TOML table that remembers which keys were read.

    Args:
        data: the parsed table.
        path: its dotted path from the document root ("" for the root).
        source: file name used in error messages.
        error: the ConfigError subclass to raise.
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        path: str = "",
        source: str | None = None,
        error: type[ConfigError] = ConfigError,
    ) -> None:
        self.data = data
        self.path = path
        self.source = source
        self.error = error
        self._seen: set[str] = set()

    def key_path(self, key: str) -> str:
        """The dotted path of ``key`` in this table."""
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, problem: str) -> ConfigError:
        """Build (not raise) an error about ``key``; ``key`` "" means the table itself."""
        return self.error(self.key_path(key) if key else self.path, problem, self.source)

    def has(self, key: str) -> bool:
        """True when the key is present (and marks it as known)."""
        self._seen.add(key)
        return key in self.data

    def _get(self, key: str, default: Any) -> Any:
        self._seen.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise self.fail(key, "required key is missing")
        return default

    def string(self, key: str, default: Any = _MISSING, *, nonempty: bool = True) -> Any:
        """A string value (``default`` is returned as is when the key is absent)."""
        value = self._get(key, default)
        if key not in self.data:
            return value
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {describe(value)}")
        if nonempty and not value.strip():
            raise self.fail(key, "expected a non-empty string")
        if "\0" in value:
            raise self.fail(key, "expected a string without NUL characters")
        return value

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        """A boolean value."""
        value = self._get(key, default)
        if key in self.data and not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {describe(value)}")
        return value

    def integer(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        min: int | None = None,
        max: int | None = None,
    ) -> Any:
        """An integer within optional bounds."""
        value = self._get(key, default)
        if key not in self.data:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {describe(value)}")
        if not -MAX_INTEGER <= value <= MAX_INTEGER:
            raise self.fail(
                key, f"expected an integer within +-{MAX_INTEGER}, got {describe(value)}"
            )
        self._check_range(key, value, min, max)
        return value

    def number(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        min: float | None = None,
        max: float | None = None,
        positive: bool = False,
    ) -> Any:
        """A number (integers accepted) within optional bounds; ``positive`` means > 0."""
        value = self._get(key, default)
        if key not in self.data:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"expected a number, got {describe(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(key, f"expected a finite number, got {value}")
        if abs(value) > MAX_NUMBER and (max is None or max > MAX_NUMBER):
            raise self.fail(
                key, f"expected a number within +-{MAX_NUMBER:g}, got {describe(value)}"
            )
        if positive and value <= 0:
            raise self.fail(key, f"expected a number greater than 0, got {value}")
        self._check_range(key, value, min, max)
        return float(value)

    def _check_range(self, key: str, value: float, low: float | None, high: float | None) -> None:
        shown = describe(value).removeprefix("an ") if abs(value) > 10**40 else value
        if low is not None and value < low:
            raise self.fail(key, f"expected at least {low}, got {shown}")
        if high is not None and value > high:
            raise self.fail(key, f"expected at most {high}, got {shown}")

    def choice(self, key: str, cls: type[E], default: Any = _MISSING) -> Any:
        """One of a closed set of strings, returned as the StrEnum member."""
        value = self._get(key, default)
        if key not in self.data:
            return value
        allowed = ", ".join(repr(m.value) for m in cls)
        if not isinstance(value, str):
            raise self.fail(key, f"expected one of {allowed}, got {describe(value)}")
        try:
            return cls(value)
        except ValueError:
            raise self.fail(key, f"expected one of {allowed}, got {value!r}") from None

    def strings(self, key: str, default: Any = _MISSING) -> Any:
        """An array of strings, returned as a tuple."""
        value = self._get(key, default)
        if key not in self.data:
            return value
        if not isinstance(value, list):
            raise self.fail(key, f"expected an array of strings, got {describe(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(
                    f"{self.key_path(key)}[{i}]",
                    f"expected a string, got {describe(item)}",
                    self.source,
                )
        return tuple(value)

    def table(self, key: str, *, required: bool = False) -> Table:
        """A sub-table (an empty one when absent and not required)."""
        value = self._get(key, _MISSING if required else {})
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {describe(value)}")
        return Table(value, self.key_path(key), self.source, self.error)

    def tables(self, key: str) -> Iterator[Table]:
        """The entries of an array of tables (``[[key]]``), each with an indexed path."""
        value = self._get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, f"expected an array of tables, got {describe(value)}")
        for i, item in enumerate(value):
            item_path = f"{self.key_path(key)}[{i}]"
            if not isinstance(item, dict):
                raise self.error(item_path, f"expected a table, got {describe(item)}", self.source)
            yield Table(item, item_path, self.source, self.error)

    def items(self) -> Iterator[tuple[str, Table]]:
        """Every key of this table whose value is a table, in file order (marks them known)."""
        for key, value in self.data.items():
            self._seen.add(key)
            if not isinstance(value, dict):
                raise self.fail(key, f"expected a table, got {describe(value)}")
            yield key, Table(value, self.key_path(key), self.source, self.error)

    def finish(self) -> None:
        """Raise for the first key that was never read: it is unknown (likely a typo)."""
        for key in self.data:
            if key not in self._seen:
                hint = difflib.get_close_matches(key, sorted(self._seen), n=1)
                also = f"; did you mean {hint[0]!r}?" if hint else ""
                raise self.fail(key, f"unknown key{also}")
