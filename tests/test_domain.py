"""Pure tests of the domain: commands executed on an in-memory SQLite event store."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from eventsourcing.persistence import Tracking

from application.environments import AlreadyProcessed, Environments, Outcome
from contract.commands import BODIES, command_from_document
from domain import packed_vectors
from domain.base import Resource
from domain.envelopes import EventEnvelope, envelope_of
from domain.errors import CommandRejected, ErrorCode
from domain.ids import Kind
from domain.namespace import Namespace, NamespaceName
from domain.tasks import CloneTask

SQLITE = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:"}
ACTOR = "tester@example.com"

CLIP = {"feature_extractor_name": "clip", "version": "v1", "params": {"dim": 512}}
SEARCH = {"stage_name": "search", "config": {"stage_id": "feature_search"}}
RERANK = {"stage_name": "rerank", "config": {"stage_id": "rerank", "parameters": {"k": 5}}}
SCHEMA = {"properties": {"title": {"type": "string"}}}

_command_ids = itertools.count()


# --- helpers ------------------------------------------------------------------


@pytest.fixture
def app() -> Environments:
    return Environments(env=SQLITE)


def run(
    app: Environments,
    type_: str,
    body: dict[str, Any],
    *,
    command_id: str | None = None,
    tracking: Tracking | None = None,
) -> Outcome:
    command = command_from_document(
        {
            "command_id": command_id or f"cmd-{next(_command_ids)}",
            "type": type_,
            "body": body,
            "actor": ACTOR,
        }
    )
    return app.execute(command, tracking=tracking)


def rejected(app: Environments, type_: str, body: dict[str, Any], **kw: Any) -> CommandRejected:
    """The rejection of a command (when decoding or when applying it); nothing is written."""
    before = app.recorder.max_notification_id()
    with pytest.raises(CommandRejected) as info:
        run(app, type_, body, **kw)
    assert app.recorder.max_notification_id() == before
    return info.value


def namespace(app: Environments, name: str) -> Namespace:
    claim = app.repository.get(NamespaceName.id_for(name))
    assert claim.claimed_by is not None, f"no namespace named {name!r}"
    found = app.repository.get(claim.claimed_by)
    assert isinstance(found, Namespace)
    return found


def resource(app: Environments, ns_name: str, kind: Kind, name: str) -> Any:
    resource_id = namespace(app, ns_name).find(kind, name)
    assert resource_id is not None, f"no {kind.value} named {name!r} in {ns_name!r}"
    found = app.repository.get(resource_id)
    assert isinstance(found, Resource)
    return found


def envelopes(app: Environments) -> list[EventEnvelope]:
    notifications = app.recorder.select_notifications(1, 10000)
    return [envelope_of(n.id, app.mapper.to_domain_event(n)) for n in notifications]


def create_namespace(app: Environments, name: str, description: str = "") -> None:
    run(app, "namespaces.create", {"namespace_name": name, "description": description})


def create_bucket(app: Environments, ns: str, name: str) -> None:
    body = {"namespace_identifier": ns, "bucket_name": name, "bucket_schema": SCHEMA}
    run(app, "buckets.create", body)


def create_collection(
    app: Environments,
    ns: str,
    name: str,
    source: dict[str, Any],
    extractor: dict[str, Any] = CLIP,
    description: str = "",
) -> None:
    body = {
        "namespace_identifier": ns,
        "collection_name": name,
        "description": description,
        "source": source,
        "feature_extractor": extractor,
    }
    run(app, "collections.create", body)


def create_retriever(
    app: Environments,
    ns: str,
    name: str,
    collections: list[str],
    stages: list[dict[str, Any]] | None = None,
    input_schema: dict[str, Any] | None = None,
) -> None:
    body = {
        "namespace_identifier": ns,
        "retriever_name": name,
        "description": f"{name} retriever",
        "collection_identifiers": collections,
        "stages": stages or [SEARCH],
        "input_schema": input_schema or {"query": {"type": "text"}},
    }
    run(app, "retrievers.create", body)


def flat_config(retriever: str, collection: str) -> dict[str, Any]:
    return {
        "taxonomy_type": "flat",
        "retriever_id": retriever,
        "input_mappings": [{"input_key": "query", "source_type": "payload", "path": "title"}],
        "source_collection": {"collection_id": collection},
    }


def hierarchical_config(retriever: str, root: str, child: str) -> dict[str, Any]:
    return {
        "taxonomy_type": "hierarchical",
        "hierarchical_nodes": [
            {"collection_id": root, "retriever_id": retriever, "label": "root"},
            {"collection_id": child, "parent_collection_id": root, "retriever_id": retriever},
        ],
    }


def create_taxonomy(app: Environments, ns: str, name: str, config: dict[str, Any]) -> None:
    body = {"namespace_identifier": ns, "taxonomy_name": name, "config": config}
    run(app, "taxonomies.create", body)


def bucket_source(*buckets: str) -> dict[str, Any]:
    return {"type": "bucket", "bucket_ids": list(buckets)}


def populated(app: Environments, ns: str = "prod") -> None:
    """A namespace with a bucket, two collections, a retriever and a flat taxonomy."""
    create_namespace(app, ns, description=f"{ns} environment")
    create_bucket(app, ns, "raw")
    create_bucket(app, ns, "extra")
    create_collection(app, ns, "docs", bucket_source("raw"), description="documents")
    create_collection(app, ns, "derived", {"type": "collection", "collection_id": "docs"})
    create_retriever(app, ns, "search", ["docs", "derived"])
    create_taxonomy(app, ns, "tags", flat_config("search", "docs"))


def clone_namespace(app: Environments, source: str, name: str, **body: Any) -> dict[str, Any]:
    """Clones a namespace and returns the DeepCloneResult its task ended with."""
    run(app, "namespaces.clone", {"namespace_identifier": source, "namespace_name": name, **body})
    task = app.repository.get(namespace(app, name).clone_task_id)
    assert isinstance(task, CloneTask)
    # With collections to copy the task waits for the vector processor; without, it is done.
    assert task.status == ("IN_PROGRESS" if task.copies else "COMPLETED")
    assert task.result is not None
    return task.result


def ids_of(app: Environments, ns: str, kind: Kind) -> set[str]:
    return set(namespace(app, ns).resources[kind.value])


# --- override semantics of the clones -------------------------------------------


def test_a_collection_clone_copies_every_omitted_field_from_the_original(app):
    populated(app)
    body = {"namespace_identifier": "prod", "collection_identifier": "docs"}
    run(app, "collections.clone", {**body, "collection_name": "docs-copy"})
    original = resource(app, "prod", Kind.COLLECTION, "docs")
    clone = resource(app, "prod", Kind.COLLECTION, "docs-copy")
    assert clone.id != original.id
    assert clone.description == "documents"
    assert clone.source == original.source
    assert clone.source["bucket_ids"] == [resource(app, "prod", Kind.BUCKET, "raw").id]
    assert clone.feature_extractor == original.feature_extractor
    assert clone.source_collection_id == original.id


def test_a_collection_clone_replaces_a_provided_description_and_source_wholesale(app):
    populated(app)
    body = {
        "namespace_identifier": "prod",
        "collection_identifier": "docs",
        "collection_name": "docs-extra",
        "description": "from the extra bucket",
        "source": bucket_source("extra"),
    }
    run(app, "collections.clone", body)
    clone = resource(app, "prod", Kind.COLLECTION, "docs-extra")
    assert clone.description == "from the extra bucket"
    extra = resource(app, "prod", Kind.BUCKET, "extra").id
    assert clone.source == {"type": "bucket", "bucket_ids": [extra]}


def test_a_collection_clone_replaces_a_provided_feature_extractor_wholesale(app):
    populated(app)
    other = {"feature_extractor_name": "siglip", "params": {"size": "base"}}
    body = {"namespace_identifier": "prod", "collection_identifier": "docs"}
    run(app, "collections.clone", {**body, "collection_name": "x", "feature_extractor": other})
    clone = resource(app, "prod", Kind.COLLECTION, "x")
    assert clone.feature_extractor == {
        "feature_extractor_name": "siglip",
        "version": "v1",
        "params": {"size": "base"},
        "include_all_source_fields": False,
    }


def test_a_retriever_clone_copies_omitted_collections_stages_and_input_schema(app):
    populated(app)
    body = {"namespace_identifier": "prod", "retriever_identifier": "search"}
    run(app, "retrievers.clone", {**body, "retriever_name": "search-2"})
    original = resource(app, "prod", Kind.RETRIEVER, "search")
    clone = resource(app, "prod", Kind.RETRIEVER, "search-2")
    assert clone.description == "search retriever"
    assert clone.collection_ids == original.collection_ids
    assert len(clone.collection_ids) == 2
    assert clone.stages == original.stages
    assert clone.input_schema == {"query": {"type": "text"}}
    assert clone.source_retriever_id == original.id


def test_a_retriever_clone_replaces_provided_collections_stages_and_schema_wholesale(app):
    populated(app)
    body = {
        "namespace_identifier": "prod",
        "retriever_identifier": "search",
        "retriever_name": "search-2",
        "description": "reranked",
        "collection_identifiers": ["derived"],
        "stages": [RERANK],
        "input_schema": {"image": {"type": "image"}},
    }
    run(app, "retrievers.clone", body)
    clone = resource(app, "prod", Kind.RETRIEVER, "search-2")
    assert clone.description == "reranked"
    assert clone.collection_ids == [resource(app, "prod", Kind.COLLECTION, "derived").id]
    assert [stage["stage_name"] for stage in clone.stages] == ["rerank"]
    assert clone.input_schema == {"image": {"type": "image"}}


def test_a_retriever_clone_with_an_empty_input_schema_replaces_it_with_the_empty_one(app):
    populated(app)
    body = {"namespace_identifier": "prod", "retriever_identifier": "search"}
    run(app, "retrievers.clone", {**body, "retriever_name": "s2", "input_schema": {}})
    assert resource(app, "prod", Kind.RETRIEVER, "s2").input_schema == {}


def test_a_taxonomy_clone_copies_an_omitted_config(app):
    populated(app)
    body = {"namespace_identifier": "prod", "taxonomy_identifier": "tags"}
    run(app, "taxonomies.clone", {**body, "taxonomy_name": "tags-2"})
    original = resource(app, "prod", Kind.TAXONOMY, "tags")
    clone = resource(app, "prod", Kind.TAXONOMY, "tags-2")
    assert clone.config == original.config
    assert clone.config["retriever_id"] == resource(app, "prod", Kind.RETRIEVER, "search").id
    assert clone.source_taxonomy_id == original.id


def test_a_taxonomy_clone_replaces_a_provided_config_wholesale(app):
    populated(app)
    body = {
        "namespace_identifier": "prod",
        "taxonomy_identifier": "tags",
        "taxonomy_name": "tree",
        "config": hierarchical_config("search", "docs", "derived"),
    }
    run(app, "taxonomies.clone", body)
    config = resource(app, "prod", Kind.TAXONOMY, "tree").config
    assert config["taxonomy_type"] == "hierarchical"
    assert "source_collection" not in config
    assert "retriever_id" not in config
    assert len(config["hierarchical_nodes"]) == 2


def test_a_namespace_clone_keeps_the_source_description_unless_one_is_given(app):
    create_namespace(app, "prod", description="production")
    clone_namespace(app, "prod", "copy")
    clone_namespace(app, "prod", "staging", description="staging area")
    assert namespace(app, "copy").description == "production"
    assert namespace(app, "staging").description == "staging area"


# --- where a cloned collection's vectors come from ------------------------------


def test_a_collection_clone_with_the_same_extractor_reuses_vectors(app):
    populated(app)
    body = {"namespace_identifier": "prod", "collection_identifier": "docs"}
    run(app, "collections.clone", {**body, "collection_name": "view"})
    clone = resource(app, "prod", Kind.COLLECTION, "view")
    assert (clone.vector_mode, clone.status) == ("reuse", "ready")
    assert resource(app, "prod", Kind.COLLECTION, "docs").vector_mode == "own"


def test_a_collection_clone_naming_an_equal_extractor_still_reuses_vectors(app):
    populated(app)
    same = {**CLIP, "include_all_source_fields": False}
    body = {"namespace_identifier": "prod", "collection_identifier": "docs"}
    run(app, "collections.clone", {**body, "collection_name": "v", "feature_extractor": same})
    clone = resource(app, "prod", Kind.COLLECTION, "v")
    assert (clone.vector_mode, clone.status) == ("reuse", "ready")


def test_a_collection_clone_with_a_different_extractor_awaits_reprocessing(app):
    populated(app)
    other = {"feature_extractor_name": "siglip"}
    body = {"namespace_identifier": "prod", "collection_identifier": "docs"}
    run(app, "collections.clone", {**body, "collection_name": "v", "feature_extractor": other})
    clone = resource(app, "prod", Kind.COLLECTION, "v")
    assert (clone.vector_mode, clone.status) == ("reprocess", "awaiting_reprocess")


def test_a_collection_clone_changing_only_extractor_params_awaits_reprocessing(app):
    populated(app)
    tweaked = {**CLIP, "params": {"dim": 768}}
    body = {"namespace_identifier": "prod", "collection_identifier": "docs"}
    run(app, "collections.clone", {**body, "collection_name": "v", "feature_extractor": tweaked})
    clone = resource(app, "prod", Kind.COLLECTION, "v")
    assert (clone.vector_mode, clone.status) == ("reprocess", "awaiting_reprocess")


def test_a_clone_of_a_collection_awaiting_reprocessing_awaits_it_too(app):
    populated(app)
    for source, name, extra in [
        ("docs", "docs-v2", {"feature_extractor": {**CLIP, "version": "v2"}}),
        ("docs-v2", "docs-v2-again", {}),
    ]:
        body = {"namespace_identifier": "prod", "collection_identifier": source}
        run(app, "collections.clone", {**body, "collection_name": name, **extra})
    again = resource(app, "prod", Kind.COLLECTION, "docs-v2-again")
    assert (again.vector_mode, again.status) == ("reprocess", "awaiting_reprocess")
    run(app, "namespaces.clone", {"namespace_identifier": "prod", "namespace_name": "copy"})
    in_copy = resource(app, "copy", Kind.COLLECTION, "docs-v2")
    assert (in_copy.vector_mode, in_copy.status) == ("reprocess", "awaiting_reprocess")


def test_a_namespace_clone_copies_the_vectors_of_every_collection(app):
    populated(app)
    clone_namespace(app, "prod", "dev")
    for name in ("docs", "derived"):
        clone = resource(app, "dev", Kind.COLLECTION, name)
        assert (clone.vector_mode, clone.status) == ("copy", "ready")
        assert clone.source_collection_id == resource(app, "prod", Kind.COLLECTION, name).id


# --- names ----------------------------------------------------------------------


def test_a_resource_name_is_unique_per_kind_within_a_namespace(app):
    populated(app)
    docs = resource(app, "prod", Kind.COLLECTION, "docs").id
    body = {
        "namespace_identifier": "prod",
        "collection_name": "docs",
        "source": bucket_source("raw"),
        "feature_extractor": CLIP,
    }
    error = rejected(app, "collections.create", body)
    assert error.code == ErrorCode.DUPLICATE_NAME
    assert error.field == "body.collection_name"
    assert error.details["existing_id"] == docs
    clone = {"namespace_identifier": "prod", "retriever_identifier": "search"}
    error = rejected(app, "retrievers.clone", {**clone, "retriever_name": "search"})
    assert (error.code, error.field) == (ErrorCode.DUPLICATE_NAME, "body.retriever_name")


def test_the_same_name_is_allowed_in_another_namespace_and_for_another_kind(app):
    populated(app)
    create_namespace(app, "other")
    create_bucket(app, "other", "raw")
    create_bucket(app, "prod", "docs")  # a collection is named docs there
    assert resource(app, "other", Kind.BUCKET, "raw").namespace_id == namespace(app, "other").id
    assert resource(app, "prod", Kind.BUCKET, "docs").id != (
        resource(app, "prod", Kind.COLLECTION, "docs").id
    )


def test_namespace_names_are_unique_globally(app):
    create_namespace(app, "prod")
    error = rejected(app, "namespaces.create", {"namespace_name": "prod"})
    assert error.code == ErrorCode.DUPLICATE_NAME
    assert error.field == "body.namespace_name"
    assert error.details["existing_id"] == namespace(app, "prod").id
    create_namespace(app, "dev")
    body = {"namespace_identifier": "dev", "namespace_name": "prod"}
    assert rejected(app, "namespaces.clone", body).code == ErrorCode.DUPLICATE_NAME


def test_renaming_a_namespace_frees_its_old_name_for_another_namespace(app):
    create_namespace(app, "prod")
    first = namespace(app, "prod").id
    run(app, "namespaces.update", {"namespace_identifier": "prod", "namespace_name": "live"})
    create_namespace(app, "prod")
    assert namespace(app, "prod").id != first
    assert namespace(app, "live").id == first
    assert namespace(app, "live").namespace_name == "live"


def test_a_renamed_namespace_resolves_by_its_new_name_and_not_the_old_one(app):
    create_namespace(app, "prod")
    run(app, "namespaces.update", {"namespace_identifier": "prod", "namespace_name": "live"})
    create_bucket(app, "live", "raw")
    assert resource(app, "live", Kind.BUCKET, "raw")
    body = {"namespace_identifier": "prod", "bucket_name": "b", "bucket_schema": SCHEMA}
    error = rejected(app, "buckets.create", body)
    assert (error.code, error.field) == (ErrorCode.NOT_FOUND, "body.namespace_identifier")


def test_renaming_a_namespace_to_a_taken_name_keeps_both_names(app):
    create_namespace(app, "prod")
    create_namespace(app, "dev")
    body = {"namespace_identifier": "dev", "namespace_name": "prod"}
    assert rejected(app, "namespaces.update", body).code == ErrorCode.DUPLICATE_NAME
    assert namespace(app, "dev").namespace_name == "dev"
    assert namespace(app, "prod").namespace_name == "prod"


def test_a_resource_rename_updates_the_catalog_so_only_the_new_name_resolves(app):
    populated(app)
    docs = resource(app, "prod", Kind.COLLECTION, "docs").id
    body = {"namespace_identifier": "prod", "collection_identifier": "docs"}
    run(app, "collections.update", {**body, "collection_name": "articles"})
    assert namespace(app, "prod").find(Kind.COLLECTION, "docs") is None
    assert app.repository.get(docs).collection_name == "articles"
    update = {"namespace_identifier": "prod", "collection_identifier": "articles"}
    run(app, "collections.update", {**update, "description": "renamed"})
    assert app.repository.get(docs).description == "renamed"
    error = rejected(app, "collections.update", {**body, "description": "old name"})
    assert (error.code, error.field) == (ErrorCode.NOT_FOUND, "body.collection_identifier")


def test_renaming_a_resource_frees_its_old_name_within_the_namespace(app):
    populated(app)
    body = {"namespace_identifier": "prod", "bucket_identifier": "raw"}
    run(app, "buckets.update", {**body, "bucket_name": "archive"})
    create_bucket(app, "prod", "raw")
    assert resource(app, "prod", Kind.BUCKET, "raw").id != (
        resource(app, "prod", Kind.BUCKET, "archive").id
    )


def test_renaming_a_resource_to_a_name_in_use_is_rejected(app):
    populated(app)
    body = {"namespace_identifier": "prod", "bucket_identifier": "raw", "bucket_name": "extra"}
    error = rejected(app, "buckets.update", body)
    assert (error.code, error.field) == (ErrorCode.DUPLICATE_NAME, "body.bucket_name")


# --- identifiers ----------------------------------------------------------------


def test_a_resource_resolves_by_id_and_by_name_alike(app):
    populated(app)
    docs = resource(app, "prod", Kind.COLLECTION, "docs").id
    derived = resource(app, "prod", Kind.COLLECTION, "derived").id
    prod = namespace(app, "prod").id
    create_retriever(app, prod, "by-both", [docs, "derived"])
    assert resource(app, "prod", Kind.RETRIEVER, "by-both").collection_ids == [docs, derived]
    body = {"namespace_identifier": prod, "retriever_identifier": "by-both"}
    run(app, "retrievers.update", {**body, "description": "by name"})
    retriever = resource(app, "prod", Kind.RETRIEVER, "by-both")
    body = {"namespace_identifier": "prod", "retriever_identifier": retriever.id}
    run(app, "retrievers.update", {**body, "description": "by id"})
    assert app.repository.get(retriever.id).description == "by id"
    assert retriever.description == "by name"


def test_an_id_of_a_resource_in_another_namespace_is_not_found(app):
    populated(app)
    create_namespace(app, "other")
    docs = resource(app, "prod", Kind.COLLECTION, "docs").id
    body = {
        "namespace_identifier": "other",
        "retriever_name": "r",
        "collection_identifiers": [docs],
        "stages": [SEARCH],
    }
    error = rejected(app, "retrievers.create", body)
    assert (error.code, error.field) == (ErrorCode.NOT_FOUND, "body.collection_identifiers[0]")


def test_an_id_of_the_wrong_kind_is_rejected_with_its_field_path(app):
    populated(app)
    raw = resource(app, "prod", Kind.BUCKET, "raw").id
    body = {
        "namespace_identifier": "prod",
        "retriever_name": "r",
        "collection_identifiers": ["docs", raw],
        "stages": [SEARCH],
    }
    error = rejected(app, "retrievers.create", body)
    assert (error.code, error.field) == (ErrorCode.WRONG_KIND, "body.collection_identifiers[1]")


def test_a_resource_id_given_as_namespace_identifier_is_the_wrong_kind(app):
    populated(app)
    raw = resource(app, "prod", Kind.BUCKET, "raw").id
    body = {"namespace_identifier": raw, "bucket_name": "b", "bucket_schema": SCHEMA}
    error = rejected(app, "buckets.create", body)
    assert (error.code, error.field) == (ErrorCode.WRONG_KIND, "body.namespace_identifier")


@pytest.mark.parametrize("identifier", ["nowhere", "ns_" + "0" * 32])
def test_an_unknown_namespace_is_not_found(app, identifier):
    create_namespace(app, "prod")
    body = {"namespace_identifier": identifier, "bucket_name": "b", "bucket_schema": SCHEMA}
    error = rejected(app, "buckets.create", body)
    assert (error.code, error.field) == (ErrorCode.NOT_FOUND, "body.namespace_identifier")


def test_an_unknown_name_in_a_taxonomy_config_is_not_found_with_its_field_path(app):
    populated(app)
    body = {
        "namespace_identifier": "prod",
        "taxonomy_name": "t",
        "config": flat_config("search", "missing"),
    }
    error = rejected(app, "taxonomies.create", body)
    assert error.code == ErrorCode.NOT_FOUND
    assert error.field == "body.config.source_collection.collection_id"


# --- immutability ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "identifier", "field", "value"),
    [
        ("buckets.update", "bucket_identifier", "bucket_schema", SCHEMA),
        ("collections.update", "collection_identifier", "feature_extractor", CLIP),
        ("collections.update", "collection_identifier", "source", bucket_source("raw")),
        ("retrievers.update", "retriever_identifier", "stages", [SEARCH]),
        ("retrievers.update", "retriever_identifier", "collection_identifiers", ["docs"]),
        ("retrievers.update", "retriever_identifier", "collection_ids", ["docs"]),
        ("retrievers.update", "retriever_identifier", "input_schema", {}),
        ("taxonomies.update", "taxonomy_identifier", "config", flat_config("search", "docs")),
    ],
)
def test_an_update_of_a_computed_field_is_rejected_as_immutable(
    app, type_, identifier, field, value
):
    populated(app)
    body = {"namespace_identifier": "prod", identifier: "x", field: value}
    error = rejected(app, type_, body)
    assert (error.code, error.field) == (ErrorCode.IMMUTABLE_FIELD, f"body.{field}")
    # it points to a command that exists: a clone where the kind has one, else a create
    suggested = error.message.rsplit("(", 1)[-1].rstrip(")")
    assert suggested in BODIES, error.message
    assert suggested.endswith(".clone" if type_ != "buckets.update" else ".create")


# --- namespace clone ------------------------------------------------------------


def test_a_namespace_clone_maps_every_resource_of_the_included_kinds(app):
    populated(app)
    result = clone_namespace(app, "prod", "dev", include_resources={"taxonomies": True})
    prod, dev = namespace(app, "prod"), namespace(app, "dev")
    assert result["mapping"]["namespaces"] == {prod.id: dev.id}
    assert (result["source_namespace_id"], result["namespace_id"]) == (prod.id, dev.id)
    for kind in (Kind.BUCKET, Kind.COLLECTION, Kind.RETRIEVER, Kind.TAXONOMY):
        mapping = result["mapping"][kind.plural]
        assert set(mapping) == ids_of(app, "prod", kind)
        assert set(mapping.values()) == ids_of(app, "dev", kind)
        assert result["counts"][kind.plural] == len(mapping)
        for old, new in mapping.items():
            assert dev.resources[kind.value][new] == prod.resources[kind.value][old]
            assert app.repository.get(new).namespace_id == dev.id
    assert result["counts"] == {"buckets": 2, "collections": 2, "retrievers": 1, "taxonomies": 1}


def test_a_namespace_clone_leaves_taxonomies_out_by_default(app):
    populated(app)
    result = clone_namespace(app, "prod", "dev")
    assert result["mapping"]["taxonomies"] == {}
    assert result["counts"]["taxonomies"] == 0
    assert ids_of(app, "dev", Kind.TAXONOMY) == set()
    assert len(ids_of(app, "dev", Kind.RETRIEVER)) == 1
    task = app.repository.get(result["task_id"])
    assert task.include_resources == {"collections": True, "retrievers": True, "taxonomies": False}


def test_a_namespace_clone_without_collections_takes_only_buckets(app):
    populated(app)
    include = {"collections": False, "retrievers": False}
    result = clone_namespace(app, "prod", "dev", include_resources=include)
    assert len(ids_of(app, "dev", Kind.BUCKET)) == 2
    assert ids_of(app, "dev", Kind.COLLECTION) == set()
    assert ids_of(app, "dev", Kind.RETRIEVER) == set()
    assert result["counts"] == {"buckets": 2, "collections": 0, "retrievers": 0, "taxonomies": 0}


@pytest.mark.parametrize(
    ("include", "field"),
    [
        ({"collections": False}, "body.include_resources.retrievers"),
        ({"retrievers": False, "taxonomies": True}, "body.include_resources.taxonomies"),
    ],
)
def test_a_namespace_clone_refuses_includes_that_leave_references_outside(app, include, field):
    populated(app)
    body = {"namespace_identifier": "prod", "namespace_name": "dev", "include_resources": include}
    error = rejected(app, "namespaces.clone", body)
    assert (error.code, error.field) == (ErrorCode.INVALID_INCLUDE_RESOURCES, field)


def test_a_namespace_clone_remaps_collection_sources_and_retriever_collections(app):
    populated(app)
    result = clone_namespace(app, "prod", "dev")
    buckets, collections = result["mapping"]["buckets"], result["mapping"]["collections"]
    prod_docs = resource(app, "prod", Kind.COLLECTION, "docs")
    dev_docs = resource(app, "dev", Kind.COLLECTION, "docs")
    assert dev_docs.source["bucket_ids"] == [buckets[prod_docs.source["bucket_ids"][0]]]
    derived = resource(app, "dev", Kind.COLLECTION, "derived").source
    assert (derived["type"], derived["collection_id"]) == ("collection", dev_docs.id)
    prod_search = resource(app, "prod", Kind.RETRIEVER, "search")
    dev_search = resource(app, "dev", Kind.RETRIEVER, "search")
    assert dev_search.collection_ids == [collections[c] for c in prod_search.collection_ids]
    assert dev_search.stages == prod_search.stages


def test_a_namespace_clone_remaps_a_flat_taxonomy_into_the_clone(app):
    populated(app)
    result = clone_namespace(app, "prod", "dev", include_resources={"taxonomies": True})
    config = resource(app, "dev", Kind.TAXONOMY, "tags").config
    assert config["retriever_id"] == resource(app, "dev", Kind.RETRIEVER, "search").id
    source = config["source_collection"]["collection_id"]
    assert source == resource(app, "dev", Kind.COLLECTION, "docs").id
    assert source in result["mapping"]["collections"].values()


def test_a_namespace_clone_remaps_every_reference_of_a_hierarchical_taxonomy(app):
    populated(app)
    create_taxonomy(app, "prod", "tree", hierarchical_config("search", "docs", "derived"))
    clone_namespace(app, "prod", "dev", include_resources={"taxonomies": True})
    nodes = resource(app, "dev", Kind.TAXONOMY, "tree").config["hierarchical_nodes"]
    docs = resource(app, "dev", Kind.COLLECTION, "docs").id
    derived = resource(app, "dev", Kind.COLLECTION, "derived").id
    search = resource(app, "dev", Kind.RETRIEVER, "search").id
    assert [node["collection_id"] for node in nodes] == [docs, derived]
    assert "parent_collection_id" not in nodes[0]
    assert nodes[1]["parent_collection_id"] == docs
    assert [node["retriever_id"] for node in nodes] == [search, search]
    assert nodes[0]["label"] == "root"


def test_a_clone_of_a_cloned_namespace_maps_from_the_first_clone(app):
    populated(app)
    clone_namespace(app, "prod", "dev", include_resources={"taxonomies": True})
    result = clone_namespace(app, "dev", "feature", include_resources={"taxonomies": True})
    dev, feature = namespace(app, "dev"), namespace(app, "feature")
    assert feature.source_namespace_id == dev.id
    assert result["mapping"]["namespaces"] == {dev.id: feature.id}
    assert set(result["mapping"]["collections"]) == ids_of(app, "dev", Kind.COLLECTION)
    docs = resource(app, "feature", Kind.COLLECTION, "docs")
    assert docs.source_collection_id == resource(app, "dev", Kind.COLLECTION, "docs").id
    assert docs.vector_mode == "copy"
    config = resource(app, "feature", Kind.TAXONOMY, "tags").config
    assert config["retriever_id"] == resource(app, "feature", Kind.RETRIEVER, "search").id


def test_a_namespace_clone_leaves_the_source_namespace_unchanged(app):
    populated(app)
    before = namespace(app, "prod")
    clone_namespace(app, "prod", "dev", include_resources={"taxonomies": True})
    after = namespace(app, "prod")
    assert after.version == before.version
    assert after.resources == before.resources
    assert after.source_namespace_id is None
    docs = resource(app, "prod", Kind.COLLECTION, "docs")
    assert (docs.version, docs.namespace_id) == (1, after.id)


def test_resources_created_in_a_clone_do_not_appear_in_its_source(app):
    populated(app)
    clone_namespace(app, "prod", "dev")
    create_bucket(app, "dev", "scratch")
    assert namespace(app, "prod").find(Kind.BUCKET, "scratch") is None
    assert namespace(app, "dev").find(Kind.BUCKET, "scratch") is not None


# --- command idempotency and the events a command writes ---------------------------


def test_a_repeated_command_is_a_duplicate_and_writes_nothing(app):
    body = {"namespace_name": "prod", "description": ""}
    first = run(app, "namespaces.create", body, command_id="same")
    before = app.recorder.max_notification_id()
    again = run(app, "namespaces.create", {"namespace_name": "prod"}, command_id="same")
    assert not first.duplicate and first.positions
    assert again == Outcome(positions=[], duplicate=True)
    assert app.recorder.max_notification_id() == before


def test_a_command_id_reused_for_a_different_body_is_rejected(app):
    run(app, "namespaces.create", {"namespace_name": "prod"}, command_id="same")
    body = {"namespace_name": "dev"}
    error = rejected(app, "namespaces.create", body, command_id="same")
    assert (error.code, error.field) == (ErrorCode.COMMAND_ID_REUSED, "command_id")
    body = {"namespace_identifier": "prod", "description": "x"}
    error = rejected(app, "namespaces.update", body, command_id="same")
    assert error.code == ErrorCode.COMMAND_ID_REUSED


def test_the_receipt_is_the_last_event_of_every_command(app):
    populated(app)
    clone_namespace(app, "prod", "dev", include_resources={"taxonomies": True})
    run(app, "namespaces.update", {"namespace_identifier": "dev", "namespace_name": "dev2"})
    by_command: dict[str, list[EventEnvelope]] = {}
    for envelope in envelopes(app):
        by_command.setdefault(envelope.command_id, []).append(envelope)
    assert len(by_command) == 9
    for command_id, events in by_command.items():
        assert [e.type for e in events].count("CommandReceipt.Accepted") == 1
        assert events[-1].type == "CommandReceipt.Accepted"
        assert events[-1].aggregate_id == f"cmd:{command_id}"
        positions = [e.position for e in events]
        assert positions == list(range(positions[0], positions[0] + len(positions)))


def test_every_event_carries_command_id_actor_and_namespace_id(app):
    populated(app)
    clone_namespace(app, "prod", "dev", include_resources={"taxonomies": True})
    run(
        app,
        "buckets.update",
        {"namespace_identifier": "dev", "bucket_identifier": "raw", "bucket_name": "raw2"},
    )
    namespaces = {namespace(app, "prod").id, namespace(app, "dev").id}
    all_events = envelopes(app)
    assert len(all_events) > 30
    for envelope in all_events:
        assert envelope.command_id and envelope.command_id.startswith("cmd-")
        assert envelope.actor == ACTOR
        assert envelope.namespace_id in namespaces
        assert not {"command_id", "actor", "namespace_id"} & set(envelope.data)


def test_the_events_of_a_clone_belong_to_the_namespace_they_change(app):
    populated(app)
    result = clone_namespace(app, "prod", "dev")
    prod, dev = namespace(app, "prod").id, namespace(app, "dev").id
    all_events = envelopes(app)
    events = [e for e in all_events if e.command_id == all_events[-1].command_id]
    by_aggregate = {e.aggregate_id: e.namespace_id for e in events}
    assert by_aggregate[dev] == dev
    assert by_aggregate[result["task_id"]] == prod
    for clone_id in result["mapping"]["collections"].values():
        assert by_aggregate[clone_id] == dev


def test_an_envelope_is_stable_and_readable_back_from_bytes(app):
    create_namespace(app, "prod")
    first = envelopes(app)
    second = envelopes(app)
    assert [e.event_id for e in first] == [e.event_id for e in second]
    assert len({e.event_id for e in first}) == len(first)
    created = first[0]
    assert created.type == "Namespace.Created"
    assert created.aggregate_id == created.namespace_id
    assert created.data["namespace_name"] == "prod"
    assert EventEnvelope.from_bytes(created.to_bytes()) == created


# --- exactly once by position -----------------------------------------------------


def test_a_position_recorded_before_raises_already_processed_and_writes_nothing(app):
    run(app, "namespaces.create", {"namespace_name": "prod"}, tracking=Tracking("t#0", 5))
    before = app.recorder.max_notification_id()
    with pytest.raises(AlreadyProcessed):
        run(app, "namespaces.create", {"namespace_name": "dev"}, tracking=Tracking("t#0", 5))
    assert app.recorder.max_notification_id() == before
    assert app.has_recorded(Tracking("t#0", 5))
    assert app.last_position("t#0") == 5


def test_a_position_below_the_last_recorded_one_is_already_processed(app):
    run(app, "namespaces.create", {"namespace_name": "prod"}, tracking=Tracking("t#0", 5))
    before = app.recorder.max_notification_id()
    with pytest.raises(AlreadyProcessed):
        run(app, "namespaces.create", {"namespace_name": "dev"}, tracking=Tracking("t#0", 3))
    assert app.recorder.max_notification_id() == before


def test_a_command_redelivered_at_its_recorded_position_writes_nothing(app):
    tracking = Tracking("t#0", 5)
    body = {"namespace_name": "prod"}
    run(app, "namespaces.create", body, command_id="c", tracking=tracking)
    before = app.recorder.max_notification_id()
    try:
        outcome = run(app, "namespaces.create", body, command_id="c", tracking=tracking)
    except AlreadyProcessed:
        outcome = Outcome(positions=[], duplicate=True)
    assert outcome == Outcome(positions=[], duplicate=True)
    assert app.recorder.max_notification_id() == before


def test_positions_are_tracked_per_partition_name(app):
    run(app, "namespaces.create", {"namespace_name": "a"}, tracking=Tracking("t#0", 5))
    run(app, "namespaces.create", {"namespace_name": "b"}, tracking=Tracking("t#1", 5))
    assert (app.last_position("t#0"), app.last_position("t#1")) == (5, 5)
    assert namespace(app, "b")


def test_a_rejected_command_writes_no_events_and_records_no_position(app):
    create_namespace(app, "prod")
    before = app.recorder.max_notification_id()
    with pytest.raises(CommandRejected):
        run(app, "namespaces.create", {"namespace_name": "prod"}, tracking=Tracking("t#0", 7))
    assert app.recorder.max_notification_id() == before
    assert app.last_position("t#0") is None


def test_a_rejected_command_leaves_its_command_id_free_for_a_retry(app):
    body = {"namespace_identifier": "prod", "bucket_name": "b", "bucket_schema": SCHEMA}
    rejected(app, "buckets.create", body, command_id="retry")
    create_namespace(app, "prod")
    outcome = run(app, "buckets.create", body, command_id="retry")
    assert not outcome.duplicate
    assert resource(app, "prod", Kind.BUCKET, "b")


# --- value validation -------------------------------------------------------------


def collection_body(source: dict[str, Any]) -> dict[str, Any]:
    return {
        "namespace_identifier": "prod",
        "collection_name": "c",
        "source": source,
        "feature_extractor": CLIP,
    }


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"type": "bucket"}, "bucket_ids"),
        ({"type": "bucket", "bucket_ids": []}, "bucket_ids"),
        ({"type": "bucket", "bucket_ids": ["raw"], "collection_id": "docs"}, "not collection_id"),
        ({"type": "collection"}, "needs collection_id"),
        ({"type": "collection", "collection_id": "docs", "bucket_ids": ["raw"]}, "not bucket_ids"),
    ],
)
def test_a_collection_source_must_match_its_type(app, source, message):
    populated(app)
    error = rejected(app, "collections.create", collection_body(source))
    assert error.code == ErrorCode.VALIDATION_ERROR
    assert error.field == "body.source"
    assert message in error.message


def test_a_hierarchical_parent_that_is_no_collection_is_not_found_at_its_path(app):
    populated(app)
    nodes = [{"collection_id": "docs"}, {"collection_id": "derived", "parent_collection_id": "x"}]
    error = rejected(app, "taxonomies.create", taxonomy_body(nodes))
    assert error.code == ErrorCode.NOT_FOUND
    assert error.field == "body.config.hierarchical_nodes[1].parent_collection_id"


def test_a_collection_source_resolves_the_collection_it_names(app):
    populated(app)
    run(app, "collections.create", collection_body({"type": "collection", "collection_id": "docs"}))
    source = resource(app, "prod", Kind.COLLECTION, "c").source
    assert source["type"] == "collection"
    assert source["collection_id"] == resource(app, "prod", Kind.COLLECTION, "docs").id
    assert not source.get("bucket_ids")


def test_stage_type_is_inferred_from_a_known_stage_id(app):
    populated(app)
    custom = {"stage_name": "custom", "stage_type": "apply", "config": {"stage_id": "my_step"}}
    stages = [SEARCH, RERANK, {"stage_name": "s", "config": {"stage_id": "llm_enrich"}}, custom]
    create_retriever(app, "prod", "typed", ["docs"], stages=stages)
    retriever = resource(app, "prod", Kind.RETRIEVER, "typed")
    types = [stage["stage_type"] for stage in retriever.stages]
    assert types == ["filter", "sort", "enrich", "apply"]


def test_stage_type_is_required_for_an_unknown_stage_id(app):
    populated(app)
    body = {
        "namespace_identifier": "prod",
        "retriever_name": "r",
        "collection_identifiers": ["docs"],
        "stages": [SEARCH, {"stage_name": "custom", "config": {"stage_id": "my_step"}}],
    }
    error = rejected(app, "retrievers.create", body)
    assert error.code == ErrorCode.VALIDATION_ERROR
    assert error.field == "body.stages[1]"
    assert "stage_type is required" in error.message


def taxonomy_body(nodes: list[dict[str, Any]], retriever: str | None = "search") -> dict[str, Any]:
    config: dict[str, Any] = {"taxonomy_type": "hierarchical", "hierarchical_nodes": nodes}
    if retriever is not None:
        config["retriever_id"] = retriever
    return {"namespace_identifier": "prod", "taxonomy_name": "t", "config": config}


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        (
            [
                {"collection_id": "docs", "parent_collection_id": "derived"},
                {"collection_id": "derived", "parent_collection_id": "docs"},
            ],
            "need a root",
        ),
        (
            [
                {"collection_id": "docs"},
                {"collection_id": "docs-2", "parent_collection_id": "derived"},
            ],
            "is not a node",
        ),
        ([{"collection_id": "docs"}, {"collection_id": "docs"}], "more than once"),
        ([], "at least 1"),
    ],
)
def test_a_hierarchical_config_must_be_a_tree(app, nodes, message):
    populated(app)
    create_collection(app, "prod", "docs-2", bucket_source("raw"))
    error = rejected(app, "taxonomies.create", taxonomy_body(nodes))
    assert error.code == ErrorCode.VALIDATION_ERROR
    assert error.field.startswith("body.config")
    assert message in error.message


def test_a_hierarchical_config_without_a_taxonomy_retriever_needs_one_per_node(app):
    populated(app)
    nodes = [
        {"collection_id": "docs", "retriever_id": "search"},
        {"collection_id": "derived", "parent_collection_id": "docs"},
    ]
    error = rejected(app, "taxonomies.create", taxonomy_body(nodes, retriever=None))
    assert error.code == ErrorCode.VALIDATION_ERROR
    assert "every node needs a retriever_id" in error.message


def test_a_hierarchical_parent_given_by_id_matches_its_node_given_by_name(app):
    populated(app)
    docs = resource(app, "prod", Kind.COLLECTION, "docs").id
    nodes = [
        {"collection_id": "docs"},
        {"collection_id": "derived", "parent_collection_id": docs},
    ]
    run(app, "taxonomies.create", taxonomy_body(nodes))
    stored = resource(app, "prod", Kind.TAXONOMY, "t").config["hierarchical_nodes"]
    assert stored[1]["parent_collection_id"] == stored[0]["collection_id"] == docs


def test_a_hierarchical_config_naming_one_collection_by_name_and_by_id_is_refused(app):
    populated(app)
    docs = resource(app, "prod", Kind.COLLECTION, "docs").id
    nodes = [{"collection_id": "docs"}, {"collection_id": docs, "parent_collection_id": "docs"}]
    error = rejected(app, "taxonomies.create", taxonomy_body(nodes))
    assert error.code in (ErrorCode.VALIDATION_ERROR, ErrorCode.INVALID_REFERENCE)


def test_a_valid_hierarchical_config_resolves_node_names_to_ids(app):
    populated(app)
    create_taxonomy(app, "prod", "tree", hierarchical_config("search", "docs", "derived"))
    nodes = resource(app, "prod", Kind.TAXONOMY, "tree").config["hierarchical_nodes"]
    docs = resource(app, "prod", Kind.COLLECTION, "docs").id
    assert nodes[0]["collection_id"] == docs
    assert nodes[1]["parent_collection_id"] == docs


@pytest.mark.parametrize(
    ("type_", "field", "extra", "prefix"),
    [
        ("namespaces.create", "namespace_name", {}, "ns"),
        (
            "buckets.create",
            "bucket_name",
            {"namespace_identifier": "prod", "bucket_schema": SCHEMA},
            "col",
        ),
        ("collections.create", "collection_name", collection_body(bucket_source("raw")), "task"),
    ],
)
def test_a_name_that_looks_like_an_id_is_refused(app, type_, field, extra, prefix):
    populated(app)
    body = {**extra, field: f"{prefix}_{'ab' * 16}"}
    error = rejected(app, type_, body)
    assert (error.code, error.field) == (ErrorCode.VALIDATION_ERROR, f"body.{field}")
    assert "resource ID" in error.message


def test_a_name_that_only_resembles_an_id_is_accepted(app):
    create_namespace(app, "ns_not-an-id")
    create_bucket(app, "ns_not-an-id", f"bkt_{'AB' * 16}")
    assert namespace(app, "ns_not-an-id").find(Kind.BUCKET, f"bkt_{'AB' * 16}") is not None


@pytest.mark.parametrize("kind", ["bucket", "collection", "retriever", "taxonomy"])
def test_an_event_is_named_after_the_kind_it_belongs_to(app, kind):
    populated(app)
    identifier = {"bucket": "raw", "collection": "docs", "retriever": "search", "taxonomy": "tags"}
    body = {"namespace_identifier": "prod", f"{kind}_identifier": identifier[kind]}
    plural = "taxonomies" if kind == "taxonomy" else f"{kind}s"
    run(app, f"{plural}.update", {**body, "description": "new", f"{kind}_name": "renamed"})
    types = [e.type for e in envelopes(app)[-3:]]
    title = kind.title()
    assert types == [f"{title}.Renamed", f"{title}.DescriptionChanged", "CommandReceipt.Accepted"]


def test_objects_added_to_a_bucket_get_ids_and_a_known_key_keeps_its_object(app):
    populated(app)
    body = {"namespace_identifier": "prod", "bucket_identifier": "raw"}
    run(
        app,
        "buckets.objects.add",
        {**body, "objects": [{"key": "a", "text": "one"}, {"text": "x"}]},
    )
    run(app, "buckets.objects.add", {**body, "objects": [{"key": "a", "text": "one, again"}]})
    first, second = [e for e in envelopes(app) if e.type == "Bucket.ObjectsAdded"]
    a, unkeyed = first.data["objects"]
    assert a["object_id"].startswith("obj_") and unkeyed["object_id"].startswith("obj_")
    assert a["object_id"] != unkeyed["object_id"]
    assert second.data["objects"][0]["object_id"] == a["object_id"]
    assert second.data["objects"][0]["text"] == "one, again"


def test_an_object_needs_text_or_metadata(app):
    populated(app)
    body = {"namespace_identifier": "prod", "bucket_identifier": "raw", "objects": [{"key": "k"}]}
    error = rejected(app, "buckets.objects.add", body)
    assert error.code == ErrorCode.VALIDATION_ERROR and error.field == "body.objects[0]"


def test_documents_are_written_and_deleted_as_events_with_ids(app):
    populated(app)
    body = {"namespace_identifier": "prod", "collection_identifier": "docs"}
    documents = [
        {"document_id": "d1", "vector": [0.1, 0.2], "payload": {"k": 1}},
        {"text": "embed me"},
    ]
    run(app, "collections.documents.write", {**body, "documents": documents})
    run(app, "collections.documents.delete", {**body, "document_ids": ["d1"]})
    written, deleted = envelopes(app)[-4], envelopes(app)[-2]
    assert written.type == "Collection.DocumentsWritten"
    ids = [d["document_id"] for d in written.data["documents"]]
    assert ids[0] == "d1" and ids[1].startswith("obj_")
    # the event carries the vector packed: base64 of its float32 components
    assert written.data["documents"][0]["vector"] == packed_vectors.pack([0.1, 0.2])
    assert deleted.type == "Collection.DocumentsDeleted"
    assert deleted.data["document_ids"] == ["d1"]


def test_documents_in_one_command_must_share_a_vector_size(app):
    populated(app)
    documents = [{"vector": [1.0, 2.0]}, {"vector": [1.0]}]
    body = {"namespace_identifier": "prod", "collection_identifier": "docs", "documents": documents}
    error = rejected(app, "collections.documents.write", body)
    assert error.code == ErrorCode.VALIDATION_ERROR and "differ in size" in error.message


def test_a_collection_awaiting_reprocessing_refuses_documents(app):
    populated(app)
    body = {"namespace_identifier": "prod", "collection_identifier": "docs"}
    run(
        app,
        "collections.clone",
        {**body, "collection_name": "docs-v2", "feature_extractor": {**CLIP, "version": "v2"}},
    )
    target = {"namespace_identifier": "prod", "collection_identifier": "docs-v2"}
    error = rejected(app, "collections.documents.write", {**target, "documents": [{"text": "x"}]})
    assert error.code == ErrorCode.NOT_READY
    assert "must be reprocessed" in error.message


def clone_task(app: Environments, name: str) -> CloneTask:
    task = app.repository.get(namespace(app, name).clone_task_id)
    assert isinstance(task, CloneTask)
    return task


def report(
    app: Environments, task: CloneTask, collection: str, copied: int, total: int, done: bool
):
    body = {
        "task_id": task.id,
        "collection_id": collection,
        "copied": copied,
        "total": total,
        "done": done,
    }
    return run(app, "tasks.copy_progress", body)


def test_a_namespace_clone_task_completes_when_every_collection_copy_is_reported_done(app):
    populated(app)
    clone_namespace(app, "prod", "dev")
    task = clone_task(app, "dev")
    assert task.status == "IN_PROGRESS"
    first, second = sorted(task.copies)
    report(app, task, first, 10, 20, False)
    report(app, task, first, 20, 20, True)
    assert clone_task(app, "dev").status == "IN_PROGRESS"
    report(app, task, second, 5, 5, True)
    done = clone_task(app, "dev")
    assert done.status == "COMPLETED"
    assert done.result is not None and done.result["points"] == {first: 20, second: 5}
    types = [e.type for e in envelopes(app) if e.aggregate_id == task.id]
    assert types == [
        "CloneTask.Created",
        "CloneTask.Copying",
        "CloneTask.CopyProgressed",
        "CloneTask.CopyProgressed",
        "CloneTask.CopyProgressed",
        "CloneTask.Completed",
    ]


def test_late_or_repeated_copy_reports_change_nothing(app):
    populated(app)
    clone_namespace(app, "prod", "dev")
    task = clone_task(app, "dev")
    first = sorted(task.copies)[0]
    report(app, task, first, 10, 20, False)
    outcome = report(app, task, first, 5, 20, False)  # older than what is known
    assert outcome.positions[:-1] == []  # only its receipt
    assert clone_task(app, "dev").copies[first]["copied"] == 10


def test_a_copy_report_for_a_collection_the_task_does_not_copy_is_rejected(app):
    populated(app)
    clone_namespace(app, "prod", "dev")
    task = clone_task(app, "dev")
    body = {"task_id": task.id, "collection_id": "col_" + "0" * 32, "copied": 1, "total": 1}
    error = rejected(app, "tasks.copy_progress", {**body, "done": True})
    assert error.code == ErrorCode.INVALID_REFERENCE


def test_a_namespace_clone_that_reuses_vectors_completes_at_once(app):
    populated(app)
    clone_namespace(app, "prod", "dev", vectors="reuse")
    assert clone_task(app, "dev").status == "COMPLETED"
    assert resource(app, "dev", Kind.COLLECTION, "docs").vector_mode == "reuse"


def test_triggering_reprocessing_runs_a_task_that_makes_the_collection_ready(app):
    populated(app)
    body = {"namespace_identifier": "prod", "collection_identifier": "docs"}
    new = {**CLIP, "version": "v2"}
    run(app, "collections.clone", {**body, "collection_name": "v2", "feature_extractor": new})
    target = {"namespace_identifier": "prod", "collection_identifier": "v2"}
    run(app, "collections.trigger", target)
    collection = resource(app, "prod", Kind.COLLECTION, "v2")
    assert collection.status == "reprocessing"
    task_id = collection.reprocess_task_id
    again = rejected(app, "collections.trigger", target)
    assert again.code == ErrorCode.NOT_READY and "already" in again.message
    progress = {"task_id": task_id, "done": 3, "total": 6, "finished": False}
    run(app, "tasks.reprocess_progress", progress)
    assert resource(app, "prod", Kind.COLLECTION, "v2").status == "reprocessing"
    run(app, "tasks.reprocess_progress", {**progress, "done": 6, "finished": True})
    ready = resource(app, "prod", Kind.COLLECTION, "v2")
    assert (ready.status, ready.vector_mode) == ("ready", "own")
    last = [e.type for e in envelopes(app)[-3:]]
    assert last == ["ReprocessTask.Completed", "Collection.Reprocessed", "CommandReceipt.Accepted"]


def test_a_clone_of_a_collection_being_reprocessed_awaits_reprocessing_too(app):
    populated(app)
    body = {"namespace_identifier": "prod", "collection_identifier": "docs"}
    new = {**CLIP, "version": "v2"}
    run(app, "collections.clone", {**body, "collection_name": "v2", "feature_extractor": new})
    run(app, "collections.trigger", {"namespace_identifier": "prod", "collection_identifier": "v2"})
    target = {"namespace_identifier": "prod", "collection_identifier": "v2"}
    run(app, "collections.clone", {**target, "collection_name": "v2-copy"})
    clone = resource(app, "prod", Kind.COLLECTION, "v2-copy")
    assert (clone.vector_mode, clone.status) == ("reprocess", "awaiting_reprocess")


def test_collections_named_in_retriever_stages_resolve_and_follow_a_namespace_clone(app):
    populated(app)
    stage = {
        "stage_name": "s",
        "config": {
            "stage_id": "feature_search",
            "parameters": {"searches": [{"query": "q", "collection_ids": ["derived"]}]},
        },
    }
    run(
        app,
        "retrievers.create",
        {
            "namespace_identifier": "prod",
            "retriever_name": "named",
            "collection_identifiers": ["docs"],
            "stages": [stage],
        },
    )

    def searched(ns: str) -> list[str]:
        retriever = resource(app, ns, Kind.RETRIEVER, "named")
        return retriever.stages[0]["config"]["parameters"]["searches"][0]["collection_ids"]

    assert searched("prod") == [resource(app, "prod", Kind.COLLECTION, "derived").id]
    clone_namespace(app, "prod", "dev")
    assert searched("dev") == [resource(app, "dev", Kind.COLLECTION, "derived").id]


def test_a_command_whose_event_would_not_fit_a_kafka_message_is_refused(app):
    populated(app)
    app.max_event_bytes = 10_000
    objects = [{"key": f"k{i}", "text": "x" * 200} for i in range(100)]
    body = {"namespace_identifier": "prod", "bucket_identifier": "raw", "objects": objects}
    before = app.recorder.max_notification_id()
    error = rejected(app, "buckets.objects.add", body)
    assert error.code == ErrorCode.MESSAGE_TOO_LARGE and "smaller commands" in error.message
    assert app.recorder.max_notification_id() == before


def test_event_timestamps_never_go_backwards_even_if_the_wall_clock_does(monkeypatch):
    import datetime as real

    from domain import base as aggregates

    later = real.datetime(2030, 1, 1, tzinfo=real.UTC)
    earlier = real.datetime(2020, 1, 1, tzinfo=real.UTC)
    readings = iter([later, earlier, earlier])

    class SteppingClock(real.datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return next(readings)

    monkeypatch.setattr(aggregates, "datetime", SteppingClock)
    # Restored at teardown: later events must not inherit the test's 2030 timestamps.
    monkeypatch.setattr(aggregates, "_last_timestamp", aggregates._last_timestamp)
    first, second, third = (aggregates.monotonic_now() for _ in range(3))
    assert first == later
    assert first < second < third  # the clock went back; the timestamps did not
