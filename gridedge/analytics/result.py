"""What the analytics of one device hand back for a sample, and the shape of an extra
device-level detector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gridedge.analytics.alerts import AlertEvent
from gridedge.model import Envelope, Sample


class DeviceScorer(Protocol):
    """An extra device-level detector (e.g. a multi-channel model) whose score joins the
    device's detector score (the larger one counts).
    """

    def score(self, sample: Sample) -> float:
        """The score in [0, 1] of one sample (its usable values), then learn it."""
        ...


@dataclass(slots=True)
class Result:
    """What one sample produced."""

    score: float
    channel_scores: dict[str, float]
    envelopes: list[Envelope]
    raised: list[AlertEvent] = field(default_factory=list)
    report: dict[str, float] | None = None
    forecasts: dict[str, dict[int, float]] = field(default_factory=dict)
    active: bool = False
    """Whether any alert of the device is active after this sample."""
