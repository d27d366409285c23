"""Write path throughput: commands/s from publish to event on the topic.

For each event store it runs, in this one process:
  baseline  a raw eventsourcing save loop: one new aggregate with three events
            per save (what a namespaces.create stores), no Kafka, no validation;
  envbranch N namespaces.create commands published to envbranch.commands; the
            clock stops when the last command's receipt is on envbranch.events.
and prints both rates and their ratio.

    python bench/write_path.py [--commands 2000] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from domain.envelopes import EventEnvelope
from envbranch.bootstrap import event_store_env
from envbranch.broker import EmbeddedBroker
from envbranch.settings import Settings
from envbranch.stack import run_components

POSTGRES = {
    "POSTGRES_HOST": "127.0.0.1",
    "POSTGRES_PORT": "5432",
    "POSTGRES_DBNAME": "test",
    "POSTGRES_USER": "postgres",
    "POSTGRES_PASSWORD": "",
}


class Thing(Aggregate):
    def __init__(self, name: str) -> None:
        self.name = name

    @event("Named")
    def rename(self, name: str) -> None:
        self.name = name

    @event("Described")
    def describe(self, description: str) -> None:
        self.description = description


def raw_save_rate(settings: Settings, count: int) -> float:
    app: Application = Application(env=event_store_env(settings))
    start = time.perf_counter()
    for i in range(count):
        thing = Thing(name=f"thing-{i}")
        thing.rename(f"renamed-{i}")
        thing.describe("three events per save, like a namespaces.create")
        app.save(thing)
    elapsed = time.perf_counter() - start
    app.close()
    return count / elapsed


async def envbranch_rate(settings: Settings, bootstrap: str, count: int) -> float:
    topics = settings.topics
    stop, ready = asyncio.Event(), asyncio.Event()
    stack = asyncio.create_task(
        run_components(settings, bootstrap, ("command-processor", "relay"), stop, ready)
    )
    await ready.wait()
    last_id = None
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        tp = TopicPartition(topics.events, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        # Warm up: one command through the whole path before the clock starts.
        await _send_and_await(producer, consumer, tp, topics.commands, "warm-up")
        start = time.perf_counter()
        for i in range(count):
            last_id = f"bench-{i}"
            await producer.send(topics.commands, _command(last_id, f"ns-{i}"))
        await producer.flush()
        await _await_receipt(consumer, tp, last_id)
        elapsed = time.perf_counter() - start
    finally:
        await producer.stop()
        await consumer.stop()
        stop.set()
        await stack
    return count / elapsed


def _command(command_id: str, name: str) -> bytes:
    return json.dumps(
        {
            "command_id": command_id,
            "type": "namespaces.create",
            "body": {"namespace_name": name},
            "actor": "bench",
        }
    ).encode()


async def _send_and_await(producer, consumer, tp, topic: str, name: str) -> None:  # type: ignore[no-untyped-def]
    await producer.send_and_wait(topic, _command(name, name))
    await _await_receipt(consumer, tp, name)


async def _await_receipt(consumer, tp, command_id: str | None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        for record in (await consumer.getmany(tp, timeout_ms=200)).get(tp, []):
            envelope = EventEnvelope.from_bytes(record.value)
            if envelope.type == "CommandReceipt.Accepted" and envelope.command_id == command_id:
                return
    raise TimeoutError(f"no receipt for {command_id}")


@contextmanager
def store(kind: str) -> Iterator[Settings]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "sqlite":
            yield Settings(data_dir=Path(tmp), topic_prefix=prefix, processor_group=None)
            return
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        dsn = {
            "host": POSTGRES["POSTGRES_HOST"],
            "port": POSTGRES["POSTGRES_PORT"],
            "dbname": POSTGRES["POSTGRES_DBNAME"],
            "user": POSTGRES["POSTGRES_USER"],
        }
        with psycopg.connect(**dsn, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        try:
            yield Settings(
                data_dir=Path(tmp),
                event_store="postgres",
                postgres={**POSTGRES, "POSTGRES_SCHEMA": schema},
                topic_prefix=prefix,
                processor_group=None,
            )
        finally:
            with psycopg.connect(**dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    print(f"write path, {args.commands} commands per run, embedded Tansu broker")
    print(f"{'store':<10} {'raw save loop':>16} {'envbranch e2e':>16} {'ratio':>8}")
    with EmbeddedBroker() as broker:
        for kind in args.stores.split(","):
            with store(kind) as raw_settings:
                raw = raw_save_rate(raw_settings, args.commands)
            with store(kind) as settings:
                e2e = asyncio.run(envbranch_rate(settings, broker.bootstrap_servers, args.commands))
            print(f"{kind:<10} {raw:>12.0f} c/s {e2e:>12.0f} c/s {e2e / raw:>8.2f}")


if __name__ == "__main__":
    main()
