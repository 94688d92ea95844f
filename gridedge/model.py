"""Pure values that flow through the gateway: samples and the envelopes that carry them.

Timestamps are wall-clock UTC seconds since the epoch, taken when a meter was read, and are
never re-stamped later (not on replay, not on forwarding).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


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
class Envelope:
    """A unit of storage and forwarding.

    ``seq`` is assigned by the outbox when the envelope is committed and is strictly increasing
    per gateway; consumers drop replays by ``(gateway, seq)``. ``urgent`` envelopes (alerts) are
    forwarded before backlog.
    """

    kind: Kind
    device: str
    ts: float
    body: Mapping[str, object] = field(default_factory=dict)
    urgent: bool = False
    seq: int | None = None

    @classmethod
    def of_sample(cls, sample: Sample) -> Envelope:
        """Wrap a sample; the body holds its values and quality."""
        return cls(
            kind=Kind.SAMPLE,
            device=sample.device,
            ts=sample.ts,
            body={"values": dict(sample.values), "quality": sample.quality.value},
        )
