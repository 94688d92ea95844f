"""The read planner: the fewest Modbus reads that cover a driver's channels (pure).

Scale-factor registers (SunSpec style) are one-register spans to cover too, so each lands in
some read; every :class:`ReadRequest` lists the scale-factor addresses it covers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from gridedge.drivers import Channel, RegisterTable

MAX_READ_REGISTERS = 125
"""Most registers one Modbus read may return (function codes 3 and 4)."""

MAX_READ_BITS = 2000
"""Most bits one Modbus read may return (function codes 1 and 2)."""

BIT_TABLES = frozenset({RegisterTable.COIL, RegisterTable.DISCRETE})
"""Tables read as one bit per address (function codes 1 and 2)."""


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read: ``count`` registers (or bits) of ``table`` starting at ``address``.

    Attributes:
        channels: the channels whose registers lie wholly inside the read, by address.
        scale_factor_addresses: scale-factor registers inside the read that some channel of
            the plan (not necessarily of this read) refers to.
    """

    table: RegisterTable
    address: int
    count: int
    channels: tuple[Channel, ...]
    scale_factor_addresses: tuple[int, ...] = ()


class _Span(NamedTuple):
    start: int
    end: int  # exclusive
    channel: Channel | None  # None: a scale-factor register


def plan_reads(channels: Sequence[Channel], max_registers: int, max_gap: int) -> list[ReadRequest]:
    """Coalesce channels into the fewest reads, table by table.

    Sorted by address, the next channel joins the current read when at most ``max_gap`` unused
    registers lie between them and the read stays within ``max_registers``. For coil and
    discrete tables ``max_registers`` counts bits. Limits are capped at the protocol's own
    (:data:`MAX_READ_REGISTERS`, :data:`MAX_READ_BITS`).

    Raises:
        ValueError: ``max_registers`` < 1, ``max_gap`` < 0, or a channel is larger than a read.
    """
    if max_registers < 1 or max_gap < 0:
        raise ValueError(
            f"need max_registers >= 1 and max_gap >= 0, got {max_registers}, {max_gap}"
        )
    spans: dict[RegisterTable, list[_Span]] = {}
    for ch in channels:
        spans.setdefault(ch.table, []).append(_Span(ch.address, ch.address + ch.count, ch))
        if ch.scale_factor_address is not None:
            sf = ch.scale_factor_address
            spans[ch.table].append(_Span(sf, sf + 1, None))
    plan: list[ReadRequest] = []
    for table, table_spans in spans.items():
        cap = MAX_READ_BITS if table in BIT_TABLES else MAX_READ_REGISTERS
        ordered = sorted(table_spans, key=lambda s: (s.start, s.end))
        plan.extend(_coalesce(table, ordered, min(max_registers, cap), max_gap))
    return plan


def _coalesce(
    table: RegisterTable, spans: list[_Span], limit: int, max_gap: int
) -> Iterator[ReadRequest]:
    group: list[_Span] = []
    start = end = 0
    for span in spans:
        if span.end - span.start > limit:
            name = span.channel.name if span.channel else "?"
            raise ValueError(f"channel {name} needs {span.end - span.start} > {limit} registers")
        if group and span.start - end <= max_gap and max(end, span.end) - start <= limit:
            group.append(span)
            end = max(end, span.end)
            continue
        if group:
            yield _request(table, start, end, group)
        group, start, end = [span], span.start, span.end
    if group:
        yield _request(table, start, end, group)


def _request(table: RegisterTable, start: int, end: int, group: list[_Span]) -> ReadRequest:
    return ReadRequest(
        table=table,
        address=start,
        count=end - start,
        channels=tuple(s.channel for s in group if s.channel is not None),
        scale_factor_addresses=tuple(sorted({s.start for s in group if s.channel is None})),
    )
