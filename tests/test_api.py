"""End to end through the SDK: a running stack (Tansu, processor, relay, projector, API).

Every test works in namespaces of its own, since the stack is shared by the session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from contract import responses as s
from envbranch import Client
from envbranch.client import EnvbranchError
from tests.conftest import LiveStack

TEXT = {"feature_extractor_name": "text_extractor", "version": "v1"}
MINILM = {"feature_extractor_name": "minilm_extractor", "version": "v1"}
SEARCH = {"stage_name": "search", "config": {"stage_id": "feature_search", "parameters": {}}}
RERANK = {"stage_name": "rerank", "config": {"stage_id": "rerank", "parameters": {}}}
MAPPINGS = [{"input_key": "query", "source_type": "payload", "path": "text"}]
KINDS = ["buckets", "collections", "retrievers", "taxonomies"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(live_stack: LiveStack) -> Iterator[Client]:
    with live_stack.client() as sdk:
        yield sdk


@pytest.fixture
def statuses(client: Client) -> list[int]:
    """The HTTP status of every answer the client gets, in order."""
    seen: list[int] = []
    client._http.event_hooks["response"].append(lambda r: seen.append(r.status_code))
    return seen


def flat_config(retriever: str, collection: str) -> dict[str, Any]:
    return {
        "taxonomy_type": "flat",
        "retriever_id": retriever,
        "input_mappings": MAPPINGS,
        "source_collection": {"collection_id": collection, "enrichment_fields": []},
    }


def production(client: Client) -> str:
    """A namespace with a bucket, two collections, a retriever and two taxonomies."""
    ns = client.namespaces.create({"namespace_name": unique("prod")}).namespace_name
    client.buckets.create(
        {"bucket_name": "docs", "bucket_schema": {"properties": {"text": {"type": "text"}}}},
        namespace=ns,
    )
    client.collections.create(
        {
            "collection_name": "docs-text",
            "source": {"type": "bucket", "bucket_ids": ["docs"]},
            "feature_extractor": TEXT,
        },
        namespace=ns,
    )
    client.collections.create(
        {
            "collection_name": "docs-derived",
            "source": {"type": "collection", "collection_id": "docs-text"},
            "feature_extractor": TEXT,
        },
        namespace=ns,
    )
    client.retrievers.create(
        {
            "retriever_name": "search",
            "collection_identifiers": ["docs-text", "docs-derived"],
            "stages": [SEARCH],
            "input_schema": {"query": {"type": "text", "required": True}},
        },
        namespace=ns,
    )
    client.taxonomies.create(
        {"taxonomy_name": "topics", "config": flat_config("search", "docs-derived")},
        namespace=ns,
    )
    client.taxonomies.create(
        {
            "taxonomy_name": "tree",
            "config": {
                "taxonomy_type": "hierarchical",
                "retriever_id": "search",
                "hierarchical_nodes": [
                    {"collection_id": "docs-text"},
                    {
                        "collection_id": "docs-derived",
                        "parent_collection_id": "docs-text",
                        "retriever_id": "search",
                    },
                ],
            },
        },
        namespace=ns,
    )
    return ns


def listed(client: Client, kind: str, ns: str) -> list[Any]:
    return getattr(client, kind).list(limit=1000, namespace=ns).results


def resource_id(resource: Any) -> str:
    kind = type(resource).__name__.lower()
    return str(getattr(resource, f"{kind}_id"))


def error_of(call: Any, *args: Any, **kw: Any) -> EnvbranchError:
    with pytest.raises(EnvbranchError) as caught:
        call(*args, **kw)
    return caught.value


# --- clones of each kind ------------------------------------------------------


def test_a_collection_cloned_with_a_new_extractor_awaits_reprocessing(
    client: Client, statuses: list[int]
) -> None:
    ns = production(client)
    source = client.collections.get("docs-text", namespace=ns)
    body = {"collection_name": "docs-minilm", "feature_extractor": MINILM}

    answer = client.collections.clone("docs-text", body, namespace=ns)

    assert statuses[-1] == 200  # Mixpeek's status for creates and clones
    assert isinstance(answer, s.CollectionCloneResponse)
    assert answer.source_collection_id == source.collection_id
    clone = answer.collection
    assert clone.collection_id != source.collection_id
    assert clone.collection_id.startswith("col_")
    assert (clone.status, clone.vector_mode) == ("awaiting_reprocess", "reprocess")
    assert clone.feature_extractor["feature_extractor_name"] == "minilm_extractor"
    assert clone.source == source.source
    assert clone.source_collection_id == source.collection_id
    assert clone.namespace_id == source.namespace_id


def test_a_collection_cloned_with_the_same_extractor_reuses_its_vectors_and_is_ready(
    client: Client, statuses: list[int]
) -> None:
    ns = production(client)
    source = client.collections.get("docs-text", namespace=ns)

    answer = client.collections.clone("docs-text", {"collection_name": "docs-copy"}, namespace=ns)

    assert statuses[-1] == 200  # Mixpeek's status for creates and clones
    assert answer.source_collection_id == source.collection_id
    clone = answer.collection
    assert (clone.status, clone.vector_mode) == ("ready", "reuse")
    assert clone.feature_extractor == source.feature_extractor
    assert clone.collection_name == "docs-copy"


def test_a_retriever_cloned_with_new_stages_shares_the_collections_of_its_source(
    client: Client, statuses: list[int]
) -> None:
    ns = production(client)
    source = client.retrievers.get("search", namespace=ns)
    body = {"retriever_name": "search-rerank", "stages": [SEARCH, RERANK]}

    answer = client.retrievers.clone("search", body, namespace=ns)

    assert statuses[-1] == 200  # Mixpeek's status for creates and clones
    assert isinstance(answer, s.RetrieverCloneResponse)
    assert answer.source_retriever_id == source.retriever_id
    clone = answer.retriever
    assert clone.retriever_id != source.retriever_id
    assert clone.collection_ids == source.collection_ids
    assert [stage["stage_name"] for stage in clone.stages] == ["search", "rerank"]
    assert [stage["stage_name"] for stage in source.stages] == ["search"]
    assert clone.input_schema == source.input_schema


def test_a_taxonomy_cloned_with_a_new_config_classifies_through_the_new_retriever(
    client: Client, statuses: list[int]
) -> None:
    ns = production(client)
    rerank = client.retrievers.clone(
        "search", {"retriever_name": "search-rerank", "stages": [SEARCH, RERANK]}, namespace=ns
    ).retriever
    source = client.taxonomies.get("topics", namespace=ns)
    body = {
        "taxonomy_name": "topics-rerank",
        "config": flat_config(rerank.retriever_id, "docs-text"),
    }

    answer = client.taxonomies.clone("topics", body, namespace=ns)

    assert statuses[-1] == 200  # Mixpeek's status for creates and clones
    assert isinstance(answer, s.TaxonomyCloneResponse)
    assert answer.source_taxonomy_id == source.taxonomy_id
    clone = answer.taxonomy
    assert clone.config["retriever_id"] == rerank.retriever_id
    assert source.config["retriever_id"] != rerank.retriever_id
    docs_text = client.collections.get("docs-text", namespace=ns)
    assert clone.config["source_collection"]["collection_id"] == docs_text.collection_id


def test_a_clone_response_names_the_same_resource_as_a_get_by_id_and_by_name(
    client: Client,
) -> None:
    ns = production(client)

    answer = client.collections.clone("docs-text", {"collection_name": "docs-copy"}, namespace=ns)

    by_id = client.collections.get(answer.collection.collection_id, namespace=ns)
    by_name = client.collections.get("docs-copy", namespace=ns)
    assert answer.collection == by_id == by_name


# --- namespace clone ----------------------------------------------------------


def namespace_clone(client: Client) -> tuple[str, s.NamespaceCloneResponse]:
    """A production namespace with a clone of each kind, deep-copied with its taxonomies."""
    ns = production(client)
    client.collections.clone(
        "docs-text", {"collection_name": "docs-minilm", "feature_extractor": MINILM}, namespace=ns
    )
    client.collections.clone("docs-text", {"collection_name": "docs-copy"}, namespace=ns)
    client.retrievers.clone(
        "search", {"retriever_name": "search-rerank", "stages": [SEARCH, RERANK]}, namespace=ns
    )
    client.taxonomies.clone(
        "topics",
        {"taxonomy_name": "topics-rerank", "config": flat_config("search-rerank", "docs-text")},
        namespace=ns,
    )
    body = {"namespace_name": unique("staging"), "include_resources": {"taxonomies": True}}
    return ns, client.namespaces.clone(ns, body)


def test_mixpeeks_mode_branch_is_a_copy_on_write_namespace_clone(client: Client) -> None:
    ns = production(client)
    branch = client.namespaces.clone(ns, {"namespace_name": unique("branch"), "mode": "branch"})
    copy = client.namespaces.clone(ns, {"namespace_name": unique("copy"), "mode": "copy"})

    assert branch.status == "ready"  # nothing to copy: it shares the source's vectors
    assert copy.status == "cloning"
    shared = client.collections.get("docs-text", namespace=branch.namespace.namespace_id)
    assert shared.vector_mode == "reuse"
    with pytest.raises(EnvbranchError) as refused:
        client.namespaces.clone(
            ns, {"namespace_name": unique("both"), "mode": "branch", "vectors": "copy"}
        )
    assert (refused.value.status, refused.value.type) == (422, "validation_error")
    assert "mode 'branch' means vectors 'reuse'" in refused.value.message
    with pytest.raises(EnvbranchError) as unknown:
        client.namespaces.clone(ns, {"namespace_name": unique("fork"), "mode": "fork"})
    assert unknown.value.status == 422 and unknown.value.details["field"] == "body.mode"


def test_a_namespace_clone_answers_with_its_task_and_source_namespace(
    client: Client, statuses: list[int]
) -> None:
    ns, answer = namespace_clone(client)

    assert statuses[-1] == 200  # Mixpeek's status: the task is in the answer
    task = client.tasks.wait(answer.task_id, timeout=60)
    source = client.namespaces.get(ns)
    assert isinstance(answer, s.NamespaceCloneResponse)
    assert answer.task_id.startswith("task_")
    assert answer.source_namespace_id == source.namespace_id
    assert answer.namespace.source_namespace_id == source.namespace_id
    assert answer.namespace.clone_task_id == answer.task_id
    assert answer.status == "cloning"  # its collections' vectors are copied after the answer
    assert client.namespaces.get(answer.namespace.namespace_name) == answer.namespace
    assert task.status == "COMPLETED"
    # Mixpeek's task type (it has none for a clone, which creates a namespace), and ours
    assert (task.task_type, task.operation) == ("api_namespaces_create", "namespace_clone")
    assert task.additional_data is not None and task.result is not None
    assert task.additional_data["mapping"] == task.result.mapping
    assert task.outputs == [task.result.namespace_id]
    assert task.progress is not None and task.progress["percent"] == 100.0
    assert task.progress["points_copied"] == task.progress["points_total"]
    assert task.include_resources == {"collections": True, "retrievers": True, "taxonomies": True}


def test_a_completed_namespace_clone_maps_every_resource_of_its_source_and_counts_them(
    client: Client,
) -> None:
    ns, answer = namespace_clone(client)

    task = client.tasks.wait(answer.task_id, timeout=60)
    assert task.status == "COMPLETED"
    result = task.result
    assert isinstance(result, s.DeepCloneResult)
    assert result.task_id == answer.task_id
    assert result.source_namespace_id == answer.source_namespace_id
    assert result.namespace_id == answer.namespace.namespace_id
    assert result.mapping["namespaces"] == {answer.source_namespace_id: result.namespace_id}
    for kind in KINDS:
        source_ids = {resource_id(r) for r in listed(client, kind, ns)}
        clone_ids = {resource_id(r) for r in listed(client, kind, result.namespace_id)}
        assert set(result.mapping[kind]) == source_ids, kind
        assert set(result.mapping[kind].values()) == clone_ids, kind
        assert result.counts[kind] == len(source_ids), kind
    assert result.counts == {"buckets": 1, "collections": 4, "retrievers": 2, "taxonomies": 3}


def test_every_reference_in_a_cloned_namespace_points_at_the_clone_of_its_target(
    client: Client,
) -> None:
    ns, answer = namespace_clone(client)
    task = client.tasks.wait(answer.task_id, timeout=60)
    assert task.result is not None
    mapping, clone_ns = task.result.mapping, task.result.namespace_id
    inside = {kind: {resource_id(r) for r in listed(client, kind, clone_ns)} for kind in KINDS}
    sources = {kind: {resource_id(r): r for r in listed(client, kind, ns)} for kind in KINDS}

    def check(kind: str, old: str, new: str) -> None:
        assert new in inside[kind], f"{new} is not a {kind} of the clone"
        assert new == mapping[kind][old]

    for clone in listed(client, "collections", clone_ns):
        old = sources["collections"][clone.source_collection_id]
        assert clone.collection_id == mapping["collections"][old.collection_id]
        for old_bucket, new_bucket in zip(
            old.source["bucket_ids"], clone.source["bucket_ids"], strict=True
        ):
            check("buckets", old_bucket, new_bucket)
        if old.source.get("collection_id"):
            check("collections", old.source["collection_id"], clone.source["collection_id"])
    for clone in listed(client, "retrievers", clone_ns):
        old = sources["retrievers"][clone.source_retriever_id]
        for old_id, new_id in zip(old.collection_ids, clone.collection_ids, strict=True):
            check("collections", old_id, new_id)
    hierarchical = 0
    for clone in listed(client, "taxonomies", clone_ns):
        old = sources["taxonomies"][clone.source_taxonomy_id]
        new_config, old_config = clone.config, old.config
        check("retrievers", old_config["retriever_id"], new_config["retriever_id"])
        if old_config["taxonomy_type"] == "flat":
            check(
                "collections",
                old_config["source_collection"]["collection_id"],
                new_config["source_collection"]["collection_id"],
            )
            continue
        hierarchical += 1
        for old_node, new_node in zip(
            old_config["hierarchical_nodes"], new_config["hierarchical_nodes"], strict=True
        ):
            check("collections", old_node["collection_id"], new_node["collection_id"])
            for field, kind in [
                ("parent_collection_id", "collections"),
                ("retriever_id", "retrievers"),
            ]:
                if old_node.get(field) is not None:
                    check(kind, old_node[field], new_node[field])
    assert hierarchical == 1
    for bucket in listed(client, "buckets", clone_ns):
        assert mapping["buckets"][bucket.source_bucket_id] == bucket.bucket_id


def test_a_namespace_clone_copies_ready_vectors_and_leaves_awaiting_collections_awaiting(
    client: Client,
) -> None:
    ns, answer = namespace_clone(client)

    clone_ns = answer.namespace.namespace_id
    modes = {
        c.collection_name: (c.vector_mode, c.status)
        for c in listed(client, "collections", clone_ns)
    }
    assert modes == {
        "docs-text": ("copy", "ready"),
        "docs-derived": ("copy", "ready"),
        "docs-minilm": ("reprocess", "awaiting_reprocess"),
        "docs-copy": ("copy", "ready"),
    }


def test_a_namespace_clone_of_taxonomies_without_retrievers_is_refused_and_creates_nothing(
    client: Client,
) -> None:
    ns = production(client)
    name = unique("staging")
    include = {"retrievers": False, "taxonomies": True}

    error = error_of(
        client.namespaces.clone, ns, {"namespace_name": name, "include_resources": include}
    )

    assert (error.status, error.type) == (422, "invalid_include_resources")
    assert error.details["field"] == "body.include_resources.taxonomies"
    assert error_of(client.namespaces.get, name).status == 404


# --- reads --------------------------------------------------------------------


def test_a_namespace_and_a_bucket_read_by_id_and_by_name_are_the_same(client: Client) -> None:
    ns = production(client)
    namespace = client.namespaces.get(ns)
    bucket = client.buckets.get("docs", namespace=ns)

    assert client.namespaces.get(namespace.namespace_id) == namespace
    assert client.buckets.get(bucket.bucket_id, namespace=namespace.namespace_id) == bucket
    assert bucket.namespace_id == namespace.namespace_id


def test_listing_five_buckets_pages_them_oldest_first_with_total_and_has_more(
    client: Client,
) -> None:
    ns = client.namespaces.create({"namespace_name": unique("pages")}).namespace_name
    schema = {"properties": {"text": {"type": "text"}}}
    created = [
        client.buckets.create({"bucket_name": f"b{i}", "bucket_schema": schema}, namespace=ns)
        for i in range(5)
    ]

    pages = [client.buckets.list(limit=2, offset=offset, namespace=ns) for offset in (0, 2, 4)]

    mixpeek = {"page_size": 2, "total_pages": 3}  # Mixpeek's names for the same
    assert [p.pagination.model_dump() for p in pages] == [
        {"total": 5, "limit": 2, "offset": 0, "has_more": True, "page": 1, **mixpeek},
        {"total": 5, "limit": 2, "offset": 2, "has_more": True, "page": 2, **mixpeek},
        {"total": 5, "limit": 2, "offset": 4, "has_more": False, "page": 3, **mixpeek},
    ]
    assert [p.total_count for p in pages] == [5, 5, 5]
    assert [b for p in pages for b in p.results] == created
    beyond = client.buckets.list(limit=2, offset=10, namespace=ns)
    assert (beyond.results, beyond.pagination.has_more, beyond.pagination.total) == ([], False, 5)
    # Mixpeek's paging, in the body or the query string (the body wins)
    second = client._http.post(
        "/v1/buckets/list", params={"page": 2, "page_size": 2}, headers={"X-Namespace": ns}
    )
    assert [b["bucket_id"] for b in second.json()["results"]] == [c.bucket_id for c in created[2:4]]
    body_wins = client._http.post(
        "/v1/buckets/list?page=2&page_size=2", json={"page": 3}, headers={"X-Namespace": ns}
    )
    assert [b["bucket_id"] for b in body_wins.json()["results"]] == [created[4].bucket_id]


# --- updates ------------------------------------------------------------------


def test_a_renamed_collection_resolves_by_its_new_name_and_no_longer_by_its_old_one(
    client: Client,
) -> None:
    ns = production(client)
    before = client.collections.get("docs-text", namespace=ns)

    after = client.collections.update(
        "docs-text", {"collection_name": "docs-body", "description": "bodies"}, namespace=ns
    )

    assert after.collection_id == before.collection_id
    assert (after.collection_name, after.description) == ("docs-body", "bodies")
    assert client.collections.get("docs-body", namespace=ns) == after
    assert error_of(client.collections.get, "docs-text", namespace=ns).status == 404
    assert after.version is not None and before.version is not None
    assert after.version > before.version


@pytest.mark.parametrize(
    ("kind", "name", "field", "value"),
    [
        ("collections", "docs-text", "feature_extractor", MINILM),
        ("collections", "docs-text", "source", {"type": "bucket", "bucket_ids": ["docs"]}),
        ("retrievers", "search", "stages", [SEARCH, RERANK]),
        ("retrievers", "search", "collection_identifiers", ["docs-text"]),
        ("taxonomies", "topics", "config", flat_config("search", "docs-text")),
        ("buckets", "docs", "bucket_schema", {"properties": {}}),
    ],
)
def test_an_update_of_what_a_resource_computes_fails_with_422_naming_the_field(
    client: Client, kind: str, name: str, field: str, value: Any
) -> None:
    ns = production(client)
    before = getattr(client, kind).get(name, namespace=ns)

    error = error_of(getattr(client, kind).update, name, {field: value}, namespace=ns)

    assert (error.status, error.type) == (422, "immutable_field")
    assert error.details["field"] == f"body.{field}"
    # buckets have no clone: the way out is a new bucket
    assert ("create a new bucket" if kind == "buckets" else "clone") in error.message
    assert getattr(client, kind).get(name, namespace=ns) == before


# --- errors -------------------------------------------------------------------


def test_a_duplicate_name_is_refused_with_409_duplicate_name(client: Client) -> None:
    ns = production(client)
    schema = {"properties": {"text": {"type": "text"}}}

    errors = [
        error_of(client.namespaces.create, {"namespace_name": ns}),
        error_of(
            client.buckets.create, {"bucket_name": "docs", "bucket_schema": schema}, namespace=ns
        ),
        error_of(
            client.collections.clone, "docs-text", {"collection_name": "docs-derived"}, namespace=ns
        ),
        error_of(client.retrievers.clone, "search", {"retriever_name": "search"}, namespace=ns),
        error_of(client.taxonomies.update, "topics", {"taxonomy_name": "tree"}, namespace=ns),
    ]

    assert [(e.status, e.type) for e in errors] == [(409, "duplicate_name")] * len(errors)
    assert all(e.message for e in errors)
    existing = client.namespaces.get(ns).namespace_id
    assert errors[0].details == {"field": "body.namespace_name", "existing_id": existing}
    assert len(listed(client, "collections", ns)) == 2


def test_unknown_identifiers_and_tasks_are_404_not_found(client: Client) -> None:
    ns = production(client)
    missing = unique("missing")

    errors = [
        error_of(client.namespaces.get, missing),
        error_of(client.namespaces.get, "ns_" + uuid.uuid4().hex),
        error_of(client.collections.get, missing, namespace=ns),
        error_of(client.retrievers.get, "ret_" + uuid.uuid4().hex, namespace=ns),
        error_of(client.buckets.list, namespace=missing),
        error_of(client.taxonomies.clone, missing, {"taxonomy_name": "x"}, namespace=ns),
        error_of(client.namespaces.clone, missing, {"namespace_name": unique("x")}),
        error_of(client.tasks.get, "task_" + uuid.uuid4().hex),
        error_of(client.lineage, "col_" + uuid.uuid4().hex),
    ]

    assert [(e.status, e.type) for e in errors] == [(404, "not_found")] * len(errors)


def test_an_error_carries_its_status_type_message_and_details(client: Client) -> None:
    ns = production(client)

    error = error_of(
        client.retrievers.create,
        {"retriever_name": "r", "collection_identifiers": ["nope"], "stages": []},
        namespace=ns,
    )

    assert (error.status, error.type) == (422, "validation_error")
    assert error.details["field"] == "body.stages"
    assert error.message.startswith("body.stages")
    assert str(error).startswith("422 validation_error: ")
    assert error.details["problems"][0]["field"] == "body.stages"


def test_a_reference_to_an_unknown_resource_is_a_404_naming_where_it_was_found(
    client: Client,
) -> None:
    ns = production(client)
    source = {"type": "bucket", "bucket_ids": ["docs", "nope"]}

    error = error_of(
        client.collections.create,
        {"collection_name": "c", "source": source, "feature_extractor": TEXT},
        namespace=ns,
    )

    assert (error.status, error.type) == (404, "not_found")
    assert error.details["field"] == "body.source.bucket_ids[1]"
    assert "'nope'" in error.message
    assert error_of(client.collections.get, "c", namespace=ns).status == 404


# --- lineage and audit ----------------------------------------------------------


def test_lineage_after_a_clone_of_a_clone_lists_ancestors_nearest_first_and_descendants(
    client: Client,
) -> None:
    ns = production(client)
    root = client.collections.get("docs-text", namespace=ns).collection_id
    child = client.collections.clone(
        root, {"collection_name": "child"}, namespace=ns
    ).collection.collection_id
    grandchild = client.collections.clone(
        "child", {"collection_name": "grandchild", "feature_extractor": MINILM}, namespace=ns
    ).collection.collection_id

    def edges(found: list[s.LineageEdge]) -> list[tuple[str, str]]:
        return [(e.source_id, e.clone_id) for e in found]

    lineage = client.lineage(grandchild)
    assert lineage.resource_id == grandchild
    assert edges(lineage.ancestors) == [(child, grandchild), (root, child)]
    assert lineage.descendants == []
    assert edges(client.lineage(root).descendants) == [(root, child), (child, grandchild)]
    assert edges(client.lineage(root).ancestors) == []
    middle = client.lineage(child)
    assert (edges(middle.ancestors), edges(middle.descendants)) == (
        [(root, child)],
        [(child, grandchild)],
    )
    edge = lineage.ancestors[0]
    assert (edge.kind, edge.actor) == ("collection", "admin")
    assert edge.namespace_id == client.namespaces.get(ns).namespace_id
    assert lineage.ancestors[0].position > lineage.ancestors[1].position


def test_the_audit_of_a_resource_lists_its_events_in_position_order_with_filters_and_pages(
    client: Client, live_stack: LiveStack
) -> None:
    ns = production(client)
    collection = client.collections.get("docs-text", namespace=ns).collection_id
    client.collections.update(collection, {"collection_name": "docs-body"}, namespace=ns)
    client.collections.update(collection, {"description": "bodies"}, namespace=ns)
    alice_name = unique("alice")
    alice_key = client.keys.create(alice_name, namespaces=[ns]).api_key
    assert alice_key is not None
    with live_stack.client(api_key=alice_key, namespace=ns) as alice:
        alice.collections.update(collection, {"collection_name": "docs-alice"})

    log = client.audit(resource_id=collection)

    types = [entry.type for entry in log.results]
    assert types == [
        "Collection.Created",
        "Collection.Renamed",
        "Collection.DescriptionChanged",
        "Collection.Renamed",
    ]
    positions = [entry.position for entry in log.results]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert {entry.aggregate_id for entry in log.results} == {collection}
    assert log.pagination.total == 4 and not log.pagination.has_more
    assert [e.actor for e in log.results] == ["admin", "admin", "admin", alice_name]
    by_admin = client.audit(resource_id=collection, actor="admin")
    assert [e.position for e in by_admin.results] == positions[:3]
    by_alice = client.audit(resource_id=collection, actor=alice_name)
    assert [e.position for e in by_alice.results] == positions[3:]
    renames = client.audit(resource_id=collection, type="Collection.Renamed")
    assert [e.position for e in renames.results] == [positions[1], positions[3]]
    assert [e.data["collection_name"] for e in renames.results] == ["docs-body", "docs-alice"]
    second = client.audit(resource_id=collection, limit=2, offset=2)
    assert [e.position for e in second.results] == positions[2:]
    first = client.audit(resource_id=collection, limit=2)
    assert [e.position for e in first.results] == positions[:2]
    assert (first.pagination.total, first.pagination.has_more) == (4, True)
    assert (second.pagination.offset, second.pagination.has_more) == (2, False)


# --- idempotency ----------------------------------------------------------------


def applied_after_both(client: Client) -> None:
    """Commands share one partition and apply in order: once a later one is readable,
    a retry answered from its first receipt has been processed too."""
    client.namespaces.create({"namespace_name": unique("barrier")})


def test_a_create_repeated_with_the_same_idempotency_key_returns_the_same_and_writes_once(
    client: Client, live_stack: LiveStack
) -> None:
    key = unique("idem")
    body = {"namespace_name": unique("idem"), "description": "once"}

    first = client.namespaces.create(body, idempotency_key=key)
    again = client.namespaces.create(body, idempotency_key=key)
    applied_after_both(client)

    assert again == first
    # the command_id is the Idempotency-Key within the API key that sent it
    command_id = f"{live_stack.admin_key.split('_')[1]}/{key}"
    receipts = client.audit(command_id=command_id, type="CommandReceipt.Accepted")
    assert receipts.pagination.total == 1
    assert {e.command_id for e in client.audit(command_id=command_id).results} == {command_id}
    created = client.audit(resource_id=first.namespace_id, type="Namespace.Created")
    assert created.pagination.total == 1


@pytest.mark.parametrize("kind", ["namespaces", "buckets"])
def test_an_idempotency_key_reused_with_another_body_is_refused_with_409_command_id_reused(
    client: Client, kind: str
) -> None:
    key = unique("idem")
    first = client.namespaces.create({"namespace_name": unique("idem")}, idempotency_key=key)
    other: dict[str, Any] = {"namespace_name": unique("other")}
    if kind == "buckets":
        other = {"bucket_name": "b", "bucket_schema": {"properties": {}}}

    error = error_of(
        getattr(client, kind).create, other, idempotency_key=key, namespace=first.namespace_id
    )

    assert (error.status, error.type) == (409, "command_id_reused")
    assert error.details["field"] == "command_id"
