"""Create and clone each of the four kinds through the commands topic, on both event stores."""

from __future__ import annotations

from typing import Any

from domain.envelopes import EventEnvelope, Topics
from envbranch.settings import Settings
from tests import scenario
from tests.support import BackgroundStack, dlq_entries, encode, events_until, produce, receipts


def by_type(events: list[EventEnvelope], type_: str) -> list[EventEnvelope]:
    return [e for e in events if e.type == type_]


def named(events: list[EventEnvelope], kind: str, name: str) -> EventEnvelope:
    field = f"{kind}_name"
    matches = [e for e in events if e.type.startswith(kind.title()) and e.data.get(field) == name]
    assert matches, f"no {kind} named {name}"
    return matches[0]


def run_scenario(
    settings: Settings, bootstrap: str, topics: Topics, commands: list[dict[str, Any]]
) -> list[EventEnvelope]:
    with BackgroundStack(settings, bootstrap, ("command-processor", "relay")):
        produce(bootstrap, topics.commands, [encode(c) for c in commands])
        wanted = {c["command_id"] for c in commands}
        try:
            return events_until(
                bootstrap,
                topics,
                lambda events: wanted <= set(receipts(events)),
                what="a receipt for every command",
            )
        except AssertionError as e:
            raise AssertionError(f"{e}; DLQ: {dlq_entries(bootstrap, topics)}") from None


def test_creates_and_clones_of_every_kind_become_events_with_remapped_references(
    settings: Settings, bootstrap: str, topics: Topics
) -> None:
    commands = scenario.production() + scenario.clones()
    events = run_scenario(settings, bootstrap, topics, commands)

    positions = [e.position for e in events]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert {e.command_id for e in events} == {c["command_id"] for c in commands}
    assert all(e.actor == "tester" for e in events)
    assert not by_type(events, "CloneTask.Completed")

    prod = named(events, "namespace", "prod").aggregate_id
    docs_text = named(events, "collection", "docs-text")
    labels = named(events, "collection", "labels").aggregate_id
    search = named(events, "retriever", "search")
    bucket = named(events, "bucket", "docs").aggregate_id
    assert docs_text.type == "Collection.Created"
    assert docs_text.namespace_id == prod
    assert docs_text.data["source"]["bucket_ids"] == [bucket]  # the name resolved to the ID
    derived = named(events, "collection", "docs-derived")
    assert derived.data["source"]["collection_id"] == docs_text.aggregate_id

    # Collection clone: a new extractor awaits reprocessing, the same one reuses vectors.
    minilm = named(events, "collection", "docs-minilm")
    assert minilm.type == "Collection.Cloned"
    assert minilm.data["source_collection_id"] == docs_text.aggregate_id
    assert minilm.data["vector_mode"] == "reprocess"
    assert minilm.data["feature_extractor"]["feature_extractor_name"] == "minilm_extractor"
    copy = named(events, "collection", "docs-copy")
    assert copy.data["vector_mode"] == "reuse"
    assert copy.data["feature_extractor"] == docs_text.data["feature_extractor"]
    assert copy.data["source"] == docs_text.data["source"]

    # Retriever clone: stages replaced wholesale, collections shared.
    rerank = named(events, "retriever", "search-rerank")
    assert rerank.type == "Retriever.Cloned"
    assert rerank.data["source_retriever_id"] == search.aggregate_id
    assert rerank.data["collection_ids"] == search.data["collection_ids"]
    assert [s["config"]["stage_id"] for s in rerank.data["stages"]] == [
        "feature_search",
        "rerank",
    ]
    assert rerank.data["input_schema"] == search.data["input_schema"]

    # Taxonomy clone: the override swaps the retriever; both versions exist side by side.
    topics_v1 = named(events, "taxonomy", "topics")
    topics_v2 = named(events, "taxonomy", "topics-rerank")
    assert topics_v2.type == "Taxonomy.Cloned"
    assert topics_v2.data["source_taxonomy_id"] == topics_v1.aggregate_id
    assert topics_v1.data["config"]["retriever_id"] == search.aggregate_id
    assert topics_v2.data["config"]["retriever_id"] == rerank.aggregate_id
    assert topics_v2.data["config"]["source_collection"]["collection_id"] == labels

    assert_namespace_clone_is_complete_and_self_contained(events, prod)


def assert_namespace_clone_is_complete_and_self_contained(
    events: list[EventEnvelope], prod: str
) -> None:
    staging_event = named(events, "namespace", "staging")
    staging = staging_event.aggregate_id
    assert staging_event.type == "Namespace.Cloned"
    assert staging_event.data["source_namespace_id"] == prod

    # The collections' vectors are copied by the vector processor (not running here):
    # the task holds its result and waits for those copies.
    [copying] = by_type(events, "CloneTask.Copying")
    result = copying.data["result"]
    copied = [
        e.aggregate_id
        for e in by_type(events, "Collection.Cloned")
        if e.namespace_id == staging_event.aggregate_id and e.data["vector_mode"] == "copy"
    ]
    assert sorted(copying.data["copies"]) == sorted(copied) and len(copied) == 4
    assert result["source_namespace_id"] == prod and result["namespace_id"] == staging
    assert result["task_id"] == staging_event.data["clone_task_id"]

    # Every resource the source namespace held, per kind, maps to a clone.
    held: dict[str, set[str]] = {}
    for e in by_type(events, "Namespace.ResourceAdded"):
        if e.aggregate_id == prod and e.position < staging_event.position:
            held.setdefault(e.data["kind"], set()).add(e.data["resource_id"])
    plural = {"bucket": "buckets", "collection": "collections", "retriever": "retrievers"}
    plural["taxonomy"] = "taxonomies"
    for kind, ids in held.items():
        assert set(result["mapping"][plural[kind]]) == ids, kind
        assert result["counts"][plural[kind]] == len(ids)
    assert result["mapping"]["namespaces"] == {prod: staging}
    assert result["counts"] == {"buckets": 1, "collections": 5, "retrievers": 2, "taxonomies": 3}

    # Every cloned resource lives in staging and every reference points inside staging.
    inside = {new for mapping in result["mapping"].values() for new in mapping.values()}
    cloned = [e for e in events if e.type.endswith(".Cloned") and e.namespace_id == staging]
    assert {e.aggregate_id for e in cloned} == inside
    for e in cloned:
        for ref in references(e):
            assert ref in inside, f"{e.type} {e.aggregate_id} refers outside the clone: {ref}"
    # The clone of a collection keeps its own extractor and gets its own vectors.
    for e in cloned:
        if e.type == "Collection.Cloned":
            assert e.data["vector_mode"] in ("copy", "reprocess")


def references(e: EventEnvelope) -> list[str]:
    d = e.data
    refs: list[str] = []
    if "source" in d:
        refs += d["source"].get("bucket_ids", [])
        refs += [d["source"]["collection_id"]] if d["source"].get("collection_id") else []
    refs += d.get("collection_ids", [])
    config = d.get("config") or {}
    refs += [config["retriever_id"]] if config.get("retriever_id") else []
    if config.get("source_collection"):
        refs.append(config["source_collection"]["collection_id"])
    for node in config.get("hierarchical_nodes") or []:
        refs += [
            node[k]
            for k in ("collection_id", "parent_collection_id", "retriever_id")
            if node.get(k)
        ]
    return refs


def test_the_same_command_id_twice_yields_its_events_once(
    settings: Settings, bootstrap: str, topics: Topics
) -> None:
    [create] = scenario.production()[:1]
    again = dict(create)
    rename = scenario.command(
        "namespaces.update", {"namespace_identifier": "prod", "description": "after"}
    )
    events = run_scenario(settings, bootstrap, topics, [create, again, rename])
    assert len(by_type(events, "Namespace.Created")) == 1
    assert len([e for e in events if e.command_id == create["command_id"]]) == 3
