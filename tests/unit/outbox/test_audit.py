"""The ledger of an outbox file: every seq it committed, what it still holds, its integrity."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridedge.errors import OutboxError
from gridedge.outbox.audit import read_ledger
from gridedge.outbox.store import open_outbox
from tests.unit.outbox.kit import envelope, make_config


async def test_the_ledger_counts_delivered_and_deleted_seqs_as_committed(tmp_path: Path) -> None:
    """After delivery deletes the first rows, highest_seq still covers them; seqs never repeat."""
    config = make_config(tmp_path)
    async with open_outbox(config, upstreams=["up"]) as outbox:
        await outbox.append([envelope(i) for i in range(10)])
        await outbox.set_cursor("up", 6)  # delivered everywhere: rows 1..6 go
        epoch = outbox.epoch
    ledger = read_ledger(config.path)
    assert ledger.epoch == epoch
    assert ledger.highest_seq == 10
    assert ledger.stored == (7, 8, 9, 10)
    assert ledger.cursors == {"up": 6}
    assert ledger.dropped_unsent == {}
    assert ledger.integrity == "ok"


async def test_an_emptied_file_still_knows_its_highest_seq(tmp_path: Path) -> None:
    """Every row delivered and deleted: nothing stored, highest_seq unchanged."""
    config = make_config(tmp_path)
    async with open_outbox(config, upstreams=["up"]) as outbox:
        await outbox.append([envelope(i) for i in range(3)])
        await outbox.set_cursor("up", 3)
    ledger = read_ledger(config.path)
    assert (ledger.highest_seq, ledger.stored) == (3, ())


def test_a_file_that_is_no_outbox_is_an_outbox_error(tmp_path: Path) -> None:
    """A missing file and a file of garbage are refused with the path named."""
    with pytest.raises(OutboxError, match="no outbox"):
        read_ledger(tmp_path / "missing.sqlite3")
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not sqlite" * 100)
    with pytest.raises(OutboxError, match=r"garbage\.sqlite3"):
        read_ledger(garbage)
