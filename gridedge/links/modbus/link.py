"""A link to one Modbus meter (one unit id) on a shared bus: plan, request, decode.

Library-free: the bus that moves the frames is a :class:`RegisterBus` (the pymodbus adapter in
:mod:`gridedge.links.modbus.bus`, or a fake in tests). A read sends the driver's planned requests
(:func:`~gridedge.links.modbus.codec.plan_reads`: fewest requests within the device's
limits), gathers the scale factors from all responses, then decodes channel by channel, so one
undecodable value leaves only that channel out of the sample.

Failures: a request that gets no answer ends the read at once (the rest would time out too, and
every timeout holds the bus from the neighbours). Retries apply only while the meter was
answering: a meter that did not answer last time (silence, or only garbled frames after every
retry) gets a single attempt, so a dead or hostile unit costs its bus one timeout per attempt of
the poll loop's backoff. A Modbus exception response to one request
leaves that request's channels out; an exception to every request fails the read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from gridedge.drivers import Driver, RegisterTable
from gridedge.errors import CodecError, DeviceFaultError, DeviceUnreachableError, FrameError
from gridedge.links.modbus.block import block_decoder
from gridedge.links.modbus.codec import compute, decode_value, read_scale_factors
from gridedge.links.modbus.planner import ReadRequest, plan_reads


class RegisterBus(Protocol):
    """One physical Modbus bus: serialises requests from every meter on it."""

    @property
    def name(self) -> str:
        """The bus identity (``host:port`` or the serial port)."""
        ...

    async def read(
        self,
        device: str,
        unit_id: int,
        table: RegisterTable,
        address: int,
        count: int,
        *,
        timeout_s: float,
    ) -> list[int]:
        """Read ``count`` registers (or bits, as 0/1) of ``table`` from unit ``unit_id``.

        Args:
            device: the meter id, for the errors.
            unit_id: the Modbus unit (slave) id.
            table: which register table (or bit table) to read.
            address: the first register's address.
            count: how many registers (or bits).
            timeout_s: how long to wait for the answer.

        Raises:
            DeviceUnreachableError: no answer within ``timeout_s``, or the bus is down.
            DeviceFaultError: the unit answered with a Modbus exception.
            FrameError: bytes arrived but no valid answer (CRC, wrong unit, garbled).
        """
        ...


@runtime_checkable
class TimedBus(Protocol):
    """A bus that records when its last request went out (:class:`~.bus.ModbusBus` does)."""

    @property
    def last_sent_ts(self) -> float:
        """Wall-clock UTC time the most recent request was sent, after the bus lock."""
        ...


class ModbusLink:
    """Reads one meter model (``driver``) at ``unit_id`` on ``bus``.

    Args:
        device: the meter id.
        driver: its register map.
        bus: the shared bus.
        unit_id: the meter's Modbus unit (slave) id.
        timeout_s: the longest wait for one answer.
        retries: extra attempts for a request that failed while the meter was answering.
    """

    def __init__(
        self,
        device: str,
        driver: Driver,
        bus: RegisterBus,
        *,
        unit_id: int,
        timeout_s: float,
        retries: int = 1,
    ) -> None:
        self._device = device
        self._bus = bus
        self._unit_id = unit_id
        self._timeout_s = timeout_s
        self._retries = retries
        self._plan = plan_reads(
            driver.channels, driver.max_registers_per_request, driver.max_gap_registers
        )
        self._computed = driver.computed
        self._channel_count = len(driver.channel_names)
        # Keyed by identity: the plan's requests live as long as the link.
        self._block_decoders = {
            id(request): decoder
            for request in self._plan
            if (decoder := block_decoder(request)) is not None
        }
        self._answered_last = True
        self._timed_bus = bus if isinstance(bus, TimedBus) else None
        self._read_ts: float | None = None
        self.errors: Counter[str] = Counter()
        """Failed requests by error kind, retried ones included; ``decode`` counts channels
        that arrived but did not decode."""

    @property
    def device(self) -> str:
        """The meter id."""
        return self._device

    @property
    def bus(self) -> RegisterBus:
        """The bus this meter is on (shared with its neighbours)."""
        return self._bus

    @property
    def unit_id(self) -> int:
        """The meter's Modbus unit id."""
        return self._unit_id

    @property
    def channel_count(self) -> int:
        """How many values a complete read returns (register and computed channels)."""
        return self._channel_count

    @property
    def plan(self) -> Sequence[ReadRequest]:
        """The requests one read sends."""
        return self._plan

    @property
    def read_ts(self) -> float | None:
        """When the last read's first request went out on the bus (None on a bus that does
        not say, or when no request was sent).
        """
        return self._read_ts

    async def read(self) -> dict[str, float]:
        """Read and decode every channel of the driver.

        Raises:
            DeviceUnreachableError: a request got no answer.
            FrameError: a request kept getting garbled or short answers.
            DeviceFaultError: every request got a Modbus exception response.
        """
        responses: list[tuple[ReadRequest, list[int]]] = []
        fault: DeviceFaultError | None = None
        self._read_ts = None
        for request in self._plan:
            try:
                responses.append((request, await self._request(request)))
            except DeviceFaultError as exc:
                fault = fault or exc
        if fault is not None and not responses:
            raise fault
        return self._decode(responses)

    async def _request(self, request: ReadRequest) -> list[int]:
        attempts = 1 + (self._retries if self._answered_last else 0)
        for attempt in range(1, attempts + 1):
            try:
                registers = await self._bus.read(
                    self._device,
                    self._unit_id,
                    request.table,
                    request.address,
                    request.count,
                    timeout_s=self._timeout_s,
                )
                # The bus is released only as its read returns, with no await since: what it
                # sent last is this request.
                if self._read_ts is None and self._timed_bus is not None:
                    self._read_ts = self._timed_bus.last_sent_ts
                if len(registers) != request.count:
                    raise FrameError(
                        self._device,
                        f"short response: asked {request.count} at {request.table.value} "
                        f"{request.address}, got {len(registers)}",
                    )
            except DeviceFaultError as exc:
                self.errors[exc.kind] += 1
                self._answered_last = True  # an exception response is an answer
                raise
            except (DeviceUnreachableError, FrameError) as exc:
                self.errors[exc.kind] += 1
                if attempt == attempts:
                    # Garbage on every attempt is no answer either: a unit that only sends
                    # bad frames would otherwise hold the shared bus for every retry.
                    self._answered_last = False
                    raise
            else:
                self._answered_last = True
                return registers
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _decode(self, responses: list[tuple[ReadRequest, list[int]]]) -> dict[str, float]:
        factors: dict[int, int] = {}
        for request, registers in responses:
            try:
                factors.update(read_scale_factors(request, registers))
            except CodecError:
                self.errors["decode"] += 1
        values: dict[str, float] = {}
        for request, registers in responses:
            fast = self._block_decoders.get(id(request))
            if fast is not None and (decoded := fast(registers)) is not None:
                values.update(decoded)
                continue
            for ch in request.channels:
                at = ch.address - request.address
                sf_address = ch.scale_factor_address
                sf = None if sf_address is None else factors.get(sf_address)
                try:
                    value = decode_value(ch, registers[at : at + ch.count], sf)
                except CodecError:
                    self.errors["decode"] += 1
                    continue
                if value is not None:  # None: the meter marks it "not available"
                    values[ch.name] = value
        values.update(compute(self._computed, values))
        return values
