"""Opens the event store: SQLite under the data directory, or PostgreSQL."""

from __future__ import annotations

import time

from eventsourcing.persistence import IntegrityError, InternalError, ProgrammingError

from domain.application import Environments
from envbranch.settings import Settings


def event_store_env(settings: Settings) -> dict[str, str]:
    if settings.event_store == "postgres":
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
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
