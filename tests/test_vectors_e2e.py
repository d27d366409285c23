"""Vectors through the whole stack: ingest, search, clones that share or copy, classify."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from domain import packed_vectors
from envbranch import Client, EnvbranchError
from tests.conftest import LiveStack

TEXT = {"feature_extractor_name": "text_extractor", "version": "v1"}
TEXTS = {
    "kafka": [
        "Kafka topics keep an ordered log of records",
        "a Kafka consumer group shares the partitions of a topic",
        "brokers replicate Kafka partitions for durability",
    ],
    "cooking": [
        "simmer the tomato sauce with garlic and basil",
        "bake the bread until the crust is golden",
        "whisk eggs and sugar for the cake batter",
    ],
}
SEARCH = {
    "stage_name": "search",
    "config": {
        "stage_id": "feature_search",
        "parameters": {"searches": [{"query": "{{INPUT.query}}", "top_k": 6}], "final_top_k": 6},
    },
}


def environment(client: Client) -> str:
    ns = f"vec-{uuid.uuid4().hex[:8]}"
    client.namespaces.create({"namespace_name": ns})
    client.buckets.create({"bucket_name": "b", "bucket_schema": {"properties": {}}}, namespace=ns)
    client.collections.create(
        {
            "collection_name": "docs",
            "source": {"type": "bucket", "bucket_ids": ["b"]},
            "feature_extractor": TEXT,
        },
        namespace=ns,
    )
    objects = [
        {"key": f"{topic}-{i}", "text": text, "metadata": {"topic": topic}}
        for topic, texts in TEXTS.items()
        for i, text in enumerate(texts)
    ]
    client.buckets.add_objects("b", objects, namespace=ns)
    search_retriever(client, ns, "search", SEARCH)
    return ns


def search_retriever(client: Client, ns: str, name: str, stage: dict[str, Any]) -> None:
    """A retriever of one stage over "docs", taking a text ``query``."""
    client.retrievers.create(
        {
            "retriever_name": name,
            "collection_identifiers": ["docs"],
            "stages": [stage],
            "input_schema": {"query": {"type": "text", "required": True}},
        },
        namespace=ns,
    )


def search(client: Client, ns: str, retriever: str, query: str) -> list[tuple[str, str]]:
    result = client.retrievers.execute(retriever, {"query": query}, namespace=ns)
    return [(d["document_id"], d["payload"]["topic"]) for d in result["documents"]]


def topics_taxonomy(client: Client, ns: str, enrichment: dict[str, str]) -> None:
    """A flat taxonomy labelling by the topic of the nearest document in "docs"."""
    client.taxonomies.create(
        {
            "taxonomy_name": "topics",
            "config": {
                "taxonomy_type": "flat",
                "retriever_id": "search",
                "input_mappings": [
                    {"input_key": "query", "source_type": "payload", "path": "text"}
                ],
                "source_collection": {"collection_id": "docs", "enrichment_fields": [enrichment]},
            },
        },
        namespace=ns,
    )


class Index(BaseModel):
    collection_id: str
    documents: int
    state: str


@pytest.fixture
def client(live_stack: LiveStack) -> Client:
    return live_stack.client()


def test_ingested_objects_are_searchable_at_once_through_the_retriever(client: Client) -> None:
    ns = environment(client)
    result = client.retrievers.execute("search", {"query": "Kafka partitions"}, namespace=ns)
    top = result["documents"][0]
    assert top["payload"]["topic"] == "kafka"
    assert len(result["documents"]) == 6
    [timing] = result["stage_timings"]
    assert timing["stage_id"] == "feature_search" and timing["duration_ms"] >= 0


def test_a_retriever_clone_and_a_namespace_copy_return_the_same_results(client: Client) -> None:
    ns = environment(client)
    expected = search(client, ns, "search", "bread and cake")
    client.retrievers.clone("search", {"retriever_name": "search-2"}, namespace=ns)
    assert search(client, ns, "search-2", "bread and cake") == expected

    started = client.namespaces.clone(ns, {"namespace_name": f"{ns}-copy"})
    task = client.tasks.wait(started.task_id, timeout=120)
    assert task.status == "COMPLETED" and task.result is not None
    assert task.progress is not None and task.progress["points_copied"] == 6
    assert sum(task.result.points.values()) == 6
    assert search(client, f"{ns}-copy", "search", "bread and cake") == expected


def test_documents_written_and_deleted_show_in_searches_at_once(client: Client) -> None:
    ns = environment(client)
    client.collections.write_documents(
        "docs",
        [{"document_id": "extra", "text": "Kafka log compaction", "payload": {"topic": "kafka"}}],
        namespace=ns,
    )
    assert "extra" in [d for d, _ in search(client, ns, "search", "log compaction")]
    client.collections.delete_documents("docs", ["extra"], namespace=ns)
    assert "extra" not in [d for d, _ in search(client, ns, "search", "log compaction")]


def test_a_collection_reports_its_index_and_a_search_may_ask_for_exact_results(
    client: Client,
) -> None:
    ns = environment(client)
    index = client.request("GET", "/v1/collections/docs/index", Index, namespace=ns)
    assert index.state == "indexed"  # six points: searched exactly, nothing to build
    assert index.documents == 6
    assert index.collection_id == client.collections.get("docs", namespace=ns).collection_id
    other = environment(client)  # another namespace's collection of that name is not this
    extra = [{"document_id": "extra", "text": "Kafka log compaction", "payload": {}}]
    client.collections.write_documents("docs", extra, namespace=other)
    assert (
        client.request("GET", "/v1/collections/docs/index", Index, namespace=other).documents == 7
    )
    assert client.request("GET", "/v1/collections/docs/index", Index, namespace=ns).documents == 6
    exact = {**SEARCH["config"]["parameters"]["searches"][0], "exact": True, "hnsw_ef": 64}  # type: ignore[index]
    stage = {
        "stage_name": "s",
        "config": {
            "stage_id": "feature_search",
            "parameters": {"searches": [exact], "final_top_k": 6},
        },
    }
    search_retriever(client, ns, "exact", stage)
    assert search(client, ns, "exact", "bread and cake") == search(
        client, ns, "search", "bread and cake"
    )
    with pytest.raises(EnvbranchError) as caught:
        client.request("GET", "/v1/collections/nope/index", Index, namespace=ns)
    assert caught.value.status == 404


def test_a_retriever_on_a_collection_awaiting_reprocessing_refuses_to_run(client: Client) -> None:
    ns = environment(client)
    client.collections.clone(
        "docs",
        {"collection_name": "docs-v2", "feature_extractor": {**TEXT, "params": {"dim": 128}}},
        namespace=ns,
    )
    client.retrievers.clone(
        "search",
        {"retriever_name": "search-v2", "collection_identifiers": ["docs-v2"]},
        namespace=ns,
    )
    with pytest.raises(EnvbranchError) as refused:
        client.retrievers.execute("search-v2", {"query": "x"}, namespace=ns)
    assert refused.value.status == 409 and refused.value.type == "not_ready"
    assert "reprocess" in refused.value.message


def test_a_flat_taxonomy_classifies_documents_against_its_reference_collection(
    client: Client,
) -> None:
    ns = environment(client)
    topics_taxonomy(client, ns, {"field_path": "topic"})
    answer: dict[str, Any] = client.taxonomies.classify(
        "topics",
        [{"text": "garlic sauce with basil"}, {"text": "consumer group partitions"}],
        namespace=ns,
    )
    assert [r["topic"] for r in answer["results"]] == ["cooking", "kafka"]


def test_after_an_extractor_swap_the_trigger_task_makes_the_retriever_work(
    client: Client,
) -> None:
    ns = environment(client)
    swapped = {**TEXT, "params": {"dim": 128}}
    client.collections.clone(
        "docs", {"collection_name": "docs-v2", "feature_extractor": swapped}, namespace=ns
    )
    client.retrievers.clone(
        "search",
        {"retriever_name": "search-v2", "collection_identifiers": ["docs-v2"]},
        namespace=ns,
    )
    with pytest.raises(EnvbranchError):
        client.retrievers.execute("search-v2", {"query": "bread"}, namespace=ns)
    started = client.collections.trigger("docs-v2", namespace=ns)
    task = client.tasks.wait(started["task_id"], timeout=120)
    assert task.status == "COMPLETED" and task.operation == "reprocess"
    assert task.task_type == "api_collections_trigger"  # Mixpeek's name
    assert task.progress is not None and task.progress["documents_done"] == 6
    assert client.collections.get("docs-v2", namespace=ns).status == "ready"
    results = search(client, ns, "search-v2", "bake the bread")
    assert results[0][1] == "cooking" and len(results) == 6


def test_applying_a_taxonomy_enriches_every_document_of_a_clone_and_not_its_source(
    client: Client,
) -> None:
    ns = environment(client)
    topics_taxonomy(client, ns, {"field_path": "topic", "target_field": "predicted"})
    client.collections.clone("docs", {"collection_name": "labelled"}, namespace=ns)
    started = client.collections.apply_taxonomy("labelled", "topics", namespace=ns)
    task = client.tasks.wait(started["task_id"], timeout=120)
    assert task.status == "COMPLETED" and task.operation == "apply_taxonomy"
    assert task.task_type == "api_taxonomies_execute"  # Mixpeek's name
    assert task.progress is not None and task.progress["documents_done"] == 6
    client.retrievers.create(
        {
            "retriever_name": "labelled-search",
            "collection_identifiers": ["labelled"],
            "stages": [SEARCH],
        },
        namespace=ns,
    )
    labelled = client.retrievers.execute("labelled-search", {"query": "x"}, namespace=ns)
    assert all(d["payload"]["predicted"] == d["payload"]["topic"] for d in labelled["documents"])
    source = client.retrievers.execute("search", {"query": "x"}, namespace=ns)
    assert all("predicted" not in d["payload"] for d in source["documents"])


def test_swapping_to_a_real_embedding_model_and_reprocessing_gives_semantic_search(
    client: Client,
) -> None:
    pytest.importorskip("sentence_transformers", reason="needs envbranch[embeddings]")
    ns = environment(client)
    minilm = {"feature_extractor_name": "minilm_extractor", "version": "v1"}
    client.collections.clone(
        "docs", {"collection_name": "docs-minilm", "feature_extractor": minilm}, namespace=ns
    )
    client.retrievers.clone(
        "search",
        {"retriever_name": "semantic", "collection_identifiers": ["docs-minilm"]},
        namespace=ns,
    )
    task = client.tasks.wait(
        client.collections.trigger("docs-minilm", namespace=ns)["task_id"], timeout=180
    )
    assert task.status == "COMPLETED"
    # No word in common with the cooking texts: the hashing extractor ranks a Kafka text
    # first, the semantic model a cooking one. The swap changed what the vectors mean.
    for query in ("oven", "a delicious meal"):
        assert search(client, ns, "search", query)[0][1] == "kafka"
        assert search(client, ns, "semantic", query)[0][1] == "cooking"


def vectors_collection(client: Client, dim: int) -> str:
    """A namespace with a collection "vecs" of ``dim``-d vectors."""
    ns = f"vec-{uuid.uuid4().hex[:8]}"
    client.namespaces.create({"namespace_name": ns})
    client.buckets.create({"bucket_name": "b", "bucket_schema": {"properties": {}}}, namespace=ns)
    extractor = {**TEXT, "params": {"dim": dim}}
    client.collections.create(
        {
            "collection_name": "vecs",
            "source": {"type": "bucket", "bucket_ids": ["b"]},
            "feature_extractor": extractor,
        },
        namespace=ns,
    )
    return ns


def test_vectors_sent_as_lists_or_packed_travel_packed_and_the_audit_keeps_digests(
    client: Client,
) -> None:
    ns = vectors_collection(client, 384)
    rng = random.Random(7)
    # 150 documents whose vectors as JSON lists are more than the 1 MiB a command may be:
    # the body is taken (a quarter of that once packed), and the command is well within
    values = [[rng.uniform(-1, 1) for _ in range(384)] for _ in range(150)]
    listed = [{"document_id": f"l{i}", "vector": v} for i, v in enumerate(values)]
    assert len(json.dumps({"documents": listed})) > 1024 * 1024
    written = client.collections.write_documents("vecs", listed, namespace=ns)
    packed = [{"document_id": "p0", "vector": packed_vectors.pack(values[0])}]
    client.collections.write_documents("vecs", packed, namespace=ns)
    assert client.request("GET", "/v1/collections/vecs/index", Index, namespace=ns).documents == 151
    entries = client.audit(command_id=written.command_id, type="Collection.DocumentsWritten")
    (entry,) = entries.results
    first = entry.data["documents"][0]
    assert "vector" not in first
    assert first["vector_size"] == 384
    assert first["vector_digest"] == packed_vectors.digest(values[0])
    assert len(json.dumps(entry.data)) < 150 * 200  # IDs and digests, not vectors


def test_a_body_that_packs_into_too_large_a_command_is_refused_before_it_is_sent(
    client: Client,
) -> None:
    ns = vectors_collection(client, 384)
    # short numbers: as lists the body is under 1 MiB; packed, each vector is 2,048 characters
    documents = [{"document_id": f"d{i}", "vector": [0.5] * 384} for i in range(520)]
    assert len(json.dumps({"documents": documents})) < 1024 * 1024
    with pytest.raises(EnvbranchError) as caught:
        client.collections.write_documents("vecs", documents, namespace=ns)
    assert caught.value.status == 413
    assert "the limit is 1048576" in caught.value.message
    assert client.request("GET", "/v1/collections/vecs/index", Index, namespace=ns).documents == 0
    # a body beyond four times the limit is refused as it is read
    huge = [{"document_id": f"d{i}", "vector": [0.123456789] * 384} for i in range(1000)]
    with pytest.raises(EnvbranchError) as caught:
        client.collections.write_documents("vecs", huge, namespace=ns)
    assert caught.value.status == 413
