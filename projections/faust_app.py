"""The Faust app: the read-model agent, and room for the processes that share its loop.

The agent's consumer group is named after the read model's generation, a
value drawn when its tables are created. A fresh read model therefore reads
envbranch.events from the start, and a restarted one goes on from its group's
committed offset; either way the stored position drops what was applied
already (Faust redelivers after rebalances).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from contract.sender import CommandSender
from domain.envelopes import EventEnvelope, Topics, read_event
from projections.read_model import ReadModel
from projections.sql import is_transient
from projections.vectors.materializer import VectorMaterializer
from projections.vectors.views import CopyProgress

log = logging.getLogger(__name__)

BATCH = 500
BATCH_SECONDS = 0.02
# How long a fetch may wait for data. Faust fixes it at 1500 ms; Tansu holds a
# fetch that long even when data arrives (Kafka answers at once), which would
# add up to 1.5 s to every write's way into the read model.
FETCH_MAX_WAIT_MS = 100


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class App(faust.App):
    """faust.App with a short fetch wait."""

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


def create_faust_app(
    bootstrap_servers: str,
    topics: Topics,
    read_model: ReadModel | None,
    datadir: Path,
    materializer: VectorMaterializer | None = None,
    **settings: Any,
) -> faust.App:
    # The group is named after the state it feeds, so fresh state replays from the start.
    generations = [
        f"rm{read_model.generation()[:10]}" if read_model else "",
        f"vec{materializer.generation()[:10]}" if materializer else "",
    ]
    app_id = "-".join([topics.prefix, *[g for g in generations if g]])
    app = App(
        app_id,
        broker=f"kafka://{bootstrap_servers}",
        datadir=str(datadir),  # Faust's own files; by default it writes into the cwd
        store="memory://",
        web_enabled=False,
        # The envbranch topics are created by envbranch, with the partitions meant for them.
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.pop("broker_session_timeout", 10.0),
        broker_heartbeat_interval=settings.pop("broker_heartbeat_interval", 1.0),
        broker_rebalance_timeout=settings.pop("broker_rebalance_timeout", 10.0),
        **settings,
    )
    events = app.topic(topics.events, value_type=bytes, value_serializer="raw")

    if read_model is not None:

        @app.agent(events, concurrency=1, name="read_model")
        async def project_read_model(stream: faust.StreamT[bytes]) -> None:
            async for batch in stream.take(BATCH, within=BATCH_SECONDS):
                envelopes = decode_events(batch)
                await apply_until_done(read_model.apply, envelopes, "read model")

    if materializer is not None:
        vectors = materializer

        @app.agent(events, concurrency=1, name="vectors")
        async def materialize_vectors(stream: faust.StreamT[bytes]) -> None:
            reporter = TaskReporter(bootstrap_servers, topics, asyncio.get_running_loop())
            await reporter.start()
            vectors.on_copy_progress = reporter.copy_progress
            vectors.on_reprocess_progress = reporter.reprocess_progress
            vectors.on_apply_progress = reporter.apply_progress
            try:
                async for batch in stream.take(BATCH, within=BATCH_SECONDS):
                    envelopes = decode_events(batch)
                    await apply_until_done(vectors.apply, envelopes, "vectors")
            finally:
                await reporter.stop()

    return app


def decode_events(records: list[Any]) -> list[EventEnvelope]:
    """The event envelopes among the records; anything else on the topic (which only the
    relay should write to) is logged and passed over, so that no record can stop an agent."""
    envelopes = []
    for raw in records:
        envelope = read_event(raw)
        if envelope is None:
            shown = raw[:200] if isinstance(raw, bytes | str) else type(raw).__name__
            log.error("passing over a record that is not an event envelope: %r", shown)
        else:
            envelopes.append(envelope)
    return envelopes


ATTEMPTS_BEFORE_PASSING_OVER = 3


async def apply_until_done(
    apply: Callable[[list[EventEnvelope]], Any], envelopes: list[EventEnvelope], what: str
) -> None:
    """Apply a batch, retrying while the store is away: an agent that raised would be
    restarted by Faust past this batch (its offsets acknowledged), losing it.

    A batch that keeps failing otherwise is applied event by event, and an event that
    fails the same way every time is logged and passed over: one event must not stop
    every event behind it (as a command that cannot be applied goes to the DLQ)."""
    delay = 0.5
    failures = 0
    while True:
        try:
            await asyncio.to_thread(apply, envelopes)
            return
        except Exception as e:  # noqa: BLE001 - anything: never move on without knowing why
            failures += 0 if is_transient(e) else 1
            if failures >= ATTEMPTS_BEFORE_PASSING_OVER:
                if len(envelopes) > 1:
                    for envelope in envelopes:
                        await apply_until_done(apply, [envelope], what)
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


class TaskReporter:
    """Sends the progress of vector work back as commands (processors talk through the
    topics). Called from the worker thread doing the work; waits until Kafka has it.
    Command IDs are deterministic: a report sent again after a crash is the same command."""

    ACTOR = "envbranch-vector-processor"

    def __init__(self, bootstrap: str, topics: Topics, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.sender = CommandSender(bootstrap, topics)

    async def start(self) -> None:
        await self.sender.start()

    async def stop(self) -> None:
        await self.sender.stop()

    def copy_progress(self, task_id: str, collection_id: str, progress: CopyProgress) -> None:
        body = {
            "task_id": task_id,
            "collection_id": collection_id,
            "copied": progress.copied,
            "total": progress.total,
            "done": progress.done,
        }
        step = f"{collection_id}:{progress.copied}:{int(progress.done)}"
        self._send("tasks.copy_progress", f"copy:{task_id}:{step}", task_id, body)

    def reprocess_progress(self, task_id: str, done: int, total: int, finished: bool) -> None:
        body = {"task_id": task_id, "done": done, "total": total, "finished": finished}
        command_id = f"reprocess:{task_id}:{done}:{int(finished)}"
        self._send("tasks.reprocess_progress", command_id, task_id, body)

    def apply_progress(self, task_id: str, done: int, total: int, finished: bool) -> None:
        body = {"task_id": task_id, "done": done, "total": total, "finished": finished}
        self._send("tasks.apply_progress", f"apply:{task_id}:{done}:{int(finished)}", task_id, body)

    def _send(self, type_: str, command_id: str, task_id: str, body: dict[str, Any]) -> None:
        sent = self.sender.send(type_, body, self.ACTOR, command_id=command_id, key=task_id)
        asyncio.run_coroutine_threadsafe(sent, self.loop).result(60)
