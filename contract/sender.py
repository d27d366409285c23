"""The one way onto envbranch.commands: the HTTP API's gateway, the CLI and SDK publisher
and the vector processor's progress reports all send through a ``CommandSender``.

A command goes as the JSON envelope ``{command_id, type, body, actor, issued_at?}``,
keyed by whatever orders it (the namespace, the task), and is sent once every replica
has it (``acks="all"``): a command the sender was told about is never lost. What becomes
of it is each caller's business (a receipt in the read model, events, a DLQ entry).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer

from domain.envelopes import Topics
from domain.errors import CommandRejected, ErrorCode

# aiokafka's own default: larger commands fail here, before they reach the broker.
DEFAULT_MAX_REQUEST_SIZE = 1024 * 1024


class Landed(NamedTuple):
    """Where a command landed on the commands topic (the DLQ names a rejection by it)."""

    partition: int
    offset: int


def command_envelope(
    type_: str,
    body: dict[str, Any],
    actor: str,
    command_id: str,
    issued_at: datetime | None = None,
) -> dict[str, Any]:
    """The envelope as it goes on the wire; its key order is part of the bytes sent."""
    envelope: dict[str, Any] = {
        "command_id": command_id,
        "type": type_,
        "body": body,
        "actor": actor,
    }
    if issued_at is not None:
        envelope["issued_at"] = issued_at.isoformat()
    return envelope


class CommandSender:
    """A producer for the commands topic; ``start`` it in the event loop that sends.
    ``kafka_options``: aiokafka's security options (security_protocol, ssl_context, sasl_*)."""

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Topics,
        *,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.max_request_size = max_request_size
        self.kafka_options = dict(kafka_options or {})
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # Made here, not in __init__: aiokafka binds a producer to the running loop.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            acks="all",
            max_request_size=self.max_request_size,
            **self.kafka_options,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send(
        self,
        type_: str,
        body: dict[str, Any],
        actor: str,
        *,
        command_id: str,
        key: str | None,
        issued_at: datetime | None = None,
        max_bytes: int | None = None,
    ) -> Landed:
        """Send one command; return where it landed once Kafka has it. One larger than
        ``max_bytes`` is refused before it is sent, as the command processor would refuse it."""
        envelope = command_envelope(type_, body, actor, command_id, issued_at)
        value = json.dumps(envelope).encode()
        if max_bytes is not None and len(value) > max_bytes:
            raise CommandRejected(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"command is {len(value)} bytes; the limit is {max_bytes}",
                limit=max_bytes,
            )
        return await self.send_encoded(value, key=None if key is None else key.encode())

    async def send_encoded(self, value: bytes, *, key: bytes | None) -> Landed:
        """Send bytes as they are: a command file from the CLI may be anything at all,
        and the command processor's DLQ entry is what says what is wrong with it."""
        assert self._producer is not None, "CommandSender.start() first"
        metadata = await self._producer.send_and_wait(self.topics.commands, value, key=key)
        return Landed(metadata.partition, metadata.offset)
