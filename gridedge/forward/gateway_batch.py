"""Messages of many devices merged into few (``batch_scope = "gateway"``; pure).

On a big site most commits carry one sample of each of many meters, so one message per device
is one publish, one PUBACK and their system calls per sample. Merged, the device messages of a
read travel on the gateway's ``{prefix}/{site}/{gateway}/batch`` topic, up to
``max_batch_bytes`` each. JSON::

    {"gateway": "gw-1", "epoch": "9f2c4e1a7b3d5f60",
     "messages": [{"device": "m1", "kind": "sample", "channels": [...], "rows": [...]},
                  {"seq": 43, "ts": ..., "device": "m2", "kind": "status", ...}, ...]}

Each item of ``messages`` is a device message as :mod:`.payload` writes it, without its
``gateway`` and ``epoch`` (they are said once, above); :func:`gridedge.forward.payload.unpack`
reads both. Line protocol needs no wrapper: lines of every device, newline-separated.
"""

from __future__ import annotations

from collections.abc import Sequence

from gridedge.forward.payload import Identity, Message, gateway_json

_JSON_OVERHEAD = len(',"messages":[]}')


def merge_json(messages: Sequence[Message], identity: Identity, max_bytes: int) -> list[Message]:
    """``messages`` (JSON device messages of ``identity``) as gateway messages within
    ``max_bytes`` (a device message bigger than that goes alone).
    """
    head = identity_head(identity)
    cut = len(head) + 1  # the comma after the head
    merged: list[Message] = []
    items: list[bytes] = []
    seqs: list[int] = []
    size = len(head) + _JSON_OVERHEAD
    for message in messages:
        payload = message.payload
        if not payload.startswith(head):
            raise ValueError("not a JSON device message of this gateway")
        item = b"{" + payload[cut:]
        if items and size + len(item) + 1 > max_bytes:
            merged.append(_json_message(identity, head, items, seqs))
            items, seqs, size = [], [], len(head) + _JSON_OVERHEAD
        size += len(item) + (1 if items else 0)
        items.append(item)
        seqs.extend(message.seqs)
    if items:
        merged.append(_json_message(identity, head, items, seqs))
    return merged


def identity_head(identity: Identity) -> bytes:
    """How every JSON message of ``identity`` begins: ``{"gateway":...[,"epoch":...]``."""
    # The payload module's own text, so the two cannot disagree.
    return b'{"gateway":' + gateway_json(identity).encode()


def _json_message(identity: Identity, head: bytes, items: list[bytes], seqs: list[int]) -> Message:
    payload = head + b',"messages":[' + b",".join(items) + b"]}"
    return Message(identity.batch_topic, payload, tuple(seqs))


def merge_lines(messages: Sequence[Message], identity: Identity, max_bytes: int) -> list[Message]:
    """Line-protocol device messages as gateway messages within ``max_bytes``."""
    merged: list[Message] = []
    parts: list[bytes] = []
    seqs: list[int] = []
    size = 0
    for message in messages:
        grown = size + len(message.payload) + (1 if parts else 0)
        if parts and grown > max_bytes:
            merged.append(Message(identity.batch_topic, b"\n".join(parts), tuple(seqs)))
            parts, seqs, grown = [], [], len(message.payload)
        size = grown
        parts.append(message.payload)
        seqs.extend(message.seqs)
    if parts:
        merged.append(Message(identity.batch_topic, b"\n".join(parts), tuple(seqs)))
    return merged
