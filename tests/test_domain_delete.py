"""Pure tests of deletes: a resource or a namespace leaves, its history stays (in-memory
SQLite event store)."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent

from application.environments import Environments
from application.unit import Unit
from domain.base import Resource, Snapshot
from domain.collection import Collection
from domain.errors import CommandRejected, ErrorCode
from domain.ids import Kind
from domain.namespace import Namespace, NamespaceName
from domain.refs import Ref
from tests.test_domain import (
    SQLITE,
    clone_namespace,
    create_bucket,
    create_namespace,
    create_retriever,
    envelopes,
    namespace,
    populated,
    rejected,
    resource,
    run,
)

NAMES = {
    Kind.BUCKET: "extra",
    Kind.COLLECTION: "derived",
    Kind.RETRIEVER: "search",
    Kind.TAXONOMY: "tags",
}


@pytest.fixture
def app() -> Environments:
    return Environments(env=SQLITE)


def position(app: Environments) -> int:
    return app.recorder.max_notification_id() or 0


def delete(app: Environments, kind: Kind, identifier: str, ns: str = "prod") -> None:
    body = {"namespace_identifier": ns, f"{kind.value}_identifier": identifier}
    run(app, f"{kind.plural}.delete", body)


def refused_as_deleted(app: Environments, type_: str, body: dict[str, Any]) -> CommandRejected:
    error = rejected(app, type_, body)
    assert error.code == ErrorCode.NOT_FOUND, error
    assert "was deleted" in error.message, error
    return error


def aggregate(app: Environments, aggregate_id: str) -> Any:
    return app.repository.get(aggregate_id)


# --- deleting a resource -------------------------------------------------------------


@pytest.mark.parametrize("by", ["name", "id"])
@pytest.mark.parametrize("kind", list(NAMES), ids=lambda k: k.value)
def test_each_kind_of_resource_is_deleted_by_name_or_by_id(app, kind, by):
    populated(app)
    gone = resource(app, "prod", kind, NAMES[kind])
    before = position(app)

    delete(app, kind, NAMES[kind] if by == "name" else gone.id)

    assert aggregate(app, gone.id).deleted
    ns = namespace(app, "prod")
    assert not ns.holds(kind, gone.id) and ns.find(kind, NAMES[kind]) is None
    written = [(e.type, e.aggregate_id, e.data) for e in envelopes(app) if e.position > before]
    assert written[:2] == [
        (f"{type(gone).__name__}.Deleted", gone.id, {}),
        ("Namespace.ResourceRemoved", ns.id, {"kind": kind.value, "resource_id": gone.id}),
    ]


def test_a_deleted_resources_name_is_free_for_a_new_resource(app):
    populated(app)
    old = resource(app, "prod", Kind.BUCKET, "extra")
    delete(app, Kind.BUCKET, "extra")

    create_bucket(app, "prod", "extra")

    new = resource(app, "prod", Kind.BUCKET, "extra")
    assert new.id != old.id and not new.deleted
    delete(app, Kind.BUCKET, "extra")  # and the new one goes its own way
    assert aggregate(app, old.id).deleted and aggregate(app, new.id).deleted


@pytest.mark.parametrize("by", ["name", "id"])
def test_a_deleted_resource_refuses_rename_description_clone_and_a_second_delete(app, by):
    populated(app)
    gone = resource(app, "prod", Kind.RETRIEVER, "search")
    delete(app, Kind.RETRIEVER, "search")
    named = {
        "namespace_identifier": "prod",
        "retriever_identifier": "search" if by == "name" else gone.id,
    }

    for type_, more in [
        ("retrievers.update", {"retriever_name": "again"}),
        ("retrievers.update", {"description": "again"}),
        ("retrievers.clone", {"retriever_name": "again"}),
        ("retrievers.delete", {}),
    ]:
        error = refused_as_deleted(app, type_, {**named, **more})
        assert error.field == "body.retriever_identifier"
        assert gone.id in error.message and error.details["deleted_id"] == gone.id


def test_writing_to_a_deleted_collection_says_it_was_deleted(app):
    populated(app)
    delete(app, Kind.COLLECTION, "derived")
    body = {"namespace_identifier": "prod", "collection_identifier": "derived"}
    refused_as_deleted(app, "collections.documents.write", {**body, "documents": [{"text": "x"}]})
    refused_as_deleted(app, "collections.trigger", body)


def test_the_domain_refuses_a_change_to_a_deleted_resource_whoever_asks(app):
    populated(app)
    delete(app, Kind.TAXONOMY, "tags")
    gone = app.repository.get(namespace(app, "prod").removed_under(Kind.TAXONOMY, "tags"))
    assert isinstance(gone, Resource)
    for change in (gone.delete, lambda: gone.rename("x"), lambda: gone.clone()):
        with pytest.raises(CommandRejected, match="was deleted"):
            change()


def test_a_clone_of_a_since_deleted_resource_goes_on_as_it_was(app):
    populated(app)
    body = {"namespace_identifier": "prod", "collection_identifier": "docs"}
    run(app, "collections.clone", {**body, "collection_name": "docs-copy"})
    source = resource(app, "prod", Kind.COLLECTION, "docs")

    delete(app, Kind.COLLECTION, "docs")

    clone = resource(app, "prod", Kind.COLLECTION, "docs-copy")
    assert clone.source_collection_id == source.id and not clone.deleted
    copy = {"namespace_identifier": "prod", "collection_identifier": "docs-copy"}
    run(app, "collections.documents.write", {**copy, "documents": [{"text": "still here"}]})
    run(app, "collections.update", {**copy, "description": "outlived its source"})
    run(app, "collections.clone", {**copy, "collection_name": "docs-copy-2"})


def test_deleting_what_another_resource_reads_is_allowed_and_a_namespace_clone_keeps_it(app):
    populated(app)
    docs = resource(app, "prod", Kind.COLLECTION, "docs").id
    raw = resource(app, "prod", Kind.BUCKET, "raw").id

    delete(app, Kind.COLLECTION, "docs")  # the retriever "search" reads it
    delete(app, Kind.BUCKET, "raw")  # nothing refuses: the readers fail when used

    result = clone_namespace(app, "prod", "staging")
    staged = resource(app, "staging", Kind.RETRIEVER, "search")
    assert docs in staged.collection_ids  # the dangling reference, as in its source
    assert docs not in result["mapping"]["collections"] and raw not in result["mapping"]["buckets"]


# --- deleting a namespace ------------------------------------------------------------


def test_deleting_a_namespace_is_one_event_and_frees_its_name(app):
    populated(app)
    ns = namespace(app, "prod")
    before = position(app)

    run(app, "namespaces.delete", {"namespace_identifier": "prod"})

    written = [e.type for e in envelopes(app) if e.position > before]
    assert written == ["Namespace.Deleted", "NamespaceName.Released", "CommandReceipt.Accepted"]
    assert aggregate(app, ns.id).deleted
    assert aggregate(app, NamespaceName.id_for("prod")).claimed_by is None
    for resource_id in (i for kind in ns.resources.values() for i in kind):
        assert not aggregate(app, resource_id).deleted  # untouched, only unreachable


def test_a_deleted_namespace_and_what_it_held_are_unreachable_by_id_and_by_name(app):
    populated(app)
    ns = namespace(app, "prod")
    run(app, "namespaces.delete", {"namespace_identifier": ns.id})

    for identifier in ("prod", ns.id):
        named = {"namespace_identifier": identifier}
        error = refused_as_deleted(app, "namespaces.update", {**named, "description": "x"})
        assert error.field == "body.namespace_identifier" and ns.id in error.message
        refused_as_deleted(app, "namespaces.delete", named)
        refused_as_deleted(app, "namespaces.clone", {**named, "namespace_name": "again"})
        refused_as_deleted(app, "retrievers.update", {**named, "retriever_identifier": "search"})
        more = {"bucket_name": "more", "bucket_schema": {"properties": {}}}
        refused_as_deleted(app, "buckets.create", {**named, **more})


def test_a_new_namespace_takes_a_deleted_ones_name_and_starts_empty(app):
    populated(app)
    old = namespace(app, "prod")
    run(app, "namespaces.delete", {"namespace_identifier": "prod"})

    create_namespace(app, "prod")

    new = namespace(app, "prod")
    assert new.id != old.id and not any(new.resources.values())
    create_bucket(app, "prod", "raw")  # names of the old one mean nothing here
    error = rejected(app, "namespaces.delete", {"namespace_identifier": old.id})
    assert error.code == ErrorCode.NOT_FOUND and "was deleted" in error.message


def test_a_namespace_renamed_away_is_not_found_under_its_old_name_not_deleted(app):
    create_namespace(app, "prod")
    run(app, "namespaces.update", {"namespace_identifier": "prod", "namespace_name": "live"})
    error = rejected(app, "namespaces.delete", {"namespace_identifier": "prod"})
    assert error.code == ErrorCode.NOT_FOUND and "was deleted" not in error.message


def test_a_delete_in_one_namespace_leaves_another_as_it_was(app):
    populated(app)
    clone_namespace(app, "prod", "staging")
    prod_before = namespace(app, "prod").resources

    delete(app, Kind.COLLECTION, "docs", ns="staging")
    delete(app, Kind.RETRIEVER, "search", ns="staging")

    assert namespace(app, "prod").resources == prod_before
    assert not resource(app, "prod", Kind.COLLECTION, "docs").deleted
    run(app, "namespaces.delete", {"namespace_identifier": "staging"})
    run(
        app,
        "retrievers.update",
        {"namespace_identifier": "prod", "retriever_identifier": "search", "description": "fine"},
    )


# --- refs ----------------------------------------------------------------------------


def create_ref(app: Environments, target: str, kind: str = "retriever") -> Ref:
    body = {"namespace_identifier": "prod", "ref_name": "production", "target_kind": kind}
    run(app, "refs.create", {**body, "target": target, "reason": "release"})
    found: object = app.repository.get(Ref.id_for(namespace(app, "prod").id, "production"))
    assert isinstance(found, Ref)
    return found


def move(app: Environments, target: str) -> None:
    run(
        app,
        "refs.move",
        {"namespace_identifier": "prod", "ref_name": "production", "target": target},
    )


def resolve(app: Environments, ref: Ref) -> str:
    return Unit(app.repository).ref_target(app.repository.get(ref.id))


def test_a_ref_to_a_deleted_target_refuses_to_resolve_naming_the_ref_and_the_target(app):
    populated(app)
    target = resource(app, "prod", Kind.RETRIEVER, "search").id
    ref = create_ref(app, "search")
    assert resolve(app, ref) == target

    delete(app, Kind.RETRIEVER, "search")

    with pytest.raises(CommandRejected) as info:
        resolve(app, ref)
    error = info.value
    assert error.code == ErrorCode.NOT_FOUND
    assert "'production'" in error.message and target in error.message
    assert "was deleted" in error.message
    assert error.details == {"ref_name": "production", "target_id": target}


def test_a_ref_to_a_resource_of_a_deleted_namespace_refuses_to_resolve(app):
    populated(app)
    clone_namespace(app, "prod", "staging")
    elsewhere = resource(app, "staging", Kind.RETRIEVER, "search").id
    ref = create_ref(app, elsewhere)  # an ID of another namespace

    run(app, "namespaces.delete", {"namespace_identifier": "staging"})

    with pytest.raises(CommandRejected, match="whose namespace 'staging'.*was deleted"):
        resolve(app, ref)


def test_a_ref_to_a_deleted_namespace_refuses_to_resolve(app):
    populated(app)
    create_namespace(app, "staging")
    ref = create_ref(app, "staging", kind="namespace")
    run(app, "namespaces.delete", {"namespace_identifier": "staging"})
    with pytest.raises(CommandRejected, match="namespace 'staging'.*which was deleted"):
        resolve(app, ref)


def test_a_ref_is_not_moved_created_or_promoted_to_a_deleted_target(app):
    populated(app)
    create_retriever(app, "prod", "v2", ["docs"])
    v2 = resource(app, "prod", Kind.RETRIEVER, "v2").id
    create_ref(app, "search")
    delete(app, Kind.RETRIEVER, "v2")
    named = {"namespace_identifier": "prod", "ref_name": "production"}

    for target in ("v2", v2):
        error = refused_as_deleted(app, "refs.move", {**named, "target": target})
        assert error.field == "body.target"
    create = {"namespace_identifier": "prod", "ref_name": "staging", "target_kind": "retriever"}
    refused_as_deleted(app, "refs.create", {**create, "target": v2})
    gate = {"thresholds": [{"metric": "ndcg@10", "min": 0.1}]}
    promote = {**named, "candidate": v2, "evaluation_id": "eval_" + "0" * 32, "gate": gate}
    error = refused_as_deleted(app, "refs.promote", promote)
    assert error.field == "body.candidate"


def test_a_ref_to_a_deleted_target_is_mended_by_moving_it_to_a_live_one(app):
    populated(app)
    create_retriever(app, "prod", "v2", ["docs"])
    ref = create_ref(app, "search")
    delete(app, Kind.RETRIEVER, "search")

    move(app, "v2")

    assert resolve(app, ref) == resource(app, "prod", Kind.RETRIEVER, "v2").id


@pytest.mark.parametrize("how", ["previous", "position"])
def test_a_rollback_to_a_since_deleted_target_is_refused(app, how):
    populated(app)
    create_retriever(app, "prod", "v2", ["docs"])
    search = resource(app, "prod", Kind.RETRIEVER, "search").id
    create_ref(app, "search")
    then = position(app)
    move(app, "v2")
    delete(app, Kind.RETRIEVER, "search")

    chosen: dict[str, Any] = {"to": "previous"} if how == "previous" else {"position": then}
    body = {"namespace_identifier": "prod", "ref_name": "production", **chosen}
    error = refused_as_deleted(app, "refs.rollback", body)
    assert error.field == f"body.{'to' if how == 'previous' else 'position'}"
    assert "'production'" in error.message and search in error.message


# --- as of a position before the delete ------------------------------------------------


def test_a_collection_deleted_since_is_cloned_as_of_before_its_delete(app):
    populated(app)
    docs = resource(app, "prod", Kind.COLLECTION, "docs")
    then = position(app)
    delete(app, Kind.COLLECTION, "docs")

    for identifier, name in (("docs", "docs-back"), (docs.id, "docs-back-2")):
        body = {"namespace_identifier": "prod", "collection_identifier": identifier}
        run(app, "collections.clone", {**body, "collection_name": name, "as_of_position": then})
        back = resource(app, "prod", Kind.COLLECTION, name)
        assert isinstance(back, Collection) and not back.deleted
        assert back.source_collection_id == docs.id and back.vector_mode == "reuse"
        assert back.description == docs.description and back.source == docs.source


def test_a_namespace_deleted_since_is_cloned_as_of_before_its_delete(app):
    populated(app)
    old = namespace(app, "prod")
    then = position(app)
    delete(app, Kind.RETRIEVER, "search")  # deleted since, as well as the namespace
    run(app, "namespaces.delete", {"namespace_identifier": "prod"})

    for identifier, name in (("prod", "prod-back"), (old.id, "prod-back-2")):
        everything = {"collections": True, "retrievers": True, "taxonomies": True}
        result = clone_namespace(
            app, identifier, name, as_of_position=then, include_resources=everything
        )
        assert result["source_namespace_id"] == old.id
        back = namespace(app, name)
        assert {k: set(v.values()) for k, v in back.resources.items()} == {
            k: set(v.values()) for k, v in old.resources.items()
        }
        assert not resource(app, name, Kind.RETRIEVER, "search").deleted


def test_a_clone_as_of_after_the_delete_does_not_have_the_deleted_resource(app):
    populated(app)
    delete(app, Kind.COLLECTION, "derived")
    body = {"namespace_identifier": "prod", "collection_identifier": "derived"}
    error = rejected(
        app, "collections.clone", {**body, "collection_name": "x", "as_of_position": position(app)}
    )
    assert error.code == ErrorCode.NOT_FOUND and "at position" in error.message


# --- history is not rewritten ----------------------------------------------------------


def test_replaying_the_events_rebuilds_the_same_state_deletes_included(app):
    populated(app)
    clone_namespace(app, "prod", "staging")
    delete(app, Kind.COLLECTION, "docs")
    create_bucket(app, "prod", "extra-2")
    delete(app, Kind.BUCKET, "extra")
    run(app, "namespaces.delete", {"namespace_identifier": "staging"})
    create_namespace(app, "staging")

    replayed = Environments(env=SQLITE)
    notifications = app.recorder.select_notifications(1, 10**6)
    replayed.recorder.insert_events(
        [
            StoredEvent(n.originator_id, n.originator_version, n.topic, n.state)
            for n in notifications
        ]
    )
    for n in notifications:
        if n.originator_version == 1:
            live, again = aggregate(app, n.originator_id), aggregate(replayed, n.originator_id)
            assert _state(again) == _state(live), n.originator_id


def _state(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def test_a_namespace_snapshot_from_before_deletes_existed_loads(app):
    populated(app)
    snapshot = Snapshot.take(namespace(app, "prod"))
    state = {k: v for k, v in snapshot.state.items() if k not in ("removed", "class_version")}
    old = Snapshot(
        originator_id=snapshot.originator_id,
        originator_version=snapshot.originator_version,
        timestamp=snapshot.timestamp,
        topic=snapshot.topic,
        state=state,
    )
    loaded = old.mutate(None)
    assert isinstance(loaded, Namespace) and loaded.removed == {} and not loaded.deleted
    loaded.remove_resource(Kind.BUCKET, loaded.find(Kind.BUCKET, "raw") or "")
    assert loaded.removed_under(Kind.BUCKET, "raw") is not None
