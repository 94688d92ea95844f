"""InfluxDB line protocol for forwarded envelopes (pure).

One line per envelope. The measurement is ``gridedge_<kind>`` (``gridedge_sample``,
``gridedge_alert``, ...); ``site``, ``gateway`` and ``device`` are tags; the body's values are
fields, nested tables flattened with ``_`` (an aggregate's ``channels.voltage_l1.mean`` becomes
``voltage_l1_mean``); ``seq`` and ``epoch`` (when present) are integer and string fields, so a
consumer can still see what it got; the timestamp is the reading's own time in nanoseconds.

A replay writes the same series at the same timestamp with the same fields, which InfluxDB
treats as an overwrite of the same point: replays are harmless there, and no consumer-side
dedupe is needed. Numbers that cannot be written (NaN, infinities) are left out; an envelope
left with no field at all still carries ``seq``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from gridedge.forward.payload import Identity, Message
from gridedge.model import Envelope

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})
_MIN_NS, _MAX_NS = -(2**63) + 1, 2**63 - 1


def escape_key(text: str) -> str:
    """A tag key, tag value or field key with the characters line protocol reserves escaped."""
    return text.replace("\\", "\\\\").translate(_KEY_ESCAPES)


def _string_field(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _flatten(prefix: str, value: object, out: dict[str, object]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}_{key}" if prefix else str(key), item, out)
    elif not isinstance(value, list | tuple):
        out[prefix] = value


def _field(value: object) -> str | None:
    """One field value in line protocol, or None when it cannot be written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return _string_field(value)
    return None


def timestamp_ns(ts: float) -> int | None:
    """``ts`` (UTC seconds) in integer nanoseconds, None when InfluxDB cannot store it."""
    if not math.isfinite(ts):
        return None
    # A float epoch carries about microseconds; rounding there first keeps ts * 1e9 from
    # inventing nanoseconds (1767571242.25 would become ...249999872).
    ns = round(ts * 1e6) * 1000
    return ns if _MIN_NS <= ns <= _MAX_NS else None


def line(envelope: Envelope, identity: Identity, epoch: str | None = None) -> str:
    """The line of one committed envelope.

    Raises:
        ValueError: the envelope has no seq (it was never committed to the outbox).
    """
    if envelope.seq is None:
        raise ValueError("only committed envelopes (with a seq) are forwarded")
    tags = ",".join(
        f"{key}={escape_key(value)}"
        for key, value in (
            ("device", envelope.device),
            ("gateway", identity.gateway),
            ("site", identity.site),
        )
        if value
    )
    flat: dict[str, object] = {}
    body = envelope.body
    # A sample's channels are its fields; every other kind keeps its body's own names.
    values = body.get("values")
    _flatten("", values if isinstance(values, Mapping) else body, flat)
    if isinstance(values, Mapping):
        # An integer register's reading arrives as a JSON integer; InfluxDB fixes a field's
        # type at its first write, so channels stay float fields whatever their register.
        flat = {k: float(v) if type(v) is int else v for k, v in flat.items()}
        _flatten("", {k: v for k, v in body.items() if k != "values"}, flat)
    fields = [
        f"{escape_key(key)}={text}"
        for key, value in flat.items()
        if key not in ("seq", "epoch") and (text := _field(value)) is not None
    ]
    fields.append(f"seq={envelope.seq}i")
    if epoch is not None:
        fields.append(f"epoch={_string_field(epoch)}")
    measurement = f"gridedge_{envelope.kind.value}".translate(_MEASUREMENT_ESCAPES)
    ns = timestamp_ns(envelope.ts)
    head = f"{measurement},{tags} {','.join(fields)}"
    return head if ns is None else f"{head} {ns}"


def pack_lines(
    envelopes: Iterable[Envelope], identity: Identity, max_bytes: int, epoch: str | None = None
) -> list[Message]:
    """Messages of newline-separated lines, one device and kind each, up to ``max_bytes``.

    Topics are the same as for JSON payloads, so subscriptions do not change with the format.
    """
    groups: dict[tuple[str, str], list[Envelope]] = {}
    for envelope in envelopes:
        groups.setdefault((envelope.device, envelope.kind.value), []).append(envelope)
    messages: list[Message] = []
    for (device, kind), members in groups.items():
        topic = identity.topic(device, kind)
        lines: list[str] = []
        seqs: list[int] = []
        size = 0
        for envelope in members:
            text = line(envelope, identity, epoch)
            if lines and size + 1 + len(text.encode()) > max_bytes:
                messages.append(Message(topic, "\n".join(lines).encode(), tuple(seqs)))
                lines, seqs, size = [], [], 0
            lines.append(text)
            seqs.append(envelope.seq or 0)
            size += len(text.encode()) + (1 if len(lines) > 1 else 0)
        if lines:
            messages.append(Message(topic, "\n".join(lines).encode(), tuple(seqs)))
    return messages
