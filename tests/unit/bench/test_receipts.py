"""A consumer's receipts held against every seq the outbox files committed."""

from __future__ import annotations

from collections import Counter

from gridedge.bench.consumer import Received
from gridedge.bench.receipts import account_file, phantoms
from gridedge.outbox.audit import FileLedger


def ledger(epoch: str, highest: int, stored: tuple[int, ...], dropped: int = 0) -> FileLedger:
    return FileLedger(
        epoch=epoch,
        highest_seq=highest,
        stored=stored,
        cursors={"up": 0},
        dropped_unsent={"up": dropped} if dropped else {},
        integrity="ok",
    )


def received(*keys: tuple[str, str, int]) -> Received:
    return Received(Counter(keys), not_envelopes=0, connects=1)


def test_delivered_and_still_stored_seqs_account_for_the_whole_file() -> None:
    """1..3 delivered (2 twice), 4..5 still stored: nothing lost, one duplicate."""
    got = received(("gw", "e1", 1), ("gw", "e1", 2), ("gw", "e1", 2), ("gw", "e1", 3))
    account = account_file("final", ledger("e1", 5, (4, 5)), got, "gw", "up")
    assert (account.committed, account.delivered, account.kept_unsent) == (5, 3, 2)
    assert (account.lost, account.missing_seqs) == (0, ())
    assert got.duplicates == 1


def test_a_seq_neither_delivered_nor_stored_is_lost_unless_a_drop_was_counted() -> None:
    """Seqs 3 and 4 are gone; one counted drop covers one of them, the other is lost."""
    got = received(("gw", "e1", 1), ("gw", "e1", 2), ("gw", "e1", 5))
    assert account_file("f", ledger("e1", 5, ()), got, "gw", "up").lost == 2
    account = account_file("f", ledger("e1", 5, (), dropped=1), got, "gw", "up")
    assert (account.lost, account.dropped_unsent, account.missing_seqs) == (1, 1, (3, 4))


def test_a_key_of_another_epoch_or_gateway_does_not_count_for_this_file() -> None:
    """Seq 1 of the old epoch (or of another gateway) is not seq 1 of the new file."""
    got = received(("gw", "old", 1), ("other", "new", 1))
    account = account_file("final", ledger("new", 1, ()), got, "gw", "up")
    assert (account.delivered, account.lost) == (0, 1)


def test_keys_no_file_committed_are_phantoms() -> None:
    """A seq past a file's highest, an unknown epoch and another gateway are phantoms."""
    files = [ledger("e1", 3, ()), ledger("e2", 2, ())]
    got = received(("gw", "e1", 3), ("gw", "e1", 4), ("gw", "e3", 1), ("x", "e2", 1))
    assert phantoms(files, got, "gw") == 3
