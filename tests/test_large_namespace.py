"""A namespace of thousands of resources, built through the domain (not Kafka): cloning it
copies every resource, remaps every reference, and its ID mapping is complete."""

from __future__ import annotations

import itertools
from typing import Any

from application.environments import Environments
from contract.commands import command_from_document
from domain.collection import Collection
from domain.ids import Kind
from domain.namespace import Namespace, NamespaceName
from domain.retriever import Retriever
from domain.tasks import CloneTask

COLLECTIONS = 2_000
RETRIEVERS = 500
EXTRACTOR = {"feature_extractor_name": "text_extractor", "version": "v1"}
SEARCH = {"stage_name": "search", "config": {"stage_id": "feature_search"}}
_ids = itertools.count()


def run(app: Environments, type_: str, body: dict[str, Any]) -> None:
    document = {"command_id": f"c-{next(_ids)}", "type": type_, "body": body, "actor": "t"}
    app.execute(command_from_document(document))


def namespace(app: Environments, name: str) -> Namespace:
    claim = app.repository.get(NamespaceName.id_for(name))
    found = app.repository.get(claim.claimed_by)
    assert isinstance(found, Namespace)
    return found


def test_a_namespace_of_thousands_of_resources_clones_completely(tmp_path):
    app = Environments(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "e")}
    )
    ns = {"namespace_identifier": "big"}
    run(app, "namespaces.create", {"namespace_name": "big"})
    run(app, "buckets.create", {**ns, "bucket_name": "raw", "bucket_schema": {"properties": {}}})
    source = {"type": "bucket", "bucket_ids": ["raw"]}
    for i in range(COLLECTIONS):
        body = {**ns, "collection_name": f"c{i}", "source": source}
        run(app, "collections.create", {**body, "feature_extractor": EXTRACTOR})
    for i in range(RETRIEVERS):
        body = {**ns, "retriever_name": f"r{i}", "stages": [SEARCH]}
        run(app, "retrievers.create", {**body, "collection_identifiers": [f"c{i}", f"c{i + 1}"]})

    run(app, "namespaces.clone", {**ns, "namespace_name": "big-clone"})

    original, clone = namespace(app, "big"), namespace(app, "big-clone")
    task = app.repository.get(clone.clone_task_id)
    assert isinstance(task, CloneTask)
    mapping = task.result["mapping"]
    assert {k: len(v) for k, v in mapping.items() if k != "namespaces"} == {
        "buckets": 1,
        "collections": COLLECTIONS,
        "retrievers": RETRIEVERS,
        "taxonomies": 0,
    }
    for kind in (Kind.BUCKET, Kind.COLLECTION, Kind.RETRIEVER):
        names = original.resources[kind.value]
        cloned = clone.resources[kind.value]
        assert sorted(cloned.values()) == sorted(names.values())  # every name, once
        assert set(mapping[kind.plural]) == set(names)  # every source ID mapped...
        assert set(mapping[kind.plural].values()) == set(cloned)  # ...to a clone's ID
        assert not set(cloned) & set(names)  # new IDs
    bucket = mapping["buckets"][original.find(Kind.BUCKET, "raw")]
    for i in (0, COLLECTIONS // 2, COLLECTIONS - 1):
        copy = app.repository.get(clone.find(Kind.COLLECTION, f"c{i}"))
        assert isinstance(copy, Collection) and copy.source["bucket_ids"] == [bucket]
    for i in (0, RETRIEVERS - 1):
        retriever = app.repository.get(clone.find(Kind.RETRIEVER, f"r{i}"))
        assert isinstance(retriever, Retriever)
        expected = [clone.find(Kind.COLLECTION, f"c{j}") for j in (i, i + 1)]
        assert retriever.collection_ids == expected  # references point into the clone
    app.close()
