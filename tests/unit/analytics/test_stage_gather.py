"""The analytics stage gathers the poll loops' calls for ``linger_s`` and stores them together,
and each call still returns only once its records are stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from structlog.testing import capture_logs

from gridedge.analytics.settings import AnalyticsConfig
from gridedge.analytics.stage import MAX_GATHERED, AnalyticsSink
from gridedge.errors import OutboxError
from gridedge.model import Record, Sample

T0 = 1_767_571_200.0


class GatedSink:
    """Records each put call's samples; a call returns once ``gate`` is set, or raises ``fail``."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def put(self, records: Sequence[Record]) -> None:
        self.calls.append([f"{r.device}@{r.ts:g}" for r in records if isinstance(r, Sample)])
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail


def _sample(device: str, k: int) -> Sample:
    return Sample(device, T0 + 10.0 * k, {"voltage_l1": 230.0 + k % 3, "frequency": 50.0})


def _stage(inner: GatedSink, linger_s: float = 0.05) -> AnalyticsSink:
    return AnalyticsSink(inner, AnalyticsConfig(linger_s=linger_s))


async def test_calls_within_the_linger_are_stored_in_one_put_in_their_order() -> None:
    """Ten meters' calls made together reach the inner sink as one call, in call order."""
    inner = GatedSink()
    stage = _stage(inner)
    devices = [f"m{i}" for i in range(10)]
    await asyncio.gather(*(stage.put([_sample(d, 0)]) for d in devices))
    assert inner.calls == [[f"{d}@{T0:g}" for d in devices]]
    assert stage.stats.values == 20


async def test_a_call_returns_only_once_its_records_are_stored() -> None:
    """While the inner put has not returned, no caller has either."""
    inner = GatedSink()
    inner.gate.clear()
    stage = _stage(inner, linger_s=0.01)
    calls = [asyncio.create_task(stage.put([_sample(f"m{i}", 0)])) for i in range(3)]
    for _ in range(50):
        await asyncio.sleep(0.005)
        if inner.calls:
            break
    assert inner.calls, "the linger should have ended"
    await asyncio.sleep(0.02)
    assert not any(c.done() for c in calls)
    inner.gate.set()
    await asyncio.wait_for(asyncio.gather(*calls), 2.0)


async def test_an_outbox_failure_reaches_every_waiting_caller() -> None:
    """The inner sink's OutboxError is raised in each call it was storing (so polling stops)."""
    inner = GatedSink()
    inner.fail = OutboxError("disk gone")
    stage = _stage(inner, linger_s=0.01)
    results = await asyncio.gather(
        *(stage.put([_sample(f"m{i}", 0)]) for i in range(4)), return_exceptions=True
    )
    assert [type(r) for r in results] == [OutboxError] * 4


async def test_a_failing_analysis_fails_only_its_own_call() -> None:
    """A bug that raises on one meter's records fails that call; the others are stored."""

    class Fragile(AnalyticsSink):
        def process(self, records: Sequence[Record]) -> list[Record]:
            if any(r.device == "bad" for r in records):
                raise RuntimeError("analytics bug")
            return super().process(records)

    inner = GatedSink()
    stage = Fragile(inner, AnalyticsConfig(linger_s=0.01))
    results = await asyncio.gather(
        stage.put([_sample("a", 0)]),
        stage.put([_sample("bad", 0)]),
        stage.put([_sample("b", 0)]),
        return_exceptions=True,
    )
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], RuntimeError)
    assert inner.calls == [[f"a@{T0:g}", f"b@{T0:g}"]]


async def test_many_waiting_calls_are_stored_without_waiting_for_the_linger() -> None:
    """MAX_GATHERED waiting calls go at once: a long linger does not hold a big site back."""
    inner = GatedSink()
    stage = _stage(inner, linger_s=60.0)
    calls = [stage.put([_sample(f"m{i}", 0)]) for i in range(MAX_GATHERED)]
    await asyncio.wait_for(asyncio.gather(*calls), 5.0)
    assert [len(c) for c in inner.calls] == [MAX_GATHERED]


async def test_flush_stores_what_cancelled_callers_left_gathered() -> None:
    """A stopping daemon cancels its poll loops; their gathered samples are still stored."""
    inner = GatedSink()
    stage = _stage(inner, linger_s=60.0)
    calls = [asyncio.create_task(stage.put([_sample(f"m{i}", 0)])) for i in range(3)]
    await asyncio.sleep(0)  # the tasks made above run up to their wait for the store
    for c in calls:
        c.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    assert inner.calls == []
    await stage.flush()
    assert inner.calls[0] == [f"m{i}@{T0:g}" for i in range(3)]


async def test_without_a_linger_each_call_is_its_own_put() -> None:
    """linger_s = 0: every call is analysed and stored at once, as it comes."""
    inner = GatedSink()
    stage = _stage(inner, linger_s=0.0)
    await asyncio.gather(*(stage.put([_sample(f"m{i}", 0)]) for i in range(3)))
    assert inner.calls == [[f"m{i}@{T0:g}"] for i in range(3)]


@pytest.mark.parametrize("linger_s", [0.0, 0.01])
async def test_results_do_not_depend_on_the_linger(linger_s: float) -> None:
    """Gathering changes when samples are analysed, not what comes out of them."""
    inner = GatedSink()
    stage = _stage(inner, linger_s=linger_s)
    for k in range(30):
        await asyncio.gather(*(stage.put([_sample(f"m{i}", k)]) for i in range(3)))
    reference = AnalyticsSink(GatedSink(), AnalyticsConfig(linger_s=0.0))
    for k in range(30):
        for i in range(3):
            reference.process([_sample(f"m{i}", k)])
    assert stage.scores == reference.scores
    assert sum(len(c) for c in inner.calls) == 90


async def test_the_linger_is_a_tenth_of_the_shortest_poll_interval_at_most() -> None:
    """A meter polled every 50 ms waits 5 ms for the gathering, not the configured minute."""
    inner = GatedSink()
    stage = AnalyticsSink(inner, AnalyticsConfig(linger_s=60.0), shortest_interval_s=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(stage.put([_sample("m", 0)]), 5.0)
    assert loop.time() - started < 1.0
    assert inner.calls == [[f"m@{T0:g}"]]


async def test_a_failed_store_that_no_caller_hears_is_logged() -> None:
    """When every caller was cancelled (a stop), the store's failure is logged, not lost."""
    inner = GatedSink()
    inner.fail = OutboxError("disk gone")
    stage = _stage(inner, linger_s=60.0)
    call = asyncio.create_task(stage.put([_sample("m", 0)]))
    await asyncio.sleep(0)  # the tasks made above run up to their wait for the store
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    with capture_logs() as logs, pytest.raises(OutboxError):
        await stage.flush()  # then the open windows' aggregates fail to store, and it says so
    failed = [e for e in logs if e["event"] == "analytics.store_failed"]
    assert len(failed) == 1
    assert failed[0]["records"] == 1
    assert "disk gone" in failed[0]["error"]
