"""The read model's feed: it reads envbranch.events in batches, builds what a direct replay
builds, goes on after the offset the read model stored, reads from the start when that
offset is not this topic's, passes over records that are not events, and applies an event
that comes alone at once, in a transaction of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

import projections.read_model as read_model_module
from application.environments import Environments
from contract.commands import command_from_document
from domain.envelopes import POSITION_HEADER, EventEnvelope, Topics, envelope_of
from envbranch.settings import Settings
from envbranch.topics import ensure_topics, topic_plan
from projections.read_model import ReadModel
from projections.read_model import feed as feed_module
from projections.read_model.feed import ReadModelFeed
from projections.read_model.schema import INDEX_NAMES, INDEXES
from projections.sql import Database
from tests import scenario
from tests.support import command, run, wait_until

SQLITE = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:"}


def history() -> list[EventEnvelope]:
    """Every kind of resource, clones, a namespace clone whose copies progress and end, and
    a ref created, moved and rolled back: inserts and updates of every projected table."""
    app = Environments(env=SQLITE)
    documents = scenario.production() + scenario.clones()
    ref = {"namespace_identifier": "prod", "ref_name": "live"}
    documents += [
        command("refs.create", {**ref, "target_kind": "retriever", "target": "search"}),
        command("refs.move", {**ref, "target": "search-rerank"}),
        command("refs.rollback", {**ref, "to": "previous"}),
    ]
    for document in documents:
        app.execute(command_from_document(document))
    copying = next(e for e in _events(app) if e.type == "CloneTask.Copying")
    for collection_id in copying.data["copies"]:
        for copied, done in ((1, False), (2, True)):
            body = {"task_id": copying.aggregate_id, "collection_id": collection_id}
            progress = {**body, "copied": copied, "total": 2, "done": done}
            app.execute(command_from_document(command("tasks.copy_progress", progress)))
    return _events(app)


def _events(app: Environments) -> list[EventEnvelope]:
    notifications = app.recorder.select_notifications(1, 100_000)
    return [envelope_of(n.id, app.mapper.to_domain_event(n)) for n in notifications]


def publish(bootstrap: str, topic: str, records: list[tuple[bytes | None, int | None]]) -> float:
    """(value, position header or None) records onto the topic's one partition; returns
    when the broker acknowledged the last one (time.perf_counter)."""

    async def send() -> float:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            sent = [
                await producer.send(topic, value, b"k", 0, headers=_headers(position))
                for value, position in records
            ]
            await asyncio.gather(*sent)
            return time.perf_counter()
        finally:
            await producer.stop()

    return float(run(send()))


def _headers(position: int | None) -> list[tuple[str, bytes]]:
    return [] if position is None else [(POSITION_HEADER, str(position).encode())]


def as_records(envelopes: list[EventEnvelope]) -> list[tuple[bytes | None, int | None]]:
    return [(e.to_bytes(), e.position) for e in envelopes]


@pytest.fixture
def new_model(settings: Settings, tmp_path: Path) -> Iterator[Callable[[], ReadModel]]:
    """Makes empty read models on the parametrised store (SQLite files, PostgreSQL schemas)."""
    made: list[ReadModel] = []

    def make() -> ReadModel:
        name = f"m{len(made)}"
        if settings.event_store == "postgres":
            schema = f"{settings.postgres['POSTGRES_SCHEMA']}_{name}"
            db = Database(postgres=settings.postgres, schema=schema)
        else:
            db = Database(sqlite_path=tmp_path / f"{name}.sqlite3")
        model = ReadModel(db, digest_interval=7)
        model.create()
        made.append(model)
        return model

    yield make
    for model in made:
        if model.db.dialect == "postgres":
            with model.db.transaction() as cur:
                cur.execute(f'DROP SCHEMA IF EXISTS "{model.db.schema}" CASCADE')
        model.db.close()


def new_topic(bootstrap: str) -> str:
    topics = Topics(f"t{uuid.uuid4().hex[:10]}")
    run(ensure_topics(bootstrap, topic_plan(topics)))
    return topics.events


@contextlib.contextmanager
def feeding(bootstrap: str, topic: str, model: ReadModel, wait_ms: int = 5) -> Iterator[None]:
    """The feed running on an event loop of its own, until the block ends."""
    loop = asyncio.new_event_loop()
    feed = ReadModelFeed(bootstrap, topic, model, fetch_max_wait_ms=wait_ms)
    task: asyncio.Task[None] | None = None
    failed: list[BaseException] = []

    def serve() -> None:
        nonlocal task
        task = loop.create_task(feed.run())
        with contextlib.suppress(asyncio.CancelledError):
            try:
                loop.run_until_complete(task)
            except Exception as e:  # noqa: BLE001 - reported when the block ends
                failed.append(e)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        wait_until(lambda: task is not None, 10, "the feed to start")
        loop.call_soon_threadsafe(task.cancel)  # type: ignore[union-attr]
        thread.join(30)
        loop.close()
    assert not failed, failed


def reaches(model: ReadModel, position: int, timeout: float = 60) -> None:
    wait_until(lambda: model.position() >= position, timeout, f"position {position}")


def test_the_feed_builds_what_a_direct_replay_builds(
    bootstrap: str, new_model: Callable[[], ReadModel]
) -> None:
    events = history()
    topic = new_topic(bootstrap)
    publish(bootstrap, topic, as_records(events))
    fed, direct = new_model(), new_model()

    with feeding(bootstrap, topic, fed):
        reaches(fed, events[-1].position)
    direct.apply(events)

    assert fed.digest() == direct.digest()
    assert fed.digest_positions() == direct.digest_positions()
    for position in direct.digest_positions():
        assert fed.recorded_digests(position) == direct.recorded_digests(position)


def test_a_restarted_feed_goes_on_after_the_offset_the_read_model_stored(
    bootstrap: str, new_model: Callable[[], ReadModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = history()
    first, rest = events[:-5], events[-5:]
    topic = new_topic(bootstrap)
    publish(bootstrap, topic, as_records(first))
    model = new_model()
    with feeding(bootstrap, topic, model):
        reaches(model, first[-1].position)
    assert model.resume_point() == (first[-1].position, len(first) - 1)
    offset = len(first) - 1

    read: list[int | None] = []
    header_position = feed_module.header_position

    def counted(record: Any) -> int | None:
        read.append(record.offset)
        return header_position(record)

    monkeypatch.setattr(feed_module, "header_position", counted)
    publish(bootstrap, topic, as_records(rest))
    with feeding(bootstrap, topic, model):
        reaches(model, rest[-1].position)

    # The record at the stored offset (to check it), then only what came after it.
    assert read == [offset, *range(offset + 1, offset + 1 + len(rest))]
    assert model.resume_point() == (rest[-1].position, len(events) - 1)


def test_an_offset_that_is_not_this_topics_makes_the_feed_read_from_the_start(
    bootstrap: str, new_model: Callable[[], ReadModel]
) -> None:
    events = history()
    model, direct = new_model(), new_model()
    old = new_topic(bootstrap)
    publish(bootstrap, old, as_records(events[:20]))
    with feeding(bootstrap, old, model):
        reaches(model, events[19].position)

    # A broker that came back with the log published again, offsets shifted by a record
    # someone else wrote: the stored offset holds another position there.
    again = new_topic(bootstrap)
    publish(bootstrap, again, [(b"not an event", None), *as_records(events)])
    with feeding(bootstrap, again, model):
        reaches(model, events[-1].position)

    direct.apply(events)
    assert model.digest() == direct.digest()
    assert model.resume_point() == (events[-1].position, len(events))


def test_records_that_are_not_events_are_passed_over_and_the_rest_applied(
    bootstrap: str, new_model: Callable[[], ReadModel], caplog: pytest.LogCaptureFixture
) -> None:
    events = history()
    topic = new_topic(bootstrap)
    garbage: list[tuple[bytes | None, int | None]] = [
        (b"\xff\xfe not UTF-8", None),
        (None, None),
        (b"[" * 1000 + b"]" * 1000, 10**12),  # a header far ahead: decoded, then passed over
        (b'{"position": "x"}', 3),  # a header at or below the position: never decoded
    ]
    records = as_records(events)
    publish(bootstrap, topic, [*records[:10], *garbage, *records[10:]])
    model, direct = new_model(), new_model()

    with (
        caplog.at_level(logging.ERROR, logger=feed_module.__name__),
        feeding(bootstrap, topic, model),
    ):
        reaches(model, events[-1].position)
    direct.apply(events)

    assert model.digest() == direct.digest()
    assert caplog.text.count("not an event envelope") == 3


def test_an_event_that_comes_alone_is_applied_at_once_in_a_transaction_of_its_own(
    bootstrap: str, new_model: Callable[[], ReadModel]
) -> None:
    events = history()
    topic = new_topic(bootstrap)
    publish(bootstrap, topic, as_records(events[:-10]))
    model = new_model()
    applied: list[tuple[int, float]] = []
    model.on_applied = lambda position: applied.append((position, time.perf_counter()))

    latencies: list[float] = []
    with feeding(bootstrap, topic, model, wait_ms=5):
        reaches(model, events[-11].position)
        for event in events[-10:]:
            acknowledged = publish(bootstrap, topic, as_records([event]))
            wait_until(lambda: applied and applied[-1][0] == event.position, 10, "the event")  # noqa: B023
            latencies.append(applied[-1][1] - acknowledged)

    # One transaction per event: nothing waited for a batch to fill.
    assert [p for p, _ in applied[-10:]] == [e.position for e in events[-10:]]
    # From the producer's acknowledgement to committed: a fetch wait (5 ms) and the
    # apply, far below the 20 ms window the agent's batches had (loose: shared machine).
    assert statistics.median(latencies) < 0.25, latencies


def test_on_applied_hears_each_new_position_and_a_failing_listener_stops_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = history()
    model = ReadModel(Database(sqlite_path=tmp_path / "rm.sqlite3"))
    model.create()
    heard: list[tuple[int, str]] = []
    model.on_applied = lambda p: heard.append((p, threading.current_thread().name))

    model.apply(events[:5])
    model.apply(events[:5])  # a redelivery: no transaction applied anything
    done = threading.Thread(target=model.apply, args=(events[5:9],), name="elsewhere")
    done.start()
    done.join()
    assert heard == [(events[4].position, "MainThread"), (events[8].position, "elsewhere")]

    def fails(position: int) -> None:
        raise RuntimeError("a listener that breaks")

    model.on_applied = fails
    with caplog.at_level(logging.ERROR):
        assert model.apply(events[9:]) == len(events) - 9
    assert model.position() == events[-1].position
    assert "on_applied callback failed" in caplog.text


def test_the_faust_app_takes_its_fetch_wait_from_the_composition_root(tmp_path: Path) -> None:
    from projections.faust_app import create_faust_app

    model = ReadModel(Database(sqlite_path=tmp_path / "rm.sqlite3"))
    model.create()
    app = create_faust_app(
        "127.0.0.1:9", Topics("t"), model, tmp_path / "faust", fetch_max_wait_ms=7
    )
    assert app.fetch_max_wait_ms == 7  # type: ignore[attr-defined]


def index_names(model: ReadModel) -> set[str]:
    if model.db.dialect == "sqlite":
        rows = model.db.query("SELECT name FROM sqlite_master WHERE type = 'index'")
    else:
        rows = model.db.query(
            "SELECT indexname AS name FROM pg_indexes WHERE schemaname = current_schema()"
        )
    return {row["name"] for row in rows} & set(INDEX_NAMES)


def test_a_rebuild_writes_rows_only_and_makes_its_indexes_once_caught_up(
    bootstrap: str, new_model: Callable[[], ReadModel]
) -> None:
    events = history()
    topic = new_topic(bootstrap)
    publish(bootstrap, topic, as_records(events))
    fed, direct = new_model(), new_model()
    assert index_names(fed) == set(INDEX_NAMES)  # as created
    catching_up: list[bool] = []
    fed.on_applied = lambda _: catching_up.append(fed.catching_up() and not index_names(fed))

    with feeding(bootstrap, topic, fed):
        reaches(fed, events[-1].position)
        wait_until(lambda: not fed.catching_up(), 30, "the end of the rebuild")
    direct.apply(events)

    assert catching_up and all(catching_up)  # every batch went in without the indexes
    assert index_names(fed) == set(INDEX_NAMES)
    assert fed.digest() == direct.digest()
    for position in direct.digest_positions():
        assert fed.recorded_digests(position) == direct.recorded_digests(position)


def test_a_rebuild_that_stopped_goes_on_without_indexes_and_makes_them_at_its_end(
    bootstrap: str, new_model: Callable[[], ReadModel]
) -> None:
    """A crash during a rebuild loses no more than the batch it was applying, as at any
    other time; the read model stays a rebuild (no indexes, also across ``create``)."""
    events = history()
    topic = new_topic(bootstrap)
    publish(bootstrap, topic, as_records(events))
    model, direct = new_model(), new_model()
    assert model.begin_catch_up()
    model.apply(events[:30], {e.position: i for i, e in enumerate(events[:30])})
    model.db.close()  # the process stops here: the rebuild was not ended

    again = ReadModel(model.db, digest_interval=7)
    again.create()
    assert again.catching_up() and not index_names(again)
    assert again.position() == events[29].position
    with feeding(bootstrap, topic, again):
        reaches(again, events[-1].position)
        wait_until(lambda: not again.catching_up(), 30, "the end of the rebuild")
    direct.apply(events)

    assert index_names(again) == set(INDEX_NAMES)
    assert again.digest() == direct.digest()
    for position in direct.digest_positions():
        assert again.recorded_digests(position) == direct.recorded_digests(position)


def test_a_crash_while_making_the_indexes_leaves_a_rebuild_to_end_again(
    new_model: Callable[[], ReadModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = history()
    model = new_model()
    assert model.begin_catch_up()
    model.apply(events)
    broken = [*INDEXES[:3], "CREATE INDEX no_such_table_index ON no_such_table (x)"]
    monkeypatch.setattr(read_model_module, "INDEXES", broken)
    with pytest.raises(Exception, match="no_such_table"):
        model.end_catch_up()
    if model.db.dialect == "postgres":
        model.db.close()  # a connection whose transaction failed: as after a crash

    assert model.catching_up() and not index_names(model)  # nothing of it stayed
    monkeypatch.undo()
    model.end_catch_up()
    assert not model.catching_up() and index_names(model) == set(INDEX_NAMES)


def test_only_an_empty_read_model_is_rebuilt_without_indexes(
    new_model: Callable[[], ReadModel],
) -> None:
    events = history()
    model = new_model()
    model.apply(events[:3])

    assert not model.begin_catch_up()
    assert not model.catching_up() and index_names(model) == set(INDEX_NAMES)


REBUILDER = """
import sys, time
from pathlib import Path
from domain.envelopes import EventEnvelope
from projections.read_model import ReadModel
from projections.sql import Database

path, events = Path(sys.argv[1]), Path(sys.argv[2]).read_bytes().splitlines()
model = ReadModel(Database(sqlite_path=path), digest_interval=7)
model.create()
model.prepare_writer()
model.begin_catch_up()
envelopes = [EventEnvelope.from_bytes(line) for line in events]
for i in range(0, len(envelopes), 3):
    model.apply(envelopes[i : i + 3])
    time.sleep(0.02)
time.sleep(60)  # killed before it ends the rebuild
"""


def test_a_rebuild_killed_mid_way_goes_on_from_what_it_committed(
    bootstrap: str, tmp_path: Path
) -> None:
    """SIGKILL in the middle of a rebuild, perhaps in a transaction: what it committed
    stays, the rest is replayed, the indexes are made at the end, as if it never stopped."""
    events = history()
    topic = new_topic(bootstrap)
    publish(bootstrap, topic, as_records(events))
    lines = tmp_path / "events.jsonl"
    lines.write_bytes(b"\n".join(e.to_bytes() for e in events))
    path = tmp_path / "rebuilt.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-c", REBUILDER, str(path), str(lines)], cwd=Path(__file__).parent.parent
    )
    model = ReadModel(Database(sqlite_path=path), digest_interval=7)

    def applied() -> int:
        try:
            return model.position() if path.exists() else 0
        except sqlite3.OperationalError:  # its tables are not there yet
            return 0

    try:
        wait_until(lambda: applied() >= 20, 60, "the rebuild to start")
    finally:
        child.kill()
        child.wait(10)
    model.create()
    killed_at = model.position()
    assert 20 <= killed_at < events[-1].position
    assert model.catching_up() and not index_names(model)

    with feeding(bootstrap, topic, model):
        reaches(model, events[-1].position)
        wait_until(lambda: not model.catching_up(), 30, "the end of the rebuild")
    direct = ReadModel(Database(sqlite_path=tmp_path / "direct.sqlite3"), digest_interval=7)
    direct.create()
    direct.apply(events)

    assert index_names(model) == set(INDEX_NAMES)
    assert model.digest() == direct.digest()
    assert model.digest_positions() == direct.digest_positions()
    for position in direct.digest_positions():
        assert model.recorded_digests(position) == direct.recorded_digests(position)
