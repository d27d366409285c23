"""Write path throughput: commands/s from envbranch.commands to their receipts on
envbranch.events, with the hop each part of it takes, against the raw parts.

For each event store, all in this one process (as `envbranch up` runs them):
  parts       raw Kafka: N records produced and consumed with aiokafka; eventsourcing:
              N new aggregates of three events (what a namespaces.create stores) saved
              500 to a transaction, and one to a transaction
  per hop     the command processor alone, from a filled commands topic until every
              command is stored; the relay alone, from that store until every event is
              on envbranch.events
  end to end  N namespaces.create published to a fresh stack; the clock stops when the
              last command's receipt is on envbranch.events
  from outside  the same, with the stack (`envbranch serve command-processor relay`, its
              embedded settings) in a process of its own and this one as its client, as
              the goal was first measured; CPU is the stack process's
  two processes  the same with `envbranch serve command-processor` and `envbranch serve
              relay` as two processes (as the compose topology runs them): each has a
              core of its own, the relay polls the store between pages; CPU is both's
Each line also gives the process's CPU seconds per 1,000 commands (2 cores here: what
a bigger machine gains depends on it).

    python bench/write_path.py [--commands 3000] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from children import child, child_env, cpu_seconds
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from machine import machine

from domain.envelopes import EventEnvelope
from envbranch.bootstrap import event_store_env, open_event_store
from envbranch.broker import EmbeddedBroker
from envbranch.settings import Settings
from envbranch.stack import run_components
from envbranch.topics import ensure_topics, topic_plan

GOALS = {"sqlite": 5000, "postgres": 2500}  # commands/s, end to end
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


class Rate:
    """Work done over a measured span: per second, and process CPU per 1,000."""

    def __init__(self, count: int, seconds: float, cpu: float) -> None:
        self.count, self.seconds, self.cpu = count, seconds, cpu

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu / self.count * 1000


async def measure(count: int, work: Callable[[], Awaitable[None]]) -> Rate:
    wall, cpu = time.perf_counter(), time.process_time()
    await work()
    return Rate(count, time.perf_counter() - wall, time.process_time() - cpu)


def raw_save_rate(settings: Settings, count: int, per_transaction: int) -> Rate:
    app: Application = Application(env=event_store_env(settings))

    async def save() -> None:
        for start in range(0, count, per_transaction):
            things = []
            for i in range(start, min(count, start + per_transaction)):
                thing = Thing(name=f"thing-{i}")
                thing.rename(f"renamed-{i}")
                thing.describe("three events per save, like a namespaces.create")
                things.append(thing)
            app.save(*things)

    rate = asyncio.run(measure(count, save))
    app.close()
    return rate


async def raw_kafka_rate(bootstrap: str, count: int) -> Rate:
    """aiokafka alone: produce ``count`` command-sized records, then consume them all."""
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, {topic: 1})
    values = [_command(f"raw-{i}", f"ns-{i}") for i in range(count)]

    async def produce_and_consume() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await producer.start()
        for value in values:
            await producer.send(topic, value)
        await producer.flush()
        await producer.stop()
        await _consume(bootstrap, topic, count)

    return await measure(count, produce_and_consume)


async def _consume(bootstrap: str, topic: str, count: int) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5
    )
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    seen = 0
    while seen < count:
        seen += len((await consumer.getmany(tp, timeout_ms=200, max_records=10_000)).get(tp, []))
    await consumer.stop()


async def per_hop(settings: Settings, bootstrap: str, count: int) -> tuple[Rate, Rate]:
    """The processor alone on a filled commands topic, then the relay alone on its store."""
    topics = settings.topics
    await ensure_topics(bootstrap, topic_plan(topics, 1))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    for i in range(count):
        await producer.send(topics.commands, _command(f"hop-{i}", f"ns-{i}"))
    await producer.flush()
    await producer.stop()
    store = open_event_store(settings)

    async def stored() -> None:
        while (store.recorder.max_notification_id() or 0) < 3 * count:
            await asyncio.sleep(0.002)

    async def on_topic() -> None:
        await _consume(bootstrap, topics.events, 3 * count)

    processor = await _alone(settings, bootstrap, "command-processor", count, stored)
    relay = await _alone(settings, bootstrap, "relay", count, on_topic)
    store.close()
    return processor, relay


async def _alone(
    settings: Settings,
    bootstrap: str,
    component: str,
    count: int,
    done: Callable[[], Awaitable[None]],
) -> Rate:
    stop, ready = asyncio.Event(), asyncio.Event()
    stack = asyncio.create_task(run_components(settings, bootstrap, (component,), stop, ready))
    await ready.wait()
    rate = await measure(count, done)
    stop.set()
    await stack
    return rate


async def envbranch_rate(settings: Settings, bootstrap: str, count: int) -> Rate:
    stop, ready = asyncio.Event(), asyncio.Event()
    stack = asyncio.create_task(
        run_components(settings, bootstrap, ("command-processor", "relay"), stop, ready)
    )
    await ready.wait()
    try:
        return await _drive(settings, bootstrap, count, [])
    finally:
        stop.set()
        await stack


def outside_rate(settings: Settings, bootstrap: str, count: int, split: bool = False) -> Rate:
    """End to end with the stack as a child process and this process as its client;
    ``split``: the command processor and the relay each in a process of its own (the
    relay polls the store between pages: no wake-up crosses processes with SQLite)."""
    asyncio.run(ensure_topics(bootstrap, topic_plan(settings.topics, 1)))
    env = child_env(
        bootstrap,
        settings.data_dir,
        settings.topic_prefix,
        ENVBRANCH_EVENT_STORE=settings.event_store,
        ENVBRANCH_PROCESSOR_GROUP="",  # one processor, every partition: as `up`
        ENVBRANCH_FETCH_MAX_WAIT_MS="5",  # as `up` with its embedded broker
        **settings.postgres,
    )
    groups = [["command-processor"], ["relay"]] if split else [["command-processor", "relay"]]
    with ExitStack() as stack:
        pids = [
            stack.enter_context(
                child(["serve", *names], env, settings.data_dir, settings.data_dir / f"{i}.log")
            ).pid
            for i, names in enumerate(groups)
        ]
        return asyncio.run(_drive(settings, bootstrap, count, pids))


async def _drive(settings: Settings, bootstrap: str, count: int, pids: list[int]) -> Rate:
    """One command through the whole path (warm-up), then ``count`` published and the clock
    stopped at the last one's receipt; CPU of the processes ``pids`` (none: this one)."""
    topics = settings.topics
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        tp = TopicPartition(topics.events, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        await _send_and_await(producer, consumer, tp, topics.commands, "warm-up")

        async def publish_and_await() -> None:
            for i in range(count):
                await producer.send(topics.commands, _command(f"bench-{i}", f"ns-{i}"))
            await producer.flush()
            await _await_receipt(consumer, tp, f"bench-{count - 1}")

        if not pids:
            return await measure(count, publish_and_await)
        wall, cpu = time.perf_counter(), sum(map(cpu_seconds, pids))
        await publish_and_await()
        return Rate(count, time.perf_counter() - wall, sum(map(cpu_seconds, pids)) - cpu)
    finally:
        await producer.stop()
        await consumer.stop()


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
    parser.add_argument("--commands", type=int, default=3000)
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    n = args.commands
    print(f"write path, {n} namespaces.create per run, embedded Tansu broker")
    print(f"machine: {machine()}")
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        kafka = asyncio.run(raw_kafka_rate(bootstrap, n))
        print(f"{'what':<58} {'per s':>9} {'CPU s/1k':>9} {'ratio':>7}")
        show("raw aiokafka produce + consume (Kafka's part)", kafka)
        for kind in args.stores.split(","):
            print(f"-- {kind}")
            with store(kind) as raw_settings:
                batched = raw_save_rate(raw_settings, n, 500)
            with store(kind) as raw_settings:
                single = raw_save_rate(raw_settings, n, 1)
            show("raw eventsourcing save, 500 per transaction (store's part)", batched)
            show("raw eventsourcing save, one per transaction", single)
            with store(kind) as settings:
                processor, relay = asyncio.run(per_hop(settings, bootstrap, n))
            show("hop: command processor alone, topic -> stored", processor, batched)
            show("hop: relay alone, stored -> on envbranch.events", relay, batched)
            with store(kind) as settings:
                e2e = asyncio.run(envbranch_rate(settings, bootstrap, n))
            show("end to end: commands topic -> receipt on events topic", e2e, batched)
            with store(kind) as settings:
                outside = outside_rate(settings, bootstrap, n)
            show("end to end, the stack in its own process, from outside", outside, batched)
            with store(kind) as settings:
                split = outside_rate(settings, bootstrap, n, split=True)
            show("end to end, processor and relay in two processes", split, batched)
            goal = GOALS[kind]
            runs = (("in one process", e2e), ("from outside", outside), ("two processes", split))
            for what, rate in runs:
                verdict = "met" if rate.per_second >= goal else "not met"
                print(f"   goal >= {goal} commands/s end to end, {what}: {verdict}")


def show(what: str, rate: Rate, baseline: Rate | None = None) -> None:
    ratio = f"{rate.per_second / baseline.per_second:>6.2f}x" if baseline else f"{'':>7}"
    print(f"{what:<58} {rate.per_second:>9.0f} {rate.cpu_per_1000:>9.3f} {ratio}")


if __name__ == "__main__":
    main()
