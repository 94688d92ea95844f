r"""Topics and JSON payloads of forwarded envelopes (pure).

Topics: ``{prefix}/{site}/{gateway}/{device}/{kind}`` for envelopes, and the retained
``{prefix}/{site}/{gateway}/status`` (``online``/``offline``) for the gateway itself.

A message carries the envelopes of one device and kind, in seq order. One envelope is sent
as one flat object::

    {"gateway": "gw-1", "epoch": "9f2c4e1a7b3d5f60", "seq": 42,
     "ts": "2026-01-05T10:00:00.250000Z", "device": "mains", "kind": "sample",
     "values": {"voltage_l1": 231.2}, "quality": "good"}

Several are batched, up to ``max_batch_bytes``, as::

    {"gateway": "gw-1", "epoch": "9f2c4e1a7b3d5f60",
     "envelopes": [{"seq": 42, "ts": ..., "device": ..., "kind": ..., "values": ...,
                    "quality": ...}, ...]}

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
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gridedge.model import Envelope

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
    if not math.isfinite(ts):
        return None
    whole = math.floor(ts)
    micros = round((ts - whole) * 1_000_000)
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    try:
        t = time.gmtime(whole)
    except (OverflowError, OSError, ValueError):
        return None
    if not _MIN_YEAR <= t.tm_year <= _MAX_YEAR:
        return None
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{micros:06d}Z"
    )


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
    ``max_bytes`` (an envelope bigger than that on its own is sent alone).
    """
    groups: dict[tuple[str, str], list[Envelope]] = {}
    for envelope in envelopes:
        groups.setdefault((envelope.device, envelope.kind.value), []).append(envelope)
    gateway = _fast_json(identity.gateway)
    if identity.epoch:
        gateway += ',"epoch":' + _fast_json(identity.epoch)
    messages: list[Message] = []
    for (device, kind), members in groups.items():
        topic = identity.topic(device, kind)
        entries = [entry_json(envelope) for envelope in members]
        seqs = [envelope.seq for envelope in members if envelope.seq is not None]
        for start, stop in _batches(entries, len(gateway), max_bytes):
            payload = _payload(gateway, entries[start:stop])
            messages.append(Message(topic, payload, tuple(seqs[start:stop])))
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
    if "envelopes" not in obj:
        return [obj]
    head = {key: obj[key] for key in ("gateway", "epoch") if key in obj}
    return [{**head, **entry} for entry in obj["envelopes"]]
