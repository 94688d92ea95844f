"""The [[upstreams]] tables: defaults, mistakes named by dotted path, secrets kept out."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from gridedge.config import Config, dump_toml, parse_config
from gridedge.errors import ConfigError, ForwardError
from gridedge.forward.settings import MqttProtocol, enabled_names, read_password


def _parse(tmp_path: Path, *upstreams: dict[str, Any]) -> Config:
    doc = {"gateway": {"id": "gw-1", "site": "s"}, "upstreams": list(upstreams)}
    return parse_config(doc, source="test.toml", base_dir=tmp_path)


def _error(tmp_path: Path, *upstreams: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _parse(tmp_path, *upstreams)
    return info.value


def test_an_upstream_defaults_to_tls_on_8883_with_qos_1_and_a_per_gateway_client_id(
    tmp_path: Path,
) -> None:
    """Only name and host are needed; TLS, port 8883, hostname checks and QoS 1 are defaults."""
    (up,) = _parse(tmp_path, {"name": "cloud", "host": "mqtt.example.com"}).upstreams
    assert (up.tls, up.port, up.verify_hostname, up.qos) == (True, 8883, True, 1)
    assert up.client_id == "gw-1-cloud"
    assert up.protocol is MqttProtocol.V311
    assert up.broker == "mqtt.example.com:8883"


def test_the_puback_timeout_defaults_to_three_keepalives_and_can_be_set(tmp_path: Path) -> None:
    """A silent broker is given up after 3 keepalives unless puback_timeout_s says otherwise."""
    default, tuned = _parse(
        tmp_path,
        {"name": "a", "host": "h", "keepalive_s": 20},
        {"name": "b", "host": "h", "puback_timeout_s": 7.5, "stall_after_s": 60},
    ).upstreams
    assert default.puback_timeout_s == 60.0
    assert default.stall_after_s == 300.0
    assert (tuned.puback_timeout_s, tuned.stall_after_s) == (7.5, 60.0)


def test_plain_tcp_needs_tls_false_and_defaults_to_1883(tmp_path: Path) -> None:
    """Tls = false, written out, selects plain TCP on 1883."""
    (up,) = _parse(tmp_path, {"name": "lan", "host": "10.0.0.5", "tls": False}).upstreams
    assert (up.tls, up.port) == (False, 1883)


def test_relative_tls_and_password_files_resolve_against_the_config_folder(
    tmp_path: Path,
) -> None:
    """ca_file, cert_file, key_file and password_file are relative to the config's folder."""
    table = {
        "name": "a",
        "host": "h",
        "ca_file": "ca.pem",
        "cert_file": "gw.pem",
        "key_file": "gw.key",
        "username": "gw",
        "password_file": "secret.txt",
    }
    (up,) = _parse(tmp_path, table).upstreams
    assert up.ca_file == tmp_path / "ca.pem"
    assert up.key_file == tmp_path / "gw.key"
    assert up.password_file == tmp_path / "secret.txt"


@pytest.mark.parametrize(
    ("extra", "path", "problem"),
    [
        ({"tls": False, "ca_file": "ca.pem"}, "upstreams[0].ca_file", "only used with tls"),
        ({"key_file": "k.pem"}, "upstreams[0].key_file", "needs cert_file"),
        ({"password_env": "P"}, "upstreams[0].username", "required when a password"),
        (
            {"username": "u", "password_env": "P", "password_file": "f"},
            "upstreams[0].password_env",
            "not both",
        ),
        ({"qos": 0}, "upstreams[0].qos", "at least 1"),
        ({"protocol": "5.0"}, "upstreams[0].protocol", "'3.1.1', '5'"),
        ({"topic_prefix": "a/+/b"}, "upstreams[0].topic_prefix", "without '+'"),
        ({"topic_prefix": "a//b"}, "upstreams[0].topic_prefix", "empty levels"),
        ({"window": 0}, "upstreams[0].window", "at least 1"),
        ({"drain_rate": -1}, "upstreams[0].drain_rate", "at least 0"),
        ({"reconnect_min_s": 5, "reconnect_max_s": 1}, "upstreams[0].reconnect_max_s", "least"),
        ({"passwrd_file": "f"}, "upstreams[0].passwrd_file", "did you mean 'password_file'"),
        ({"name": "a/b"}, "upstreams[0].name", "letters, digits"),
        ({"puback_timeout_s": 0}, "upstreams[0].puback_timeout_s", "at least 0.1"),
        ({"stall_after_s": "soon"}, "upstreams[0].stall_after_s", "expected a number"),
        ({"batch_layout": "rows"}, "upstreams[0].batch_layout", "'columns', 'objects'"),
        ({"batch_scope": "site"}, "upstreams[0].batch_scope", "'device', 'gateway'"),
    ],
)
def test_upstream_mistakes_name_their_dotted_key(
    tmp_path: Path, extra: dict[str, Any], path: str, problem: str
) -> None:
    """Each invalid combination is refused with the key's dotted path and what is wrong."""
    error = _error(tmp_path, {"name": "a", "host": "h", **extra})
    assert error.path == path
    assert problem in error.problem


def test_upstream_names_are_unique(tmp_path: Path) -> None:
    """Two upstreams with one name would share a cursor: refused."""
    error = _error(tmp_path, {"name": "a", "host": "h"}, {"name": "a", "host": "i"})
    assert error.path == "upstreams[1].name"


def test_only_enabled_upstreams_hold_envelopes_in_the_outbox(tmp_path: Path) -> None:
    """A disabled upstream is neither forwarded to nor waited for by retention."""
    config = _parse(
        tmp_path, {"name": "a", "host": "h"}, {"name": "b", "host": "h", "enabled": False}
    )
    assert enabled_names(config.upstreams) == ["a"]


def test_check_output_reads_back_and_holds_no_password(tmp_path: Path) -> None:
    """The printed config parses to the same upstreams and names the password's source only."""
    table = {"name": "a", "host": "h", "username": "gw", "password_env": "GW_MQTT_PASSWORD"}
    config = _parse(tmp_path, table, {"name": "b", "host": "h", "tls": False})
    text = dump_toml(config)
    assert 'password_env = "GW_MQTT_PASSWORD"' in text
    again = parse_config(tomllib.loads(text), source="again", base_dir=tmp_path)
    assert again.upstreams == config.upstreams


def test_password_comes_from_the_first_line_of_its_file(tmp_path: Path) -> None:
    """A password file's trailing newline is not part of the password."""
    (tmp_path / "pw").write_text("s3cret\n")
    (up,) = _parse(
        tmp_path, {"name": "a", "host": "h", "username": "u", "password_file": "pw"}
    ).upstreams
    assert read_password(up) == "s3cret"


def test_password_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """password_env names a variable read when connecting."""
    monkeypatch.setenv("GW_PW", "from-env")
    (up,) = _parse(
        tmp_path, {"name": "a", "host": "h", "username": "u", "password_env": "GW_PW"}
    ).upstreams
    assert read_password(up) == "from-env"


def test_a_missing_password_source_is_a_forward_error_that_names_it_not_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unset variable or unreadable file fails the connection attempt, naming the source."""
    monkeypatch.delenv("GW_PW", raising=False)
    (env_up,) = _parse(
        tmp_path, {"name": "a", "host": "h", "username": "u", "password_env": "GW_PW"}
    ).upstreams
    with pytest.raises(ForwardError, match="GW_PW is not set"):
        read_password(env_up)
    (file_up,) = _parse(
        tmp_path, {"name": "a", "host": "h", "username": "u", "password_file": "nope"}
    ).upstreams
    with pytest.raises(ForwardError, match="cannot read password_file"):
        read_password(file_up)


def test_the_commented_upstream_example_is_valid_once_uncommented(tmp_path: Path) -> None:
    """config.example.toml's [[upstreams]] example parses as a TLS upstream when uncommented."""
    text = (Path(__file__).resolve().parents[3] / "config.example.toml").read_text()
    block = text[text.index("# [[upstreams]]") :].splitlines()
    doc = tomllib.loads("\n".join(line.removeprefix("#").removeprefix(" ") for line in block))
    (up,) = parse_config(
        {"gateway": {"id": "gw-demo-01"}, **doc}, source="example", base_dir=tmp_path
    ).upstreams
    assert up.tls
    assert up.cert_file == tmp_path / "gateway.pem"
    assert up.client_id == "gw-demo-01-cloud"


def test_integrations_default_off_and_are_checked(tmp_path: Path) -> None:
    """JSON, no Home Assistant, a health message a minute; a bad format or prefix names its key."""
    (up,) = _parse(tmp_path, {"name": "a", "host": "h"}).upstreams
    assert (up.format.value, up.home_assistant, up.discovery_prefix) == (
        "json",
        False,
        "homeassistant",
    )
    assert up.health_interval_s == 60.0
    (ha,) = _parse(
        tmp_path,
        {
            "name": "a",
            "host": "h",
            "format": "influx",
            "home_assistant": True,
            "discovery_prefix": "ha/",
        },
    ).upstreams
    assert (ha.format.value, ha.home_assistant, ha.discovery_prefix) == ("influx", True, "ha")
    assert "format" in str(_error(tmp_path, {"name": "a", "host": "h", "format": "xml"}))
    bad = _error(tmp_path, {"name": "a", "host": "h", "discovery_prefix": "home/#"})
    assert "discovery_prefix" in str(bad)
