"""The /health rule: failing (503) only when meters or the outbox stop the gateway's job."""

from __future__ import annotations

from gridedge.ops.health import Health, Status, assess, outbox_stats
from gridedge.ops.runtime import Runtime
from tests.unit.ops.fakes import T0, FakeOutbox, make_runtime, meter_state, upstream_state


async def judge(runtime: Runtime) -> Health:
    return assess(runtime, await outbox_stats(runtime, 1.0), T0)


async def test_a_polling_gateway_with_a_healthy_outbox_is_ok() -> None:
    """Meters online, outbox writable and upstreams connected: ok, 200, no problems."""
    runtime = make_runtime(
        meter_state("a", last_success_ts=T0 - 2), upstreams={"cloud": upstream_state("cloud")}
    )
    health = await judge(runtime)
    assert (health.status, health.http_status, health.problems) == (Status.OK, 200, ())


async def test_every_meter_offline_is_failing() -> None:
    """When no configured meter answers the gateway is not doing its job: 503."""
    health = await judge(
        make_runtime(meter_state("a", online=False), meter_state("b", online=False))
    )
    assert health.status is Status.FAILING
    assert health.http_status == 503
    assert health.problems == ("every meter is offline",)


async def test_some_meters_offline_is_degraded_but_200() -> None:
    """One meter of two offline: reported, yet the gateway still does its job."""
    health = await judge(make_runtime(meter_state("a"), meter_state("b", online=False)))
    assert health.status is Status.DEGRADED
    assert health.http_status == 200
    assert health.problems == ("meters offline: b",)


async def test_an_outbox_that_cannot_be_written_is_failing() -> None:
    """A failed commit means new readings cannot be kept: 503 with the reason."""
    outbox = FakeOutbox(healthy=False, last_error="database is locked")
    health = await judge(make_runtime(meter_state("a"), outbox=outbox))
    assert health.http_status == 503
    assert health.problems == ("the outbox cannot be written: database is locked",)


async def test_a_gateway_without_an_open_outbox_is_failing() -> None:
    """Before the outbox opens (or after it closed) nothing can be kept."""
    runtime = make_runtime(meter_state("a"))
    runtime.outbox = None
    assert (await judge(runtime)).http_status == 503


async def test_a_disconnected_upstream_is_degraded_not_failing() -> None:
    """A broker outage is what the outbox rides out: 200, with the upstream named."""
    runtime = make_runtime(
        meter_state("a"),
        upstreams={
            "cloud": upstream_state("cloud", connected=False),
            "x": upstream_state("x", connected=False),
        },
    )
    health = await judge(runtime)
    assert health.status is Status.DEGRADED
    assert health.http_status == 200
    assert health.problems == ("upstreams not connected: cloud, x",)


async def test_unreadable_outbox_statistics_are_degraded() -> None:
    """Statistics that cannot be read are reported; the writer's own state decides failure."""
    health = await judge(make_runtime(meter_state("a"), outbox=FakeOutbox(stats_error=True)))
    assert health.status is Status.DEGRADED
    assert "envelopes" not in health.report["outbox"]  # type: ignore[operator]


async def test_no_meters_configured_is_not_a_failure() -> None:
    """A gateway with no meters (forwarding only) is judged by its outbox alone."""
    assert (await judge(make_runtime())).status is Status.OK


async def test_report_shows_each_component_with_last_poll_and_publish() -> None:
    """The JSON names every meter, the outbox backlog and each upstream's last publish."""
    outbox = FakeOutbox(rows=5, backlog={"cloud": 3}, oldest_unsent_ts={"cloud": T0 - 30})
    upstream = upstream_state("cloud", published=8, acked=7, last_publish_ts=T0 - 1.5)
    runtime = make_runtime(
        meter_state("a", last_success_ts=T0 - 0.25, polls=9, samples=8),
        outbox=outbox,
        upstreams={"cloud": upstream},
    )
    report = (await judge(runtime)).report
    assert report["status"] == "ok"
    assert report["meters"] == {
        "a": {
            "online": True,
            "last_success": "2023-11-14T22:13:19.750Z",
            "last_success_age_s": 0.25,
            "consecutive_failures": 0,
            "polls": 9,
            "samples": 8,
        }
    }
    assert report["outbox"] == {
        "healthy": True,
        "error": None,
        "pending": 0,
        "dropped": {},
        "envelopes": 5,
        "bytes": 500,
        "backlog": {"cloud": 3},
        "oldest_unsent_age_s": {"cloud": 30.0},
    }
    assert report["upstreams"] == {
        "cloud": {
            "connected": True,
            "last_publish": "2023-11-14T22:13:18.500Z",
            "last_error": None,
            "published": 8,
            "acked": 7,
            "backlog": 3,
            "last_progress_age_s": None,
            "quarantined": {},
        }
    }


async def test_a_connected_upstream_whose_backlog_makes_no_progress_degrades_health() -> None:
    """A backlog with no cursor move for stall_after_s is degraded even while connected."""
    outbox = FakeOutbox(rows=5, backlog={"cloud": 3}, oldest_unsent_ts={"cloud": T0 - 30})
    stuck = upstream_state("cloud", progress_ts=T0 - 61, stall_after_s=60.0)
    health = await judge(make_runtime(outbox=outbox, upstreams={"cloud": stuck}))
    assert health.status == "degraded"
    assert health.problems == ("upstreams making no progress: cloud",)
    assert health.report["upstreams"]["cloud"]["last_progress_age_s"] == 61.0  # type: ignore[index]


async def test_an_upstream_without_backlog_or_within_its_stall_time_is_ok() -> None:
    """No backlog, or a move more recent than stall_after_s, is not a stall."""
    idle = FakeOutbox(rows=5, backlog={"cloud": 0})
    old = upstream_state("cloud", progress_ts=T0 - 3600, stall_after_s=60.0)
    assert (await judge(make_runtime(outbox=idle, upstreams={"cloud": old}))).status == "ok"
    busy = FakeOutbox(rows=5, backlog={"cloud": 3})
    recent = upstream_state("cloud", progress_ts=T0 - 59, stall_after_s=60.0)
    assert (await judge(make_runtime(outbox=busy, upstreams={"cloud": recent}))).status == "ok"
