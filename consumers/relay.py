"""The relay: every stored event onto envbranch.events, in position order.

Its only memory is the topic itself: on start, whenever publishing fails, when the
broker's cluster ID changed (read before each page, and every half second while idle)
and when a check beside the publishing finds the topic short of what was published, it
reads the position in the last record on the topic and goes on from there. A broker
that restarted empty therefore gets the whole log again. It waits for new events on a
wake-up from the writer (polling between), not on a timer. Each batch is one Kafka
record batch, appended all or nothing, and the next is sent only after it was
acknowledged, so the topic never has a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from eventsourcing.persistence import Mapper, Notification
from eventsourcing.utils import resolve_topic

from application.environments import Environments
from consumers import metrics
from domain.envelopes import (
    NOT_DATA,
    POSITION_HEADER,
    Topics,
    envelope_of,
    event_id_of,
    read_event,
)

log = logging.getLogger(__name__)


@dataclass
class RelayConfig:
    bootstrap_servers: str
    topics: Topics = Topics()
    page_size: int = 500
    idle_poll_seconds: float = 0.05
    # How often to check, beside publishing, that the topic still holds what was published.
    tail_check_seconds: float = 5.0
    # How often to check that the broker still serves the same log (its cluster ID).
    identity_check_seconds: float = 0.5
    max_batch_bytes: int = 900 * 1024
    # aiokafka's security options (security_protocol, ssl_context, sasl_*), for every client
    kafka_options: dict[str, Any] = field(default_factory=dict, repr=False)  # a password


class Wakeups(Protocol):
    """Tells the relay that events were stored (envbranch.signals.Wakeup)."""

    def ticket(self) -> int: ...

    async def wait(self, ticket: int, timeout: float) -> bool: ...


class Relay:
    def __init__(
        self,
        app: Environments,
        config: RelayConfig,
        ensure_topic: Callable[[], Awaitable[None]] | None = None,
        ready: asyncio.Event | None = None,
        wakeups: Wakeups | None = None,
    ) -> None:
        self.app = app
        # Woken when events are stored; without it (or between wake-ups) it polls.
        self.wakeups = wakeups
        self.config = config
        self.ensure_topic = ensure_topic
        self.ready = ready or asyncio.Event()  # set once it knows the topic's last position
        self.published = 0  # the last position known to be on the topic
        self.producer: AIOKafkaProducer | None = None
        self.admin: AIOKafkaAdminClient | None = None
        self.cluster_id: str | None = None  # the log incarnation `published` refers to
        self._identity_checked = 0.0  # when cluster_id was last read (monotonic)
        self._tail_lost = False  # the topic lost events it had: start over from what it holds

    async def run(self, stop: asyncio.Event) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.config.bootstrap_servers,
            acks="all",
            max_batch_size=self.config.max_batch_bytes,
            max_request_size=self.config.max_batch_bytes + 128 * 1024,
            request_timeout_ms=10_000,
            **self.config.kafka_options,
        )
        await self.producer.start()
        self.admin = AIOKafkaAdminClient(
            bootstrap_servers=self.config.bootstrap_servers, **self.config.kafka_options
        )
        await self.admin.start()
        try:
            await self._resync()
            self.ready.set()
            watching = asyncio.create_task(self._watch_tail(stop))
            try:
                await self._publish_until(stop)
            finally:
                watching.cancel()
                await asyncio.gather(watching, return_exceptions=True)
        finally:
            await self.producer.stop()
            await self.admin.close()

    async def _publish_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                # A broker that came back empty must get the log from position 1, in order,
                # or a page could land on the new topic ahead of the rest. Its identity is
                # read on a timer rather than per page (a round trip each); a publish that
                # fails (the connection to the old broker broke) re-reads it at once.
                ticket = self.wakeups.ticket() if self.wakeups is not None else 0
                page = await self._next_page()
                if self._tail_lost or await self._broker_changed(bool(page)):
                    await self._resync()
                elif page:
                    await self._publish(page)
                    self.published = page[-1].id
                    metrics.relayed(_stored_at(page[:1]))  # the page's oldest event
                else:
                    await self._idle(ticket)
            except (TimeoutError, KafkaError, OSError) as e:
                log.warning("publishing failed (%r); re-reading the topic's tail", e)
                await asyncio.sleep(0.5)
                await self._resync_until_reachable(stop)

    async def _broker_changed(self, publishing: bool) -> bool:
        """Read before every page with something to publish (the timer alone would leave
        a window: a broker back empty for under a check's interval, its topics made again,
        would get a page ahead of the rest), and on the timer while idle."""
        if not publishing and (
            time.monotonic() - self._identity_checked < self.config.identity_check_seconds
        ):
            return False
        return await self._cluster_id() != self.cluster_id

    async def _watch_tail(self, stop: asyncio.Event) -> None:
        """Beside publishing, check now and then that the topic still holds what was
        published (a topic deleted and made again on the same broker); the publishing loop
        then starts over from what it holds. Reading the tail takes a consumer of its own
        and hundreds of ms on the embedded broker: done here, no write waits for it."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.tail_check_seconds)
            published = self.published
            try:
                on_topic = await last_position_on_topic(
                    self.config.bootstrap_servers,
                    self.config.topics.events,
                    self.config.kafka_options,
                )
            except Exception as e:  # noqa: BLE001 - the broker may be away: check again later
                log.warning("could not read the topic's tail (%r); again later", e)
                continue
            if on_topic < published:
                self._tail_lost = True

    async def _idle(self, ticket: int) -> None:
        if self.wakeups is None:
            await asyncio.sleep(self.config.idle_poll_seconds)
        else:
            await self.wakeups.wait(ticket, self.config.idle_poll_seconds)

    async def _next_page(self) -> Sequence[Notification]:
        return await asyncio.to_thread(  # type: ignore[no-any-return]
            self.app.recorder.select_notifications, self.published + 1, self.config.page_size
        )

    async def _publish(self, notifications: Sequence[Notification]) -> None:
        assert self.producer is not None
        batch = self.producer.create_batch()
        for notification in notifications:
            key = str(notification.originator_id).encode()
            value = envelope_bytes(notification, self.app.mapper)
            headers = [(POSITION_HEADER, str(notification.id).encode())]
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                await self._send(batch)
                batch = self.producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    raise ValueError(f"event at position {notification.id} is too large to publish")
        await self._send(batch)

    async def _send(self, batch: object) -> None:
        assert self.producer is not None
        if batch.record_count() == 0:  # type: ignore[attr-defined]
            return
        sent = await self.producer.send_batch(batch, self.config.topics.events, partition=0)  # type: ignore[arg-type]
        await sent

    async def _resync_until_reachable(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                await self._resync()
                return
            except (TimeoutError, KafkaError, OSError) as e:
                log.warning("topic not reachable (%r); retrying in %ss", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _cluster_id(self) -> str:
        assert self.admin is not None
        cluster_id = str((await self.admin.describe_cluster()).get("cluster_id"))
        self._identity_checked = time.monotonic()
        return cluster_id

    async def _resync(self) -> None:
        self._tail_lost = False
        self.cluster_id = await self._cluster_id()
        if self.ensure_topic is not None:
            await self.ensure_topic()
        topic = self.config.topics.events
        on_topic = await last_position_on_topic(
            self.config.bootstrap_servers, topic, self.config.kafka_options
        )
        # Positions beyond the store's are not the relay's (a forged or foreign record).
        stored = await asyncio.to_thread(self.app.recorder.max_notification_id)
        on_topic = min(on_topic, stored or 0)
        if on_topic < self.published:
            log.warning(
                "%s holds events up to %s, not %s: publishing again from the store",
                topic,
                on_topic,
                self.published,
            )
        self.published = on_topic


async def last_position_on_topic(
    bootstrap_servers: str, topic: str, kafka_options: dict[str, Any] | None = None
) -> int:
    """The position of the last event on the topic (0 when it holds none).

    Only a record that is an event envelope whose position matches its header counts:
    anything else on the topic (which only the relay should write to) is passed over, and
    the search goes further back until it finds one of the relay's own records."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        request_timeout_ms=10_000,
        **(kafka_options or {}),
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - fresh metadata
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return 0
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        last = 0
        for tp in tps:
            # Read on until a fetch comes back empty rather than trusting the end offset:
            # Tansu reports the last batch's base offset + 1 there, not the last offset + 1.
            start, back = ends[tp] - 1, 1
            while start >= 0:
                consumer.seek(tp, start)
                found = 0
                while records := (await consumer.getmany(tp, timeout_ms=300)).get(tp, []):
                    for record in records:
                        found = max(found, position_of(record))
                if found or start == 0:
                    last = max(last, found)
                    break
                back *= 8
                start = max(0, ends[tp] - back)
        return last
    finally:
        await consumer.stop()


def _stored_at(notifications: Sequence[Notification]) -> list[float]:
    """When events were stored (their timestamps), where a plain JSON state tells it."""
    found = []
    for notification in notifications:
        try:
            stamp = json.loads(notification.state)["timestamp"]["_data_"]
            found.append(datetime.fromisoformat(stamp).timestamp())
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            continue  # a compressed or encrypted store: not timed
    return found


def envelope_bytes(notification: Notification, mapper: Mapper[Any]) -> bytes:
    """The event envelope of a stored event, as bytes for the topic. Most stored states
    are plain JSON whose only transcoded value is the timestamp: the envelope is then
    written straight from it, the same bytes as through the domain event (tested), at a
    fraction of the cost. Anything else (other transcoded values, floats, a versioned
    event class that may need upcasting, a compressed or encrypted store) goes the
    general way."""
    raw = notification.state
    if raw.count(b'"_type_"') == 1 and b'"class_version"' not in raw:
        try:
            state = json.loads(raw, parse_float=_no_floats)
            stamp = state.pop("timestamp")
            occurred_at = stamp["_data_"]
            if stamp["_type_"] == "datetime_iso" and occurred_at.endswith("+00:00"):
                envelope = {
                    "position": notification.id,
                    "event_id": event_id_of(
                        str(notification.originator_id), notification.originator_version
                    ),
                    "type": _event_type_of(notification.topic),
                    "aggregate_id": str(notification.originator_id),
                    "aggregate_version": notification.originator_version,
                    "namespace_id": state.get("namespace_id"),
                    "command_id": state.get("command_id"),
                    "actor": state.get("actor"),
                    "occurred_at": occurred_at[:-6] + "Z",
                    "data": {k: v for k, v in state.items() if k not in NOT_DATA},
                }
                return json.dumps(
                    envelope, separators=(",", ":"), ensure_ascii=False, allow_nan=False
                ).encode()
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # not of that shape after all: the general way
    return envelope_of(notification.id, mapper.to_domain_event(notification)).to_bytes()


def _no_floats(text: str) -> float:
    """Floats go the general way: json and pydantic write some of them differently
    (1e-05 against 0.00001)."""
    raise ValueError(f"a float ({text})")


@functools.cache
def _event_type_of(topic: str) -> str:
    return str(resolve_topic(topic).__qualname__)


def position_of(record: ConsumerRecord) -> int:
    """The position a record of the events topic carries; 0 if it is not the relay's."""
    try:
        header = dict(record.headers).get(POSITION_HEADER)
        position = int(header.decode("ascii")) if header is not None else 0
        envelope = read_event(record.value)
        if position > 0 and envelope is not None and envelope.position == position:
            return position
    except Exception:  # noqa: BLE001 - any record at all may be on a topic
        pass
    return 0
