"""What one forwarder reports about its upstream while it runs (read by status and metrics)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class UpstreamState:
    """Live state of one upstream; the forwarder writes it, anyone may read it.

    Attributes:
        name: the upstream's name.
        broker: ``host:port``.
        tls: whether the connection is encrypted.
        connected: whether a connection is up (CONNACK received, ``online`` acknowledged).
        published: MQTT messages published (re-sends after a reconnect included); one
            message carries one or more envelopes.
        acked: MQTT messages the broker acknowledged (PUBACK).
        envelopes_published: envelopes in the messages published.
        envelopes_acked: envelopes in the messages acknowledged.
        connects: connections established.
        reconnects: connection attempts after the first one, failed or not.
        last_publish_ts: wall-clock time of the last PUBACK, None before the first.
        last_error: why the last connection attempt failed or the last connection ended.
        cursor: every envelope up to this seq is delivered (the outbox cursor, possibly ahead
            of its last commit).
        last_seq: the last seq committed to the outbox.
        dropped_unsent: envelopes the outbox dropped (size/age policy) before this upstream
            had them, over the outbox file's life.
        quarantined: envelopes the broker refused and the outbox keeps aside, by reason, over
            the outbox file's life.
        progress_ts: wall-clock time the cursor last moved or the backlog last began (None
            before the forwarder started).
        stall_after_s: a backlog with no progress for this long makes ``/health`` degraded.
    """

    name: str
    broker: str
    tls: bool
    connected: bool = False
    published: int = 0
    acked: int = 0
    envelopes_published: int = 0
    envelopes_acked: int = 0
    connects: int = 0
    reconnects: int = 0
    last_publish_ts: float | None = None
    last_error: str | None = None
    cursor: int = 0
    last_seq: int = 0
    dropped_unsent: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    progress_ts: float | None = None
    stall_after_s: float = 300.0

    @property
    def backlog(self) -> int:
        """Envelopes committed after the cursor (those the outbox dropped meanwhile included;
        ``Outbox.stats()`` has the exact count and the age of the oldest).
        """
        return max(0, self.last_seq - self.cursor)
