"""Failures on the read side: nothing is skipped, broken connections are replaced."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from domain.envelopes import EventEnvelope
from projections.faust_app import apply_until_done
from projections.sql import Database
from tests.conftest import POSTGRES


def test_a_batch_that_fails_is_retried_until_it_applies_and_never_skipped() -> None:
    calls: list[int] = []

    def apply(envelopes: list[EventEnvelope]) -> None:
        calls.append(len(envelopes))
        if len(calls) < 3:
            raise OSError("the database is restarting")

    envelope = EventEnvelope.model_validate(
        {
            "position": 1,
            "event_id": str(uuid.uuid4()),
            "type": "Namespace.Created",
            "aggregate_id": "ns_x",
            "aggregate_version": 1,
            "namespace_id": "ns_x",
            "command_id": "c",
            "actor": "a",
            "occurred_at": "2026-11-25T00:00:00Z",
            "data": {},
        }
    )
    asyncio.run(apply_until_done(apply, [envelope], "test"))
    assert calls == [1, 1, 1]


def test_a_postgresql_connection_the_server_closed_is_replaced_on_the_next_call() -> None:
    db = Database(postgres=POSTGRES, schema=f"eb_{uuid.uuid4().hex[:8]}")
    try:
        pid = db.query("SELECT pg_backend_pid() AS pid")[0]["pid"]
        with psycopg.connect(
            host=POSTGRES["POSTGRES_HOST"],
            port=POSTGRES["POSTGRES_PORT"],
            dbname=POSTGRES["POSTGRES_DBNAME"],
            user=POSTGRES["POSTGRES_USER"],
            autocommit=True,
        ) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        with pytest.raises(psycopg.OperationalError):
            db.query("SELECT 1 AS one")
        assert db.query("SELECT 1 AS one") == [{"one": 1}]
        assert db.query("SELECT pg_backend_pid() AS pid")[0]["pid"] != pid
    finally:
        with db.transaction() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {db.schema} CASCADE")
        db.close()
