"""Stored bodies go out as stored; batch compression and how a consumer tells it apart."""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridedge.config import parse_config
from gridedge.errors import ConfigError
from gridedge.forward.compression import GZIP_MAGIC, Compression, compressor, decompress
from gridedge.forward.payload import Identity, entry_json, pack, unpack
from gridedge.model import Envelope, Kind, Sample
from gridedge.outbox.schema import decode, encode

_IDENTITY = Identity("gridedge", "site", "gw-1", "9f2c4e1a7b3d5f60")
_bodies = st.dictionaries(
    st.sampled_from(["values", "quality", "seq", "ts", "kind", "note", "envelopes"]),
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(),
        st.text(max_size=5),
        st.dictionaries(st.sampled_from(["seq", "voltage_l1"]), st.floats(), max_size=2),
    ),
    max_size=4,
)


def _stored(envelope: Envelope, seq: int = 7) -> Envelope:
    return decode(seq, *encode(envelope))


@given(_bodies)
def test_a_stored_body_forwards_exactly_as_the_same_body_encoded_anew(
    body: dict[str, object],
) -> None:
    """Copying the stored text gives the same entry as encoding the parsed body (renames of
    reserved keys and NaN as null included).
    """
    stored = _stored(Envelope(Kind.ALERT, "mains", 1767571200.25, body))
    assert stored.stored_body is not None
    parsed = dataclasses.replace(stored, stored_body=None)
    assert entry_json(stored) == entry_json(parsed)


def test_batches_compress_and_single_envelopes_stay_plain() -> None:
    """Gzip output starts with its magic number and decompresses to the batch's JSON."""
    envelopes = [
        _stored(Envelope.of_sample(Sample("mains", 1767571200.0 + i, {"voltage_l1": 231.2})), i)
        for i in range(1, 4)
    ]
    (batch,) = pack(envelopes, _IDENTITY, 65536)
    compress = compressor(Compression.GZIP)
    assert compress is not None
    packed = compress(batch.payload)
    assert packed.startswith(GZIP_MAGIC)
    assert decompress(packed) == batch.payload == gzip.decompress(packed)
    assert [e["seq"] for e in unpack(decompress(packed))] == [1, 2, 3]
    assert decompress(batch.payload) == batch.payload  # plain JSON passes through
    assert compressor(Compression.NONE) is None


def test_zstd_without_the_package_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    """``compression = "zstd"`` needs zstandard; without it the config names the key."""
    doc = {
        "gateway": {"id": "gw-1", "site": "s"},
        "upstreams": [{"name": "up", "host": "h", "compression": "zstd"}],
    }
    if importlib.util.find_spec("zstandard") is not None:
        (up,) = parse_config(doc, source="t.toml", base_dir=tmp_path).upstreams
        assert up.compression is Compression.ZSTD
        return
    with pytest.raises(ConfigError, match=r"upstreams\[0\]\.compression.*zstandard"):
        parse_config(doc, source="t.toml", base_dir=tmp_path)


def test_an_unknown_compression_is_refused(tmp_path: Path) -> None:
    """Only none, gzip and zstd."""
    doc = {
        "gateway": {"id": "gw-1", "site": "s"},
        "upstreams": [{"name": "up", "host": "h", "compression": "lz4"}],
    }
    with pytest.raises(ConfigError, match="compression"):
        parse_config(doc, source="t.toml", base_dir=tmp_path)
