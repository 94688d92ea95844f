"""Pure values that flow through the gateway, and the one seam between its stages.

A poll loop produces :class:`Sample` and :class:`MeterStatus` records and hands them to a
:class:`Sink`; the analytics stage is a sink that adds derived :class:`Envelope` records (alerts,
forecasts, aggregates) and passes everything on; the outbox sink is the one place that wraps
samples and statuses into envelopes and stores them.

Timestamps are wall-clock UTC seconds since the epoch, taken when a meter was read, and are
never re-stamped later (not on replay, not on forwarding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Quality(StrEnum):
    """How complete a sample is."""

    GOOD = "good"
    """Every channel of the driver was read and decoded."""
    PARTIAL = "partial"
    """Some channels are missing (not decodable, or not produced by the link)."""


class Kind(StrEnum):
    """What an envelope carries."""

    SAMPLE = "sample"
    ALERT = "alert"
    FORECAST = "forecast"
    AGGREGATE = "aggregate"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of one meter: canonical channel name -> value in the canonical unit."""

    device: str
    ts: float
    values: Mapping[str, float]
    quality: Quality = Quality.GOOD


@dataclass(frozen=True, slots=True)
class MeterStatus:
    """A meter went online or offline (``error`` names the failure kind that took it down)."""

    device: str
    ts: float
    online: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Envelope:
    """A unit of storage and forwarding.

    ``seq`` is assigned by the outbox when the envelope is committed and is strictly increasing
    per outbox file, whose ``epoch`` goes with it upstream; consumers drop replays by
    ``(gateway, epoch, seq)``. ``urgent`` envelopes (alerts) are forwarded before backlog.
    """

    kind: Kind
    device: str
    ts: float
    body: Mapping[str, object] = field(default_factory=dict)
    urgent: bool = False
    seq: int | None = None
    stored_body: str | None = field(default=None, compare=False, repr=False)
    """The body's JSON text as the outbox stored it (None before it was stored): forwarding
    copies it instead of encoding ``body`` again."""

    @classmethod
    def of_sample(cls, sample: Sample) -> Envelope:
        """Wrap a sample; the body holds its values and quality."""
        return cls(
            kind=Kind.SAMPLE,
            device=sample.device,
            ts=sample.ts,
            body={"values": dict(sample.values), "quality": sample.quality.value},
        )

    @classmethod
    def of_status(cls, status: MeterStatus) -> Envelope:
        """Wrap a meter status; the body holds ``state`` and, when offline, ``error``."""
        body: dict[str, object] = {"state": "online" if status.online else "offline"}
        if status.error is not None:
            body["error"] = status.error
        return cls(kind=Kind.STATUS, device=status.device, ts=status.ts, body=body)


Record = Sample | MeterStatus | Envelope
"""What travels between stages: a poll loop's readings, or an envelope a stage derived."""


def to_envelope(record: Record) -> Envelope:
    """The envelope that stores ``record``."""
    if isinstance(record, Sample):
        return Envelope.of_sample(record)
    if isinstance(record, MeterStatus):
        return Envelope.of_status(record)
    return record


class Sink(Protocol):
    """Where a stage hands its records; ``put`` returns once they are stored."""

    async def put(self, records: Sequence[Record]) -> None:
        """Take ``records``, in order; returns once they are committed to the outbox."""
        ...
