"""Snapshots are an optimisation: an aggregate loaded from its latest snapshot is the
aggregate its events alone make, at every version, whatever commands made it."""

from __future__ import annotations

import contextlib
import itertools
import uuid
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.environments import Environments
from contract.commands import command_from_document
from domain.base import Aggregate
from domain.bucket import Bucket
from domain.collection import Collection
from domain.errors import CommandRejected
from domain.namespace import Namespace
from domain.refs import Ref

SOURCE = {"type": "bucket", "bucket_ids": ["raw"]}
EXTRACTOR = {"feature_extractor_name": "text_extractor", "version": "v1"}
SEARCH = {"stage_name": "search", "config": {"stage_id": "feature_search"}}
_ids = itertools.count()


class OftenSnapshotting(Environments):
    """Snapshots every other version, so that a short history has many."""

    name = Environments.name  # the same store: PostgreSQL names its tables after this
    snapshot_every: ClassVar[dict[type[Aggregate], int]] = {
        Namespace: 2,
        Collection: 2,
        Bucket: 2,
        Ref: 2,
    }


def run(app: Environments, type_: str, body: dict[str, Any]) -> None:
    document = {"command_id": f"c-{next(_ids)}", "type": type_, "body": body, "actor": "t"}
    # A random sequence asks for impossible things too: they change nothing.
    with contextlib.suppress(CommandRejected):
        app.execute(command_from_document(document))


def apply(app: Environments, step: tuple[Any, ...]) -> None:
    ns = {"namespace_identifier": "prod"}
    match step:
        case ("create", i):
            body = {**ns, "collection_name": f"c{i}", "source": SOURCE}
            run(app, "collections.create", {**body, "feature_extractor": EXTRACTOR})
        case ("rename", i, j):
            body = {**ns, "collection_identifier": f"c{i}", "collection_name": f"c{j}"}
            run(app, "collections.update", body)
        case ("write", i):
            docs = [{"text": f"document {i}"}]
            body = {**ns, "collection_identifier": f"c{i}", "documents": docs}
            run(app, "collections.documents.write", body)
        case ("objects", n):
            # keyed: adding one again replaces it (the bucket keeps its keys)
            objects = [{"text": f"object {k}", "key": f"k{k}"} for k in range(n)]
            run(app, "buckets.objects.add", {**ns, "bucket_identifier": "raw", "objects": objects})
        case ("describe", text):
            run(app, "namespaces.update", {**ns, "description": text})
        case ("move", target):
            run(app, "refs.move", {**ns, "ref_name": "live", "target": target})
        case ("rollback",):
            run(app, "refs.rollback", {**ns, "ref_name": "live", "to": "previous"})


STEPS = st.one_of(
    st.tuples(st.just("create"), st.integers(0, 5)),
    st.tuples(st.just("rename"), st.integers(0, 5), st.integers(0, 5)),
    st.tuples(st.just("write"), st.integers(0, 5)),
    st.tuples(st.just("objects"), st.integers(1, 3)),
    st.tuples(st.just("describe"), st.text(max_size=8)),
    st.tuples(st.just("move"), st.sampled_from(["a", "b"])),
    st.tuples(st.just("rollback")),
)


def setup(app: Environments) -> None:
    run(app, "namespaces.create", {"namespace_name": "prod"})
    ns = {"namespace_identifier": "prod"}
    run(app, "buckets.create", {**ns, "bucket_name": "raw", "bucket_schema": {"properties": {}}})
    apply(app, ("create", 0))
    for name in ("a", "b"):
        body = {**ns, "retriever_name": name, "stages": [SEARCH], "collection_identifiers": ["c0"]}
        run(app, "retrievers.create", body)
    run(app, "refs.create", {**ns, "ref_name": "live", "target_kind": "retriever", "target": "a"})


def state(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(STEPS, max_size=40))
def test_an_aggregate_from_its_snapshot_is_the_aggregate_of_its_events(
    tmp_path: Path, steps: list[tuple[Any, ...]]
) -> None:
    store = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / f"{uuid.uuid4().hex}.sqlite3"),
    }
    writer = OftenSnapshotting(env=store)
    setup(writer)
    for step in steps:
        apply(writer, step)
    no_cache = {**store, "AGGREGATE_CACHE_MAXSIZE": ""}
    from_snapshots = OftenSnapshotting(env=no_cache)
    from_events = Environments(env={**no_cache, "IS_SNAPSHOTTING_ENABLED": "n"})
    assert from_events.snapshots is None

    versions = {
        n.originator_id: n.originator_version
        for n in writer.recorder.select_notifications(1, 10_000)
        if n.topic.rsplit(":", 1)[1].split(".")[0] in {"Namespace", "Collection", "Bucket", "Ref"}
    }
    snapshotted = 0
    for aggregate_id, latest in versions.items():
        assert from_snapshots.snapshots is not None
        snapshotted += len(list(from_snapshots.snapshots.get(aggregate_id)))
        for version in (None, *range(1, latest + 1)):
            one = from_snapshots.repository.get(aggregate_id, version=version)
            other = from_events.repository.get(aggregate_id, version=version)
            assert state(one) == state(other), (aggregate_id, version)
    assert snapshotted > 0  # the namespace alone passes version 2
    for app in (writer, from_snapshots, from_events):
        app.close()
