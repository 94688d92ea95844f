"""The shipped Telegraf config matches what gridedge sends."""

from __future__ import annotations

import tomllib
from pathlib import Path

from gridedge.forward.payload import Identity

ROOT = Path(__file__).resolve().parents[2]


def matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching with ``+`` and a trailing ``#``."""
    want, got = pattern.split("/"), topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(got) or (level != "+" and level != got[i]):
            return False
    return len(want) == len(got)


def test_telegraf_subscribes_to_gridedge_topics_with_qos_1_in_a_persistent_session() -> None:
    """Its filters catch sample, alert and aggregate topics; a restart loses nothing."""
    conf = tomllib.loads((ROOT / "contrib" / "telegraf.conf").read_text())
    consumer = conf["inputs"]["mqtt_consumer"][0]
    assert consumer["data_format"] == "influx"
    assert consumer["qos"] == 1
    assert consumer["persistent_session"] is True
    assert consumer["client_id"]
    identity = Identity("gridedge", "site-a", "gw-1")
    for kind in ("sample", "alert", "aggregate"):
        topic = identity.topic("mains", kind)
        assert any(matches(f, topic) for f in consumer["topics"]), topic
    assert not any(matches(f, identity.status_topic) for f in consumer["topics"])


def test_telegraf_topic_parsing_names_each_level_of_the_topic() -> None:
    """The parsing template has one entry per topic level, the kind at the end."""
    conf = tomllib.loads((ROOT / "contrib" / "telegraf.conf").read_text())
    (parsing,) = conf["inputs"]["mqtt_consumer"][0]["topic_parsing"]
    topic = Identity("gridedge", "site-a", "gw-1").topic("mains", "sample")
    assert matches(parsing["topic"], topic)
    tags = parsing["tags"].split("/")
    assert len(tags) == len(topic.split("/"))
    assert dict(zip(tags, topic.split("/"), strict=True))["kind"] == "sample"
    assert dict(zip(tags, topic.split("/"), strict=True))["topic_device"] == "mains"
