"""Which prefix of the outbox a broker has acknowledged (pure).

The forwarder reads the outbox in chunks (everything after some seq, up to a limit), packs a
chunk into messages and publishes them; PUBACKs may come back in any order. A chunk is done
once every message carrying its envelopes is acknowledged, and the cursor moves only over
done chunks at the head: a seq is never marked delivered while an envelope at or before it
still waits for its PUBACK. An alert sent ahead of the backlog is simply one more message the
chunk that would have carried it waits for.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Chunk:
    through: int
    waiting: set[int] = field(default_factory=set)


class AckWindow:
    """Chunks in read order and the messages each waits for.

    Args:
        cursor: the seq every envelope up to which is already delivered.
    """

    def __init__(self, cursor: int) -> None:
        self.cursor = cursor
        self._chunks: deque[_Chunk] = deque()
        self._waiters: dict[int, list[_Chunk]] = {}

    @property
    def chunks(self) -> int:
        """Chunks read and not yet done."""
        return len(self._chunks)

    def add(self, through: int, messages: Iterable[int]) -> bool:
        """Record a chunk reaching up to seq ``through`` whose envelopes travel in ``messages``
        (ids of messages not acknowledged yet); whether the cursor moved.

        Raises:
            ValueError: ``through`` does not follow the previous chunk.
        """
        last = self._chunks[-1].through if self._chunks else self.cursor
        if through <= last:
            raise ValueError(f"chunk through {through} does not follow {last}")
        chunk = _Chunk(through, set(messages))
        self._chunks.append(chunk)
        for message in chunk.waiting:
            self._waiters.setdefault(message, []).append(chunk)
        return self._advance()

    def ack(self, message: int) -> bool:
        """A message was acknowledged; whether the cursor moved."""
        for chunk in self._waiters.pop(message, ()):
            chunk.waiting.discard(message)
        return self._advance()

    def _advance(self) -> bool:
        moved = False
        while self._chunks and not self._chunks[0].waiting:
            self.cursor = self._chunks.popleft().through
            moved = True
        return moved
