"""The whole stack on PostgreSQL (event store and read model), and the direct Publisher."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from envbranch import Publisher
from envbranch.broker import EmbeddedBroker
from tests import scenario
from tests.conftest import POSTGRES, LiveStack, postgres_schema, start_live_stack
from tests.support import wait_until


def _find(client, name):  # type: ignore[no-untyped-def]
    from envbranch import EnvbranchError

    try:
        return client.namespaces.get(name)
    except EnvbranchError as e:
        if e.status == 404:
            return None
        raise


@pytest.fixture(scope="module")
def postgres_stack(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    for postgres in postgres_schema():
        try:
            yield from start_live_stack(
                tmp_path_factory.mktemp("live-pg"), broker.bootstrap_servers, "postgres", postgres
            )
        finally:
            with psycopg.connect(
                host=POSTGRES["POSTGRES_HOST"],
                port=POSTGRES["POSTGRES_PORT"],
                dbname=POSTGRES["POSTGRES_DBNAME"],
                user=POSTGRES["POSTGRES_USER"],
                autocommit=True,
            ) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {postgres['POSTGRES_SCHEMA']}_read CASCADE")


def test_on_postgresql_writes_clones_and_reads_go_through_the_whole_stack(
    postgres_stack: LiveStack, tmp_path: Path
) -> None:
    client = postgres_stack.client()
    name = f"pg-{uuid.uuid4().hex[:8]}"
    client.namespaces.create({"namespace_name": name})
    client.buckets.create({"bucket_name": "b", "bucket_schema": {"properties": {}}}, namespace=name)
    source = client.collections.create(
        {
            "collection_name": "c",
            "source": {"type": "bucket", "bucket_ids": ["b"]},
            "feature_extractor": scenario.TEXT,
        },
        namespace=name,
    )
    started = client.namespaces.clone(name, {"namespace_name": f"{name}-clone"})
    task = client.tasks.wait(started.task_id)
    assert task.status == "COMPLETED"
    clone_id = task.result.mapping["collections"][source.collection_id]
    cloned = client.collections.get(clone_id, namespace=f"{name}-clone")
    assert cloned.collection_name == "c" and cloned.vector_mode == "copy"
    # Stored in PostgreSQL: the event store's and the read model's tables are there.
    schema = postgres_stack.env["POSTGRES_SCHEMA"]
    with psycopg.connect(
        host=POSTGRES["POSTGRES_HOST"],
        port=POSTGRES["POSTGRES_PORT"],
        dbname=POSTGRES["POSTGRES_DBNAME"],
        user=POSTGRES["POSTGRES_USER"],
    ) as conn:
        count = conn.execute(f"SELECT COUNT(*) FROM {schema}_read.collections").fetchone()
        assert count is not None and count[0] == 2


def test_a_command_sent_with_the_publisher_is_visible_through_the_api(
    postgres_stack: LiveStack,
) -> None:
    from domain.envelopes import Topics

    env = postgres_stack.env
    publisher = Publisher(env["KAFKA_BOOTSTRAP_SERVERS"], Topics(env["ENVBRANCH_TOPIC_PREFIX"]))
    name = f"pub-{uuid.uuid4().hex[:8]}"
    outcome = publisher.publish("namespaces.create", {"namespace_name": name}, actor="pipeline")
    assert outcome.status == "accepted"
    assert [e.type for e in outcome.events][-1] == "CommandReceipt.Accepted"
    # The receipt is on the events topic; the read model follows shortly after.
    client = postgres_stack.client()
    created = wait_until(lambda: _find(client, name), 30, "the read model to apply it")
    assert created.created_by == "pipeline"
    rejected = publisher.publish("namespaces.create", {"namespace_name": name}, actor="pipeline")
    assert rejected.status == "rejected" and rejected.error["code"] == "duplicate_name"
