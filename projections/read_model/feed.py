"""Reading envbranch.events into a projection: decoding records, applying batches until
they are done, and the read model's own consumer (``ReadModelFeed``).

The feed reads the topic's one partition with a plain aiokafka consumer and applies what
it read in one transaction per batch, in a worker thread, while it reads on: reading and
decoding the next records overlaps the SQL of the last batch (the database drivers let go
of the GIL). A batch is whatever was read while the last one was applied (at most
``MAX_BATCH`` events): a replay applies thousands at a time, and an event that comes
alone is applied at once, with no window waiting for more.

It needs no consumer group: the read model stores, in the transaction that applies a
batch, the position of its last event and the Kafka offset it was read at. On start the
feed reads the record at that offset; if it is that position's, it goes on after it,
otherwise (a broker that came back empty, another topic) it reads the topic from its
start. Either way an event at or below the stored position is passed over: by its
``position`` header, before it is decoded, and again by ``ReadModel.apply``.

A feed that starts on an empty read model rebuilds it (``ReadModel.begin_catch_up``):
without the tables' secondary indexes, made when the reader reached the head of the topic,
and without automatic cyclic garbage collection (``_Collector``). Nothing of it changes
what is stored or when a position is: a rebuild that stops goes on as a rebuild.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from domain.envelopes import POSITION_HEADER, EventEnvelope, read_event
from projections import metrics
from projections.sql import is_transient

log = logging.getLogger(__name__)

# At most this many events in one transaction (a replay's batches are this big).
MAX_BATCH = 5000
# Reading stops while this many decoded events wait to be applied.
MAX_WAITING = 2 * MAX_BATCH
# Bytes of one fetch: the default 1 MiB holds about 3,000 events and makes a replay wait
# for the broker between fetches.
FETCH_BYTES = 16 * 1024 * 1024
# How long to wait for the record at the recorded offset when resuming.
RESUME_CHECK_MS = 5000

ATTEMPTS_BEFORE_PASSING_OVER = 3
# While a rebuild catches up, the cyclic garbage collector runs this often (see _Collector).
COLLECT_SECONDS = 10.0


def decode_event(raw: Any) -> EventEnvelope | None:
    """The event envelope a record holds; anything else on the topic (which only the
    relay should write to) is logged and passed over, so that no record can stop a
    projection."""
    envelope = read_event(raw)
    if envelope is None:
        shown = raw[:200] if isinstance(raw, bytes | str) else type(raw).__name__
        log.error("passing over a record that is not an event envelope: %r", shown)
    return envelope


def decode_events(records: list[Any]) -> list[EventEnvelope]:
    """The event envelopes among the records (see ``decode_event``)."""
    return [e for e in map(decode_event, records) if e is not None]


async def apply_until_done(
    apply: Callable[[list[EventEnvelope]], Any],
    envelopes: list[EventEnvelope],
    what: str,
    executor: Executor | None = None,
) -> None:
    """Apply a batch in a worker thread, retrying while the store is away: a batch given
    up would be lost (the reader has moved past it).

    A batch that keeps failing otherwise is applied event by event, and an event that
    fails the same way every time is logged and passed over: one event must not stop
    every event behind it (as a command that cannot be applied goes to the DLQ)."""
    delay = 0.5
    failures = 0
    while True:
        try:
            await asyncio.get_running_loop().run_in_executor(executor, apply, envelopes)
            return
        except Exception as e:  # noqa: BLE001 - anything: never move on without knowing why
            failures += 0 if is_transient(e) else 1
            if failures >= ATTEMPTS_BEFORE_PASSING_OVER:
                if len(envelopes) > 1:
                    for envelope in envelopes:
                        await apply_until_done(apply, [envelope], what, executor)
                    return
                event = envelopes[0]
                log.exception(
                    "passing over the event at position %s (%s %s) in the %s: it fails every time",
                    event.position,
                    event.type,
                    event.aggregate_id,
                    what,
                )
                return
            log.exception("applying events to the %s failed; retrying in %.1fs", what, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


def header_position(record: ConsumerRecord[Any, Any]) -> int | None:
    """The position in a record's header (None if it has none that is a number)."""
    for name, value in record.headers:
        if name == POSITION_HEADER:
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


class Target(Protocol):
    """What the feed applies to (``projections.read_model.ReadModel``)."""

    def resume_point(self) -> tuple[int, int | None]: ...

    def apply(
        self, envelopes: Iterable[EventEnvelope], offsets: Mapping[int, int] | None = None
    ) -> int: ...

    def prepare_writer(self) -> None: ...

    def begin_catch_up(self) -> bool: ...

    def end_catch_up(self) -> None: ...


class ReadModelFeed:
    """The read model's reader of the events topic (see the module's docstring)."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        read_model: Target,
        fetch_max_wait_ms: int = 100,
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.tp = TopicPartition(topic, 0)
        self.read_model = read_model
        self.fetch_max_wait_ms = fetch_max_wait_ms
        # aiokafka's security options (security_protocol, ssl_context, sasl_*)
        self.kafka_options = dict(kafka_options or {})

    async def run(self) -> None:
        """Read and apply until cancelled; after an unexpected failure, start again from
        what the read model stored."""
        delay = 0.5
        while True:
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the read model going; say why it stopped
                log.exception(
                    "reading envbranch.events for the read model failed; again in %ss", delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _run_once(self) -> None:
        # One thread applies, on one connection made ready for large transactions.
        executor = ThreadPoolExecutor(1, "read-model", initializer=self.read_model.prepare_writer)
        try:
            await self._consume(executor)
        finally:
            executor.shutdown(wait=False)

    async def _consume(self, executor: Executor) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a broker that came back empty: from its start
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            max_partition_fetch_bytes=FETCH_BYTES,
            **self.kafka_options,
        )
        await consumer.start()
        tasks: list[asyncio.Task[None]] = []
        try:
            consumer.assign([self.tp])
            position = await self._seek_to_resume_point(consumer)
            loop = asyncio.get_running_loop()
            catching_up = await loop.run_in_executor(executor, self.read_model.begin_catch_up)
            waiting = _Waiting()
            tasks = [
                asyncio.create_task(self._read(consumer, waiting, position)),
                asyncio.create_task(self._apply(waiting, executor, catching_up)),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # what stopped it
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await consumer.stop()

    async def _seek_to_resume_point(self, consumer: AIOKafkaConsumer) -> int:
        """Go on after the record of the stored position, or read from the start; returns
        the stored position."""
        position, offset = await asyncio.to_thread(self.read_model.resume_point)
        if offset is not None:
            consumer.seek(self.tp, offset)
            fetched = await consumer.getmany(self.tp, timeout_ms=RESUME_CHECK_MS, max_records=1)
            record = next(iter(fetched.get(self.tp, [])), None)
            if record is not None and (record.offset, header_position(record)) == (
                offset,
                position,
            ):
                return position  # the consumer goes on after it
        if position:
            log.info(
                "reading %s from its start, passing over positions to %s", self.tp.topic, position
            )
        await consumer.seek_to_beginning(self.tp)
        return position

    async def _read(self, consumer: AIOKafkaConsumer, waiting: _Waiting, position: int) -> None:
        """Decode what the consumer reads and hand it to the applier; ``position`` is the
        last one handed over (or applied before), so redeliveries are passed over here."""
        while True:
            fetched = await consumer.getmany(self.tp, timeout_ms=1000)
            batch = []
            for record in fetched.get(self.tp, ()):
                header = header_position(record)
                if header is not None and header <= position:
                    continue  # applied already, or waiting to be: not even decoded
                envelope = decode_event(record.value)
                if envelope is not None:
                    batch.append((envelope, record.offset))
                    if envelope.position > position:
                        position = envelope.position
            # At the head: the next offset to read is the high watermark of the broker's
            # last fetch answer (before any answer: not known to be at the head).
            highwater = consumer.highwater(self.tp)
            at_head = highwater is not None and await consumer.position(self.tp) >= highwater
            await waiting.put(batch, at_head)

    async def _apply(self, waiting: _Waiting, executor: Executor, catching_up: bool) -> None:
        """Apply what was read; a rebuild (``catching_up``) ends once it has applied all
        the reader found before it reached the head of the topic."""
        collector = _Collector(paused=catching_up)
        try:
            while True:
                batch = await waiting.take(MAX_BATCH, or_at_head=catching_up)
                if batch:
                    offsets = {envelope.position: offset for envelope, offset in batch}
                    apply = partial(self.read_model.apply, offsets=offsets)
                    envelopes = [envelope for envelope, _ in batch]
                    await apply_until_done(apply, envelopes, "read model", executor)
                    metrics.applied("projector", envelopes)
                    collector.tick()
                if catching_up and waiting.at_head and not waiting.events:
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(executor, self.read_model.end_catch_up)
                    catching_up = False
                    collector.resume()
        finally:
            collector.resume()


class _Collector:
    """Python's cyclic garbage collector, paused while a rebuild catches up. What a batch
    leaves (envelopes, rows, tuples) holds no cycles: reference counting frees it, and the
    collector's passes over it found nothing while taking a third of a rebuild's time
    (0.83 s of 2.5 s for 90,000 events, mostly passes over the young objects). Cycles
    that other work makes meanwhile are collected every ``COLLECT_SECONDS``; automatic
    collection comes back when the rebuild has caught up or stops."""

    def __init__(self, paused: bool) -> None:
        self.paused = paused and gc.isenabled()  # paused by someone else: left to them
        self.collected_at = time.monotonic()
        if self.paused:
            gc.disable()

    def tick(self) -> None:
        if self.paused and time.monotonic() - self.collected_at > COLLECT_SECONDS:
            gc.collect()
            self.collected_at = time.monotonic()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            gc.enable()


class _Waiting:
    """The events read but not applied yet: the reader adds, the applier takes."""

    def __init__(self) -> None:
        self.events: list[tuple[EventEnvelope, int]] = []
        self.at_head = False  # the reader's last fetch reached the head of the topic
        self.changed = asyncio.Condition()

    async def put(self, events: list[tuple[EventEnvelope, int]], at_head: bool) -> None:
        async with self.changed:
            if events:
                await self.changed.wait_for(lambda: len(self.events) < MAX_WAITING)
                self.events.extend(events)
            if events or at_head != self.at_head:
                self.at_head = at_head
                self.changed.notify_all()

    async def take(self, most: int, or_at_head: bool = False) -> list[tuple[EventEnvelope, int]]:
        """Up to ``most`` events, once there are any (or none, once the reader is at the
        head, if ``or_at_head``)."""
        async with self.changed:
            await self.changed.wait_for(lambda: bool(self.events) or (or_at_head and self.at_head))
            taken, self.events = self.events[:most], self.events[most:]
            self.changed.notify_all()
            return taken
