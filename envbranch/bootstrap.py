"""The composition root: the stores and the components of every process are built here
from ``Settings``, whether ``envbranch up`` or ``envbranch serve`` runs them, the CLI
reads them, a benchmark measures them or a test starts them.

Which store backs what: SQLite under the data directory by default, or PostgreSQL
(``ENVBRANCH_EVENT_STORE=postgres``) for the event store, the read model and the vector
processor's state; Qdrant Edge under the data directory, or a Qdrant server
(``QDRANT_URL``), for the vectors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from eventsourcing.persistence import IntegrityError, InternalError, ProgrammingError
from fastapi import FastAPI

from application import log_index
from application.environments import Environments
from consumers.command_processor import CommandProcessor, ProcessorConfig
from consumers.relay import Relay, RelayConfig
from envbranch import signals
from envbranch.connections import faust_credentials, kafka_options
from envbranch.readiness import Readiness
from envbranch.settings import Settings
from projections import queries
from projections.api.app import create_app
from projections.auth import ApiKeys
from projections.gateway import CommandGateway
from projections.read_model import ReadModel
from projections.sql import Database, libpq_tls
from projections.vectors.edge import EdgeStore
from projections.vectors.materializer import VectorMaterializer
from projections.vectors.qdrant import QdrantStore
from projections.vectors.store import VectorStore

if TYPE_CHECKING:
    import faust

# --- the write side ----------------------------------------------------------------------


def event_store_env(settings: Settings) -> dict[str, str]:
    """The eventsourcing settings of the event store."""
    if settings.event_store == "postgres":
        env = {
            # eventsourcing's PostgreSQL store, with libpq's TLS parameters added
            "PERSISTENCE_MODULE": "envbranch.postgres_store:TlsPostgresFactory",
            "POSTGRES_DBNAME": "envbranch",
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": "5432",
            "POSTGRES_USER": "postgres",
            "POSTGRES_PASSWORD": "",
            "CREATE_TABLE": "true",
        }
        env.update(settings.postgres)
        # Left off on purpose: with it on, tracking records were silently dropped.
        env["POSTGRES_ENABLE_DB_FUNCTIONS"] = "false"
        return env
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(settings.data_dir / "events.sqlite3"),
        "SQLITE_LOCK_TIMEOUT": "30",
        "CREATE_TABLE": "true",
    }


def open_event_store(settings: Settings) -> Environments:
    """Open (and create, the first time) the event store.

    Processes that start together all create the tables; PostgreSQL can refuse one of
    two concurrent CREATE TABLE IF NOT EXISTS ("tuple concurrently updated", or a
    duplicate pg_type row), which goes away when tried again."""
    for attempt in range(10):
        try:
            return Environments(env=event_store_env(settings))
        except (InternalError, IntegrityError, ProgrammingError):
            if settings.event_store != "postgres" or attempt == 9:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def event_store_position(settings: Settings) -> Callable[[], int]:
    """Reads the event store's last position, opening the store on first use."""
    store: list[Environments] = []

    def position() -> int:
        if not store:
            store.append(open_event_store(settings))
        return int(store[0].recorder.max_notification_id() or 0)

    return position


def command_processor(
    settings: Settings,
    bootstrap_servers: str,
    readiness: Readiness,
    recreate_topics: Callable[[], Awaitable[None]],
) -> CommandProcessor:
    """Commands in, events into the event store; reports to ``readiness``."""
    processor = CommandProcessor(
        open_event_store(settings),
        ProcessorConfig(
            bootstrap_servers,
            topics=settings.topics,
            group_id=settings.processor_group,
            max_command_bytes=settings.max_command_bytes,
            fetch_max_wait_ms=settings.fetch_wait_ms,
            max_batch_commands=settings.max_batch_commands,
            kafka_options=kafka_options(settings.kafka_security),
        ),
        ensure_topics=recreate_topics,
        ready=readiness.event("command-processor"),
        on_stored=signals.events_stored.notify,  # wakes a relay in this process
    )
    readiness.follow("command-processor", partitions=processor.partition_progress)
    return processor


def relay(
    settings: Settings,
    bootstrap_servers: str,
    readiness: Readiness,
    recreate_topics: Callable[[], Awaitable[None]],
) -> Relay:
    """The event store's events onto envbranch.events; reports to ``readiness``."""
    publisher = Relay(
        open_event_store(settings),
        RelayConfig(
            bootstrap_servers,
            topics=settings.topics,
            page_size=settings.relay_page_size,
            kafka_options=kafka_options(settings.kafka_security),
        ),
        ensure_topic=recreate_topics,
        ready=readiness.event("relay"),
        wakeups=signals.events_stored,
    )
    readiness.follow("relay", position=lambda: publisher.published)
    return publisher


async def wake_relay_on_notify(settings: Settings, relay: Relay, stop: asyncio.Event) -> None:
    """With PostgreSQL, a relay is also woken by events stored in other processes."""
    if settings.event_store != "postgres":
        return
    from psycopg.conninfo import make_conninfo  # PostgreSQL is an extra: only with it

    env = event_store_env(settings)
    conninfo = make_conninfo(
        host=env["POSTGRES_HOST"],
        port=env["POSTGRES_PORT"],
        dbname=env["POSTGRES_DBNAME"],
        user=env["POSTGRES_USER"],
        password=env.get("POSTGRES_PASSWORD") or None,
        **libpq_tls(env),
    )
    channel = log_index.events_channel(relay.app.recorder)
    await signals.listen_postgres(conninfo, channel, signals.events_stored, stop)


# --- the read side -----------------------------------------------------------------------


def _database(settings: Settings, schema: str, sqlite_name: str) -> Database:
    if settings.event_store == "postgres":
        return Database(postgres=settings.postgres, schema=schema)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Database(sqlite_path=settings.data_dir / sqlite_name)


def read_model_database(settings: Settings) -> Database:
    return _database(settings, settings.read_model_schema, "read_model.sqlite3")


def open_read_model(settings: Settings) -> ReadModel:
    """The read model as it stands (not created: see ``prepare_read_side``)."""
    return ReadModel(read_model_database(settings), settings.digest_interval)


def prepare_read_side(settings: Settings) -> tuple[Database, ReadModel, ApiKeys]:
    """The read model and the API keys beside it, their tables created."""
    read_model = open_read_model(settings)
    read_model.create()
    keys = ApiKeys(read_model.db)
    keys.create_table()
    return read_model.db, read_model, keys


def open_vectors(settings: Settings) -> VectorStore:
    if settings.qdrant_url:
        key = settings.qdrant_api_key
        return QdrantStore.server(settings.qdrant_url, key.get_secret_value() if key else None)
    return EdgeStore(settings.data_dir / "vectors")


def prepare_vectors(settings: Settings, vectors: VectorStore) -> VectorMaterializer:
    """The vector processor over ``vectors``, its state's tables created."""
    db = _database(settings, f"{settings.read_model_schema}_vectors", "vector_state.sqlite3")
    materializer = VectorMaterializer(vectors, db)
    materializer.create_schema()
    return materializer


def faust_app(
    settings: Settings,
    bootstrap_servers: str,
    components: list[str],
    readiness: Readiness,
) -> tuple[faust.App, VectorMaterializer | None]:
    """The Faust app of the agents among ``components`` (the projector, the vector
    processor), following their positions in ``readiness``; and the vector processor's
    store, which the API of this process serves from."""
    from projections.faust_app import create_faust_app  # Faust is slow to import: only here

    read_model = prepare_read_side(settings)[1] if "projector" in components else None
    materializer = None
    if "vectors" in components:
        materializer = prepare_vectors(settings, open_vectors(settings))
    app = create_faust_app(
        bootstrap_servers,
        settings.topics,
        read_model,
        settings.data_dir / "faust",
        materializer=materializer,
        fetch_max_wait_ms=settings.fetch_wait_ms,
        kafka_options=kafka_options(settings.kafka_security),
        broker_credentials=faust_credentials(settings.kafka_security),
    )
    if read_model is not None:
        # Writes waiting in this process's API for their receipts look again at once.
        read_model.on_applied = lambda _position: signals.read_model_applied.notify()
        readiness.follow("projector", position=read_model.position)
    if materializer is not None:
        readiness.follow("vectors", position=materializer.position)
    return app, materializer


def build_api(
    settings: Settings,
    bootstrap_servers: str,
    materializer: VectorMaterializer | None,
    readiness: Readiness,
) -> FastAPI:
    """The HTTP API over the read model; with the vector store of this process, or of the
    Qdrant server in QDRANT_URL."""
    db, _, keys = prepare_read_side(settings)
    if materializer is None and settings.qdrant_url:
        materializer = prepare_vectors(settings, open_vectors(settings))
    gateway = CommandGateway(
        bootstrap_servers,
        settings.topics,
        lambda command_ids: queries.command_receipts(db, command_ids),
        timeout=settings.command_timeout,
        applied=signals.read_model_applied,  # a projector in this process wakes the wait
        fetch_max_wait_ms=settings.fetch_wait_ms,
        max_command_bytes=settings.max_command_bytes,
        kafka_options=kafka_options(settings.kafka_security),
    )
    app = create_app(db, gateway, keys, materializer, readiness)
    app.state.max_body_bytes = settings.max_command_bytes  # a larger body is no command
    return app
