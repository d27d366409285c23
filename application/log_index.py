"""Reads of the event log that do not grow with it: one aggregate's rows through the
store's (originator_id, version) key, and the rare kinds of event through an index on
the topic. SQLite and PostgreSQL alike (the log position is SQLite's rowid and
PostgreSQL's notification_id)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.sqlite import SQLiteAggregateRecorder


class Row(NamedTuple):
    position: int
    event: StoredEvent


def create_indexes(recorder: Any) -> None:
    """The topic index (idempotent); the key on (originator_id, version) exists already.
    Nothing for a store that is neither SQLite nor PostgreSQL (eventsourcing's in-memory
    store, in pure unit tests: it has no tables)."""
    if not _is_sqlite(recorder) and not _is_postgres(recorder):
        return
    table = recorder.events_table_name
    if _is_sqlite(recorder):
        with recorder.datastore.transaction(commit=True) as c:
            c.execute(f"CREATE INDEX IF NOT EXISTS {table}_topic ON {table} (topic)")
        return
    sql, ident = _psycopg_sql()
    statement = sql(
        "CREATE INDEX IF NOT EXISTS {index} ON {schema}.{table} (topic, notification_id)"
    )
    try:
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                statement.format(
                    index=ident(f"{table}_topic_idx"),
                    schema=ident(recorder.datastore.schema),
                    table=ident(table),
                )
            )
            conn.commit()
    except IntegrityError:  # the store's wrapping of a unique violation in the catalogue:
        pass  # processes starting together, and another one created it just now


def events_channel(recorder: Any) -> str:
    """The PostgreSQL channel the store notifies in every transaction that inserts events
    (eventsourcing's PostgreSQL recorder does; delivered at commit)."""
    return str(recorder.channel_name)


def existing(recorder: Any, aggregate_ids: Iterable[str]) -> set[str]:
    """Which of these aggregates have events: one read of the store's key per 500 IDs
    (a batch of commands asks once, rather than once per aggregate it may create)."""
    wanted = sorted(set(aggregate_ids))
    if not _is_sqlite(recorder) and not _is_postgres(recorder):
        return {i for i in wanted if recorder.select_events(i, limit=1)}
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ", ".join("{mark}" for _ in chunk)
        rows = _select(recorder, "DISTINCT originator_id", f"originator_id IN ({marks})", chunk)
        found.update(str(r[0]) for r in rows)
    return found


def versions_of(recorder: Any, aggregate_id: str) -> list[tuple[int, int, str]]:
    """(version, position, topic) of each stored event of one aggregate."""
    rows = _select(
        recorder,
        "originator_version, {position}, topic",
        "originator_id = {mark}",
        [aggregate_id],
    )
    return [(r[0], r[1], r[2]) for r in rows]


def latest_of(recorder: Any, aggregate_id: str, topics: Iterable[str]) -> int | None:
    """The position of an aggregate's latest event of these topics, reading its rows from
    the newest back through its key until one is of these topics."""
    wanted = sorted(set(topics))
    marks = ", ".join("{mark}" for _ in wanted)
    rows = _select(
        recorder,
        "{position}",
        f"originator_id = {{mark}} AND {{unindexed_topic}} IN ({marks}) "
        "ORDER BY originator_version DESC LIMIT 1",
        [aggregate_id, *wanted],
    )
    return int(rows[0][0]) if rows else None


def of_topics_after(recorder: Any, topics: Iterable[str], position: int) -> list[Row]:
    """Every event of these topics after ``position``, in log order, through the topic
    index: it reads those events, not the log between them."""
    found: list[Row] = []
    for topic in sorted(set(topics)):
        rows = _select(
            recorder,
            "{position}, originator_id, originator_version, topic, state",
            "topic = {mark} AND {position} > {mark}",
            [topic, position],
        )
        found.extend(Row(r[0], StoredEvent(r[1], r[2], r[3], bytes(r[4]))) for r in rows)
    return sorted(found, key=lambda row: row.position)


def _select(recorder: Any, columns: str, where: str, params: list[Any]) -> list[Any]:
    table = recorder.events_table_name
    if _is_sqlite(recorder):
        # "+topic": not through the topic index (walk the aggregate's key instead).
        fill = {"position": "rowid", "mark": "?", "unindexed_topic": "+topic"}
        statement = f"SELECT {columns.format(**fill)} FROM {table} WHERE {where.format(**fill)}"
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            return [tuple(row) for row in c.fetchall()]
    sql, ident = _psycopg_sql()
    fill = {"position": "notification_id", "mark": "%s", "unindexed_topic": "topic"}
    text = f"SELECT {columns.format(**fill)} FROM {{schema}}.{{table}} WHERE {where.format(**fill)}"
    statement = sql(text).format(schema=ident(recorder.datastore.schema), table=ident(table))
    with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(statement, params)
        return [tuple(row.values()) for row in curs.fetchall()]


def _is_sqlite(recorder: Any) -> bool:
    return isinstance(recorder, SQLiteAggregateRecorder)


def _is_postgres(recorder: Any) -> bool:
    try:
        from eventsourcing.postgres import PostgresAggregateRecorder  # needs the extra
    except ImportError:
        return False
    return isinstance(recorder, PostgresAggregateRecorder)


def _psycopg_sql() -> tuple[Any, Any]:
    from psycopg.sql import SQL, Identifier  # PostgreSQL is an extra: only with it

    return SQL, Identifier
