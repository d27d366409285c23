"""The Faust app: the read model's feed, the vector agent, and room for the processes
that share its loop.

The read model is fed by a plain consumer that the app starts and stops with itself
(``projections.read_model.feed``), not by a Faust agent: Faust hands every record
through its conductor and stream one at a time, at about 100 microseconds each here
(an agent that applies nothing reads about 7,000 events/s), so a replay through an
agent is bound by Faust itself, whatever the batches. The feed reads whole fetches,
applies them in one transaction each in a worker thread while it reads on, and needs
no consumer group: the read model stores the offset with its position. Measured with
bench/read_path_replay.py on 30,000 events (2 shared cores): the Faust agent replayed at
2,400-7,000 events/s, the feed at 21,000-28,000 events/s, as fast as ReadModel.apply
alone in the same run: the applying, not the reading, is now the limit.

The vector agent stays a Faust agent (``stream.take``): its work per event is in the
vector store, so Faust's share of it does not matter. When the read model runs without
it, Faust still needs a topic to subscribe to (it fails to start without one), and the
composition root tells the projector ready once Faust's consumer has the events topic:
so a ``read_model`` agent subscribes to it, with its partition paused, and passes over
anything that reaches it.

The group is named after the state it feeds (the vector store's generation, drawn when
it is created; without vectors, the read model's), so fresh state reads the topic from
the start; the stored positions drop what was applied already (Faust redelivers after
rebalances).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import faust
import mode
from faust.transport.drivers import aiokafka as faust_aiokafka

from contract.sender import CommandSender
from domain.envelopes import Topics
from projections import metrics
from projections.read_model import ReadModel
from projections.read_model.feed import (
    ATTEMPTS_BEFORE_PASSING_OVER,
    ReadModelFeed,
    apply_until_done,
    decode_events,
)
from projections.vectors.materializer import VectorMaterializer
from projections.vectors.views import CopyProgress

__all__ = [
    "ATTEMPTS_BEFORE_PASSING_OVER",
    "App",
    "TaskReporter",
    "apply_until_done",
    "create_faust_app",
    "decode_events",
]

log = logging.getLogger(__name__)

BATCH = 500
BATCH_SECONDS = 0.02
INDEX_CHECK_SECONDS = 2.0  # how often the vector stores' indexes are looked after


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust fixes it at 1500 ms; Tansu holds a fetch that long even when data arrives
        # (Kafka answers at once), which would add that much to every event's way in.
        consumer._fetch_max_wait_ms = transport.app.fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def resume_partitions(self, tps: Any) -> None:
        # Faust pauses every partition while it rebalances and resumes them after: not
        # those of a topic it only holds (see the module's docstring).
        held = self.app.held_topics  # type: ignore[attr-defined]  # our App's
        super().resume_partitions({tp for tp in tps if tp.topic not in held})


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class App(faust.App):
    """faust.App with a fetch wait of our choosing, and topics it subscribes to without
    reading them (``held_topics``)."""

    fetch_max_wait_ms = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held_topics: set[str] = set()

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


class _Feeding(mode.Service):
    """Runs the read model's feed for as long as the app runs."""

    def __init__(self, feed: ReadModelFeed, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.feed = feed

    @mode.Service.task
    async def _feed(self) -> None:
        await self.feed.run()


def create_faust_app(
    bootstrap_servers: str,
    topics: Topics,
    read_model: ReadModel | None,
    datadir: Path,
    materializer: VectorMaterializer | None = None,
    *,
    fetch_max_wait_ms: int = 100,
    kafka_options: dict[str, Any] | None = None,
    **settings: Any,
) -> faust.App:
    """The app of the read model's feed and the vector agent (either may be None).
    ``fetch_max_wait_ms``: how long a fetch of either waits for data (Tansu holds a
    fetch that long even when data arrives, so keep it short there). ``kafka_options``:
    aiokafka's security options for the clients beside Faust's own, which take
    ``broker_credentials`` among ``settings``."""
    # The group is named after the state it feeds, so fresh state replays from the start.
    if materializer is not None:
        app_id = f"{topics.prefix}-vec{materializer.generation()[:10]}"
    else:
        app_id = f"{topics.prefix}-rm{read_model.generation()[:10] if read_model else ''}"
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
    app.fetch_max_wait_ms = fetch_max_wait_ms
    events = app.topic(topics.events, value_type=bytes, value_serializer="raw")

    if read_model is not None:
        feed = ReadModelFeed(
            bootstrap_servers, topics.events, read_model, fetch_max_wait_ms, kafka_options
        )
        app.add_dependency(_Feeding(feed))
        if materializer is None:
            _hold_the_events_topic(app, events)

    if materializer is not None:
        _add_vector_agent(app, events, materializer, bootstrap_servers, topics, kafka_options)

    return app


def _hold_the_events_topic(app: App, events: faust.TopicT) -> None:
    """A subscription to the events topic that reads nothing (see the module docstring)."""

    topic = events.get_topic_name()
    app.held_topics.add(topic)

    @app.agent(events, concurrency=1, name="read_model")
    async def hold_read_model_partition(stream: faust.StreamT[bytes]) -> None:
        async for _ in stream:  # nothing, or what came before a pause: the feed applies it
            pass

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode's handler type
    async def pause(_: faust.App, assigned: set[Any], **__: Any) -> None:
        app.consumer.pause_partitions({tp for tp in assigned if tp.topic == topic})


def _add_vector_agent(
    app: faust.App,
    events: faust.TopicT,
    vectors: VectorMaterializer,
    bootstrap_servers: str,
    topics: Topics,
    kafka_options: dict[str, Any] | None = None,
) -> None:
    @app.agent(events, concurrency=1, name="vectors")
    async def materialize_vectors(stream: faust.StreamT[bytes]) -> None:
        loop = asyncio.get_running_loop()
        reporter = TaskReporter(bootstrap_servers, topics, loop, kafka_options)
        await reporter.start()
        vectors.on_copy_progress = reporter.copy_progress
        vectors.on_reprocess_progress = reporter.reprocess_progress
        vectors.on_apply_progress = reporter.apply_progress
        try:
            async for batch in stream.take(BATCH, within=BATCH_SECONDS):
                envelopes = decode_events(batch)
                await apply_until_done(vectors.apply, envelopes, "vectors")
                metrics.applied("vectors", envelopes)
        finally:
            await reporter.stop()

    @app.timer(INDEX_CHECK_SECONDS)
    async def maintain_indexes() -> None:
        try:  # builds run in child processes: this only starts and swaps them
            await asyncio.to_thread(vectors.maintain_indexes)
        except Exception:
            log.exception("looking after the vector indexes failed; retrying next time")


class TaskReporter:
    """Sends the progress of vector work back as commands (processors talk through the
    topics). Called from the worker thread doing the work; waits until Kafka has it.
    Command IDs are deterministic: a report sent again after a crash is the same command."""

    ACTOR = "envbranch-vector-processor"

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        loop: asyncio.AbstractEventLoop,
        kafka_options: dict[str, Any] | None = None,
    ) -> None:
        self.loop = loop
        self.sender = CommandSender(bootstrap, topics, kafka_options=kafka_options)

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
