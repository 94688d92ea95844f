"""The live state of a running gateway: what each component registers for reporting.

Metrics, health, the watchdog and status lines read only this. Every field is typed with the
component's own state class, so a renamed field fails type checking instead of silently
dropping a metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gridedge.analytics.stage import AnalyticsStats
from gridedge.forward.state import UpstreamState
from gridedge.links.modbus.stats import BusStats
from gridedge.ops.status.board import StatusBoard
from gridedge.outbox.schema import OutboxStats
from gridedge.poll import MeterState


class OutboxView(Protocol):
    """What reporting reads of an open outbox (implemented by ``Outbox``)."""

    @property
    def healthy(self) -> bool:
        """False once a write failed and the outbox stopped taking envelopes."""
        ...

    @property
    def last_error(self) -> str | None:
        """Why the last write failed, if one did."""
        ...

    @property
    def pending(self) -> int:
        """Envelopes handed to the outbox and not yet committed."""
        ...

    @property
    def appended_total(self) -> int:
        """Envelopes committed since start."""
        ...

    @property
    def commits_total(self) -> int:
        """Transactions committed since start."""
        ...

    @property
    def dropped_total(self) -> Mapping[str, int]:
        """Envelopes dropped since start, by reason."""
        ...

    @property
    def dropped_unsent_total(self) -> Mapping[str, int]:
        """Envelopes dropped before an upstream had them, by upstream."""
        ...

    async def stats(self) -> OutboxStats:
        """Counts that need a read of the database."""
        ...


@dataclass
class Runtime:
    """Live state of a running gateway; each component registers its own state object here.

    Attributes:
        meters: the poll loops' state by meter id.
        outbox: the open outbox, once it is open.
        upstreams: each forwarder's state by upstream name.
        analytics: the analytics stage's counters, when analytics run.
        buses: each Modbus bus's counters by bus identity (``host:port`` or serial port).
        status: what the status page shows beyond the rest (meter metadata, history, alerts).
    """

    meters: dict[str, MeterState] = field(default_factory=dict)
    outbox: OutboxView | None = None
    upstreams: dict[str, UpstreamState] = field(default_factory=dict)
    analytics: AnalyticsStats | None = None
    buses: dict[str, BusStats] = field(default_factory=dict)
    status: StatusBoard | None = None
