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
from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from domain.envelopes import EventEnvelope, Topics
from projections.read_model import ReadModel

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
    read_model: ReadModel,
    datadir: Path,
    **settings: Any,
) -> faust.App:
    app_id = f"{topics.prefix}-read-model-{read_model.generation()[:12]}"
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

    @app.agent(events, concurrency=1, name="read_model")
    async def project_read_model(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.take(BATCH, within=BATCH_SECONDS):
            envelopes = [EventEnvelope.from_bytes(raw) for raw in batch]
            await asyncio.to_thread(read_model.apply, envelopes)

    return app
