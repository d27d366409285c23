"""The command processor's group commit against the real broker and stores: killed inside
a batch's transaction, and two processors racing for the same batches."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from consumers.command_processor import tracking_name
from domain.envelopes import Topics
from envbranch.bootstrap import open_event_store
from envbranch.broker import EmbeddedBroker
from envbranch.settings import Settings
from envbranch.topics import ensure_topics, topic_plan
from tests.conftest import POSTGRES, make_settings, postgres_schema
from tests.support import command, encode, produce, run, spawn, wait_until

COMMANDS = 1500


@pytest.fixture
def pg_settings(tmp_path: Path, topic_prefix: str) -> Iterator[Settings]:
    for postgres in postgres_schema():
        yield make_settings("postgres", tmp_path, topic_prefix, postgres)


def connect() -> psycopg.Connection:
    return psycopg.connect(
        host=POSTGRES["POSTGRES_HOST"],
        port=POSTGRES["POSTGRES_PORT"],
        dbname=POSTGRES["POSTGRES_DBNAME"],
        user=POSTGRES["POSTGRES_USER"],
        password=POSTGRES["POSTGRES_PASSWORD"] or None,
    )


def stored_command_ids(settings: Settings) -> collections.Counter[str]:
    """How many events each command has in the store."""
    app = open_event_store(settings)
    try:
        return collections.Counter(
            app.mapper.to_domain_event(n).command_id
            for n in app.recorder.select_notifications(1, 10**7)
        )
    finally:
        app.close()


def blocked_on_the_events_table(schema: str) -> bool:
    """A processor's batch transaction is open and waiting for the events table's lock."""
    with connect() as conn:
        rows = conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = 'envbranch_events' AND NOT l.granted",
            [schema],
        ).fetchone()
    return bool(rows and rows[0])


@pytest.mark.slow
def test_kill_9_inside_a_batch_transaction_then_restart_applies_every_command_once(
    pg_settings: Settings, broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    """The test holds the events table's lock, so the processor's first batch stops inside
    its transaction (its tracking row written, its events waiting); it is killed there."""
    bootstrap = broker.bootstrap_servers
    settings = pg_settings
    run(ensure_topics(bootstrap, topic_plan(topics, 1)))
    commands = [
        command("namespaces.create", {"namespace_name": f"ns-{i:04d}"}) for i in range(COMMANDS)
    ]
    produce(bootstrap, topics.commands, [encode(c) for c in commands])
    open_event_store(settings).close()  # the tables, before the lock is taken on them
    schema = settings.postgres["POSTGRES_SCHEMA"]
    log = open(tmp_path / "processor.log", "ab")  # noqa: SIM115
    with connect() as holder:
        holder.execute(f"LOCK TABLE {schema}.envbranch_events IN EXCLUSIVE MODE")
        processor = spawn(settings, bootstrap, "command-processor", log=log)
        try:
            wait_until(lambda: blocked_on_the_events_table(schema), 60, "a batch to wait")
            processor.kill()
            processor.wait()
        finally:
            holder.rollback()
    assert stored_command_ids(settings) == {}, "the killed batch left nothing behind"

    processor = spawn(settings, bootstrap, "command-processor", log=log)
    try:
        app = open_event_store(settings)
        name = tracking_name(broker.cluster_id, topics.commands, 0)
        wait_until(lambda: app.last_position(name) == COMMANDS, 120, "every command applied")
        app.close()
    finally:
        processor.kill()
        processor.wait()
        log.close()
    per_command = stored_command_ids(settings)
    assert set(per_command) == {c["command_id"] for c in commands}
    assert set(per_command.values()) == {3}, "each command's events exist exactly once"


def test_two_processors_racing_for_the_same_batches_apply_each_command_once(
    settings: Settings, broker: EmbeddedBroker, topics: Topics
) -> None:
    """Both read the whole partition (no group); one commits each batch, the other's
    commit fails and it goes on from the stored position."""
    bootstrap = broker.bootstrap_servers
    run(ensure_topics(bootstrap, topic_plan(topics, 1)))
    settings = dataclasses.replace(settings, max_batch_commands=50)
    commands = [
        command("namespaces.create", {"namespace_name": f"race-{i:04d}"}) for i in range(600)
    ]
    bucket_commands = [
        command(
            "buckets.create",
            {
                "namespace_identifier": f"race-{i:04d}",
                "bucket_name": "b",
                "bucket_schema": {"properties": {}},
            },
        )
        for i in range(0, 600, 3)
    ]
    produce(bootstrap, topics.commands, [encode(c) for c in commands + bucket_commands])
    total = len(commands) + len(bucket_commands)

    async def race() -> None:
        from tests.test_processor_rebalance import Running

        first, second = Running(settings, bootstrap), Running(settings, bootstrap)
        app = open_event_store(settings)
        name = tracking_name(broker.cluster_id, topics.commands, 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while app.last_position(name) != total:
            assert loop.time() < deadline, "timed out waiting for every command"
            await asyncio.sleep(0.05)
        app.close()
        await first.halt()
        await second.halt()
        assert first.processor.rejected == second.processor.rejected == 0

    asyncio.run(race())
    per_command = stored_command_ids(settings)
    assert set(per_command) == {c["command_id"] for c in commands + bucket_commands}
    assert all(per_command[c["command_id"]] == 3 for c in commands)
    assert {per_command[c["command_id"]] for c in bucket_commands} == {3}
