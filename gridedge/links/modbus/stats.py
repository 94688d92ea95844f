"""What one Modbus bus has done: requests, failures by kind, bytes on the wire, latency.

:class:`~gridedge.links.modbus.bus.ModbusBus` updates a :class:`BusStats` on every request;
the metrics module reads it at scrape time (``gridedge_modbus_*``), so the hot path never
touches the metrics library.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from gridedge.histogram import Histogram

TCP_READ_REQUEST_BYTES = 12
"""A read request on Modbus TCP: the 7-byte MBAP header and the 5-byte PDU."""
RTU_READ_REQUEST_BYTES = 8
"""A read request on Modbus RTU: unit id, the 5-byte PDU and the CRC."""


@dataclass(slots=True)
class BusStats:
    """Counters of one bus since it was opened.

    Attributes:
        bus: the bus identity (``host:port`` or the serial port).
        requests: requests sent (every attempt, retries included).
        errors: failed reads by error kind (``timeout``: no answer or no connection, a
            failed connection attempt included; ``exception``: a Modbus exception response;
            ``frame``: bytes that were no valid answer).
        bytes_sent: request bytes written (read requests have a fixed size per framing).
        bytes_received: bytes that arrived, valid or not.
        request_seconds: time from sending a request to its answer or failure.
    """

    bus: str
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    bytes_sent: int = 0
    bytes_received: int = 0
    request_seconds: Histogram = field(default_factory=Histogram)
