"""Runs envbranch's processes: one per container (docker-compose) or all in one (embedded).

The read-model projector and the vector materializer are Faust agents; when
either is among the components, the Faust worker owns the event loop and the
other components run as its tasks, so the API, the processors and the agents
share one process, and with it the Qdrant Edge store only one process may open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable, Iterator
from typing import Any

import uvicorn

from consumers.command_processor import CommandProcessor, ProcessorConfig
from consumers.relay import Relay, RelayConfig
from envbranch.event_store import open_event_store
from envbranch.settings import Settings
from envbranch.topics import ensure_topics, topic_plan
from projections import queries
from projections.api import create_app
from projections.auth import ApiKeys
from projections.gateway import CommandGateway
from projections.read_model import ReadModel
from projections.sql import Database
from projections.vectors.edge import EdgeStore
from projections.vectors.materializer import VectorMaterializer
from projections.vectors.qdrant import QdrantStore
from projections.vectors.store import VectorStore

log = logging.getLogger(__name__)

COMPONENTS = ("command-processor", "relay", "projector", "vectors", "api")
FAUST = {"projector", "vectors"}  # the components that are Faust agents


def read_model_database(settings: Settings) -> Database:
    if settings.event_store == "postgres":
        return Database(postgres=settings.postgres, schema=settings.read_model_schema)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Database(sqlite_path=settings.data_dir / "read_model.sqlite3")


def open_vectors(settings: Settings) -> VectorStore:
    if settings.qdrant_url:
        return QdrantStore.server(settings.qdrant_url)
    return EdgeStore(settings.data_dir / "vectors")


def prepare_vectors(settings: Settings, vectors: VectorStore) -> VectorMaterializer:
    if settings.event_store == "postgres":
        db = Database(postgres=settings.postgres, schema=f"{settings.read_model_schema}_vectors")
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(sqlite_path=settings.data_dir / "vector_state.sqlite3")
    materializer = VectorMaterializer(vectors, db)
    materializer.create_schema()
    return materializer


def prepare_read_side(settings: Settings) -> tuple[Database, ReadModel, ApiKeys]:
    db = read_model_database(settings)
    read_model = ReadModel(db, settings.digest_interval)
    read_model.create()
    keys = ApiKeys(db)
    keys.create_table()
    return db, read_model, keys


class _ServerInALoop(uvicorn.Server):
    # The process's owner (asyncio.run or the Faust worker) handles the signals.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_api(
    settings: Settings,
    bootstrap_servers: str,
    stop: asyncio.Event,
    materializer: VectorMaterializer | None = None,
) -> None:
    db, _, keys = prepare_read_side(settings)
    if materializer is None and settings.qdrant_url:
        materializer = prepare_vectors(settings, open_vectors(settings))
    gateway = CommandGateway(
        bootstrap_servers,
        settings.topics,
        lambda command_id: queries.command_receipt(db, command_id),
        timeout=settings.command_timeout,
    )
    app = create_app(db, gateway, keys, materializer)
    config = uvicorn.Config(
        app, host=settings.api_host, port=settings.api_port, log_level="warning", lifespan="on"
    )
    server = _ServerInALoop(config)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        await asyncio.gather(serving, stopping, return_exceptions=True)


async def run_components(
    settings: Settings,
    bootstrap_servers: str,
    components: Iterable[str],
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    materializer: VectorMaterializer | None = None,
) -> None:
    """Run the named components (not the projector) until ``stop`` is set or one fails.

    ``ready`` is set once the topics exist, so nothing is published into a topic
    the broker would otherwise create with its own partition count."""
    topics = settings.topics
    await ensure_topics(bootstrap_servers, topic_plan(topics, settings.command_partitions))
    if ready is not None:
        ready.set()

    async def recreate_topics() -> None:  # after a broker came back empty
        await ensure_topics(bootstrap_servers, topic_plan(topics, settings.command_partitions))

    runners: list[Any] = []
    for name in components:
        if name == "command-processor":
            processor = CommandProcessor(
                open_event_store(settings),
                ProcessorConfig(
                    bootstrap_servers,
                    topics=topics,
                    group_id=settings.processor_group,
                    max_command_bytes=settings.max_command_bytes,
                ),
                ensure_topics=recreate_topics,
            )
            runners.append(processor.run(stop))
        elif name == "relay":
            relay = Relay(
                open_event_store(settings),
                RelayConfig(bootstrap_servers, topics=topics, page_size=settings.relay_page_size),
                ensure_topic=recreate_topics,
            )
            runners.append(relay.run(stop))
        elif name == "api":
            runners.append(serve_api(settings, bootstrap_servers, stop, materializer))
        else:
            raise ValueError(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}")
    tasks = [asyncio.create_task(runner) for runner in runners]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


def run(settings: Settings, bootstrap_servers: str, components: Iterable[str]) -> None:
    """Run the components in this process until SIGINT or SIGTERM."""
    components = list(components)
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown component {unknown[0]!r}; known: {', '.join(COMPONENTS)}")
    if FAUST & set(components):
        _run_in_faust_worker(settings, bootstrap_servers, components)
        return

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        await run_components(settings, bootstrap_servers, components, stop)

    asyncio.run(main())


def _run_in_faust_worker(settings: Settings, bootstrap_servers: str, components: list[str]) -> None:
    import faust

    from projections.faust_app import create_faust_app

    # The events topic must exist before the agents subscribe to it.
    plan = topic_plan(settings.topics, settings.command_partitions)
    asyncio.run(ensure_topics(bootstrap_servers, plan))
    read_model = prepare_read_side(settings)[1] if "projector" in components else None
    materializer = None
    if "vectors" in components:
        materializer = prepare_vectors(settings, open_vectors(settings))
    faust_dir = settings.data_dir / "faust"
    app = create_faust_app(
        bootstrap_servers, settings.topics, read_model, faust_dir, materializer=materializer
    )
    others = [c for c in components if c not in FAUST]
    if others:

        @app.task
        async def run_others() -> None:
            stop = asyncio.Event()
            await run_components(
                settings, bootstrap_servers, others, stop, materializer=materializer
            )

    level = "info" if log.isEnabledFor(logging.INFO) else "warning"
    worker = faust.Worker(app, loglevel=level, quiet=True, redirect_stdouts=False)
    with contextlib.suppress(SystemExit):
        worker.execute_from_commandline()


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
