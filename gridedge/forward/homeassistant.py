"""Home Assistant MQTT discovery for gridedge's meters (pure).

Per meter, one retained *device-based* discovery message on
``<discovery_prefix>/device/<object_id>/config`` announces one sensor entity per channel and a
``problem`` binary sensor for active alerts. Every entity reads the meter's flat, retained
state topic ``{prefix}/{site}/{gateway}/{device}/state``: one JSON object with every channel's
latest value, ``online`` and ``problem`` (see :class:`DeviceState`), so Home Assistant never
sees batches or a sample that left channels out. Availability needs both the gateway's status
topic (``online``/``offline``, its last will) and the meter's own ``online`` flag.

Energy channels are ``energy``/``total_increasing`` in kWh, which puts them in Home Assistant's
Energy dashboard; the other classes and units follow Home Assistant's sensor device classes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gridedge.channels import CHANNELS
from gridedge.drivers import Driver
from gridedge.forward.payload import Identity, Message
from gridedge.model import Envelope

ORIGIN = "gridedge"
_OBJECT_ID = re.compile(r"[^A-Za-z0-9_-]")

# quantity -> (device_class, state_class); None where Home Assistant has no fitting class.
_CLASSES: Mapping[str, tuple[str | None, str]] = {
    "voltage": ("voltage", "measurement"),
    "voltage_ll": ("voltage", "measurement"),
    "current": ("current", "measurement"),
    "active_power": ("power", "measurement"),
    "reactive_power": ("reactive_power", "measurement"),
    "apparent_power": ("apparent_power", "measurement"),
    "power_factor": ("power_factor", "measurement"),
    "frequency": ("frequency", "measurement"),
    "energy": ("energy", "total_increasing"),
    "reactive_energy": (None, "total_increasing"),
    "temperature": ("temperature", "measurement"),
}


def object_id(identity: Identity, device: str) -> str:
    """A discovery object id for ``device``: unique per gateway, only ``[A-Za-z0-9_-]``."""
    return _OBJECT_ID.sub("_", f"gridedge_{identity.site}_{identity.gateway}_{device}")


def state_topic(identity: Identity, device: str) -> str:
    """The flat, retained state topic of one meter."""
    return identity.topic(device, "state")


def config_topic(discovery_prefix: str, identity: Identity, device: str) -> str:
    """Where the discovery message of ``device`` is retained."""
    return f"{discovery_prefix}/device/{object_id(identity, device)}/config"


def _component(name: str, unit: str, uid: str) -> dict[str, object]:
    info = CHANNELS.get(name)
    device_class, state_class = _CLASSES.get(info.quantity if info else "", (None, "measurement"))
    component: dict[str, object] = {
        "p": "sensor",
        "name": (info.description if info else name.removeprefix("x_")).capitalize(),
        "unique_id": f"{uid}_{name}",
        "value_template": f"{{{{ value_json.{name} }}}}",
        "state_class": state_class,
    }
    if device_class is not None:
        component["device_class"] = device_class
    if unit:
        component["unit_of_measurement"] = unit
    return component


def discovery(
    device: str,
    driver: Driver,
    identity: Identity,
    *,
    discovery_prefix: str = "homeassistant",
    version: str = "",
) -> Message:
    """The retained device-based discovery message of one meter.

    Args:
        device: the meter's id.
        driver: its model, for the channel list, manufacturer and model name.
        identity: the gateway's topic prefix, site and id.
        discovery_prefix: Home Assistant's discovery prefix.
        version: gridedge's version, sent as the origin's software version.
    """
    uid = object_id(identity, device)
    components: dict[str, dict[str, object]] = {
        ch.name: _component(ch.name, ch.unit, uid) for ch in driver.channels
    }
    components["problem"] = {
        "p": "binary_sensor",
        "name": "Problem",
        "unique_id": f"{uid}_problem",
        "device_class": "problem",
        "value_template": "{{ 'ON' if value_json.problem else 'OFF' }}",
    }
    payload: dict[str, object] = {
        "dev": {
            "ids": [uid],
            "name": device,
            "mf": driver.manufacturer,
            "mdl": driver.model,
        },
        "o": {"name": ORIGIN, "sw": version} if version else {"name": ORIGIN},
        "cmps": components,
        "state_topic": state_topic(identity, device),
        "availability": [
            {"topic": identity.status_topic},
            {
                "topic": state_topic(identity, device),
                "value_template": "{{ 'online' if value_json.online else 'offline' }}",
            },
        ],
        "availability_mode": "all",
        "qos": 1,
    }
    return Message(config_topic(discovery_prefix, identity, device), _json(payload), seqs=())


def removal(device: str, identity: Identity, *, discovery_prefix: str = "homeassistant") -> Message:
    """The empty retained message that removes a meter that left the configuration."""
    return Message(config_topic(discovery_prefix, identity, device), b"", seqs=())


@dataclass
class DeviceState:
    """The latest of everything one meter reported, for its flat state topic."""

    values: dict[str, float] = field(default_factory=dict)
    online: bool = True
    alerts: set[tuple[str, str]] = field(default_factory=set)

    def apply(self, kind: str, body: Mapping[str, object]) -> bool:
        """Fold one envelope's body in; True when the state changed.

        Samples update their channels (a sample that left channels out keeps their last value),
        statuses set ``online``, alerts add or remove ``(rule, channel)`` from the active set.
        """
        if kind == "sample":
            values = body.get("values")
            if not isinstance(values, Mapping):
                return False
            fresh = {
                str(k): float(v)
                for k, v in values.items()
                if isinstance(v, int | float) and math.isfinite(v)
            }
            changed = any(self.values.get(k) != v for k, v in fresh.items())
            self.values.update(fresh)
            return changed
        if kind == "status":
            online = body.get("state") == "online"
            changed = online != self.online
            self.online = online
            return changed
        if kind == "alert":
            key = (str(body.get("rule")), str(body.get("channel")))
            before = len(self.alerts)
            if body.get("state") == "raised":
                self.alerts.add(key)
            else:
                self.alerts.discard(key)
            return len(self.alerts) != before
        return False

    def payload(self) -> bytes:
        """The state topic's JSON: every channel, ``online`` and ``problem``."""
        return _json({**self.values, "online": self.online, "problem": bool(self.alerts)})


def discovery_messages(
    meters: Iterable[tuple[str, Driver]],
    identity: Identity,
    *,
    discovery_prefix: str = "homeassistant",
    version: str = "",
) -> list[Message]:
    """The discovery message of every meter, in order."""
    return [
        discovery(d, drv, identity, discovery_prefix=discovery_prefix, version=version)
        for d, drv in meters
    ]


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class HomeAssistantBridge:
    """One upstream's Home Assistant side (a :class:`~gridedge.forward.session.Mirror`).

    On every connection it announces each meter (discovery, then its latest state) and listens
    to ``<discovery_prefix>/status`` (Home Assistant's birth message: announce again) and to the
    retained discovery configs, removing those of this gateway whose meter left the config.
    """

    def __init__(
        self,
        meters: Iterable[tuple[str, Driver]],
        identity: Identity,
        *,
        discovery_prefix: str = "homeassistant",
        version: str = "",
    ) -> None:
        self._meters = dict(meters)
        self._identity = identity
        self._prefix = discovery_prefix
        self._version = version
        self._states = {device: DeviceState() for device in self._meters}
        self._ours = {object_id(identity, device) for device in self._meters}
        self._base = f"{identity.prefix}/{identity.site}/{identity.gateway}/"

    @property
    def subscriptions(self) -> list[str]:
        """Home Assistant's status topic and every retained device discovery config."""
        return [f"{self._prefix}/status", f"{self._prefix}/device/+/config"]

    def on_connect(self) -> list[Message]:
        """Discovery for every meter, then the state of those that reported already."""
        messages = discovery_messages(
            self._meters.items(),
            self._identity,
            discovery_prefix=self._prefix,
            version=self._version,
        )
        messages += [
            Message(state_topic(self._identity, d), s.payload(), seqs=())
            for d, s in self._states.items()
            if s.values
        ]
        return messages

    def on_envelopes(self, envelopes: Iterable[Envelope]) -> list[Message]:
        """The new state of every meter these envelopes changed."""
        changed: dict[str, DeviceState] = {}
        for envelope in envelopes:
            state = self._states.get(envelope.device)
            if state is not None and state.apply(envelope.kind.value, envelope.body):
                changed[envelope.device] = state
        return [
            Message(state_topic(self._identity, d), s.payload(), seqs=())
            for d, s in changed.items()
        ]

    def on_message(self, topic: str, payload: bytes) -> list[Message]:
        """Announce again when Home Assistant comes online; remove meters no longer here."""
        if topic == f"{self._prefix}/status":
            return self.on_connect() if payload.strip() == b"online" else []
        levels = topic.split("/")
        if len(levels) < 3 or not payload or levels[-2] in self._ours:
            return []
        try:
            config = json.loads(payload)
        except ValueError:
            return []
        announced = config.get("state_topic") if isinstance(config, dict) else None
        if isinstance(announced, str) and announced.startswith(self._base):
            return [Message(topic, b"", seqs=())]  # one of ours, for a meter that was removed
        return []
