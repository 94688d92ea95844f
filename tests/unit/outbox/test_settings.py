"""The [outbox] section: the smallest max_bytes whose on-disk bound holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridedge.config import parse_config
from gridedge.errors import ConfigError

DOC = {
    "gateway": {"id": "gw", "site": "s"},
    "meters": [{"id": "m1", "driver": "eastron-sdm630", "link": {"type": "simulated"}}],
}


def test_a_max_bytes_below_one_mib_is_refused_naming_the_key(tmp_path: Path) -> None:
    """64 KiB, the old minimum, is now an error on outbox.max_bytes."""
    with pytest.raises(ConfigError) as info:
        parse_config({**DOC, "outbox": {"max_bytes": 65536}}, source="t.toml", base_dir=tmp_path)
    assert info.value.path == "outbox.max_bytes"


def test_one_mib_is_accepted(tmp_path: Path) -> None:
    """1 MiB is the smallest cap."""
    config = parse_config({**DOC, "outbox": {"max_bytes": 1 << 20}}, source="t", base_dir=tmp_path)
    assert config.outbox.max_bytes == 1 << 20
