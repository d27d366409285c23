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


class LiveStack:
    """`envbranch up` as a real child process against the session's broker."""

    def __init__(self, url: str, admin_key: str, env: dict[str, str], process: object) -> None:
        self.url = url
        self.admin_key = admin_key
        self.env = env
        self.process = process

    def client(self, api_key: str | None = None, namespace: str | None = None):  # type: ignore[no-untyped-def]
        from envbranch import Client

        return Client(self.url, api_key or self.admin_key, namespace=namespace)


def start_live_stack(
    workdir: Path, bootstrap: str, store: str = "sqlite", postgres: dict[str, str] | None = None
) -> Iterator[LiveStack]:
    import subprocess
    import sys

    import httpx

    from envbranch.broker import free_port
    from tests.support import wait_until

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVBRANCH_", "KAFKA_"))}
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "ENVBRANCH_DATA_DIR": str(workdir / "data"),
            "ENVBRANCH_TOPIC_PREFIX": f"live{uuid.uuid4().hex[:8]}",
            "ENVBRANCH_API_PORT": str(port),
            "ENVBRANCH_EVENT_STORE": store,
            **(postgres or {}),
        }
    )
    if postgres:
        env["ENVBRANCH_READ_MODEL_SCHEMA"] = postgres["POSTGRES_SCHEMA"] + "_read"
    output = workdir / "up.log"
    with open(output, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "envbranch", "up"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def admin_key() -> str | None:
            for line in output.read_text(errors="replace").splitlines():
                if line.startswith("admin API key"):
                    return line.rsplit(" ", 1)[-1]
            return None

        key = wait_until(admin_key, 120, "envbranch up to print the admin key")

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 120, "the API to answer")
        # The projector has joined its group once a write becomes readable.
        yield LiveStack(url, key, env, process)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def live_stack(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    """One running stack (SQLite) for the session; tests use namespaces of their own."""
    yield from start_live_stack(tmp_path_factory.mktemp("live"), broker.bootstrap_servers)
