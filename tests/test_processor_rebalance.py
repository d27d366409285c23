"""Two command processors in one group on two partitions, each with its own aggregate
cache, both writing to one namespace while the partitions move between them: no update
lost, no decision on stale state, nothing applied twice."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
from typing import Any

from aiokafka import AIOKafkaProducer

from application.environments import Environments
from consumers.command_processor import CommandProcessor, tracking_name
from domain.ids import Kind
from domain.namespace import NamespaceName
from envbranch import bootstrap as components
from envbranch.bootstrap import open_event_store
from envbranch.broker import EmbeddedBroker
from envbranch.readiness import Readiness
from envbranch.settings import Settings
from envbranch.topics import ensure_topics, topic_plan
from tests.support import command, dlq_entries, run

SOURCE = {"type": "bucket", "bucket_ids": ["raw"]}
EXTRACTOR = {"feature_extractor_name": "text_extractor", "version": "v1"}
DEADLINE = 120.0


class Running:
    """A command processor running in this event loop until stopped."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        async def nothing() -> None:
            return None

        readiness = Readiness(["command-processor"])
        self.processor: CommandProcessor = components.command_processor(
            settings, bootstrap, readiness, nothing
        )
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.processor.run(self.stop))

    def partitions(self) -> set[int]:
        consumer = self.processor.consumer
        return set() if consumer is None else {tp.partition for tp in consumer.assignment()}

    async def halt(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


async def until(condition: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def in_namespace(type_: str, **body: Any) -> dict[str, Any]:
    return command(type_, {"namespace_identifier": "shared", **body})


def create(name: str) -> dict[str, Any]:
    body = {"collection_name": name, "source": SOURCE, "feature_extractor": EXTRACTOR}
    return in_namespace("collections.create", **body)


async def publish(
    bootstrap: str, topic: str, commands: list[tuple[int, dict[str, Any]]], ends: dict[int, int]
) -> None:
    """Publish each command to its partition; ``ends`` gets each partition's next offset."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, document in commands:
            value = json.dumps(document).encode()
            sent = await producer.send_and_wait(topic, value, partition=partition)
            ends[partition] = max(ends.get(partition, 0), sent.offset + 1)
    finally:
        await producer.stop()


def positions(store: Environments, settings: Settings, cluster_id: str) -> dict[int, int | None]:
    """How far the processors have recorded each partition, in the store."""
    name = tracking_name
    return {p: store.last_position(name(cluster_id, settings.topics.commands, p)) for p in (0, 1)}


def outcomes(settings: Settings, bootstrap: str) -> tuple[collections.Counter[str], list[str]]:
    """Events per command_id in the store; command_ids on the DLQ."""
    app = open_event_store(settings)
    try:
        per_command = collections.Counter(
            app.mapper.to_domain_event(n).command_id
            for n in app.recorder.select_notifications(1, 10**6)
        )
    finally:
        app.close()
    rejected = [
        json.loads(entry["value"])["command_id"]
        for entry in dlq_entries(bootstrap, settings.topics)
    ]
    return per_command, rejected


def descriptions(settings: Settings, names: list[str]) -> list[str]:
    app = open_event_store(settings)
    try:
        claim = app.repository.get(NamespaceName.id_for("shared"))
        namespace = app.repository.get(claim.claimed_by)
        found = [app.repository.get(namespace.find(Kind.COLLECTION, n)) for n in names]
        return [collection.description for collection in found]
    finally:
        app.close()


def wave(tag: str, count: int) -> list[tuple[int, dict[str, Any]]]:
    """``count`` new collections, and ``count`` names asked for on both partitions at
    once: exactly one of each pair may get it."""
    out = []
    for i in range(count):
        out.append((i % 2, create(f"{tag}-{i}")))
        out.append((0, create(f"{tag}-dup-{i}")))
        out.append((1, create(f"{tag}-dup-{i}")))
    return out


def test_two_processors_sharing_a_namespace_while_partitions_move(
    settings: Settings, broker: EmbeddedBroker
) -> None:
    bootstrap = broker.bootstrap_servers
    settings = dataclasses.replace(
        settings, command_partitions=2, processor_group=f"{settings.topic_prefix}-processors"
    )
    topic = settings.topics.commands
    run(ensure_topics(bootstrap, topic_plan(settings.topics, 2)))
    setup = [
        (0, command("namespaces.create", {"namespace_name": "shared"})),
        (0, in_namespace("buckets.create", bucket_name="raw", bucket_schema={"properties": {}})),
    ]
    waves = {tag: wave(tag, 15) for tag in ("alone", "split", "moved", "split-again")}
    pairs = [  # the same name asked for on both partitions at once
        (commands[i + 1][1], commands[i + 2][1])
        for commands in waves.values()
        for i in range(0, len(commands), 3)
    ]
    # Whichever processor updates a collection, the first one (which cached it before)
    # clones it later from where the partitions have moved: with the update.
    for partition in (0, 1):
        source = {"collection_identifier": f"alone-{partition}"}
        cached = in_namespace("collections.update", **source, description="first")
        waves["alone"].append((partition, cached))  # the first processor loads (caches) it
        update = in_namespace("collections.update", **source, description=f"by p{partition}")
        waves["split"].append((partition, update))
        clone = in_namespace("collections.clone", **source, collection_name=f"then-{partition}")
        waves["moved"].append((partition, clone))

    ends: dict[int, int] = {}

    async def recorded() -> None:
        """Until the store has recorded every partition up to what was published."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while True:
            now = await asyncio.to_thread(positions, reader, settings, broker.cluster_id)
            if {p: now[p] for p in ends} == ends:
                return
            if loop.time() > deadline:
                raise AssertionError(f"timed out: recorded {now}, published up to {ends}")
            await asyncio.sleep(0.1)

    async def scenario() -> None:
        one = Running(settings, bootstrap)
        await until(lambda: one.partitions() == {0, 1}, "the first processor's partitions")
        await publish(bootstrap, topic, setup, ends)
        await recorded()  # the namespace exists before anything is asked of it
        await publish(bootstrap, topic, waves["alone"], ends)
        await recorded()
        other = Running(settings, bootstrap)  # a rebalance: one partition each
        await until(lambda: one.partitions() and other.partitions(), "the split")
        await publish(bootstrap, topic, waves["split"], ends)
        await recorded()
        await other.halt()  # its partition moves to the first, whose cache is behind
        await until(lambda: one.partitions() == {0, 1}, "the partition to move back")
        await publish(bootstrap, topic, waves["moved"], ends)
        await recorded()
        again = Running(settings, bootstrap)
        await until(lambda: one.partitions() and again.partitions(), "the second split")
        await publish(bootstrap, topic, waves["split-again"], ends)
        await recorded()
        await again.halt()
        await one.halt()

    reader = open_event_store(settings)  # the test's own look at the store
    try:
        asyncio.run(scenario())
    finally:
        reader.close()

    per_command, rejected = outcomes(settings, bootstrap)
    every = [document for _, document in setup] + [d for w in waves.values() for _, d in w]
    accepted = set(per_command)
    assert accepted.isdisjoint(rejected)  # a command lands once, one way
    assert accepted | set(rejected) == {d["command_id"] for d in every}  # none lost
    assert len(rejected) == len(set(rejected))
    for first, second in pairs:  # one got the name, the other was refused
        assert (first["command_id"] in accepted) != (second["command_id"] in accepted)
    assert descriptions(settings, ["then-0", "then-1"]) == ["by p0", "by p1"]
    # Nothing written twice: a create writes its collection's Created event, the
    # namespace's ResourceAdded and the receipt, each once.
    creates = [d for d in every if d["type"] == "collections.create"]
    assert {per_command[d["command_id"]] for d in creates if d["command_id"] in accepted} == {3}
