"""Pure tests of clones "as of" an earlier log position (in-memory SQLite event store)."""

from __future__ import annotations

from typing import Any

import pytest

from application.environments import Environments
from domain.collection import Collection
from domain.errors import ErrorCode
from domain.ids import Kind
from tests.test_domain import (
    SQLITE,
    clone_namespace,
    create_retriever,
    namespace,
    populated,
    rejected,
    resource,
    run,
)


@pytest.fixture
def app() -> Environments:
    return Environments(env=SQLITE)


def position(app: Environments) -> int:
    return app.recorder.max_notification_id() or 0


def write_documents(app: Environments, collection: str = "docs") -> None:
    body = {
        "namespace_identifier": "prod",
        "collection_identifier": collection,
        "documents": [{"text": "a new document"}],
    }
    run(app, "collections.documents.write", body)


def clone_collection(app: Environments, **body: Any) -> None:
    base = {"namespace_identifier": "prod", "collection_identifier": "docs"}
    run(app, "collections.clone", {**base, "collection_name": "docs-then", **body})


def test_a_collection_whose_data_is_unchanged_since_clones_as_of_that_position(app):
    populated(app)
    then = position(app)
    create_retriever(app, "prod", "later", ["docs"])  # configuration moves on, data does not

    clone_collection(app, as_of_position=then)

    clone = resource(app, "prod", Kind.COLLECTION, "docs-then")
    assert isinstance(clone, Collection) and clone.vector_mode == "reuse"


def test_a_clone_as_of_a_position_before_a_data_change_is_refused_with_the_earliest_that_works(
    app,
):
    populated(app)
    then = position(app)
    write_documents(app)
    changed_at = position(app) - 1  # the write, then its receipt

    error = rejected(
        app,
        "collections.clone",
        {
            "namespace_identifier": "prod",
            "collection_identifier": "docs",
            "collection_name": "docs-then",
            "as_of_position": then,
        },
    )
    assert error.code is ErrorCode.HISTORY_UNAVAILABLE
    assert error.field == "body.as_of_position"
    assert error.details["earliest_position"] == changed_at
    clone_collection(app, as_of_position=changed_at)  # from the change on, it works
    assert resource(app, "prod", Kind.COLLECTION, "docs-then") is not None


def test_bucket_objects_added_since_count_as_a_change_of_the_collection_made_from_them(app):
    populated(app)
    then = position(app)
    body = {
        "namespace_identifier": "prod",
        "bucket_identifier": "raw",
        "objects": [{"text": "hello"}],
    }
    run(app, "buckets.objects.add", body)
    error = rejected(
        app,
        "collections.clone",
        {
            "namespace_identifier": "prod",
            "collection_identifier": "docs",
            "collection_name": "docs-then",
            "as_of_position": then,
        },
    )
    assert error.code is ErrorCode.HISTORY_UNAVAILABLE


def test_a_name_resolves_as_of_the_position(app):
    populated(app)
    then = position(app)
    run(
        app,
        "collections.update",
        {
            "namespace_identifier": "prod",
            "collection_identifier": "docs",
            "collection_name": "renamed",
        },
    )
    original = resource(app, "prod", Kind.COLLECTION, "renamed")

    clone_collection(app, as_of_position=then)  # "docs" was its name then

    clone = resource(app, "prod", Kind.COLLECTION, "docs-then")
    assert clone.source_collection_id == original.id


def test_a_namespace_clone_as_of_a_position_takes_the_catalog_of_then(app):
    populated(app)
    then = position(app)
    create_retriever(app, "prod", "added-later", ["docs"])
    run(
        app,
        "retrievers.update",
        {
            "namespace_identifier": "prod",
            "retriever_identifier": "search",
            "retriever_name": "search-renamed",
        },
    )

    result = clone_namespace(app, "prod", "prod-then", as_of_position=then)

    staging = namespace(app, "prod-then")
    assert sorted(staging.resources["retriever"].values()) == ["search"]
    assert result["counts"]["retrievers"] == 1
    assert (
        resource(app, "prod", Kind.RETRIEVER, "added-later").id
        not in result["mapping"]["retrievers"]
    )


def test_a_namespace_clone_as_of_a_position_refuses_data_changed_since(app):
    populated(app)
    then = position(app)
    write_documents(app, "derived")
    body = {
        "namespace_identifier": "prod",
        "namespace_name": "prod-then",
        "as_of_position": then,
    }
    error = rejected(app, "namespaces.clone", body)
    assert error.code is ErrorCode.HISTORY_UNAVAILABLE
    assert resource(app, "prod", Kind.COLLECTION, "derived").id in error.details["changed"]


def test_a_namespace_that_did_not_exist_at_the_position_is_not_found(app):
    populated(app, "other")
    then = position(app)
    populated(app)
    body = {"namespace_identifier": "prod", "namespace_name": "x", "as_of_position": then}
    error = rejected(app, "namespaces.clone", body)
    assert error.code is ErrorCode.NOT_FOUND and "did not exist" in error.message


def test_the_earliest_position_offered_after_several_changes_is_one_that_works(app):
    populated(app)
    then = position(app)
    for _ in range(3):
        write_documents(app)
    body = {
        "namespace_identifier": "prod",
        "collection_identifier": "docs",
        "collection_name": "docs-then",
        "as_of_position": then,
    }
    earliest = rejected(app, "collections.clone", body).details["earliest_position"]
    run(app, "collections.clone", {**body, "as_of_position": earliest})
    assert resource(app, "prod", Kind.COLLECTION, "docs-then") is not None


def test_a_taxonomy_applied_since_counts_as_a_change_of_the_collection(app):
    populated(app)
    then = position(app)
    run(
        app,
        "collections.apply_taxonomy",
        {
            "namespace_identifier": "prod",
            "collection_identifier": "derived",
            "taxonomy_identifier": "tags",
        },
    )
    body = {
        "namespace_identifier": "prod",
        "collection_identifier": "derived",
        "collection_name": "derived-then",
        "as_of_position": then,
    }
    error = rejected(app, "collections.clone", body)
    assert error.code is ErrorCode.HISTORY_UNAVAILABLE
