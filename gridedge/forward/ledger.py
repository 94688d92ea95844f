"""What one upstream has to send, has in flight and has settled, per seq (pure).

The forwarder reads the outbox twice over: urgent envelopes (alerts) ahead of everything, and
the backlog in seq order. Both reads go through a :class:`Ledger`, which hands back only the
envelopes that still need sending and keeps, per seq, one of three states:

- **to send**: read, not in any message in flight (after a lost connection: again);
- **in flight**: in a message published and not yet answered;
- **settled**: acknowledged (PUBACK) or set aside (the broker refused it; see quarantine).

QoS 1 acknowledges each message on its own, so a seq settled on a connection that later broke
stays settled: the next connection re-reads from the cursor and skips it. Invariant: the
cursor only moves forward, and only over seqs that are settled or do not exist (dropped by
the outbox before they were read); an urgent envelope sent ahead of the backlog is one more
seq the cursor waits for until its own PUBACK.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gridedge.model import Envelope


@dataclass(frozen=True, slots=True)
class InFlight:
    """One message awaiting its answer.

    Attributes:
        seqs: the envelopes it carries.
        sent_at: monotonic seconds when it was published.
        urgent: whether it was sent ahead of the backlog.
    """

    seqs: tuple[int, ...]
    sent_at: float
    urgent: bool


class Ledger:
    """Per-seq delivery state of one upstream, across its connections.

    Args:
        cursor: every envelope up to this seq is already delivered.
    """

    def __init__(self, cursor: int) -> None:
        self.cursor = cursor
        self._backlog_pos = cursor  # the last seq a backlog read covered
        self._urgent_pos = cursor  # the last seq an urgent read covered
        self._unsettled: set[int] = set()  # read by the backlog, existing, not settled
        self._unsettled_order: deque[int] = deque()  # the same seqs, ascending (lazy deletes)
        self._settled: set[int] = set()  # settled seqs past the cursor
        self._settled_heap: list[int] = []
        self._inflight: dict[int, InFlight] = {}
        self._carrier: dict[int, int] = {}  # seq in flight -> id of its message
        self._next_id = 0  # ids are never reused, so a late answer cannot settle another

    # --- reading ---------------------------------------------------------------------------

    @property
    def backlog_after(self) -> int:
        """Read the backlog after this seq."""
        return self._backlog_pos

    @property
    def urgent_after(self) -> int:
        """Read urgent envelopes after this seq (the backlog read covers those before it)."""
        return max(self._urgent_pos, self._backlog_pos)

    def take_urgent(self, envelopes: Sequence[Envelope]) -> list[Envelope]:
        """Urgent envelopes read after :attr:`urgent_after`; those that still need sending."""
        fresh = []
        for envelope in envelopes:
            seq = envelope.seq or 0
            if seq <= self.urgent_after:
                continue
            self._urgent_pos = seq
            if seq not in self._settled and seq not in self._carrier:
                fresh.append(envelope)
        return fresh

    def take_backlog(self, envelopes: Sequence[Envelope]) -> list[Envelope]:
        """Envelopes read in seq order after :attr:`backlog_after`; those that need sending.

        A seq skipped by the read does not exist any more (the outbox dropped it), so the
        cursor may pass it.
        """
        fresh = []
        for envelope in envelopes:
            seq = envelope.seq or 0
            if seq <= self._backlog_pos:
                continue
            self._backlog_pos = seq
            if seq in self._settled:
                continue
            self._unsettled.add(seq)
            self._unsettled_order.append(seq)
            if seq not in self._carrier:
                fresh.append(envelope)
        self._advance()
        return fresh

    # --- publishing ------------------------------------------------------------------------

    def sent(self, seqs: Iterable[int], *, now: float, urgent: bool) -> int:
        """A message carrying ``seqs`` was published; its id, for :meth:`acked`/:meth:`refused`."""
        msg_id, self._next_id = self._next_id, self._next_id + 1
        message = InFlight(tuple(seqs), now, urgent)
        self._inflight[msg_id] = message
        for seq in message.seqs:
            self._carrier[seq] = msg_id
        return msg_id

    def acked(self, msg_id: int) -> bool:
        """The broker acknowledged ``msg_id``; whether the cursor moved."""
        message = self._release(msg_id)
        return False if message is None else self.settle(message.seqs)

    def refused(self, msg_id: int) -> tuple[int, ...]:
        """The broker refused ``msg_id``: its seqs, neither in flight nor settled until the
        caller has set them aside and calls :meth:`settle`.
        """
        message = self._release(msg_id)
        return () if message is None else message.seqs

    def settle(self, seqs: Iterable[int]) -> bool:
        """``seqs`` need no more sending (acknowledged or set aside); whether the cursor moved."""
        for seq in seqs:
            if seq > self.cursor and seq not in self._settled:
                self._settled.add(seq)
                heapq.heappush(self._settled_heap, seq)
            self._unsettled.discard(seq)
        return self._advance()

    def lost(self) -> None:
        """The connection ended: what was in flight goes back to "to send", and the next reads
        start again at the cursor (settled seqs are skipped then).
        """
        self._inflight.clear()
        self._carrier.clear()
        self._unsettled.clear()
        self._unsettled_order.clear()
        self._backlog_pos = self._urgent_pos = self.cursor

    # --- views -----------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Messages published and not answered."""
        return len(self._inflight)

    def oldest_sent_at(self) -> float | None:
        """When the oldest message still in flight was published, None when none is."""
        return min((m.sent_at for m in self._inflight.values()), default=None)

    def is_settled(self, seq: int) -> bool:
        """Whether ``seq`` is at or before the cursor, or settled past it."""
        return seq <= self.cursor or seq in self._settled

    def _release(self, msg_id: int) -> InFlight | None:
        message = self._inflight.pop(msg_id, None)
        if message is not None:
            for seq in message.seqs:
                if self._carrier.get(seq) == msg_id:
                    del self._carrier[seq]
        return message

    def _advance(self) -> bool:
        order = self._unsettled_order
        while order and order[0] not in self._unsettled:
            order.popleft()
        target = order[0] - 1 if order else self._backlog_pos
        if target <= self.cursor:
            return False
        self.cursor = target
        heap = self._settled_heap
        while heap and heap[0] <= target:
            self._settled.discard(heapq.heappop(heap))
        return True
