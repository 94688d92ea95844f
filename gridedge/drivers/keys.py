"""The driver keys beyond a plain register map: names, units, sentinels, aliases, computed
channels and the ``[sunspec]`` table.
"""

from __future__ import annotations

import difflib
import math
import re

from gridedge.channels import CHANNELS, VENDOR_PREFIX, is_known
from gridedge.drivers.types import Channel, Computed, ComputeOp, DataType, SunSpecModel
from gridedge.tomlread import Table, describe

# Canonical names that only exist on a three-phase supply: phase 2 and 3 values and the
# line-to-line voltages (voltage_l1_l2 contains "_l2" too, on purpose).
_OTHER_PHASES = re.compile(r"_l[23](?:_|$)")
_MAX_ADDRESS = 65535


def check_name(name: str, spec: Table, phases: int) -> None:
    """Raise unless ``name`` is a canonical or vendor name that fits a ``phases`` meter."""
    if not is_known(name):
        hint = difflib.get_close_matches(name, list(CHANNELS), n=1)
        also = f"; did you mean {hint[0]!r}?" if hint else ""
        raise spec.fail(
            "",
            f"unknown channel name{also} (vendor-specific names start with {VENDOR_PREFIX!r})",
        )
    if phases == 1 and name in CHANNELS and _OTHER_PHASES.search(name):
        raise spec.fail("", "a single-phase driver has no phase 2 or 3 channels; use the _l1 ones")


def read_unit(name: str, spec: Table) -> str:
    """The unit of channel ``name``: the canonical one, which ``unit`` may only repeat."""
    unit: str | None = spec.string("unit", None, nonempty=False)
    info = CHANNELS.get(name)
    if info is None:  # a vendor channel: its unit is whatever the driver says
        return unit or ""
    if unit is not None and unit != info.unit:
        raise spec.fail(
            "unit",
            f"{name} is reported in {info.unit!r}, got {unit!r}; scale the raw value into "
            f"{info.unit!r} (scale = 0.001 turns Wh into kWh) and declare unit {info.unit!r}",
        )
    return info.unit


def read_na(spec: Table, dtype: DataType) -> tuple[tuple[int, ...], bool]:
    """The ``na`` sentinels of a channel: (raw bit patterns, whether NaN means missing).

    Integers are the registers' content as one unsigned big-endian number (``0x8000`` for an
    int16); ``nan`` is allowed for float types only.
    """
    if not spec.has("na"):
        return (), False
    value = spec.data["na"]
    if not isinstance(value, list) or not value:
        raise spec.fail("na", f"expected a non-empty array of sentinels, got {describe(value)}")
    if dtype is DataType.BOOL:
        raise spec.fail("na", "a bool channel has no sentinel values")
    top = (1 << (16 * dtype.registers)) - 1
    patterns: list[int] = []
    nan = False
    for i, item in enumerate(value):
        where = f"{spec.key_path('na')}[{i}]"
        if isinstance(item, float) and math.isnan(item):
            if not dtype.is_float:
                problem = f"nan is a sentinel of float types, not {dtype.value}"
                raise spec.error(where, problem, spec.source)
            nan = True
        elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= top:
            patterns.append(item)
        else:
            raise spec.error(
                where,
                f"expected a raw {dtype.value} pattern 0..{top:#x} (or nan), got {describe(item)}",
                spec.source,
            )
    return tuple(patterns), nan


def read_aliases(head: Table) -> tuple[str, ...]:
    """``driver.aliases``: other "Manufacturer Model" names of the same hardware."""
    aliases: tuple[str, ...] = head.strings("aliases", ())
    for i, alias in enumerate(aliases):
        if not alias.strip():
            raise head.error(f"{head.key_path('aliases')}[{i}]", "empty alias", head.source)
    return aliases


def read_computed(
    section: Table, channels: tuple[Channel, ...], phases: int
) -> tuple[Computed, ...]:
    """The ``[computed]`` table: ``name = { sum = [a, b] }`` or ``{ difference = [a, b] }``."""
    by_name = {ch.name: ch for ch in channels}
    computed: list[Computed] = []
    for name, spec in section.items():
        check_name(name, spec, phases)
        if name in by_name:
            raise spec.fail("", "a computed channel must not repeat a register channel's name")
        ops = [op for op in ComputeOp if spec.has(op.value)]
        if len(ops) != 1:
            raise spec.fail("", "expected exactly one of 'sum' or 'difference'")
        op = ops[0]
        operands: tuple[str, ...] = spec.strings(op.value)
        if len(operands) != 2:
            raise spec.fail(op.value, f"expected two channel names, got {len(operands)}")
        for i, operand in enumerate(operands):
            if operand not in by_name:
                raise spec.error(
                    f"{spec.key_path(op.value)}[{i}]",
                    f"{operand!r} is not a register channel of this driver",
                    spec.source,
                )
        unit = read_unit(name, spec)
        units = {by_name[o].unit for o in operands}
        if units != {unit}:
            raise spec.fail(op.value, f"operands are in {sorted(units)}, the result in {unit!r}")
        computed.append(
            Computed(
                name=name,
                unit=unit,
                op=op,
                operands=(operands[0], operands[1]),
                min=spec.number("min", None),
                max=spec.number("max", None),
            )
        )
        spec.finish()
    return tuple(computed)


def read_sunspec(section: Table) -> SunSpecModel | None:
    """The ``[sunspec]`` table: which model the channels belong to and where they assume it."""
    if not section.data:
        return None
    sunspec = SunSpecModel(
        model=section.integer("model", min=1, max=65534),
        header_address=section.integer("header_address", min=0, max=_MAX_ADDRESS),
    )
    section.finish()
    return sunspec
