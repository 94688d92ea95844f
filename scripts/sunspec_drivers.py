#!/usr/bin/env python3
"""Generate gridedge drivers for SunSpec models from the SunSpec Alliance's own model JSON.

The SunSpec Alliance publishes its information models under the Apache License 2.0 in the
``sunspec/models`` repository; the same ``json/model_<id>.json`` files ship inside the
``pysunspec2`` wheel on PyPI (``pip install pysunspec2``). This script reads them from there
(or from ``--models DIR``) and writes one ``drivers/sunspec-*.toml`` per model. The outputs are
committed; ``drivers/NOTICE`` records the source and licence. Rerun after a models update and
review the diff:

    pip install pysunspec2 && python scripts/sunspec_drivers.py

Rules: every numeric point becomes a channel (strings, pads and addresses are left out); known
points get canonical names (see ``gridedge.channels``), the rest ``x_<point_name>``; Wh, varh
and VAh become kWh, kvarh and kVAh; "Pct" power factors become ratios; the SunSpec "not
implemented" value of each type becomes the channel's ``na`` sentinel, except for accumulators,
whose sentinel 0 is also a real reading of a new meter. Addresses assume the standard layout:
"SunS" at 40000, the common model (66 registers) at 40002 and the model's header at 40070;
SunSpec discovery (``sunspec = true`` on the link) shifts them to wherever the device has it.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HEADER_ADDRESS = 40070
COMMON_HEADER_ADDRESS = 40002
MPPT_STRINGS = 4
"""DC strings a generated model 160 driver declares; discovery keeps those the device has."""

MODELS: dict[int, tuple[str, str, int]] = {
    1: ("sunspec-common-1", "common model (device identity)", 1),
    101: ("sunspec-inverter-101", "single-phase inverter (int + SF)", 1),
    102: ("sunspec-inverter-102", "split-phase inverter (int + SF)", 3),
    103: ("sunspec-inverter-103", "three-phase inverter (int + SF)", 3),
    111: ("sunspec-inverter-111", "single-phase inverter (float)", 1),
    112: ("sunspec-inverter-112", "split-phase inverter (float)", 3),
    113: ("sunspec-inverter-113", "three-phase inverter (float)", 3),
    124: ("sunspec-storage-124", "basic storage controls", 1),
    160: ("sunspec-mppt-160", f"multiple MPPT inverter extension ({MPPT_STRINGS} strings)", 1),
    201: ("sunspec-meter-201", "single-phase (AN or AB) meter (int + SF)", 1),
    202: ("sunspec-meter-202", "split-phase (ABN) meter (int + SF)", 3),
    203: ("sunspec-meter-203", "wye-connect three-phase (ABCN) meter (int + SF)", 3),
    204: ("sunspec-meter-204", "delta-connect three-phase (ABC) meter (int + SF)", 3),
    211: ("sunspec-meter-211", "single-phase (AN or AB) meter (float)", 1),
    212: ("sunspec-meter-212", "split-phase (ABN) meter (float)", 3),
    213: ("sunspec-meter-213", "wye-connect three-phase (ABCN) meter (float)", 3),
    214: ("sunspec-meter-214", "delta-connect three-phase (ABC) meter (float)", 3),
}

# SunSpec type -> (gridedge type, "not implemented" pattern or None, registers)
TYPES: dict[str, tuple[str, str | None]] = {
    "int16": ("int16", "0x8000"),
    "sunssf": ("int16", "0x8000"),
    "uint16": ("uint16", "0xFFFF"),
    "count": ("uint16", "0xFFFF"),
    "enum16": ("uint16", "0xFFFF"),
    "bitfield16": ("uint16", "0xFFFF"),
    "acc16": ("uint16", None),
    "int32": ("int32", "0x80000000"),
    "uint32": ("uint32", "0xFFFFFFFF"),
    "enum32": ("uint32", "0xFFFFFFFF"),
    "bitfield32": ("uint32", "0xFFFFFFFF"),
    "acc32": ("uint32", None),
    "int64": ("int64", "0x8000000000000000"),
    "uint64": ("uint64", "0xFFFFFFFFFFFFFFFF"),
    "acc64": ("uint64", None),
    "float32": ("float32", "nan"),
    "float64": ("float64", "nan"),
}
SIZES = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4}
SIZES |= {"float32": 2, "float64": 4}

PHASE = {"A": "l1", "B": "l2", "C": "l3"}
CANONICAL: dict[str, str] = {
    "W": "active_power",
    "VA": "apparent_power",
    "VAR": "reactive_power",
    "VAr": "reactive_power",
    "PF": "power_factor",
    "Hz": "frequency",
    "TotWhExp": "energy_export",
    "TotWhImp": "energy_import",
    "WH": "energy_export",
    "DCA": "dc_current",
    "DCV": "dc_voltage",
    "DCW": "dc_power",
    "TmpCab": "temperature_cabinet",
    "TmpSnk": "temperature_heatsink",
    "TmpTrns": "temperature_transformer",
    "TmpOt": "temperature_other",
    "WChaMax": "battery_charge_power_max",
    "ChaState": "battery_state_of_charge",
    "InBatV": "battery_voltage",
}
VENDOR_NAMES = {"A": "x_current_total", "PhV": "x_voltage_ln_average", "DA": "x_device_address"}
VENDOR_NAMES |= {"PPV": "x_voltage_ll_average", "St": "x_operating_state", "Evt": "x_events"}
PER_PHASE = {"A": "current", "PhV": "voltage", "W": "active_power", "VA": "apparent_power"}
PER_PHASE |= {"VAR": "reactive_power", "PF": "power_factor"}
LINE_LINE = {"AB": "l1_l2", "BC": "l2_l3", "CA": "l3_l1"}
UNITS = {"Wh": ("kWh", 0.001), "varh": ("kvarh", 0.001), "VAh": ("kVAh", 0.001)}
UNITS |= {"C": ("°C", 1.0), "Secs": ("s", 1.0), "Pct": ("%", 1.0)}
LIMITS: dict[str, tuple[float, float]] = {
    "voltage": (0, 300),
    "voltage_ll": (0, 520),
    "current": (0, 7200),
    "active_power": (-6.5e6, 6.5e6),
    "reactive_power": (-6.5e6, 6.5e6),
    "apparent_power": (-6.5e6, 6.5e6),
    "power_factor": (-1, 1),
    "frequency": (45, 65),
    "energy": (0, 1e9),
    "dc_current": (-5000, 5000),
    "dc_voltage": (0, 1500),
    "dc_power": (-6.5e6, 6.5e6),
    "temperature": (-40, 150),
    "state_of_charge": (0, 100),
}


UNIT_QUANTITY = {"A": "current", "V": "dc_voltage", "W": "active_power", "VA": "apparent_power"}
UNIT_QUANTITY |= {"var": "reactive_power", "kWh": "energy", "kvarh": "energy", "kVAh": "energy"}
UNIT_QUANTITY |= {"°C": "temperature"}


@dataclass(frozen=True)
class Point:
    """One numeric SunSpec point, placed at its offset from the model header."""

    name: str
    label: str
    offset: int
    sunspec_type: str
    units: str
    sf: str | None


def snake(name: str) -> str:
    """``TotVArhImpQ1PhA`` -> ``tot_v_arh_imp_q1_ph_a`` (vendor channel names)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def canonical(name: str, phases: int) -> str | None:
    """The canonical channel of a SunSpec point name, when there is one."""
    if name in CANONICAL:
        return CANONICAL[name]
    if name in VENDOR_NAMES:
        return VENDOR_NAMES[name]  # averages, sums and states have no canonical name
    m = re.fullmatch(r"(A|PhV|W|VA|VAR|PF)ph([ABC])", name)
    if m:
        return f"{PER_PHASE[m[1]]}_{PHASE[m[2]]}"
    m = re.fullmatch(r"(?:PPV|PhV)ph(AB|BC|CA)", name)
    if m:
        return f"voltage_{LINE_LINE[m[1]]}"
    m = re.fullmatch(r"TotVArh(Imp|Exp)(Q[1-4])", name)
    if m:
        return f"x_reactive_energy_{'import' if m[1] == 'Imp' else 'export'}_{m[2].lower()}"
    return None


def channel_name(name: str, phases: int) -> str:
    """The channel name of a point: canonical, or ``x_`` for everything else."""
    found = canonical(name, phases)
    if found is None:
        return "x_" + snake(name)
    if phases == 1 and re.search(r"_l[23](?:_|$)", found):
        return "x_" + found  # a single-phase model's phase 2 and 3 points stay vendor values
    return found


def quantity(channel: str) -> str | None:
    """The quantity whose limits a canonical channel gets."""
    if channel.startswith("x_"):
        return None
    if re.fullmatch(r"voltage_l\d_l\d", channel):
        return "voltage_ll"
    for prefix in ("dc_current", "dc_voltage", "dc_power", "battery_voltage"):
        if channel.startswith(prefix):
            return "dc_voltage" if prefix == "battery_voltage" else prefix
    for q in ("voltage", "current", "active_power", "reactive_power", "apparent_power"):
        if channel.startswith(q):
            return q
    if channel.startswith(("energy", "dc_energy")):
        return "energy"
    if channel.startswith("temperature"):
        return "temperature"
    if channel == "battery_state_of_charge":
        return "state_of_charge"
    if channel == "battery_charge_power_max":
        return "dc_power"
    return {"power_factor": "power_factor", "frequency": "frequency"}.get(
        re.sub(r"_l\d$", "", channel)
    )


def limits(name: str, unit: str, dtype: str, *, scaled: bool) -> tuple[float, float]:
    """Generic limits: by quantity for known units, else the type's own range."""
    q = quantity(name) or UNIT_QUANTITY.get(unit)
    if q is not None:
        return LIMITS[q]
    if scaled or dtype.startswith("float"):
        return (-1e12, 1e12)
    bits = 16 * SIZES[dtype]
    if dtype.startswith("int"):
        return (-(2 ** (bits - 1)) + 1, 2 ** (bits - 1) - 1)
    return (0, 2**bits - 2)  # the all-ones pattern is the "not implemented" sentinel


def points(group: dict[str, Any], start: int) -> tuple[list[Point], int]:
    """The numeric points of ``group`` from register ``start``; returns them and the end."""
    found: list[Point] = []
    offset = start
    for p in group["points"]:
        size = int(p.get("size", 1))
        if p["type"] in TYPES and p["name"] not in ("ID", "L"):
            found.append(
                Point(
                    p["name"],
                    p.get("label", p["name"]),
                    offset,
                    p["type"],
                    p.get("units", "").strip(),
                    p.get("sf"),
                )
            )
        offset += size
    return found, offset


def channel_line(name: str, point: Point, address: int, sf_address: int | None, phases: int) -> str:
    """One ``[channels]`` entry."""
    dtype, na = TYPES[point.sunspec_type]
    unit, scale = UNITS.get(point.units, (point.units, 1.0))
    if name.startswith(("power_factor", "x_power_factor")):
        unit, scale = "", (0.01 if point.units == "Pct" else 1.0)
    if not name.startswith("x_") and point.units.startswith("%"):
        unit = "%"  # "% AhrRtg": percent of the rated capacity, the canonical unit's meaning
    fields = [f"address = {address}", f'type = "{dtype}"']
    if scale != 1.0:
        fields.append(f"scale = {scale}")
    if sf_address is not None:
        fields.append(f"scale_factor_address = {sf_address}")
    fields.append(f'unit = "{unit}"')
    low, high = limits(name, unit, dtype, scaled=sf_address is not None or scale != 1.0)
    if dtype.startswith("uint") and low < 0:
        low = 0
    fields.append(f"min = {low:g}")
    fields.append(f"max = {high:g}")
    if na is not None:
        fields.append(f"na = [{na}]")
    return f"{name} = {{ {', '.join(fields)} }}  # {point.name}: {point.label}"


def generate(model_id: int, model: dict[str, Any]) -> str:
    """The driver file text for one model."""
    driver_id, title, phases = MODELS[model_id]
    header = COMMON_HEADER_ADDRESS if model_id == 1 else HEADER_ADDRESS
    group = model["group"]
    fixed, end = points(group, 0)
    sf_offsets = {p.name: p.offset for p in fixed if p.sunspec_type == "sunssf"}
    blocks: list[tuple[str, list[Point]]] = [("", fixed)]
    for sub in group.get("groups", []):
        for n in range(1, MPPT_STRINGS + 1):
            block, end = points(sub, end)
            blocks.append((f"_s{n}", block))
    lines: list[str] = []
    names: set[str] = set()
    for suffix, block in blocks:
        for point in block:
            if point.sunspec_type == "sunssf":
                continue
            name = channel_name(point.name, phases)
            if suffix:
                name = _string_name(name, suffix)
            if name in names:
                name = "x_" + snake(point.name) + suffix
            names.add(name)
            sf = None if point.sf is None else header + sf_offsets[point.sf]
            lines.append(channel_line(name, point, header + point.offset, sf, phases))
    computed = _computed(names)
    return _TEMPLATE.format(
        model=model_id,
        driver_id=driver_id,
        title=title,
        label=group.get("label", group["name"]),
        phases=phases,
        header=header,
        length=end - 2,
        channels="\n".join(lines),
        computed=computed,
        source=(
            f"SunSpec Alliance information model {model_id} (sunspec/models "
            f"json/model_{model_id}.json, Apache-2.0), standard layout with the model header "
            f"at {header}"
        ),
    )


def _string_name(name: str, suffix: str) -> str:
    if name in ("dc_current", "dc_voltage", "dc_power"):
        return name + suffix
    if name == "x_dcwh":
        return "dc_energy" + suffix
    if name == "x_tmp":
        return "temperature" + suffix
    return name + suffix


def _computed(names: set[str]) -> str:
    pairs = [
        ("reactive_energy_import", "x_reactive_energy_import_q1", "x_reactive_energy_import_q2"),
        ("reactive_energy_export", "x_reactive_energy_export_q3", "x_reactive_energy_export_q4"),
    ]
    rows = [
        f'{name} = {{ sum = ["{a}", "{b}"], unit = "kvarh" }}'
        for name, a, b in pairs
        if a in names and b in names
    ]
    if not rows:
        return ""
    return "\n# Quadrant counters summed into the canonical totals.\n[computed]\n" + "\n".join(rows)


_TEMPLATE = """\
# GENERATED by scripts/sunspec_drivers.py from the SunSpec Alliance information model {model}
# (sunspec/models json/model_{model}.json, Apache License 2.0; see drivers/NOTICE). Do not
# edit by hand: change the script and rerun it.
#
# Model {model}, "{label}": {title}.
# Addresses assume the standard layout: "SunS" at 40000, the common model (L = 66) at 40002
# and this model's header (ID, L) at {header}; each address is {header} + the point's offset.
# With `sunspec = true` on the link, discovery finds the model wherever the device has it and
# shifts every address. Scale factors (sunssf) are applied; each SunSpec type's "not
# implemented" value is the channel's `na` sentinel (0x8000, 0xFFFF, NaN, ...), so the
# value is left out and the sample marked partial. Accumulators (acc32) carry no sentinel:
# SunSpec's 0 is also the true reading of a new meter; add `na = [0]` in a site copy if yours
# means "not implemented". Limits are generic and only catch garbled values.

[driver]
id = "{driver_id}"
manufacturer = "SunSpec (any vendor)"
model = "SunSpec model {model}, {title}"
phases = {phases}
source = "{source}"

[nominal]
voltage_v = 230
frequency_hz = 50
current_a = 100

[modbus]
byte_order = "big"
word_order = "big"
default_table = "holding"
max_registers_per_request = 125
max_gap_registers = 20

[sunspec]
model = {model}
header_address = {header}
# This model's length (L) as generated: {length} registers.

[channels]
{channels}
{computed}"""


def main() -> int:
    """Write every driver of :data:`MODELS` into ``--out`` (default: the repository's drivers/)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="folder of model_<id>.json files")
    parser.add_argument("--out", type=Path, default=REPO / "drivers")
    args = parser.parse_args()
    folder: Path = args.models or _pysunspec2_models()
    for model_id, (driver_id, _, _) in MODELS.items():
        model = json.loads((folder / f"model_{model_id}.json").read_text(encoding="utf-8"))
        if model.get("id") != model_id:
            raise SystemExit(f"{folder}/model_{model_id}.json: id is {model.get('id')}")
        text = generate(model_id, model).rstrip("\n") + "\n"
        (args.out / f"{driver_id}.toml").write_text(text, encoding="utf-8")
    print(f"wrote {len(MODELS)} drivers to {args.out}")
    return 0


def _pysunspec2_models() -> Path:
    try:
        import sunspec2  # type: ignore[import-not-found]  # optional: only this script uses it
    except ImportError:
        raise SystemExit("pip install pysunspec2 (or pass --models DIR)") from None
    return Path(sunspec2.__file__).parent / "models" / "json"


if __name__ == "__main__":
    raise SystemExit(main())
