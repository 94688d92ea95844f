"""How max_bytes is shared on disk, and the arithmetic of room and excess (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gridedge.outbox.budget import MIN_MAX_BYTES, DiskBudget, excess, page_ratio, room_for

caps = st.integers(min_value=MIN_MAX_BYTES, max_value=1 << 40)
page_sizes = st.sampled_from([512, 1024, 4096, 8192])  # gridedge creates 4096


@given(cap=caps, page_size=page_sizes)
def test_the_shares_add_up_to_no_more_than_max_bytes(cap: int, page_size: int) -> None:
    """Database share + WAL share + 32 KiB of shm + the spare never exceed the cap."""
    budget = DiskBudget.of(cap, page_size)
    assert budget.db_bytes + budget.wal_bytes + budget.spare_bytes + 32 * 1024 <= cap
    assert budget.db_bytes >= cap // 2


@given(cap=caps, page_size=page_sizes)
def test_one_commit_and_the_checkpoint_threshold_fit_in_the_wal_share(
    cap: int, page_size: int
) -> None:
    """A checkpoint threshold plus one commit's pages (about 2 per body byte) fit the WAL."""
    budget = DiskBudget.of(cap, page_size)
    threshold = budget.checkpoint_pages * page_size
    assert threshold + 2 * budget.max_commit_bytes <= budget.wal_bytes
    assert budget.wal_bytes <= 16 * 1024 * 1024


@given(
    used=st.integers(0, 1 << 30),
    incoming=st.integers(0, 1 << 24),
    db=st.integers(4096, 1 << 30),
    ratio=st.floats(1.0, 8.0),
)
def test_deleting_the_excess_makes_room_for_the_incoming_bodies(
    used: int, incoming: int, db: int, ratio: float
) -> None:
    """After deleting excess() body bytes (at the ratio), the incoming bodies fit."""
    freed = excess(used, incoming, db, ratio) * ratio
    assert used - freed + incoming * ratio <= db + 1e-6 * db
    assert room_for(used, db, ratio) * ratio <= max(0, db - used) + ratio


@given(used=st.integers(0, 1 << 30), fixed=st.integers(0, 1 << 16), body=st.integers(0, 1 << 30))
def test_the_page_ratio_stays_in_its_bounds(used: int, fixed: int, body: int) -> None:
    """The disk bytes per body byte estimate is always between 1 and 8."""
    assert 1.0 <= page_ratio(used, fixed, body) <= 8.0
