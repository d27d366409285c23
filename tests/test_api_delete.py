"""DELETE through the API, on a running stack: a delete is an event, and what was made
from the deleted resource stays (clones, lineage, audit); a ref onto it refuses; a clone
as of before the delete brings it back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mixpeek import Mixpeek

from envbranch import Client
from envbranch.client import EnvbranchError
from tests.conftest import LiveStack
from tests.test_api import KINDS, production, unique


@pytest.fixture
def client(live_stack: LiveStack) -> Iterator[Client]:
    with live_stack.client() as sdk:
        yield sdk


def refused(call: object, *args: object, **kw: object) -> EnvbranchError:
    with pytest.raises(EnvbranchError) as error:
        call(*args, **kw)  # type: ignore[operator]
    return error.value


NAMES = {
    "buckets": "docs",
    "collections": "docs-derived",
    "retrievers": "search",
    "taxonomies": "topics",
}


@pytest.mark.parametrize("plural", KINDS)
def test_a_deleted_resource_is_gone_from_reads_and_its_name_is_free(
    client: Client, plural: str
) -> None:
    ns = production(client)
    kind = getattr(client, plural)
    row = kind.get(NAMES[plural], namespace=ns)
    resource_id = getattr(row, f"{plural[:-1] if plural != 'taxonomies' else 'taxonomy'}_id")

    answer = kind.delete(NAMES[plural], namespace=ns)

    assert (answer.success, answer.id, answer.name) == (True, resource_id, NAMES[plural])
    for identifier in (resource_id, NAMES[plural]):
        gone = refused(kind.get, identifier, namespace=ns)
        assert (gone.status, gone.type) == (404, "not_found")
    listed = kind.list(limit=100, namespace=ns).results
    assert resource_id not in str([r.model_dump() for r in listed])
    again = refused(kind.delete, resource_id, namespace=ns)
    assert again.status == 404 and "deleted" in again.message
    history = client.audit(resource_id=resource_id, limit=1000).results
    assert history[-1].type.endswith(".Deleted")  # the delete is an event like any other


def test_a_clone_of_a_deleted_collection_keeps_its_vectors_and_a_clone_as_of_before_restores_it(
    client: Client,
) -> None:
    ns = production(client)
    client.buckets.add_objects(
        "docs", [{"key": "lh", "text": "the lighthouse keeper lit the lamp"}], namespace=ns
    )
    reuse = client.collections.clone("docs-text", {"collection_name": "docs-reuse"}, namespace=ns)
    source_id = reuse.source_collection_id
    searches = [{"query": "{{INPUT.query}}"}]
    search = {
        "stage_name": "s",
        "config": {"stage_id": "feature_search", "parameters": {"searches": searches}},
    }
    body = {
        "retriever_name": "on-clone",
        "collection_identifiers": ["docs-reuse"],
        "stages": [search],
        "input_schema": {"query": {"type": "text", "required": True}},
    }
    client.retrievers.create(body, namespace=ns)

    deleted = client.collections.delete("docs-text", namespace=ns)

    found = client.retrievers.execute("on-clone", {"query": "lighthouse lamp"}, namespace=ns)
    assert [d["payload"].get("text") for d in found["documents"]][:1] == [
        "the lighthouse keeper lit the lamp"
    ]
    lineage = client.lineage(reuse.collection.collection_id)
    assert [edge.source_id for edge in lineage.ancestors] == [source_id]
    restored = client.collections.clone(
        source_id,
        {"collection_name": "docs-text-restored", "as_of_position": deleted.position - 1},
        namespace=ns,
    )
    assert restored.source_collection_id == source_id
    # the name of the deleted collection is free for a new one
    client.collections.create(
        {
            "collection_name": "docs-text",
            "source": {"type": "bucket", "bucket_ids": ["docs"]},
            "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v1"},
        },
        namespace=ns,
    )


def test_a_ref_onto_a_deleted_retriever_refuses_until_it_is_moved(client: Client) -> None:
    ns = production(client)
    client.retrievers.clone("search", {"retriever_name": "search-b"}, namespace=ns)
    client.refs.create(
        {"ref_name": "live", "target_kind": "retriever", "target": "search"}, namespace=ns
    )

    client.retrievers.delete("search", namespace=ns)

    through_ref = refused(client.retrievers.get, "ref:live", namespace=ns)
    assert through_ref.status == 404
    onto_deleted = refused(client.refs.move, "live", {"target": "search"}, namespace=ns)
    assert onto_deleted.status == 404
    client.refs.move("live", {"target": "search-b"}, namespace=ns)
    assert client.retrievers.get("ref:live", namespace=ns).retriever_name == "search-b"


def test_a_deleted_namespace_takes_its_resources_with_it_and_frees_its_name(
    client: Client,
) -> None:
    ns = production(client)
    clone = client.namespaces.clone(ns, {"namespace_name": unique("copy"), "vectors": "reuse"})
    held = client.collections.get("docs-text", namespace=ns).collection_id

    answer = client.namespaces.delete(ns)

    assert (answer.kind, answer.name) == ("namespace", ns)
    assert refused(client.namespaces.get, ns).status == 404
    assert refused(client.collections.get, held, namespace=ns).status == 404
    assert ns not in [n.namespace_name for n in client.namespaces.list(limit=1000).results]
    # a clone of it keeps working, and the name can be taken again
    assert client.collections.get("docs-text", namespace=clone.namespace.namespace_id)
    assert client.namespaces.create({"namespace_name": ns}).namespace_name == ns


def test_mixpeeks_sdk_deletes_through_envbranch(client: Client, live_stack: LiveStack) -> None:
    ns = production(client)
    mx = Mixpeek(api_key=live_stack.admin_key, base_url=f"{live_stack.url}/v1", namespace=ns)
    retriever = client.retrievers.get("search", namespace=ns).retriever_id

    answer = mx.retrievers.delete(retriever)

    assert answer["success"] is True and answer["id"] == retriever
    assert refused(client.retrievers.get, retriever, namespace=ns).status == 404


def test_a_retried_delete_gets_its_first_answer(client: Client) -> None:
    ns = production(client)

    first = client.retrievers.delete("search", namespace=ns, idempotency_key="del-search")
    again = client.retrievers.delete("search", namespace=ns, idempotency_key="del-search")
    gone = client.namespaces.delete(ns, idempotency_key="del-ns")
    gone_again = client.namespaces.delete(ns, idempotency_key="del-ns")

    assert (again.id, again.position, again.command_id) == (
        first.id,
        first.position,
        first.command_id,
    )
    assert (gone_again.id, gone_again.position) == (gone.id, gone.position)


def test_a_deleted_namespace_comes_back_as_a_clone_as_of_before_its_delete(
    client: Client,
) -> None:
    ns = production(client)
    objects = [{"key": f"o{i}", "text": f"object {i}"} for i in range(3)]
    client.buckets.add_objects("docs", objects, namespace=ns)
    ns_id = client.namespaces.get(ns).namespace_id
    deleted = client.namespaces.delete(ns)

    back = client.namespaces.clone(
        ns_id,
        {"namespace_name": unique("restored"), "as_of_position": deleted.position - 1},
    )

    restored = back.namespace.namespace_id
    assert back.source_namespace_id == ns_id
    assert client.collections.get("docs-text", namespace=restored).collection_name == "docs-text"
    assert client.buckets.get("docs", namespace=restored).object_count == 3
