"""The standard-library docstring corpus: size, consistency, determinism, shapes.

Pure and fast: the corpus is built from modules already installed with Python.
"""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest

from envbranch.corpus import (
    CHAPTERS,
    MAX_TEXT,
    Corpus,
    build_corpus,
    chapter_slug,
    evaluation_documents,
    evaluation_queries,
    load_corpus,
)


@pytest.fixture
def corpus() -> Corpus:
    return load_corpus()


def _assert_consistent(corpus: Corpus) -> None:
    """Every cross-reference in ``corpus`` points at something inside it."""
    keys = [doc.key for doc in corpus.documents]
    assert len(keys) == len(set(keys))
    by_key = {doc.key: doc for doc in corpus.documents}
    modules = {doc.metadata["module"] for doc in corpus.documents}
    assert {doc.metadata["chapter"] for doc in corpus.documents} == set(corpus.chapters)

    for query in corpus.queries:
        assert query.query_id in modules
        assert query.text
        assert set(query.judgments) <= set(by_key)
        assert query.judgments[query.query_id] == 2
        assert by_key[query.query_id].metadata["kind"] == "module"
        members = [key for key, grade in query.judgments.items() if grade == 1]
        assert len(members) >= 2
        assert len(query.judgments) == len(members) + 1
        assert all(by_key[key].metadata["module"] == query.query_id for key in members)

    assert [ref.metadata["chapter"] for ref in corpus.references] == corpus.chapters
    for ref in corpus.references:
        assert ref.key == ref.metadata["key"] == f"chapter:{chapter_slug(ref.metadata['chapter'])}"
        assert ref.text.startswith(ref.metadata["chapter"])

    member_keys = [doc.key for doc in corpus.documents if doc.metadata["kind"] != "module"]
    assert [item.key for item in corpus.labelled] == member_keys
    for item in corpus.labelled:
        assert item.label in corpus.chapters
        assert item.label == by_key[item.key].metadata["chapter"]
        assert item.text == by_key[item.key].text


def test_loads_from_the_standard_library_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the corpus must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    corpus = build_corpus()
    assert len(corpus.documents) >= 150
    assert len(corpus.chapters) >= 8
    assert len(corpus.queries) >= 20
    assert len(corpus.labelled) >= 100
    assert len(corpus.references) == len(corpus.chapters)


def test_building_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    build_corpus()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_documents_are_well_formed(corpus: Corpus) -> None:
    chapters = dict(CHAPTERS)
    for doc in corpus.documents:
        assert doc.text.strip() == doc.text
        assert 0 < len(doc.text) <= MAX_TEXT
        assert "\n" not in doc.text
        assert set(doc.metadata) == {"key", "module", "chapter", "kind"}
        assert doc.metadata["key"] == doc.key
        assert doc.metadata["kind"] in {"function", "class", "module"}
        assert doc.metadata["module"] in chapters[doc.metadata["chapter"]]
        if doc.metadata["kind"] == "module":
            assert doc.key == doc.metadata["module"]
        else:
            assert doc.key.startswith(doc.metadata["module"] + ".")
            assert not doc.key.rsplit(".", 1)[1].startswith("_")
    texts = [doc.text for doc in corpus.documents]
    assert len(texts) == len(set(texts))
    assert corpus.chapters == [c for c, _ in CHAPTERS if c in corpus.chapters]


def test_signatures_are_stripped_from_texts(corpus: Corpus) -> None:
    # e.g. "deque([iterable[, maxlen]]) --> deque object" or "hypot(*coordinates) -> value"
    signature = re.compile(r"^[A-Za-z_][\w.]*\(.*?\)\s*-{1,2}>")
    assert not [doc.key for doc in corpus.documents if signature.match(doc.text)]
    by_key = {doc.key: doc for doc in corpus.documents}
    if "collections.deque" in by_key:
        assert not by_key["collections.deque"].text.startswith("deque(")


def test_structure_is_consistent(corpus: Corpus) -> None:
    _assert_consistent(corpus)
    heapq = next(query for query in corpus.queries if query.query_id == "heapq")
    assert heapq.text.startswith("Heap queue algorithm")
    assert heapq.judgments.get("heapq.heappush") == 1


def test_is_deterministic() -> None:
    first, second = build_corpus(), build_corpus()
    assert first == second
    assert load_corpus() is load_corpus()
    assert first.sample(10) == second.sample(10)
    assert first.sample(10) == first.sample(10)


@pytest.mark.parametrize("modules", [1, 3, 8, 10, 11, 25])
def test_sample_is_consistent(corpus: Corpus, modules: int) -> None:
    sample = corpus.sample(modules)
    chosen = {doc.metadata["module"] for doc in sample.documents}
    assert len(chosen) == modules
    _assert_consistent(sample)
    full = {doc.key: doc for doc in corpus.documents}
    for doc in sample.documents:
        assert full[doc.key] == doc
    # Every document of a chosen module comes along.
    assert {key for key, doc in full.items() if doc.metadata["module"] in chosen} == {
        doc.key for doc in sample.documents
    }
    if modules >= len(corpus.chapters):
        assert sample.chapters == corpus.chapters
    else:
        assert len(sample.chapters) == modules


def test_sample_of_everything_is_the_corpus(corpus: Corpus) -> None:
    assert corpus.sample(10_000) == corpus
    with pytest.raises(ValueError):
        corpus.sample(0)


def test_bucket_object_shapes(corpus: Corpus) -> None:
    objects = corpus.as_objects()
    assert len(objects) == len(corpus.documents)
    for obj, doc in zip(objects, corpus.documents, strict=True):
        assert obj == {"key": doc.key, "text": doc.text, "metadata": doc.metadata}
        assert obj["metadata"] is not doc.metadata
    references = corpus.as_references()
    assert [ref["key"] for ref in references] == [ref.key for ref in corpus.references]
    assert all(set(ref) == {"key", "text", "metadata"} for ref in references)


def test_evaluation_shapes(corpus: Corpus) -> None:
    queries = evaluation_queries(corpus)
    assert len(queries) == len(corpus.queries)
    for item, query in zip(queries, corpus.queries, strict=True):
        assert item == {
            "query_id": query.query_id,
            "inputs": {"query": query.text},
            "judgments": query.judgments,
        }
    documents = evaluation_documents(corpus)
    assert len(documents) == len(corpus.labelled)
    for row, labelled in zip(documents, corpus.labelled, strict=True):
        assert row == {
            "document_id": labelled.key,
            "text": labelled.text,
            "expected": {"chapter": labelled.label},
        }
