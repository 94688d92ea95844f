"""Which config a command reads: the one given with ``-c``, or the embedded demo."""

from __future__ import annotations

from pathlib import Path

from gridedge.config import Config, load_config, parse_config
from gridedge.tomlread import load_toml

_PACKAGE = Path(__file__).resolve().parents[1]
# The wheel carries the example config inside the package; a source checkout has it at the top.
EXAMPLE_CONFIG = next(
    (
        p
        for p in (_PACKAGE / "_example_config.toml", _PACKAGE.parent / "config.example.toml")
        if p.is_file()
    ),
    _PACKAGE.parent / "config.example.toml",
)


def config_or_example(path: str | None) -> Config:
    """Load ``path``, or the embedded example config (paths relative to the working dir)."""
    if path is not None:
        return load_config(Path(path))
    return parse_config(load_toml(EXAMPLE_CONFIG), source="<embedded default>", base_dir=Path.cwd())
