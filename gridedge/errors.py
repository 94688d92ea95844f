"""The whole gridedge exception tree.

Library exceptions are translated into these at the adapter boundary (``raise ... from exc``),
so the rest of the daemon speaks only gridedge's own errors::

    GridedgeError
    ├── ConfigError                 a config or driver file is invalid (names the dotted key path)
    │   └── DriverError             a driver file is invalid, or a driver name is unknown
    ├── LinkError                   talking to a meter failed (carries ``device``)
    │   ├── DeviceUnreachableError  no answer: timeout, connection refused, simulated dropout
    │   ├── DeviceFaultError        the device answered with a Modbus exception (``code``)
    │   └── FrameError              a garbled, short or CRC-failed response
    ├── CodecError                  registers cannot be decoded or a value cannot be encoded
    ├── OutboxError                 the local store cannot be opened, written or read
    │   └── OutboxFullError         the filesystem under the outbox has no room left
    └── ForwardError                talking to an upstream broker failed (carries ``broker``)
        ├── BrokerUnavailableError  connection refused, TLS failure, lost connection
        └── PublishRejectedError    the broker refused a publish or the credentials
            └── MessageRefusedError one message refused by an MQTT 5 reason code (``code``)
"""

from __future__ import annotations


class GridedgeError(Exception):
    """Base class of every error gridedge raises on purpose."""


class ConfigError(GridedgeError):
    """A configuration value is missing, unknown or invalid.

    Attributes:
        path: dotted key path of the offending value, e.g. ``meters[2].link.port``.
        problem: what was expected and what was found.
        source: the file the value came from, when known.
    """

    def __init__(self, path: str, problem: str, source: str | None = None) -> None:
        self.path = path
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        key = f"{path}: " if path else ""
        super().__init__(f"{where}{key}{problem}")


class DriverError(ConfigError):
    """A driver file is invalid, or a configured driver name does not exist."""


class LinkError(GridedgeError):
    """Reading a meter failed."""

    def __init__(self, device: str, detail: str) -> None:
        self.device = device
        self.detail = detail
        super().__init__(f"{device}: {detail}")

    @property
    def kind(self) -> str:
        """Short label used for counting errors by kind (metrics, logs)."""
        return "link"


class DeviceUnreachableError(LinkError):
    """The device did not answer (timeout, refused connection, dropout)."""

    @property
    def kind(self) -> str:
        """The metrics label of this failure: ``timeout``."""
        return "timeout"


class DeviceFaultError(LinkError):
    """The device answered with a Modbus exception response."""

    def __init__(self, device: str, code: int, address: int | None = None) -> None:
        self.code = code
        self.address = address
        at = f" reading address {address}" if address is not None else ""
        super().__init__(device, f"Modbus exception code {code}{at}")

    @property
    def kind(self) -> str:
        """The metrics label of this failure: ``exception``."""
        return "exception"


class FrameError(LinkError):
    """The response was garbled: bad CRC, wrong length, wrong unit id or function."""

    @property
    def kind(self) -> str:
        """The metrics label of this failure: ``frame``."""
        return "frame"


class CodecError(GridedgeError):
    """Registers could not be decoded into a value, or a value could not be encoded."""


class OutboxError(GridedgeError):
    """The outbox could not be opened, written or read."""


class OutboxFullError(OutboxError):
    """A write failed because the filesystem under the outbox is full."""


class ForwardError(GridedgeError):
    """Talking to an upstream broker failed."""

    def __init__(self, broker: str, detail: str) -> None:
        self.broker = broker
        self.detail = detail
        super().__init__(f"{broker}: {detail}")


class BrokerUnavailableError(ForwardError):
    """The broker could not be reached, the TLS handshake failed, or the connection dropped."""


class PublishRejectedError(ForwardError):
    """The broker refused the connection credentials or a publish."""


class MessageRefusedError(PublishRejectedError):
    """The broker refused one message with an MQTT 5 reason code (>= 0x80) and goes on.

    Attributes:
        code: the reason code, e.g. 0x87 (not authorized).
        reason: a stable label for it (``not_authorized``), for metrics and the quarantine.
    """

    def __init__(self, broker: str, topic: str, code: int, name: str) -> None:
        self.code = code
        self.reason = "_".join(name.lower().replace("-", " ").split()) or f"code_{code:#04x}"
        super().__init__(broker, f"publish to {topic} refused: {name} ({code:#04x})")
