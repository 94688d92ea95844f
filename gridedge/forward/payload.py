r"""Topics and JSON payloads of forwarded envelopes (pure).

Topics: ``{prefix}/{site}/{gateway}/{device}/{kind}`` for envelopes, and the retained
``{prefix}/{site}/{gateway}/status`` (``online``/``offline``) for the gateway itself.

A message carries the envelopes of one device and kind, in seq order (with ``batch_scope =
"gateway"``, several such messages travel together: see :mod:`.gateway_batch`). One envelope
is sent as one flat object::

    {"gateway": "gw-1", "epoch": "9f2c4e1a7b3d5f60", "seq": 42,
     "ts": "2026-01-05T10:00:00.250000Z", "device": "mains", "kind": "sample",
     "values": {"voltage_l1": 231.2}, "quality": "good"}

Several are batched, up to ``max_batch_bytes``, as::

    {"gateway": "gw-1", "epoch": "9f2c4e1a7b3d5f60",
     "envelopes": [{"seq": 42, "ts": ..., "device": ..., "kind": ..., "values": ...,
                    "quality": ...}, ...]}

With the column layout (the default), consecutive samples of one device that have the same
channels travel as rows under one channel list, so a value costs its digits and a comma::

    {"gateway": "gw-1", "epoch": "9f2c4e1a7b3d5f60", "device": "mains", "kind": "sample",
     "channels": ["voltage_l1", "current_l1"],
     "rows": [{"seq": 42, "ts": ..., "quality": "good", "values": [231.2, 12.5]}, ...]}

``ts`` is the time the reading was taken (RFC 3339, UTC, microseconds), never the time of
sending. The envelope body's fields follow ``seq``/``ts``/``device``/``kind`` at the same
level; a body field that reuses one of those names (or ``gateway``/``epoch``/``envelopes``) is
renamed ``body_<name>``. Numbers that JSON cannot carry (NaN, infinities) are sent as ``null``; a
``ts`` outside the years 1-9999 is sent as ``null`` too. Text is ASCII (``\u`` escapes), so
its length in characters is its size in bytes.

``epoch`` names the outbox file the envelope was stored in (random, drawn when the file was
created); ``seq`` starts again at 1 in a new file (deleted, moved aside, replaced), so consumers
drop replays by ``(gateway, epoch, seq)``, never by ``(gateway, seq)`` alone.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gridedge.model import Envelope, Kind

RESERVED = frozenset({"gateway", "epoch", "seq", "ts", "device", "kind", "envelopes"})
STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"

_fast_json = json.JSONEncoder(separators=(",", ":")).encode
_strict_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_MIN_YEAR, _MAX_YEAR = 1, 9999


@dataclass(frozen=True, slots=True)
class Identity:
    """Where a gateway publishes: topic prefix, site and gateway id; the outbox's epoch."""

    prefix: str
    site: str
    gateway: str
    epoch: str = ""

    def topic(self, device: str, kind: str) -> str:
        """The topic of one device's envelopes of one kind."""
        return f"{self.prefix}/{self.site}/{self.gateway}/{device}/{kind}"

    @property
    def status_topic(self) -> str:
        """The retained ``online``/``offline`` topic of the gateway."""
        return f"{self.prefix}/{self.site}/{self.gateway}/status"

    @property
    def batch_topic(self) -> str:
        """The topic of messages that carry several devices' envelopes (``batch_scope``)."""
        return f"{self.prefix}/{self.site}/{self.gateway}/batch"

    @property
    def health_topic(self) -> str:
        """The retained topic of the gateway's periodic health report."""
        return f"{self.prefix}/{self.site}/{self.gateway}/health"


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message: its topic, payload and the seqs of the envelopes it carries."""

    topic: str
    payload: bytes
    seqs: tuple[int, ...]
    encoding: str | None = None
    """How ``payload`` is compressed (``gzip``, ``zstd``); None: it is the text itself."""


def rfc3339(ts: float) -> str | None:
    """``ts`` (UTC seconds) as ``YYYY-MM-DDThh:mm:ss.ffffffZ``; None outside years 1-9999."""
    global _last_second
    if not math.isfinite(ts):
        return None
    whole = math.floor(ts)
    micros = round((ts - whole) * 1_000_000)
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    second, text = _last_second
    if whole != second:
        # Envelopes packed together mostly share their second: format it once.
        try:
            t = time.gmtime(whole)
        except (OverflowError, OSError, ValueError):
            return None
        if not _MIN_YEAR <= t.tm_year <= _MAX_YEAR:
            return None
        text = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
            f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
        )
        _last_second = (whole, text)
    return f"{text}{micros:06d}Z"


_last_second: tuple[int, str] = (-1 << 62, "")


def entry_json(envelope: Envelope) -> str:
    """One envelope as a compact JSON object, without the gateway.

    Raises:
        ValueError: the envelope has no seq (it was never committed to the outbox).
    """
    if envelope.seq is None:
        raise ValueError("only committed envelopes (with a seq) are forwarded")
    stored = envelope.stored_body
    if stored is not None and _splices(stored):
        ts = rfc3339(envelope.ts)
        head = (
            f'{{"seq":{envelope.seq},"ts":{"null" if ts is None else chr(34) + ts + chr(34)},'
            f'"device":{_fast_json(envelope.device)},"kind":"{envelope.kind.value}"'
        )
        return head + ("}" if stored == "{}" else "," + stored[1:])
    obj: dict[str, Any] = {
        "seq": envelope.seq,
        "ts": rfc3339(envelope.ts),
        "device": envelope.device,
        "kind": envelope.kind.value,
    }
    for key, value in envelope.body.items():
        while key in RESERVED or key in obj:
            key = f"body_{key}"
        obj[key] = value
    return to_json(obj)


_RESERVED_KEYS = tuple(f'"{name}":' for name in RESERVED)


def _splices(stored: str) -> bool:
    """Whether stored body text can follow the head as it is: an object, all of it JSON (the
    outbox writes NaN as a bare token), naming no reserved key (a nested one only costs the
    slow path).
    """
    if not stored.startswith("{") or "NaN" in stored or "Infinity" in stored:
        return False
    return not any(key in stored for key in _RESERVED_KEYS)


def to_json(obj: object) -> str:
    """Compact ASCII JSON, with NaN and infinities written as null."""
    text = _fast_json(obj)
    # The fast encoder writes the non-JSON tokens NaN/Infinity; only then walk the value.
    if "NaN" in text or "Infinity" in text:
        text = _strict_json(_finite(obj))
    return text


def _finite(value: object) -> object:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def pack(envelopes: Iterable[Envelope], identity: Identity, max_bytes: int) -> list[Message]:
    """Messages carrying ``envelopes``: one device and kind each, in seq order, batched up to
    ``max_bytes`` (an envelope bigger than that on its own is sent alone); runs of samples with
    the same channels in the column layout.
    """
    return _pack(envelopes, identity, max_bytes, columns=True)


def pack_objects(
    envelopes: Iterable[Envelope], identity: Identity, max_bytes: int
) -> list[Message]:
    """As :func:`pack`, with every batch in the object layout (``batch_layout = "objects"``)."""
    return _pack(envelopes, identity, max_bytes, columns=False)


def _pack(
    envelopes: Iterable[Envelope], identity: Identity, max_bytes: int, *, columns: bool
) -> list[Message]:
    groups: dict[tuple[str, str], list[Envelope]] = {}
    for envelope in envelopes:
        groups.setdefault((envelope.device, envelope.kind.value), []).append(envelope)
    gateway = gateway_json(identity)
    messages: list[Message] = []
    for (device, kind), members in groups.items():
        topic = identity.topic(device, kind)
        runs = _column_runs(members) if columns else [(None, members)]
        for names, run in runs:
            if names is None or len(run) == 1:
                messages.extend(_object_messages(topic, gateway, run, max_bytes))
            else:
                head = (
                    f'{{"gateway":{gateway},"device":{_fast_json(device)},"kind":"{kind}",'
                    f'"channels":{_fast_json(list(names))},"rows":['
                )
                messages.extend(_row_messages(topic, head, run, max_bytes))
    return messages


def gateway_json(identity: Identity) -> str:
    """The value of a message's ``gateway`` key, with the ``epoch`` key after it when set."""
    gateway = _fast_json(identity.gateway)
    if identity.epoch:
        gateway += ',"epoch":' + _fast_json(identity.epoch)
    return gateway


def _object_messages(
    topic: str, gateway: str, members: Sequence[Envelope], max_bytes: int
) -> list[Message]:
    entries = [entry_json(envelope) for envelope in members]
    seqs = [envelope.seq for envelope in members if envelope.seq is not None]
    return [
        Message(topic, _payload(gateway, entries[start:stop]), tuple(seqs[start:stop]))
        for start, stop in _batches(entries, len(gateway), max_bytes)
    ]


_SAMPLE_BODY = frozenset({"values", "quality"})
_NUMBER_TYPES = frozenset({float, int})


def _channels(envelope: Envelope) -> tuple[str, ...] | None:
    """The channel names of a sample that can travel as a row (its body is values and quality
    only, values a mapping of numbers); None for any other envelope.
    """
    body = envelope.body
    if envelope.kind is not Kind.SAMPLE or body.keys() != _SAMPLE_BODY:
        return None
    values, quality = body["values"], body["quality"]
    if not isinstance(values, Mapping) or not isinstance(quality, str):
        return None
    if not _NUMBER_TYPES.issuperset(map(type, values.values())):
        return None  # bool, text or a nested value: the object layout carries those as they are
    return tuple(values)


def _column_runs(
    members: Sequence[Envelope],
) -> list[tuple[tuple[str, ...] | None, list[Envelope]]]:
    """``members`` cut into consecutive runs that share one channel list (None: no rows)."""
    runs: list[tuple[tuple[str, ...] | None, list[Envelope]]] = []
    for envelope in members:
        names = _channels(envelope)
        if runs and runs[-1][0] == names:
            runs[-1][1].append(envelope)
        else:
            runs.append((names, [envelope]))
    return runs


# A stored sample body, as the outbox's encoder writes it: values first, then quality.
_STORED_HEAD = '{"values":{'
_STORED_QUALITY = '},"quality":'
_STORED_VALUE = re.compile(r'":([^,]+)')
_PLAIN_QUALITY = re.compile(r'"[a-z_]*"')
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


def _plain_names(names: Sequence[str]) -> bool:
    """Whether every name is written in JSON as itself, with nothing a value match could take
    for a separator (then a stored body's values can be cut out of its text).
    """
    return all(_PLAIN_NAME.fullmatch(name) for name in names)


def _row_json(envelope: Envelope, plain_names: bool) -> str:
    if envelope.seq is None:
        raise ValueError("only committed envelopes (with a seq) are forwarded")
    ts = rfc3339(envelope.ts)
    head = f'{{"seq":{envelope.seq},"ts":{"null" if ts is None else chr(34) + ts + chr(34)},'
    stored = envelope.stored_body
    if plain_names and stored is not None and stored.startswith(_STORED_HEAD):
        cut = stored.rfind(_STORED_QUALITY)
        quality = stored[cut + len(_STORED_QUALITY) : -1]
        finite = "NaN" not in stored and "Infinity" not in stored
        if cut > 0 and finite and _PLAIN_QUALITY.fullmatch(quality):
            values = ",".join(_STORED_VALUE.findall(stored, len(_STORED_HEAD), cut))
            return f'{head}"quality":{quality},"values":[{values}]}}'
    body = envelope.body
    values_map = body["values"]
    assert isinstance(values_map, Mapping)
    return (
        f'{head}"quality":{_fast_json(body["quality"])},'
        f'"values":{to_json(list(values_map.values()))}}}'
    )


def _row_messages(
    topic: str, head: str, members: Sequence[Envelope], max_bytes: int
) -> list[Message]:
    """Column-layout messages of one run, each within ``max_bytes`` (at least one row)."""
    messages: list[Message] = []
    rows: list[str] = []
    seqs: list[int] = []
    size = len(head) + 2
    plain_names = _plain_names(_channels(members[0]) or ())
    for envelope in members:
        row = _row_json(envelope, plain_names)
        if rows and size + len(row) + 1 > max_bytes:
            messages.append(Message(topic, f"{head}{','.join(rows)}]}}".encode(), tuple(seqs)))
            rows, seqs, size = [], [], len(head) + 2
        size += len(row) + (1 if rows else 0)
        rows.append(row)
        seqs.append(envelope.seq or 0)
    if rows:
        messages.append(Message(topic, f"{head}{','.join(rows)}]}}".encode(), tuple(seqs)))
    return messages


# '{"gateway":' + gw (and ',"epoch":' + epoch) + ',"envelopes":[' + entries + ']}'
_BATCH_OVERHEAD = len('{"gateway":,"envelopes":[]}')


def _batches(entries: Sequence[str], gateway_len: int, max_bytes: int) -> list[tuple[int, int]]:
    """Slices of ``entries`` whose batch payload stays within ``max_bytes``."""
    bounds: list[tuple[int, int]] = []
    start, size = 0, _BATCH_OVERHEAD + gateway_len
    for i, entry in enumerate(entries):
        grown = size + len(entry) + (1 if i > start else 0)
        if i > start and grown > max_bytes:
            bounds.append((start, i))
            start, grown = i, _BATCH_OVERHEAD + gateway_len + len(entry)
        size = grown
    if start < len(entries):
        bounds.append((start, len(entries)))
    return bounds


def _payload(gateway: str, entries: Sequence[str]) -> bytes:
    if len(entries) == 1:
        # '{"seq":...}' -> '{"gateway":"gw","epoch":"...","seq":...}'
        return f'{{"gateway":{gateway},{entries[0][1:]}'.encode()
    return f'{{"gateway":{gateway},"envelopes":[{",".join(entries)}]}}'.encode()


def unpack(payload: bytes) -> list[dict[str, Any]]:
    """The envelopes of a message as flat objects, each with ``gateway`` and ``epoch``.

    Raises:
        ValueError: the payload is not a gridedge envelope message.
    """
    obj = json.loads(payload)
    if not isinstance(obj, dict) or "gateway" not in obj:
        raise ValueError("not a gridedge envelope message")
    head = {key: obj[key] for key in ("gateway", "epoch") if key in obj}
    if isinstance(obj.get("messages"), list) and "seq" not in obj:
        # batch_scope = "gateway": the device messages, each without gateway and epoch.
        return [entry for inner in obj["messages"] for entry in _unpack_inner(inner, head)]
    return _unpack_inner(obj, head)


def _unpack_inner(obj: dict[str, Any], head: dict[str, Any]) -> list[dict[str, Any]]:
    if "rows" in obj:
        names = obj["channels"]
        return [
            {
                **head,
                "seq": row["seq"],
                "ts": row["ts"],
                "device": obj["device"],
                "kind": obj["kind"],
                "values": dict(zip(names, row["values"], strict=True)),
                "quality": row["quality"],
            }
            for row in obj["rows"]
        ]
    if "envelopes" not in obj:
        return [{**head, **obj}]
    return [{**head, **entry} for entry in obj["envelopes"]]
