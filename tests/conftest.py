"""Real services for the tests: one Tansu broker per session, SQLite and PostgreSQL stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.envelopes import Topics
from envbranch.broker import EmbeddedBroker
from envbranch.settings import Settings
from envbranch.topics import ensure_topics, topic_plan
from tests.support import run

POSTGRES = {
    "POSTGRES_HOST": os.environ.get("ENVBRANCH_TEST_POSTGRES_HOST", "127.0.0.1"),
    "POSTGRES_PORT": os.environ.get("ENVBRANCH_TEST_POSTGRES_PORT", "5432"),
    "POSTGRES_DBNAME": os.environ.get("ENVBRANCH_TEST_POSTGRES_DBNAME", "test"),
    "POSTGRES_USER": os.environ.get("ENVBRANCH_TEST_POSTGRES_USER", "postgres"),
    "POSTGRES_PASSWORD": os.environ.get("ENVBRANCH_TEST_POSTGRES_PASSWORD", ""),
}


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture
def bootstrap(broker: EmbeddedBroker) -> str:
    return broker.bootstrap_servers


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topics(topic_prefix: str) -> Topics:
    return Topics(topic_prefix)


def postgres_schema() -> Iterator[dict[str, str]]:
    import psycopg

    schema = f"eb_{uuid.uuid4().hex[:12]}"
    dsn = dict(
        host=POSTGRES["POSTGRES_HOST"],
        port=POSTGRES["POSTGRES_PORT"],
        dbname=POSTGRES["POSTGRES_DBNAME"],
        user=POSTGRES["POSTGRES_USER"],
        password=POSTGRES["POSTGRES_PASSWORD"] or None,
    )
    with psycopg.connect(**dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield {**POSTGRES, "POSTGRES_SCHEMA": schema}
    finally:
        with psycopg.connect(**dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def make_settings(
    store: str, data_dir: Path, topic_prefix: str, postgres: dict[str, str], **more: object
) -> Settings:
    return Settings(
        data_dir=data_dir,
        event_store=store,
        postgres=postgres,
        topic_prefix=topic_prefix,
        processor_group=None,
        **more,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["sqlite", "postgres"])
def settings(
    request: pytest.FixtureRequest, tmp_path: Path, topic_prefix: str
) -> Iterator[Settings]:
    """Settings for each event store, with topics of this test's own."""
    if request.param == "postgres":
        for postgres in postgres_schema():
            yield make_settings("postgres", tmp_path, topic_prefix, postgres)
    else:
        yield make_settings("sqlite", tmp_path, topic_prefix, {})


@pytest.fixture
def sqlite_settings(tmp_path: Path, topic_prefix: str) -> Settings:
    return make_settings("sqlite", tmp_path, topic_prefix, {})


@pytest.fixture
def created_topics(bootstrap: str, topics: Topics) -> Topics:
    run(ensure_topics(bootstrap, topic_plan(topics)))
    return topics
