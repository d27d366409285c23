"""The topic contract is plain JSON: a client that is not aiokafka can publish a clone."""

from __future__ import annotations

import json

from confluent_kafka import Producer

from domain.envelopes import Topics
from envbranch.settings import Settings
from tests import scenario
from tests.support import BackgroundStack, command, encode, events_until, produce, receipts


def test_a_clone_command_published_with_librdkafka_is_processed(
    sqlite_settings: Settings, bootstrap: str, created_topics: Topics
) -> None:
    topics = created_topics
    setup = scenario.production()[:3]
    clone = command(
        "collections.clone",
        {
            "namespace_identifier": "prod",
            "collection_identifier": "docs-text",
            "collection_name": "docs-from-librdkafka",
        },
    )
    with BackgroundStack(sqlite_settings, bootstrap, ("command-processor", "relay")):
        produce(bootstrap, topics.commands, [encode(c) for c in setup])
        events_until(bootstrap, topics, lambda ev: len(receipts(ev)) == len(setup))

        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        producer.produce(topics.commands, json.dumps(clone).encode(), key=b"prod")
        assert producer.flush(30) == 0

        events = events_until(
            bootstrap, topics, lambda ev: clone["command_id"] in receipts(ev), what="the clone"
        )
    [cloned] = [e for e in events if e.type == "Collection.Cloned"]
    assert cloned.data["collection_name"] == "docs-from-librdkafka"
    assert cloned.command_id == clone["command_id"]
    assert cloned.data["vector_mode"] == "reuse"
