"""Reconnect backoff and drain rate limit (both pure)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridedge.forward.backoff import Backoff, RateLimit


@given(
    min_s=st.floats(0.01, 10),
    factor=st.floats(1, 1000),
    failures=st.integers(0, 200),
    seed=st.integers(0, 2**32),
)
def test_backoff_retries_first_within_the_first_delay_then_anywhere_below_the_nominal(
    min_s: float, factor: float, failures: int, seed: int
) -> None:
    """The first delay lies in [min/2, min]; later ones in [0, d], d = min(max, min * 2**n)."""
    backoff = Backoff(min_s, min_s * factor, random.Random(seed))
    assert min_s / 2 <= backoff.next_delay() <= min_s
    for n in range(1, failures + 1):
        nominal = min(backoff.max_s, min_s * 2.0 ** min(n, 64))
        delay = backoff.next_delay()
        assert 0 <= delay <= nominal
        assert delay <= backoff.max_s


def test_full_jitter_spreads_retries_over_the_whole_interval() -> None:
    """At the cap, a thousand gateways' delays fill [0, max] evenly: each tenth gets 5-15 %."""
    delays = []
    for seed in range(1000):
        backoff = Backoff(1.0, 10.0, random.Random(seed))
        for _ in range(6):
            delay = backoff.next_delay()
        delays.append(delay)
    shares = [sum(1 for d in delays if k <= d < k + 1) / len(delays) for k in range(10)]
    assert all(0.05 <= share <= 0.15 for share in shares), shares


def test_backoff_doubles_until_the_cap_and_starts_over_after_reset() -> None:
    """Nominal delays go 1, 2, 4, 8, 8 with a cap of 8, and back to 1 after a reset."""
    backoff = Backoff(1.0, 8.0, random.Random(1))
    nominal = []
    for _ in range(5):
        nominal.append(backoff.nominal())
        backoff.next_delay()
    assert nominal == [1.0, 2.0, 4.0, 8.0, 8.0]
    backoff.reset()
    assert backoff.nominal() == 1.0


def test_backoff_jitter_spreads_gateways_that_failed_together() -> None:
    """Two gateways with different random sources do not retry in lockstep."""
    a, b = Backoff(1.0, 60.0, random.Random(1)), Backoff(1.0, 60.0, random.Random(2))
    assert [a.next_delay() for _ in range(5)] != [b.next_delay() for _ in range(5)]


def test_backoff_refuses_a_cap_below_its_start() -> None:
    """min_s must be positive and no larger than max_s."""
    with pytest.raises(ValueError, match="min_s"):
        Backoff(2.0, 1.0)


@given(
    rate=st.floats(1, 10_000),
    takes=st.lists(st.integers(1, 500), min_size=1, max_size=50),
)
def test_rate_limit_lets_through_no_more_than_rate_times_time_plus_one_burst(
    rate: float, takes: list[int]
) -> None:
    """Taking whenever allowed, the units taken by time t stay within rate * t + burst + last."""
    limit = RateLimit(rate, now=0.0)
    now, taken = 0.0, 0
    for units in takes:
        now += limit.delay(now)
        limit.take(units, now)
        taken += units
        assert taken <= rate * now + rate + units + 1e-6 * taken


def test_rate_limit_of_zero_never_waits() -> None:
    """drain_rate = 0 means no limit."""
    limit = RateLimit(0.0, now=0.0)
    limit.take(10**9, 0.0)
    assert limit.delay(0.0) == 0.0


def test_rate_limit_waits_off_its_debt() -> None:
    """After taking two seconds' worth at once, the next take waits one second."""
    limit = RateLimit(100.0, now=0.0)
    limit.take(200, 0.0)
    assert limit.delay(0.0) == pytest.approx(1.0)
    assert limit.delay(1.0) == 0.0
