"""The simulated load every bench section drives: many simulated meters, HTTP and analytics off."""

from __future__ import annotations

from pathlib import Path

from gridedge.config import Config, parse_config


def simulated_load_config(
    folder: Path, *, meters: int, interval_s: float, **sections: object
) -> Config:
    """A config for bench runs: ``meters`` simulated SDM630s every ``interval_s``, an outbox
    in ``folder``, HTTP and analytics off; ``sections`` adds or replaces top-level tables.
    """
    doc: dict[str, object] = {
        "gateway": {"id": "bench", "site": "bench"},
        "outbox": {"path": "outbox.sqlite3", "max_bytes": 4 * 1024**3},
        "http": {"enabled": False},
        "analytics": {"enabled": False},
        "meters": [
            {
                "id": "sim",
                "driver": "eastron-sdm630",
                "count": meters,
                "interval_s": interval_s,
                "link": {"type": "simulated", "seed": 1},
            }
        ],
        **sections,
    }
    return parse_config(doc, source="<bench>", base_dir=folder)
