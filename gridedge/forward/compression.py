"""Compression of batch messages (``compression = "gzip" | "zstd" | "none"``, per upstream).

The one module that imports ``zstandard`` (an optional extra: ``pip install gridedge[zstd]``);
gzip is the standard library's. Only messages that carry more than one envelope are
compressed: a single envelope is small, and a broker's retained status stays readable.

A consumer tells the three apart by the payload's first bytes, under any MQTT version: JSON and
line protocol start with ``{`` or a letter, gzip with ``1f 8b``, zstd with ``28 b5 2f fd`` (each
format's own magic number). Under MQTT 5 a compressed message also carries the user property
``content-encoding`` (``gzip`` or ``zstd``) and the content type of the text inside it.
"""

from __future__ import annotations

import gzip
import importlib
from collections.abc import Callable
from enum import StrEnum
from types import ModuleType

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Compression(StrEnum):
    """How batch messages are compressed."""

    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


def _zstandard() -> ModuleType | None:
    try:
        return importlib.import_module("zstandard")
    except ImportError:
        return None


def available(compression: Compression) -> bool:
    """Whether this installation can compress with ``compression``."""
    return compression is not Compression.ZSTD or _zstandard() is not None


def compressor(compression: Compression) -> Callable[[bytes], bytes] | None:
    """The function that compresses a payload; None for ``none``.

    Raises:
        RuntimeError: ``zstd`` without the ``zstandard`` package (``gridedge check`` says so
            before a daemon ever gets here).
    """
    if compression is Compression.NONE:
        return None
    if compression is Compression.GZIP:
        # Level 6 takes most of level 9's gain at a third of its time.
        return lambda data: gzip.compress(data, compresslevel=6, mtime=0)
    zstandard = _zstandard()
    if zstandard is None:
        raise RuntimeError("compression = zstd needs the zstandard package")
    compress: Callable[[bytes], bytes] = zstandard.ZstdCompressor(level=3).compress
    return compress


def decompress(payload: bytes) -> bytes:
    """A payload as sent before compression, told apart by its first bytes (see above).

    Raises:
        RuntimeError: a zstd payload without the ``zstandard`` package.
    """
    if payload.startswith(GZIP_MAGIC):
        return gzip.decompress(payload)
    if payload.startswith(ZSTD_MAGIC):
        zstandard = _zstandard()
        if zstandard is None:
            raise RuntimeError("a zstd payload needs the zstandard package to read")
        data: bytes = zstandard.ZstdDecompressor().decompress(payload)
        return data
    return payload
