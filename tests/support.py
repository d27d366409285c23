"""Test helpers: a stack on a background event loop, topic readers, deadlines."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from domain.envelopes import EventEnvelope, Topics
from envbranch.settings import Settings
from envbranch.stack import run_components

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 30.0, what: str = "condition") -> T:
    """Poll a condition until it is truthy or the deadline passes (then fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class BackgroundStack:
    """Runs components (command processor, relay) on an event loop in a thread."""

    def __init__(self, settings: Settings, bootstrap: str, components: tuple[str, ...]) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.components = components
        self.error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._ready = asyncio.Event()
            self._stop = asyncio.Event()
            await run_components(
                self.settings, self.bootstrap, self.components, self._stop, self._ready
            )

        try:
            self._loop.run_until_complete(main())
        except BaseException as e:  # noqa: BLE001 - reported by stop()
            self.error = e

    def __enter__(self) -> BackgroundStack:
        self._thread.start()
        wait_until(
            lambda: (self._ready is not None and self._ready.is_set()) or self.error,
            30,
            "the stack to create its topics",
        )
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self.error is not None:
            raise self.error


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _read_all(bootstrap: str, topic: str, timeout: float) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            await consumer.seek_to_beginning(tp)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                break
            batch = await consumer.getmany(*tps, timeout_ms=200)
            for tp_records in batch.values():
                records.extend(tp_records)
        return records
    finally:
        await consumer.stop()


def read_topic(bootstrap: str, topic: str, timeout: float = 10.0) -> list[ConsumerRecord]:
    """Everything on the topic right now."""
    return run(_read_all(bootstrap, topic, timeout))


def read_events(bootstrap: str, topics: Topics) -> list[EventEnvelope]:
    return [EventEnvelope.from_bytes(r.value) for r in read_topic(bootstrap, topics.events)]


def events_until(
    bootstrap: str,
    topics: Topics,
    condition: Callable[[list[EventEnvelope]], bool],
    timeout: float = 30.0,
    what: str = "events",
) -> list[EventEnvelope]:
    found: list[EventEnvelope] = []

    def check() -> bool:
        found[:] = read_events(bootstrap, topics)
        return condition(found)

    wait_until(check, timeout, what)
    return found


def dlq_entries(bootstrap: str, topics: Topics) -> list[dict[str, Any]]:
    """The DLQ as dicts: original value, decoded error, source offset."""
    out = []
    for record in read_topic(bootstrap, topics.dlq):
        headers = {name: value.decode() for name, value in record.headers}
        out.append(
            {
                "value": record.value,
                "code": headers["envbranch.error.code"],
                "error": json.loads(headers["envbranch.error"]),
                "offset": int(headers["envbranch.source.offset"]),
                "partition": int(headers["envbranch.source.partition"]),
            }
        )
    return out


async def _produce(
    bootstrap: str, topic: str, values: list[bytes], key: bytes | None
) -> list[tuple[int, int]]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=8 * 1024 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for value in values]
        sent = await asyncio.gather(*futures)
        return [(m.partition, m.offset) for m in sent]
    finally:
        await producer.stop()


def produce(
    bootstrap: str, topic: str, values: list[bytes], key: bytes | None = None
) -> list[tuple[int, int]]:
    """Publish and return (partition, offset) of each message."""
    return list(run(_produce(bootstrap, topic, values, key)))


def command(type_: str, body: dict[str, Any], command_id: str | None = None) -> dict[str, Any]:
    return {
        "command_id": command_id or f"cmd-{uuid.uuid4().hex[:12]}",
        "type": type_,
        "body": body,
        "actor": "tester",
    }


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def receipts(events: list[EventEnvelope]) -> dict[str, EventEnvelope]:
    return {e.command_id: e for e in events if e.type == "CommandReceipt.Accepted" and e.command_id}


def settings_env(settings: Settings, bootstrap: str) -> dict[str, str]:
    """The environment a separate envbranch process needs for these settings."""
    import os

    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ENVBRANCH_DATA_DIR": str(settings.data_dir),
        "ENVBRANCH_EVENT_STORE": settings.event_store,
        "ENVBRANCH_TOPIC_PREFIX": settings.topic_prefix,
        "ENVBRANCH_COMMAND_PARTITIONS": str(settings.command_partitions),
        "ENVBRANCH_PROCESSOR_GROUP": settings.processor_group or "",
        "ENVBRANCH_MAX_COMMAND_BYTES": str(settings.max_command_bytes),
        "ENVBRANCH_RELAY_PAGE_SIZE": str(settings.relay_page_size),
        **settings.postgres,
    }
    return env


def spawn(settings: Settings, bootstrap: str, *components: str, log: Any = None) -> Any:
    """Start ``envbranch serve <components>`` as a real child process."""
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "envbranch", "-v", "serve", *components],
        env=settings_env(settings, bootstrap),
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def topic_size(bootstrap: str, topic: str) -> int:
    """How many records the topic holds (counted; Tansu's end offsets undercount)."""
    return len(read_topic(bootstrap, topic))


async def _produce_keyed(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> Any:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in messages]
        sent = await asyncio.gather(*futures)
        return [(m.partition, m.offset) for m in sent]
    finally:
        await producer.stop()


def produce_keyed(
    bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]
) -> list[tuple[int, int]]:
    """Publish (key, value) pairs in order; returns (partition, offset) of each. Records
    with one key land on one partition, in the order given."""
    return list(run(_produce_keyed(bootstrap, topic, messages)))


def spawn_in(env: dict[str, str], cwd: Any, log: Any, *args: str) -> Any:
    """Start ``envbranch -v <args>`` as a child process with this environment, in ``cwd``
    (a Faust worker writes its <app-id>-data directory into its working directory)."""
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "envbranch", "-v", *args],
        env=env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def assigned_partitions(log_path: Any) -> set[int] | None:
    """The partitions a `serve command-processor -v` process was last given by its group,
    read from its log (aiokafka logs each assignment); None before the first one."""
    import re
    from pathlib import Path

    text = Path(log_path).read_text(errors="replace")
    lines = [line for line in text.splitlines() if "Setting newly assigned partitions" in line]
    if not lines:
        return None
    return {int(p) for p in re.findall(r"partition=(\d+)", lines[-1])}
