"""The per-seq ledger: what the cursor may pass, across connections, urgent first (pure)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from gridedge.forward.ledger import Ledger
from gridedge.model import Envelope, Kind

_NOW = 0.0


def _env(seq: int, *, urgent: bool = False) -> Envelope:
    kind = Kind.ALERT if urgent else Kind.SAMPLE
    return Envelope(kind, "m1", float(seq), {"i": seq}, urgent=urgent, seq=seq)


def _send(ledger: Ledger, envelopes: list[Envelope], *, urgent: bool = False) -> int:
    return ledger.sent([e.seq or 0 for e in envelopes], now=_NOW, urgent=urgent)


def test_acks_received_before_a_disconnect_still_count() -> None:
    """Seqs acked on a connection that then broke are skipped on the next and the cursor
    passes them once the rest is acked.
    """
    ledger = Ledger(0)
    fresh = ledger.take_backlog([_env(s) for s in range(1, 7)])
    first = _send(ledger, fresh[:2])
    second = _send(ledger, fresh[2:4])
    _send(ledger, fresh[4:])
    assert not ledger.acked(second)  # 1 and 2 are still in flight
    ledger.lost()
    assert ledger.acked(first) is False  # a late answer from the broken connection is ignored
    again = ledger.take_backlog([_env(s) for s in range(1, 7)])
    assert [e.seq for e in again] == [1, 2, 5, 6]
    assert ledger.acked(_send(ledger, again[:2]))
    assert ledger.cursor == 4
    assert ledger.acked(_send(ledger, again[2:]))
    assert ledger.cursor == 6


def test_a_link_carrying_two_messages_per_connection_still_drains() -> None:
    """Each connection acks two one-envelope messages and breaks; the cursor reaches the end."""
    ledger = Ledger(0)
    total = 40
    connections = 0
    while ledger.cursor < total:
        connections += 1
        fresh = ledger.take_backlog([_env(s) for s in range(ledger.backlog_after + 1, total + 1)])
        ids = [_send(ledger, [e]) for e in fresh[:8]]  # a window of 8 goes out
        for msg_id in ids[:2]:
            ledger.acked(msg_id)
        ledger.lost()
        assert connections <= total
    assert connections == total // 2


def test_an_urgent_envelope_sent_ahead_holds_the_cursor_until_its_own_ack() -> None:
    """The backlog read skips an alert already in flight, and the cursor waits for it."""
    ledger = Ledger(10)
    urgent = ledger.take_urgent([_env(15, urgent=True)])
    alert = _send(ledger, urgent, urgent=True)
    backlog = ledger.take_backlog([_env(s, urgent=s == 15) for s in range(11, 21)])
    assert 15 not in [e.seq for e in backlog]
    assert ledger.acked(_send(ledger, backlog))
    assert ledger.cursor == 14
    assert ledger.acked(alert)
    assert ledger.cursor == 20


def test_an_urgent_envelope_acked_ahead_is_not_sent_again_with_the_backlog() -> None:
    """An alert acked before the backlog reaches it is skipped, even after a disconnect."""
    ledger = Ledger(0)
    ledger.acked(_send(ledger, ledger.take_urgent([_env(3, urgent=True)]), urgent=True))
    ledger.lost()
    assert ledger.take_urgent([_env(3, urgent=True)]) == []
    backlog = ledger.take_backlog([_env(s, urgent=s == 3) for s in range(1, 5)])
    assert [e.seq for e in backlog] == [1, 2, 4]


def test_seqs_the_outbox_dropped_before_they_were_read_are_passed() -> None:
    """A gap in a backlog read (pruned envelopes) does not hold the cursor."""
    ledger = Ledger(0)
    fresh = ledger.take_backlog([_env(5), _env(6)])
    assert ledger.acked(_send(ledger, fresh))
    assert ledger.cursor == 6


def test_a_refused_message_holds_the_cursor_until_it_is_settled() -> None:
    """Refused seqs are neither in flight nor passed until the caller has set them aside."""
    ledger = Ledger(0)
    fresh = ledger.take_backlog([_env(1), _env(2)])
    refused = _send(ledger, fresh[:1])
    ledger.acked(_send(ledger, fresh[1:]))
    assert ledger.refused(refused) == (1,)
    assert ledger.in_flight == 0
    assert ledger.cursor == 0
    assert ledger.settle((1,))
    assert ledger.cursor == 2


def test_the_oldest_message_in_flight_tells_its_send_time() -> None:
    """The PUBACK timeout reads the send time of the oldest message still unanswered."""
    ledger = Ledger(0)
    fresh = ledger.take_backlog([_env(1), _env(2)])
    first = ledger.sent([1], now=5.0, urgent=False)
    ledger.sent([2], now=7.0, urgent=False)
    assert ledger.oldest_sent_at() == 5.0
    ledger.acked(first)
    assert ledger.oldest_sent_at() == 7.0
    assert len(fresh) == 2


class LedgerMachine(RuleBasedStateMachine):
    """Random reads, sends, acks, refusals and disconnects against a simple model."""

    @initialize(start=st.integers(0, 5), size=st.integers(1, 40), data=st.data())
    def setup(self, start: int, size: int, data: st.DataObject) -> None:
        self.ledger = Ledger(start)
        last = start + size
        # Seqs that exist; the missing ones were dropped by the outbox.
        self.exists = sorted(
            data.draw(st.sets(st.integers(start + 1, last), min_size=1, max_size=size))
        )
        self.urgent = set(data.draw(st.sets(st.sampled_from(self.exists), max_size=5)))
        self.settled: set[int] = set()
        self.sent_ids: list[int] = []
        self.carried: dict[int, tuple[int, ...]] = {}
        self.cursor = start

    def _publish(self, envelopes: list[Envelope], *, urgent: bool) -> None:
        msg_id = _send(self.ledger, envelopes, urgent=urgent)
        self.sent_ids.append(msg_id)
        self.carried[msg_id] = tuple(e.seq or 0 for e in envelopes)

    def _read(self, after: int, limit: int, *, urgent: bool) -> list[Envelope]:
        seqs = [s for s in self.exists if s > after and (not urgent or s in self.urgent)]
        return [_env(s, urgent=s in self.urgent) for s in seqs[:limit]]

    @rule(limit=st.integers(1, 6))
    def send_urgent(self, limit: int) -> None:
        """Alerts are read and sent ahead of the backlog."""
        before = self.ledger.backlog_after
        fresh = self.ledger.take_urgent(self._read(self.ledger.urgent_after, limit, urgent=True))
        if fresh:
            assert all((e.seq or 0) > before for e in fresh)
            self._publish(fresh, urgent=True)

    @rule(limit=st.integers(1, 6), chunk=st.integers(1, 3))
    def send_backlog(self, limit: int, chunk: int) -> None:
        """The backlog is read and sent in messages of a few envelopes."""
        fresh = self.ledger.take_backlog(self._read(self.ledger.backlog_after, limit, urgent=False))
        assert not {e.seq for e in fresh} & self.settled
        for i in range(0, len(fresh), chunk):
            self._publish(fresh[i : i + chunk], urgent=False)

    @precondition(lambda self: self.sent_ids)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        """The broker acknowledges any message in flight, in any order."""
        msg_id = data.draw(st.sampled_from(self.sent_ids))
        self.sent_ids.remove(msg_id)
        self.ledger.acked(msg_id)
        self.settled.update(self.carried[msg_id])

    @precondition(lambda self: self.sent_ids)
    @rule(data=st.data())
    def refuse(self, data: st.DataObject) -> None:
        """The broker refuses a message, which is then set aside (settled)."""
        msg_id = data.draw(st.sampled_from(self.sent_ids))
        self.sent_ids.remove(msg_id)
        seqs = self.ledger.refused(msg_id)
        assert seqs == self.carried[msg_id]
        self.ledger.settle(seqs)
        self.settled.update(seqs)

    @rule()
    def lose_connection(self) -> None:
        """The connection breaks: in-flight messages are never answered."""
        self.ledger.lost()
        self.sent_ids.clear()

    @invariant()
    def cursor_never_passes_an_unsettled_seq_and_never_goes_back(self) -> None:
        """The cursor moves forward only, and only over settled or missing seqs."""
        cursor = self.ledger.cursor
        assert cursor >= self.cursor
        self.cursor = cursor
        for seq in self.exists:
            if seq <= cursor:
                assert seq in self.settled

    def teardown(self) -> None:
        """Draining what is left reaches the end of the existing seqs."""
        ledger = self.ledger
        ledger.lost()
        for _ in range(len(self.exists) + 2):
            fresh = ledger.take_backlog(self._read(ledger.backlog_after, 10, urgent=False))
            if fresh:
                ledger.acked(_send(ledger, fresh))
        assert ledger.cursor == max(self.exists[-1], self.cursor)


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)


@given(order=st.permutations(list(range(8))), cut=st.integers(0, 8))
def test_the_cursor_is_the_end_of_the_acknowledged_prefix_whatever_the_ack_order(
    order: list[int], cut: int
) -> None:
    """Acks in any order, some before a disconnect: the cursor is the longest acked prefix."""
    ledger = Ledger(0)
    fresh = ledger.take_backlog([_env(s) for s in range(1, 9)])
    ids = [_send(ledger, [e]) for e in fresh]
    acked: set[int] = set()
    for index in order[:cut]:
        ledger.acked(ids[index])
        acked.add(index + 1)
        prefix = 0
        while prefix + 1 in acked:
            prefix += 1
        assert ledger.cursor == prefix
    ledger.lost()
    again = ledger.take_backlog([_env(s) for s in range(1, 9)])
    assert {e.seq for e in again} == set(range(1, 9)) - acked
