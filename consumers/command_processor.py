"""The command processor: envbranch.commands in, events into the store.

Each command's Kafka position (cluster, topic, partition, offset) is stored
as a tracking record in the same transaction as its events. On start and after
every rebalance the processor seeks to the positions the store holds, so
redelivery never writes anything twice and a crash loses nothing. A rejected
command goes to envbranch.commands.dlq, original bytes and reason, and the
processor goes on.

Offsets mean something only within one incarnation of a log: a broker that
restarts empty (the embedded one keeps topics in memory) counts from 0 again.
Positions are therefore named after the cluster ID, which the embedded broker
draws anew at each start; when it changes, the processor starts over on the
new log, and command_id receipts keep a command that arrives twice from
applying twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from eventsourcing.persistence import InterfaceError, OperationalError, Tracking

from application.environments import AlreadyProcessed, Environments
from contract.commands import decode_command
from domain import json_limits
from domain.envelopes import Topics
from domain.errors import CommandRejected, ErrorCode

log = logging.getLogger(__name__)

TRANSIENT_RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)
MAX_INTERNAL_ATTEMPTS = 3


def _command_id_of(raw: bytes | None) -> str | None:
    """The command_id of a rejected message, when it has a readable one."""
    try:
        document = json_limits.parse(raw or b"")
    except CommandRejected:
        return None
    command_id = document.get("command_id") if isinstance(document, dict) else None
    return command_id if isinstance(command_id, str) else None


MAX_COMMAND_ID = 256  # as the envelope allows; a longer one is not named in a header
MAX_ERROR_HEADER = 8 * 1024


def error_header(rejected: CommandRejected) -> bytes:
    """The reason as JSON, small enough to travel whatever the command held: a problem
    list or a field path quoting huge keys is shortened, never allowed to stop the DLQ."""
    reason = rejected.as_dict()
    header = json.dumps(reason, default=str).encode()
    if len(header) <= MAX_ERROR_HEADER:
        return header
    details = reason.get("details") or {}
    problems = details.get("problems") if isinstance(details, dict) else None
    short: dict[str, object] = {
        "code": reason["code"],
        "message": str(reason["message"])[:500],  # at most 3 KB as UTF-8 JSON
        "details": {"truncated": True},
    }
    if isinstance(reason.get("field"), str) and len(reason["field"]) <= 500:
        short["field"] = reason["field"]
    if problems:
        short["details"] = {"truncated": True, "problems_count": len(problems)}
    return json.dumps(short, default=str, ensure_ascii=False).encode()


def tracking_name(cluster_id: str, topic: str, partition: int) -> str:
    return f"{cluster_id}/{topic}#{partition}"


def tracking_of(cluster_id: str, record: ConsumerRecord) -> Tracking:
    # Offsets start at 0; tracking positions are kept positive (offset + 1 = next offset).
    name = tracking_name(cluster_id, record.topic, record.partition)
    return Tracking(name, record.offset + 1)


@dataclass
class ProcessorConfig:
    bootstrap_servers: str
    topics: Topics = Topics()
    # None: read every partition without joining a group (one processor, fast start).
    group_id: str | None = "envbranch-command-processor"
    max_command_bytes: int = 1024 * 1024
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    # How often to check that the broker still serves the same log (cluster ID).
    incarnation_check_seconds: float = 2.0
    # Tansu holds a fetch this long even when data arrives; Kafka answers at once.
    fetch_max_wait_ms: int = 100


class _Stopping(Exception):
    """Asked to stop while a record was waiting for a retry."""


class _SeekToStoredPositions(ConsumerRebalanceListener):
    def __init__(self, processor: CommandProcessor) -> None:
        self.processor = processor

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.processor.ready.clear()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.processor.seek_to_stored_positions(assigned)
        self.processor.ready.set()


class CommandProcessor:
    def __init__(
        self,
        app: Environments,
        config: ProcessorConfig,
        ensure_topics: Callable[[], Awaitable[None]] | None = None,
        ready: asyncio.Event | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.ensure_topics = ensure_topics
        # Set once partitions are assigned and sought to the stored positions.
        self.ready = ready or asyncio.Event()
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.admin: AIOKafkaAdminClient | None = None
        self.cluster_id = ""
        # The last position stored per partition, loaded at every assignment: redelivered
        # records are skipped without a query. The store's tracking row stays the guard.
        self.recorded: dict[TopicPartition, int] = {}
        self.processed = 0
        self.rejected = 0
        self._stop = asyncio.Event()  # replaced by run()

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        self.producer = AIOKafkaProducer(
            bootstrap_servers=cfg.bootstrap_servers,
            acks="all",
            max_request_size=cfg.max_command_bytes + 64 * 1024,
        )
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=cfg.bootstrap_servers,
            group_id=cfg.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=cfg.session_timeout_ms,
            heartbeat_interval_ms=cfg.heartbeat_interval_ms,
            max_partition_fetch_bytes=max(cfg.max_command_bytes * 2, 1024 * 1024),
            fetch_max_wait_ms=cfg.fetch_max_wait_ms,
            fetch_max_bytes=max(cfg.max_command_bytes * 4, 50 * 1024 * 1024),
        )
        self.admin = AIOKafkaAdminClient(bootstrap_servers=cfg.bootstrap_servers)
        await self.admin.start()
        self.cluster_id = await self._current_cluster_id()
        await self.producer.start()
        await self.consumer.start()
        if cfg.group_id is None:
            await self.consumer.topics()  # fetch metadata for every topic
            partitions = self.consumer.partitions_for_topic(cfg.topics.commands) or set()
            assigned = [TopicPartition(cfg.topics.commands, p) for p in sorted(partitions)]
            if not assigned:
                raise RuntimeError(f"topic {cfg.topics.commands} does not exist")
            self.consumer.assign(assigned)
            await self.seek_to_stored_positions(assigned)
            self.ready.set()
        else:
            self.consumer.subscribe([cfg.topics.commands], listener=_SeekToStoredPositions(self))
        self._stop = stop
        try:
            last_check = time.monotonic()
            while not stop.is_set():
                batches = await self.consumer.getmany(timeout_ms=200, max_records=500)
                for records in batches.values():
                    for record in records:
                        await self.handle(record)
                if batches:
                    await self._commit_offsets(batches)
                if time.monotonic() - last_check > cfg.incarnation_check_seconds:
                    last_check = time.monotonic()
                    await self._follow_log_incarnation()
        except _Stopping:
            log.info("stopped while waiting to retry; the next start goes on from there")
        finally:
            await self.consumer.stop()
            await self.producer.stop()
            await self.admin.close()

    def partition_progress(self) -> list[tuple[TopicPartition, int, int | None]]:
        """Per assigned partition: the next offset to process, and the end offset as last
        fetched (None before the first fetch; Tansu can report one short of the end)."""
        if self.consumer is None:
            return []
        return [
            (tp, self.recorded.get(tp, 0), self.consumer.highwater(tp))
            for tp in sorted(self.consumer.assignment())
        ]

    async def _current_cluster_id(self) -> str:
        assert self.admin is not None
        cluster = await self.admin.describe_cluster()
        return str(cluster.get("cluster_id") or "kafka")

    async def _follow_log_incarnation(self) -> None:
        """Start over on a new log when the broker came back empty."""
        assert self.consumer is not None
        try:
            cluster_id = await self._current_cluster_id()
        except Exception as e:  # noqa: BLE001 - the broker may be away; check again later
            log.debug("cluster ID unavailable: %s", e)
            return
        if cluster_id == self.cluster_id:
            return
        log.warning("the broker serves a new log (cluster %s); starting over on it", cluster_id)
        if self.ensure_topics is not None:
            try:
                await self.ensure_topics()
            except Exception as e:  # noqa: BLE001 - the broker may be starting: next check
                log.warning("could not create the topics yet: %r", e)
                return
        self.cluster_id = cluster_id
        await self.seek_to_stored_positions(list(self.consumer.assignment()))

    async def seek_to_stored_positions(self, partitions: list[TopicPartition]) -> None:
        """The store, not Kafka's committed offsets, says where to go on."""
        assert self.consumer is not None
        for tp in partitions:
            position = await asyncio.to_thread(
                self.app.last_position, tracking_name(self.cluster_id, tp.topic, tp.partition)
            )
            self.recorded[tp] = position or 0
            if position is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, position)
            log.info("partition %s resumes at offset %s", tp, position or 0)

    async def handle(self, record: ConsumerRecord) -> None:
        tracking = tracking_of(self.cluster_id, record)
        tp = TopicPartition(record.topic, record.partition)
        if tracking.notification_id <= self.recorded.get(tp, 0):
            return  # redelivered after a rebalance or a crash: applied already
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._apply(record, tracking)
                self.recorded[tp] = tracking.notification_id
                return
            except CommandRejected as rejected:
                await self._reject(record, tracking, rejected)
                self.recorded[tp] = tracking.notification_id
                return
            except AlreadyProcessed:
                self.recorded[tp] = tracking.notification_id
                return
            except (OperationalError, InterfaceError, ConnectionError) as e:
                # The store is unreachable or busy: wait and try the same command again.
                delay = TRANSIENT_RETRY_SECONDS[min(attempt, len(TRANSIENT_RETRY_SECONDS)) - 1]
                log.warning("event store unavailable (%s); retrying in %ss", e, delay)
                await self._wait_unless_stopping(delay)
            except Exception as e:  # noqa: BLE001 - a bug must not block the partition
                log.exception("applying %s:%s failed", record.partition, record.offset)
                if attempt >= MAX_INTERNAL_ATTEMPTS:
                    error = CommandRejected(
                        ErrorCode.INTERNAL_ERROR, f"applying the command failed: {e!r}"
                    )
                    await self._reject(record, tracking, error)
                    self.recorded[tp] = tracking.notification_id
                    return

    async def _apply(self, record: ConsumerRecord, tracking: Tracking) -> None:
        raw = record.value or b""
        if len(raw) > self.config.max_command_bytes:
            raise CommandRejected(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"command is {len(raw)} bytes; the limit is {self.config.max_command_bytes}",
                size=len(raw),
                limit=self.config.max_command_bytes,
            )
        command = decode_command(raw)
        outcome = await asyncio.to_thread(self.app.execute, command, tracking)
        self.processed += 1
        if outcome.duplicate:
            log.info("command %s applied before; nothing written", command.command_id)

    async def _reject(
        self, record: ConsumerRecord, tracking: Tracking, rejected: CommandRejected
    ) -> None:
        """DLQ first, then the position: a crash in between repeats the entry, never loses it.
        A broker or store that is briefly away is waited for, not allowed to stop the
        processor."""
        delay = 0.5
        while True:
            try:
                await self._send_to_dlq(record, tracking, rejected)
                return
            except (KafkaError, OperationalError, InterfaceError, ConnectionError) as e:
                log.warning("could not record a rejection yet (%r); retrying in %ss", e, delay)
                await self._wait_unless_stopping(delay)
                delay = min(delay * 2, 10.0)

    async def _wait_unless_stopping(self, seconds: float) -> None:
        """Wait before trying again; on a stop, leave this record unrecorded, for the next
        start (nothing after it may be recorded before it is)."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return
        raise _Stopping

    async def _send_to_dlq(
        self, record: ConsumerRecord, tracking: Tracking, rejected: CommandRejected
    ) -> None:
        assert self.producer is not None
        headers = [
            ("envbranch.error.code", str(rejected.code).encode()),
            ("envbranch.error", error_header(rejected)),
            ("envbranch.source.topic", record.topic.encode()),
            ("envbranch.source.partition", str(record.partition).encode()),
            ("envbranch.source.offset", str(record.offset).encode()),
        ]
        command_id = _command_id_of(record.value)
        if command_id is not None and len(command_id) <= MAX_COMMAND_ID:
            headers.append(("envbranch.command_id", command_id.encode()))
        value = record.value or b""
        try:
            await self.producer.send_and_wait(
                self.config.topics.dlq, value, key=record.key, headers=headers
            )
        except MessageSizeTooLargeError:
            # The entry must fit whatever made it too large: the value, the key or both (the
            # headers are bounded); failing that, the reason alone.
            headers.append(("envbranch.truncated_from", str(len(value)).encode()))
            key = (record.key or b"")[:1024] or None
            try:
                limit = self.config.max_command_bytes // 2
                await self.producer.send_and_wait(
                    self.config.topics.dlq, value[:limit], key=key, headers=headers
                )
            except MessageSizeTooLargeError:
                await self.producer.send_and_wait(
                    self.config.topics.dlq, b"", key=None, headers=headers
                )
        await asyncio.to_thread(self.app.record_position, tracking)
        self.rejected += 1
        log.info(
            "rejected %s:%s: %s %s",
            record.partition,
            record.offset,
            rejected.code,
            rejected.message,
        )

    async def _commit_offsets(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        # Informational only (consumer lag in Kafka tools); the store holds the real positions.
        assert self.consumer is not None
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        try:
            await self.consumer.commit(offsets)
        except Exception as e:  # noqa: BLE001 - a lost commit costs nothing but lag display
            log.debug("offset commit failed: %s", e)
