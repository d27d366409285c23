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
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError, Tracking

from application.environments import AlreadyProcessed, Environments
from application.group_commit import Decided, Pending
from consumers import metrics
from consumers.dead_letters import send_to_dlq
from consumers.metrics import type_of
from contract.commands import Command, decode_command
from domain.envelopes import Topics
from domain.errors import CommandRejected, ErrorCode

log = logging.getLogger(__name__)

TRANSIENT_RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)
MAX_INTERNAL_ATTEMPTS = 3


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
    # At most this many commands are decided together and stored in one transaction.
    max_batch_commands: int = 500
    # aiokafka's security options (security_protocol, ssl_context, sasl_*), for every client
    kafka_options: dict[str, Any] = field(default_factory=dict, repr=False)  # a password


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
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.on_stored = on_stored  # told after every transaction that stored events
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
        self._types: list[str] = []
        # Rejections on the DLQ whose position is not stored yet, by (partition, cluster ID,
        # offset):
        # a batch tried again after a failed commit neither sends them twice nor decides them
        # anew (the stored outcome is the one the DLQ told). A crash in between may still
        # repeat an entry: at least once.
        self._dead_lettered: dict[tuple[TopicPartition, str, int], CommandRejected] = {}
        self._stop = asyncio.Event()  # replaced by run()

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        self.producer = AIOKafkaProducer(
            bootstrap_servers=cfg.bootstrap_servers,
            acks="all",
            max_request_size=cfg.max_command_bytes + 64 * 1024,
            **cfg.kafka_options,
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
            **cfg.kafka_options,
        )
        self.admin = AIOKafkaAdminClient(
            bootstrap_servers=cfg.bootstrap_servers, **cfg.kafka_options
        )
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
                batches = await self.consumer.getmany(
                    timeout_ms=200, max_records=cfg.max_batch_commands
                )
                for tp, records in batches.items():
                    await self.handle_batch(tp, records)
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
            self._forget_dead_letters(tp)
            if position is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, position)
            log.info("partition %s resumes at offset %s", tp, position or 0)

    async def handle_batch(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        """Apply a partition's fetched records in offset order, in as few transactions as
        the batch allows (group commit: application.group_commit). Rejections go to the
        DLQ before the position that covers them is stored. A batch whose transaction
        fails is tried again from the stored position, on fresh state, in smaller batches
        down to one command, which is then handled alone as ``handle`` does."""
        size = self.config.max_batch_commands
        failures = 0
        while records := [r for r in records if r.offset + 1 > self.recorded.get(tp, 0)]:
            chunk = records[:size]
            try:
                decided = await asyncio.to_thread(self._decide, chunk)
            except (OperationalError, InterfaceError, ConnectionError) as e:
                failures += 1
                await self._wait_for_store(e, failures)
                continue
            except Exception:  # noqa: BLE001 - the first command fails: alone, with retries
                await self.handle(chunk[0])
                continue
            try:
                await self._dead_letter(tp, chunk, decided)
            except BaseException:
                await asyncio.to_thread(self.app.abandon, decided)
                raise
            try:
                await asyncio.to_thread(self.app.commit, decided)
            except Exception as e:  # noqa: BLE001 - the store refused the batch: see below
                failures += 1
                if len(chunk) == 1:
                    await self.handle(chunk[0])
                    continue
                size = max(1, min(size, len(chunk)) // 2)
                if isinstance(e, IntegrityError):
                    # Stored meanwhile (another processor had the partition), or another
                    # writer changed what the batch decided on: on from the stored position.
                    await self._reload_position(tp)
                elif isinstance(e, OperationalError | InterfaceError | ConnectionError):
                    await self._wait_for_store(e, failures)
                else:
                    log.exception("storing %s commands failed; trying smaller batches", len(chunk))
                continue
            self._stored(tp, decided)
            metrics.stored(chunk, self._types, decided.results)

    def _decide(self, records: list[ConsumerRecord]) -> Decided:
        pending: list[Pending] = []
        self._types = []  # each command's type, for the metrics once the batch is stored
        for record in records:
            command: Command | CommandRejected | None = self._dead_lettered.get(
                self._dlq_key(record)
            )
            if command is None:
                try:
                    command = self._read(record)
                except CommandRejected as rejected:
                    command = rejected
            pending.append((command, tracking_of(self.cluster_id, record)))
            self._types.append(command.type if isinstance(command, Command) else type_of(record))
        return self.app.decide(pending)

    def _dlq_key(self, record: ConsumerRecord) -> tuple[TopicPartition, str, int]:
        tp = TopicPartition(record.topic, record.partition)
        return tp, self.cluster_id, record.offset

    async def _dead_letter(
        self, tp: TopicPartition, records: list[ConsumerRecord], decided: Decided
    ) -> None:
        for record, result in zip(records, decided.results, strict=False):
            key = self._dlq_key(record)
            if isinstance(result, CommandRejected) and key not in self._dead_lettered:
                await self._send_until_sent(record, result)
                self._dead_lettered[key] = result

    def _forget_dead_letters(self, tp: TopicPartition) -> None:
        """Those whose position is stored (or that belong to another log) are done."""
        for key in [k for k in self._dead_lettered if k[0] == tp]:
            if key[1] != self.cluster_id or key[2] + 1 <= self.recorded.get(tp, 0):
                del self._dead_lettered[key]

    def _stored(self, tp: TopicPartition, decided: Decided) -> None:
        assert decided.tracking is not None
        self.recorded[tp] = decided.tracking.notification_id
        self._forget_dead_letters(tp)
        rejected = sum(isinstance(result, CommandRejected) for result in decided.results)
        self.rejected += rejected
        self.processed += decided.consumed - rejected
        if decided.stored and self.on_stored is not None:
            self.on_stored()

    async def _reload_position(self, tp: TopicPartition) -> None:
        name = tracking_name(self.cluster_id, tp.topic, tp.partition)
        position = await asyncio.to_thread(self.app.last_position, name)
        self.recorded[tp] = max(self.recorded.get(tp, 0), position or 0)

    async def _wait_for_store(self, error: Exception, attempt: int) -> None:
        delay = TRANSIENT_RETRY_SECONDS[min(attempt, len(TRANSIENT_RETRY_SECONDS)) - 1]
        log.warning("event store unavailable (%s); retrying in %ss", error, delay)
        await self._wait_unless_stopping(delay)

    async def handle(self, record: ConsumerRecord) -> None:
        tracking = tracking_of(self.cluster_id, record)
        tp = TopicPartition(record.topic, record.partition)
        if tracking.notification_id <= self.recorded.get(tp, 0):
            return  # redelivered after a rebalance or a crash: applied already
        if self._dlq_key(record) in self._dead_lettered:
            # On the DLQ already, from a batch that did not land: store that outcome.
            await asyncio.to_thread(self.app.record_position, tracking)
            rejected = self._dead_lettered[self._dlq_key(record)]
            metrics.stored([record], [type_of(record)], [rejected])
            self.rejected += 1
            self.recorded[tp] = tracking.notification_id
            self._forget_dead_letters(tp)
            return
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
                await self._wait_for_store(e, attempt)
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
        command = self._read(record)
        outcome = await asyncio.to_thread(self.app.execute, command, tracking)
        metrics.stored([record], [command.type], [outcome])
        self.processed += 1
        if outcome.duplicate:
            log.info("command %s applied before; nothing written", command.command_id)
        if outcome.positions and self.on_stored is not None:
            self.on_stored()

    def _read(self, record: ConsumerRecord) -> Command:
        raw = record.value or b""
        if len(raw) > self.config.max_command_bytes:
            raise CommandRejected(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"command is {len(raw)} bytes; the limit is {self.config.max_command_bytes}",
                size=len(raw),
                limit=self.config.max_command_bytes,
            )
        return decode_command(raw)

    async def _reject(
        self, record: ConsumerRecord, tracking: Tracking, rejected: CommandRejected
    ) -> None:
        """DLQ first, then the position: a crash in between repeats the entry, never loses it.
        A broker or store that is briefly away is waited for, not allowed to stop the
        processor."""
        await self._send_until_sent(record, rejected)
        await asyncio.to_thread(self.app.record_position, tracking)
        metrics.stored([record], [type_of(record)], [rejected])
        self.rejected += 1

    async def _send_until_sent(self, record: ConsumerRecord, rejected: CommandRejected) -> None:
        delay = 0.5
        while True:
            try:
                await self._send_to_dlq(record, rejected)
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

    async def _send_to_dlq(self, record: ConsumerRecord, rejected: CommandRejected) -> None:
        assert self.producer is not None
        cfg = self.config
        await send_to_dlq(self.producer, cfg.topics.dlq, record, rejected, cfg.max_command_bytes)
        where = f"{record.partition}:{record.offset}"
        log.info("rejected %s: %s %s", where, rejected.code, rejected.message)

    async def _commit_offsets(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        # Informational only (consumer lag in Kafka tools); the store holds the real positions.
        assert self.consumer is not None
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        try:
            await self.consumer.commit(offsets)
        except Exception as e:  # noqa: BLE001 - a lost commit costs nothing but lag display
            log.debug("offset commit failed: %s", e)
