"""Sends a command to envbranch.commands and waits for its outcome.

Success is observed in the read model: the command's receipt (always its last
event) has been applied, so everything it did can be read ("read your
writes"). A receipt counts only if its digest is this command's: a command_id
used before for something else (another body, another actor) is not this
command's success, and its rejection arrives on the DLQ, matched by partition
and offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from contract.commands import command_from_document
from contract.sender import CommandSender, command_envelope
from domain.envelopes import Topics, read_rejection
from domain.errors import CommandRejected, ErrorCode

log = logging.getLogger(__name__)


MAX_REMEMBERED_REJECTIONS = 10_000


class CommandTimeout(Exception):
    def __init__(self, command_id: str) -> None:
        super().__init__(f"command {command_id} had no outcome in time")
        self.command_id = command_id


@dataclass
class Sent:
    command_id: str
    digest: str
    partition: int
    offset: int
    position: int | None = None  # of the command's receipt, once applied


class Wakeups(Protocol):
    """Tells the gateway that the read model applied events (envbranch.signals.Wakeup)."""

    def ticket(self) -> int: ...

    async def wait(self, ticket: int, timeout: float) -> bool: ...


class CommandGateway:
    def __init__(
        self,
        bootstrap_servers: str,
        topics: Topics,
        receipt: Callable[[str], tuple[int, str] | None],
        timeout: float = 30.0,
        applied: Wakeups | None = None,
        fetch_max_wait_ms: int = 100,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.receipt = receipt  # command_id -> (position, digest) of its receipt, or None
        self.timeout = timeout
        # Woken when a projector in this process applied events; polls between wake-ups
        # (and always, when the projector runs elsewhere).
        self.applied = applied
        self.fetch_max_wait_ms = fetch_max_wait_ms
        # (partition, offset, command_id) -> the reason; bounded, oldest dropped first
        self._rejections: dict[tuple[int, int, str | None], dict[str, Any]] = {}
        self._sender = CommandSender(bootstrap_servers, topics)
        self._dlq: AIOKafkaConsumer | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._sender.start()
        self._dlq = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.fetch_max_wait_ms,  # Tansu holds a fetch this long
        )
        await self._dlq.start()
        tp = TopicPartition(self.topics.dlq, 0)
        self._dlq.assign([tp])
        await self._dlq.seek_to_end(tp)
        await self._dlq.position(tp)  # fixed before the first command is sent
        self._watcher = asyncio.create_task(self._watch_dlq())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        if self._dlq is not None:
            await self._dlq.stop()
        await self._sender.stop()

    async def _watch_dlq(self) -> None:
        assert self._dlq is not None
        while True:
            batches = await self._dlq.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    found = read_rejection(record.headers)
                    if found is None:  # anyone may write to the DLQ topic
                        log.warning("DLQ record without envbranch headers at %s", record.offset)
                    else:
                        key = (found.partition, found.offset, found.command_id)
                        self._rejections[key] = found.reason
                    while len(self._rejections) > MAX_REMEMBERED_REJECTIONS:
                        del self._rejections[next(iter(self._rejections))]

    async def execute(
        self,
        type_: str,
        body: dict[str, Any],
        actor: str,
        command_id: str | None = None,
        key: str | None = None,
    ) -> Sent:
        """Publish a command and wait until it is applied; raise CommandRejected if not."""
        command_id = command_id or str(uuid.uuid4())
        # Checked here too, so that a bad command is rejected before it is sent.
        digest = command_from_document(command_envelope(type_, body, actor, command_id)).digest
        landed = await self._sender.send(type_, body, actor, command_id=command_id, key=key or None)
        sent = Sent(command_id, digest, landed.partition, landed.offset)
        sent.position = await self.wait(sent)
        return sent

    async def wait(self, sent: Sent) -> int:
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while (left := deadline - time.monotonic()) > 0:
            ticket = self.applied.ticket() if self.applied is not None else 0
            # The command_id too: offsets start over on a broker that came back empty.
            rejection = self._rejections.pop((sent.partition, sent.offset, sent.command_id), None)
            if rejection is not None:
                raise CommandRejected(
                    ErrorCode(rejection["code"]),
                    rejection["message"],
                    field=rejection.get("field"),
                    **(rejection.get("details") or {}),
                )
            receipt = await asyncio.to_thread(self.receipt, sent.command_id)
            if receipt is not None and receipt[1] == sent.digest:
                return receipt[0]  # applied now, or before (a retry): either way, done
            if self.applied is None:
                await asyncio.sleep(min(delay, left))
            else:
                await self.applied.wait(ticket, min(delay, left))
            delay = min(delay * 2, 0.05)
        raise CommandTimeout(sent.command_id)
