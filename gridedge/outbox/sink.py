"""The outbox as the last sink of the pipeline: records become envelopes and are stored."""

from __future__ import annotations

from collections.abc import Sequence

from gridedge.model import Record, to_envelope
from gridedge.outbox.store import Outbox


class OutboxSink:
    """The sink in front of the outbox: the one place records are wrapped into envelopes."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def put(self, records: Sequence[Record]) -> None:
        """Store ``records``; returns once they are committed."""
        await self._outbox.append([to_envelope(r) for r in records])
