"""Hold a consumer's receipts against every seq the outbox files ever committed (pure).

A committed seq is accounted for when the consumer has its ``(gateway, epoch, seq)``, when it is
still stored in its file past the upstream's cursor (not sent yet: in a file moved aside, kept
there for recovery), or when the outbox's size/age policy dropped it and counted the drop for the
upstream. Whatever is left is lost. A key the consumer has that no file committed is a phantom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gridedge.bench.consumer import Received
from gridedge.outbox.audit import FileLedger

_SHOWN = 20


@dataclass(frozen=True, slots=True)
class FileAccount:
    """One file's seqs, accounted for.

    Attributes:
        label: what the file was in the run (``final``, ``moved_aside``).
        epoch: its epoch.
        committed: seqs it committed (``1..highest_seq``).
        delivered: of those, how many the consumer has (each counted once).
        kept_unsent: not delivered and still stored in the file.
        dropped_unsent: deleted by the size/age policy before the upstream had them (counted).
        lost: not delivered, not stored, not counted as dropped.
        missing_seqs: the first few seqs neither delivered nor stored (where to look).
        integrity: ``PRAGMA integrity_check`` of the file.
    """

    label: str
    epoch: str
    committed: int
    delivered: int
    kept_unsent: int
    dropped_unsent: int
    lost: int
    missing_seqs: tuple[int, ...]
    integrity: str


def account_file(
    label: str, ledger: FileLedger, received: Received, gateway: str, upstream: str
) -> FileAccount:
    """Account for every seq ``ledger`` committed against what ``received`` holds."""
    delivered = {
        seq for gw, epoch, seq in received.copies if gw == gateway and epoch == ledger.epoch
    }
    committed = range(1, ledger.highest_seq + 1)
    missing = {seq for seq in committed if seq not in delivered}
    kept = missing.intersection(ledger.stored)
    dropped = ledger.dropped_unsent.get(upstream, 0)
    # The policy counts how many it dropped, not which: the rest of the missing seqs must be
    # exactly that many, and only the excess is lost.
    lost = max(0, len(missing) - len(kept) - dropped)
    return FileAccount(
        label=label,
        epoch=ledger.epoch,
        committed=ledger.highest_seq,
        delivered=len(delivered.intersection(committed)),
        kept_unsent=len(kept),
        dropped_unsent=dropped,
        lost=lost,
        missing_seqs=tuple(sorted(missing - kept)[:_SHOWN]),
        integrity=ledger.integrity,
    )


def phantoms(ledgers: Sequence[FileLedger], received: Received, gateway: str) -> int:
    """Keys the consumer has that no file committed (another gateway's, or a seq never given)."""
    highest = {ledger.epoch: ledger.highest_seq for ledger in ledgers}
    return sum(
        1
        for gw, epoch, seq in received.copies
        if gw != gateway or not 1 <= seq <= highest.get(epoch, 0)
    )
