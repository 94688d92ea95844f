"""The service's config template, systemd/gridedge.toml, as scripts/install puts it in place."""

from __future__ import annotations

import re
from pathlib import Path

from gridedge.config import load_config
from gridedge.links.modbus.settings import ModbusRtuLinkConfig, ModbusTcpLinkConfig

TEMPLATE = Path(__file__).resolve().parents[2] / "systemd" / "gridedge.toml"


def _uncommented(text: str) -> str:
    """The template with its commented meter examples switched on (upstreams stay off)."""
    head, rest = text.split("# A meter, or a Modbus TCP gateway", 1)
    meters = rest.split("# An MQTT broker", 1)[0]
    pattern = r"^# ?(\[\[meters\]\]|  \[meters\.link\]|[a-z_ ]+ = )"
    return head + "#" + re.sub(pattern, r"\1", meters, flags=re.M)


def test_template_is_valid_and_writes_only_under_var_lib() -> None:
    """As shipped it passes validation, keeps the outbox in the state directory, polls nothing."""
    config = load_config(TEMPLATE)
    assert config.outbox.path == Path("/var/lib/gridedge/outbox.sqlite3")
    assert config.meters == ()
    assert config.upstreams == ()
    assert config.http.host == "127.0.0.1"


def test_commented_meters_are_a_valid_modbus_tcp_and_rtu_skeleton(tmp_path: Path) -> None:
    """Uncommenting the examples gives one Modbus TCP meter and three RTU meters on one bus."""
    path = tmp_path / "gridedge.toml"
    path.write_text(_uncommented(TEMPLATE.read_text()))
    config = load_config(path)
    links = {m.id: m.link for m in config.meters}
    assert sorted(links) == ["feeder-1", "feeder-2", "feeder-3", "mains"]
    assert isinstance(links["mains"], ModbusTcpLinkConfig)
    assert all(isinstance(links[f"feeder-{i}"], ModbusRtuLinkConfig) for i in (1, 2, 3))


def test_template_injects_no_simulated_faults() -> None:
    """A production template has no simulated link, fault or schedule anywhere, even commented."""
    text = TEMPLATE.read_text()
    assert "simulated" not in text
    assert not re.search(r"\bfaults\b", text)
