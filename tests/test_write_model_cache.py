"""The write model keeps aggregates in memory between commands. A cached aggregate must
never be stale (another processor wrote since) and never carry what a failed command did
to it; positions of one aggregate are read through the store's key, not a scan."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from application.environments import Environments
from contract.commands import command_from_document
from domain.base import Aggregate
from domain.collection import Collection
from domain.errors import CommandRejected, ErrorCode
from domain.ids import Kind
from domain.namespace import Namespace
from domain.refs import Ref
from tests.conftest import postgres_schema

_ids = itertools.count()
SOURCE = {"type": "bucket", "bucket_ids": ["raw"]}
EXTRACTOR = {"feature_extractor_name": "text_extractor", "version": "v1"}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The settings of one event store that several processors open."""
    if request.param == "sqlite":
        db = str(tmp_path / "events.sqlite3")
        yield {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": db}
        return
    for schema in postgres_schema():
        yield {"PERSISTENCE_MODULE": "eventsourcing.postgres", "CREATE_TABLE": "true", **schema}


@pytest.fixture
def opened() -> Iterator[list[Environments]]:
    """The applications a test opens, closed after it (PostgreSQL keeps a pool each)."""
    apps: list[Environments] = []
    yield apps
    for app in apps:
        app.close()


def open_app(opened: list[Environments], env: dict[str, str], cls: Any = None) -> Any:
    app = (cls or Environments)(env=env)
    opened.append(app)
    return app


def run(app: Environments, type_: str, body: dict[str, Any]) -> None:
    document = {"command_id": f"c-{next(_ids)}", "type": type_, "body": body, "actor": "t"}
    app.execute(command_from_document(document))


def rejected(app: Environments, type_: str, body: dict[str, Any]) -> CommandRejected:
    with pytest.raises(CommandRejected) as caught:
        run(app, type_, body)
    return caught.value


def collection(app: Environments, name: str, **more: Any) -> None:
    body = {"namespace_identifier": "prod", "collection_name": name, "source": SOURCE}
    run(app, "collections.create", {**body, "feature_extractor": EXTRACTOR, **more})


def prod(app: Environments) -> Namespace:
    namespace_id = next(
        n.originator_id
        for n in app.recorder.select_notifications(1, 100)
        if n.topic.endswith(":Namespace.Created")
    )
    aggregate = app.repository.get(namespace_id)
    assert isinstance(aggregate, Namespace)
    return aggregate


def setup(app: Environments) -> None:
    run(app, "namespaces.create", {"namespace_name": "prod"})
    body = {"namespace_identifier": "prod", "bucket_name": "raw"}
    run(app, "buckets.create", {**body, "bucket_schema": {"properties": {}}})


def test_a_processor_sees_what_another_wrote_since_it_cached_the_aggregate(store, opened):
    one, other = open_app(opened, store), open_app(opened, store)
    setup(one)
    collection(one, "docs")  # `one` now holds the namespace in its cache
    collection(other, "notes")

    # `one` decides on the namespace as `other` left it: the name is taken, the other free.
    assert rejected(one, "collections.create", _body("notes")).code is ErrorCode.DUPLICATE_NAME
    collection(one, "more")
    assert set(prod(other).resources[Kind.COLLECTION.value].values()) == {"docs", "notes", "more"}


def test_a_command_that_fails_leaves_nothing_of_itself_in_the_cache(store, opened):
    app = open_app(opened, store)
    setup(app)
    app.max_event_bytes = 1_000  # a long description fails after the namespace took the name
    error = rejected(app, "collections.create", _body("docs", description="x" * 1_500))
    assert error.code is ErrorCode.MESSAGE_TOO_LARGE

    collection(app, "docs")  # the name was never taken: the namespace was not kept

    assert list(prod(app).resources[Kind.COLLECTION.value].values()) == ["docs"]


def test_readers_outside_a_command_get_copies(store, opened):
    app = open_app(opened, store)
    setup(app)
    before = prod(app)
    collection(app, "docs")
    assert before.resources[Kind.COLLECTION.value] == {}


def test_positions_of_one_aggregate_are_its_own_rows(store, opened):
    app = open_app(opened, store)
    setup(app)
    collection(app, "docs")
    for name in ("a", "b"):
        body = {"namespace_identifier": "prod", "retriever_name": name, "stages": [_SEARCH]}
        run(app, "retrievers.create", {**body, "collection_identifiers": ["docs"]})
    ref = {"namespace_identifier": "prod", "ref_name": "live"}
    run(app, "refs.create", {**ref, "target_kind": "retriever", "target": "a"})
    run(app, "refs.move", {**ref, "target": "b"})
    ref_id = Ref.id_for(prod(app).id, "live")

    positions = app.positions_of(ref_id, Ref)

    notifications = app.recorder.select_notifications(1, 1000)
    expected = {n.originator_version: n.id for n in notifications if n.originator_id == ref_id}
    assert positions == expected and sorted(positions) == [1, 2]
    assert app.positions_of(ref_id, Namespace) == {}  # only that class's events count


_SEARCH = {"stage_name": "search", "config": {"stage_id": "feature_search"}}


def _body(name: str, **more: Any) -> dict[str, Any]:
    body = {"namespace_identifier": "prod", "collection_name": name, "source": SOURCE}
    return {**body, "feature_extractor": EXTRACTOR, **more}


class OftenSnapshotting(Environments):
    name = Environments.name  # the same store: PostgreSQL names its tables after this
    snapshot_every: ClassVar[dict[type[Aggregate], int]] = {Namespace: 3, Collection: 3}


def test_a_processor_without_the_aggregate_in_memory_loads_it_from_its_snapshot(store, opened):
    writer = open_app(opened, store, OftenSnapshotting)
    setup(writer)
    for i in range(7):
        collection(writer, f"c{i}")
    namespace_id = prod(writer).id

    fresh = open_app(opened, {**store, "AGGREGATE_CACHE_MAXSIZE": ""}, OftenSnapshotting)
    assert fresh.snapshots is not None
    latest = list(fresh.snapshots.get(namespace_id, desc=True, limit=1))
    from_events = open_app(opened, {**store, "IS_SNAPSHOTTING_ENABLED": "n"})

    assert latest and latest[0].originator_version == 9  # created, bucket, 7 collections
    loaded = fresh.repository.get(namespace_id)
    assert vars(loaded) == vars(from_events.repository.get(namespace_id))
    assert loaded.find(Kind.COLLECTION, "c6") is not None


def test_a_renamed_resource_frees_its_old_name(store, opened):
    app = open_app(opened, store)
    setup(app)
    collection(app, "docs")
    body = {"namespace_identifier": "prod", "collection_identifier": "docs"}
    run(app, "collections.update", {**body, "collection_name": "notes"})

    collection(app, "docs")  # the old name is free again...
    error = rejected(app, "collections.create", _body("notes"))  # ...the new one taken

    assert error.code is ErrorCode.DUPLICATE_NAME
    names = prod(app).names[Kind.COLLECTION.value]
    assert set(names) == {"docs", "notes"} and len(set(names.values())) == 2
