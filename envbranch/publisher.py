"""Publish a command to envbranch.commands and wait for what became of it.

A command's events end with its receipt (``CommandReceipt.Accepted``), so once
the receipt is on the events topic everything the command did is there too. A
rejected command shows up on the DLQ with the partition and offset it came from.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from contract.commands import decode_command
from contract.sender import CommandSender
from domain import json_limits
from domain.envelopes import EventEnvelope, Topics, read_event, read_rejection
from domain.errors import CommandRejected
from domain.receipts import CommandReceipt

RECEIPT_TYPE = CommandReceipt.Accepted.__qualname__
# Above the command processor's limit: a command too large is rejected by it, on the DLQ,
# with its reason, rather than refused here.
MAX_REQUEST_SIZE = 16 * 1024 * 1024


@dataclass
class PublishOutcome:
    status: str  # "accepted" | "rejected" | "timeout" | "published" (not waited for)
    command_id: str | None
    partition: int
    offset: int
    events: list[EventEnvelope] = field(default_factory=list)
    error: dict[str, Any] | None = None


def prepare_command(raw: bytes) -> tuple[bytes, str | None]:
    """Fill in command_id and actor when a JSON command lacks them; other bytes go as they are."""
    try:
        document = json_limits.parse(raw)
    except CommandRejected:  # sent as it is: the processor's DLQ entry will say why
        return raw, None
    if not isinstance(document, dict):
        return raw, None
    document.setdefault("command_id", str(uuid.uuid4()))
    document.setdefault("actor", os.environ.get("ENVBRANCH_ACTOR") or getpass.getuser())
    return json.dumps(document).encode(), str(document["command_id"])


async def publish_command(
    bootstrap_servers: str,
    raw: bytes,
    *,
    key: bytes | None = None,
    wait: bool = True,
    timeout: float = 30.0,
    topics: Topics | None = None,
    kafka_options: Mapping[str, Any] | None = None,
    as_is: bool = False,
) -> PublishOutcome:
    """Send ``raw`` to the commands topic and, with ``wait``, watch for its outcome.
    ``kafka_options``: aiokafka's security options (``envbranch.connections.kafka_options``).
    ``as_is``: send ``raw`` unchanged; it must be a readable command (CommandRejected if not)."""
    topics = topics or Topics()
    security = dict(kafka_options or {})
    # as_is: the bytes go unchanged (a redrive sends what was sent, command_id and actor)
    value, command_id = (raw, decode_command(raw).command_id) if as_is else prepare_command(raw)
    sender = CommandSender(
        bootstrap_servers, topics, max_request_size=MAX_REQUEST_SIZE, kafka_options=security
    )
    await sender.start()
    try:
        landed = await sender.send_encoded(value, key=key)
    finally:
        await sender.stop()
    outcome = PublishOutcome("published", command_id, landed.partition, landed.offset)
    if not wait:
        return outcome
    deadline = time.monotonic() + timeout
    scan = _Scan(bootstrap_servers, security, deadline)
    waiters = [asyncio.create_task(_watch_dlq(scan, topics, outcome))]
    if command_id is not None:
        waiters.append(asyncio.create_task(_watch_events(scan, topics, outcome)))
    done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()  # surface errors from the watchers
    if outcome.status == "published":
        outcome.status = "timeout"
    return outcome


@dataclass
class _Scan:
    """Where the watchers read, and until when."""

    bootstrap_servers: str
    kafka_options: dict[str, Any] = field(repr=False)  # it may hold a password
    deadline: float = 0.0


async def _scan(scan: _Scan, topic: str):  # type: ignore[no-untyped-def]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=scan.bootstrap_servers, enable_auto_commit=False, **scan.kafka_options
    )
    deadline = scan.deadline
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        while time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=200)
            for record in batch.get(tp, []):
                yield record
    finally:
        await consumer.stop()


async def _watch_events(scan: _Scan, topics: Topics, outcome: PublishOutcome) -> None:
    async for record in _scan(scan, topics.events):
        envelope = read_event(record.value)
        if envelope is None or envelope.command_id != outcome.command_id:
            continue
        if envelope.position not in {e.position for e in outcome.events}:
            outcome.events.append(envelope)
        if envelope.type == RECEIPT_TYPE:
            outcome.status = "accepted"
            return
    while True:  # timed out: wait to be cancelled by the other watcher's end
        await asyncio.sleep(3600)


async def _watch_dlq(scan: _Scan, topics: Topics, outcome: PublishOutcome) -> None:
    async for record in _scan(scan, topics.dlq):
        found = read_rejection(record.headers)
        if found is not None and (found.partition, found.offset) == (
            outcome.partition,
            outcome.offset,
        ):
            outcome.status = "rejected"
            outcome.error = found.reason
            return


class Publisher:
    """Send commands straight to envbranch.commands from Python (no HTTP API needed)."""

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Topics | None = None,
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        """``kafka_options``: aiokafka's security options, e.g.
        ``envbranch.connections.kafka_options(Settings.from_env().kafka_security)``."""
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics or Topics()
        self.kafka_options = dict(kafka_options or {})

    def publish(
        self,
        type_: str,
        body: dict[str, Any],
        *,
        actor: str | None = None,
        command_id: str | None = None,
        key: str | None = None,
        wait: bool = True,
        timeout: float = 30.0,
    ) -> PublishOutcome:
        """Publish one command; with ``wait``, return its events or its DLQ reason."""
        document: dict[str, Any] = {"type": type_, "body": body}
        if actor is not None:
            document["actor"] = actor
        if command_id is not None:
            document["command_id"] = command_id
        return asyncio.run(
            publish_command(
                self.bootstrap_servers,
                json.dumps(document).encode(),
                key=key.encode() if key else None,
                wait=wait,
                timeout=timeout,
                topics=self.topics,
                kafka_options=self.kafka_options,
            )
        )
