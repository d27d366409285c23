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
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from contract.commands import command_from_document, decode_command
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
        receipts: Callable[[list[str]], dict[str, tuple[int, str]]],
        timeout: float = 30.0,
        applied: Wakeups | None = None,
        fetch_max_wait_ms: int = 100,
        max_command_bytes: int = 1024 * 1024,
        kafka_options: dict[str, Any] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        # aiokafka's security options (security_protocol, ssl_context, sasl_*)
        self.kafka_options = dict(kafka_options or {})
        self.max_command_bytes = max_command_bytes
        self.topics = topics
        # command_ids -> (position, digest) of the receipts of those the read model applied
        self.receipts = receipts
        self.timeout = timeout
        # Woken when a projector in this process applied events; polls between wake-ups
        # (and always, when the projector runs elsewhere).
        self.applied = applied
        self.fetch_max_wait_ms = fetch_max_wait_ms
        # (partition, offset, command_id) -> the reason; bounded, oldest dropped first
        self._rejections: dict[tuple[int, int, str | None], dict[str, Any]] = {}
        # room for the record's own framing beyond the largest command
        self._sender = CommandSender(
            bootstrap_servers,
            topics,
            max_request_size=max_command_bytes + 64 * 1024,
            kafka_options=self.kafka_options,
        )
        self._dlq: AIOKafkaConsumer | None = None
        self._watcher: asyncio.Task[None] | None = None
        # command_id -> the writes waiting for it (the same command may be sent twice)
        self._waiting: dict[str, list[tuple[Sent, asyncio.Future[int]]]] = {}
        self._receipts_watcher: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self._idle = False  # the receipts watcher waits for a first waiter

    async def start(self) -> None:
        await self._sender.start()
        self._dlq = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.fetch_max_wait_ms,  # Tansu holds a fetch this long
            **self.kafka_options,
        )
        await self._dlq.start()
        tp = TopicPartition(self.topics.dlq, 0)
        self._dlq.assign([tp])
        await self._dlq.seek_to_end(tp)
        await self._dlq.position(tp)  # fixed before the first command is sent
        self._watcher = asyncio.create_task(self._watch_dlq())

    async def stop(self) -> None:
        for task in (self._watcher, self._receipts_watcher):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
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
                        self._poke.set()
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
        landed = await self._sender.send(
            type_,
            body,
            actor,
            command_id=command_id,
            key=key or None,
            max_bytes=self.max_command_bytes,
        )
        sent = Sent(command_id, digest, landed.partition, landed.offset)
        sent.position = await self.wait(sent)
        return sent

    def dlq_entries(self) -> int | None:
        """How many entries the DLQ topic holds, as its last fetch saw (None before one)."""
        if self._dlq is None:
            return None
        return self._dlq.highwater(TopicPartition(self.topics.dlq, 0))

    async def resend(self, value: bytes, key: bytes | None) -> Sent:
        """Send a command's bytes again as they were (a dead letter's redrive) and wait
        until it is applied; CommandRejected if it cannot be read or is rejected again."""
        if len(value) > self.max_command_bytes:
            raise CommandRejected(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"command is {len(value)} bytes; the limit is {self.max_command_bytes}",
                limit=self.max_command_bytes,
            )
        command = decode_command(value)
        landed = await self._sender.send_encoded(value, key=key)
        sent = Sent(command.command_id, command.digest, landed.partition, landed.offset)
        sent.position = await self.wait(sent)
        return sent

    async def wait(self, sent: Sent) -> int:
        """Until the read model applied the command's receipt (its position) or it was
        rejected. Every waiting write is looked up by one query per round, whoever waits:
        a round follows each batch the projector applied (a wake-up when it runs in this
        process), and polling every 10 to 50 ms otherwise."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        entry = (sent, future)
        self._waiting.setdefault(sent.command_id, []).append(entry)
        if self._receipts_watcher is None or self._receipts_watcher.done():
            self._receipts_watcher = asyncio.create_task(self._watch_receipts())
        elif self._idle:
            self._poke.set()
        try:
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise CommandTimeout(sent.command_id) from None
        finally:
            waiting = self._waiting.get(sent.command_id, [])
            if entry in waiting:
                waiting.remove(entry)
            if not waiting:
                self._waiting.pop(sent.command_id, None)

    async def _watch_receipts(self) -> None:
        delay = 0.01
        while True:
            self._poke.clear()  # set again by a rejection, or a wait while none waited
            if not self._waiting:
                self._idle = True
                await self._poke.wait()
                self._idle = False
                delay = 0.01
                continue
            ticket = self.applied.ticket() if self.applied is not None else 0
            try:
                found = await asyncio.to_thread(self.receipts, sorted(self._waiting))
            except Exception:  # noqa: BLE001 - the read model may be away: next round
                log.warning("reading receipts failed; trying again", exc_info=True)
                found = {}
            delay = 0.01 if self._resolve(found) else min(delay * 2, 0.05)
            await self._next_round(ticket, delay)

    async def _next_round(self, ticket: int, delay: float) -> None:
        """Until the projector applied more (then at once), a rejection came in, or the
        poll interval passed."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._poke.wait())]
        if self.applied is not None:
            waits.append(asyncio.ensure_future(self.applied.wait(ticket, 0.05)))
            delay = 0.05
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    def _resolve(self, receipts: dict[str, tuple[int, str]]) -> int:
        """Answer the waits whose receipt or rejection is in; how many were."""
        resolved = 0
        for command_id, waiting in list(self._waiting.items()):
            for sent, future in list(waiting):
                if future.done():
                    continue
                # The command_id too: offsets start over on a broker that came back empty.
                key = (sent.partition, sent.offset, sent.command_id)
                rejection = self._rejections.pop(key, None)
                receipt = receipts.get(command_id)
                if rejection is not None:
                    future.set_exception(
                        CommandRejected(
                            ErrorCode(rejection["code"]),
                            rejection["message"],
                            field=rejection.get("field"),
                            **(rejection.get("details") or {}),
                        )
                    )
                elif receipt is not None and receipt[1] == sent.digest:
                    future.set_result(receipt[0])  # applied now, or before (a retry)
                else:
                    continue
                resolved += 1
        return resolved
