"""Taxonomy classification: enrich a document with the fields of its best-matching label.

A taxonomy's ``input_mappings`` turn the document into retriever inputs: ``payload`` and
``vector`` read a dotted path of the document (``override`` stands in when the path is
absent), ``literal`` gives ``override`` itself.

- Flat: the taxonomy's retriever runs over ``source_collection`` alone; the best match's
  ``enrichment_fields`` are copied (under ``target_field``, else ``field_path``).
- Hierarchical: among the root nodes, the one whose collection holds the best-scoring match
  wins and its fields are copied; then the same among that node's children, down to a leaf.
  Deeper levels inherit the fields above them: ``replace`` overrides, ``append`` adds.
  Each node runs its own ``retriever_id`` (and ``input_mappings``) or the taxonomy's.
  Siblings compare by their best match's score, so it must mean the same in each: with
  ``rrf`` fusion every collection's best match scores 1/61 and the first sibling wins ties;
  use ``weighted`` fusion (or a rerank) for hierarchical taxonomies.

``merge_mode: append`` makes a list: the value so far (from an upper level, else the
document) followed by the new value(s). The result also carries a ``_taxonomy`` trace:
``{taxonomy_id, taxonomy_type, levels: [{collection_id, label, document_id, score}]}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from projections.vectors.retrieval import Document, RetrievalError, RetrieverRunner, get_path

TRACE = "_taxonomy"
_ABSENT = object()


class TaxonomyError(RetrievalError):
    """A taxonomy that cannot be run as given."""


def mapped_inputs(
    mappings: Sequence[Mapping[str, Any]], payload: Mapping[str, Any]
) -> dict[str, Any]:
    """The retriever inputs a document gives through ``input_mappings``."""
    inputs: dict[str, Any] = {}
    for mapping in mappings:
        key, source = mapping["input_key"], mapping.get("source_type", "payload")
        if source == "literal":
            inputs[key] = mapping.get("override")
            continue
        path = mapping.get("path") or key
        value = get_path(payload, path, _ABSENT)
        if value is _ABSENT or value is None:
            value = mapping.get("override")
        if value is not None:
            inputs[key] = value
    return inputs


def enrich(
    enrichment: dict[str, Any],
    fields: Sequence[Mapping[str, Any]],
    match: Mapping[str, Any],
    document: Mapping[str, Any],
) -> None:
    """Copy ``fields`` of the matched label's payload into ``enrichment``."""
    for spec in fields:
        path = spec["field_path"]
        value = get_path(match, path, _ABSENT)
        if value is _ABSENT:
            continue
        target = spec.get("target_field") or path
        if spec.get("merge_mode", "replace") != "append":
            enrichment[target] = value
            continue
        base = enrichment[target] if target in enrichment else document.get(target)
        merged = [] if base is None else list(base) if isinstance(base, list) else [base]
        # A value already there is not added again: applying a taxonomy twice (a task
        # replayed after a crash) gives the same document as applying it once.
        merged += [v for v in (value if isinstance(value, list) else [value]) if v not in merged]
        enrichment[target] = merged


class TaxonomyRunner:
    def __init__(self, runner: RetrieverRunner) -> None:
        self.runner = runner

    def classify(
        self,
        taxonomy: Mapping[str, Any],
        document_payload: Mapping[str, Any],
        retrievers: Mapping[str, Mapping[str, Any]],
        collections: Mapping[str, Mapping[str, Any]],
    ) -> dict[str, Any]:
        """The enrichment for one document: fields to add, and the ``_taxonomy`` trace."""
        config = taxonomy.get("config", taxonomy)
        kind = config.get("taxonomy_type") or (
            "hierarchical" if "hierarchical_nodes" in config else "flat"
        )
        enrichment: dict[str, Any] = {}
        levels: list[dict[str, Any]] = []
        if kind == "flat":
            source = config["source_collection"]
            match = self._best(
                config, None, source["collection_id"], document_payload, retrievers, collections
            )
            if match is not None:
                fields = source.get("enrichment_fields", [])
                enrich(enrichment, fields, match.payload, document_payload)
                levels.append(_level(match, None))
        elif kind == "hierarchical":
            self._walk(config, document_payload, retrievers, collections, enrichment, levels)
        else:
            raise TaxonomyError(f"unknown taxonomy_type {kind!r}: 'flat' or 'hierarchical'")
        trace = {"taxonomy_id": taxonomy.get("taxonomy_id"), "taxonomy_type": kind}
        return {**enrichment, TRACE: {**trace, "levels": levels}}

    def classify_many(
        self,
        taxonomy: Mapping[str, Any],
        document_payloads: Sequence[Mapping[str, Any]],
        retrievers: Mapping[str, Mapping[str, Any]],
        collections: Mapping[str, Mapping[str, Any]],
    ) -> list[dict[str, Any]]:
        """:meth:`classify` for each document, in order."""
        return [self.classify(taxonomy, p, retrievers, collections) for p in document_payloads]

    def _walk(
        self,
        config: Mapping[str, Any],
        document: Mapping[str, Any],
        retrievers: Mapping[str, Mapping[str, Any]],
        collections: Mapping[str, Mapping[str, Any]],
        enrichment: dict[str, Any],
        levels: list[dict[str, Any]],
    ) -> None:
        nodes: list[Mapping[str, Any]] = list(config["hierarchical_nodes"])
        parent: str | None = None
        visited: set[str] = set()
        while True:
            level = [n for n in nodes if n.get("parent_collection_id") == parent]
            best: tuple[Mapping[str, Any], Document] | None = None
            for node in level:
                cid = node["collection_id"]
                match = self._best(config, node, cid, document, retrievers, collections)
                if match is not None and (best is None or match.score > best[1].score):
                    best = node, match
            if best is None:
                return
            node, match = best
            enrich(enrichment, node.get("enrichment_fields", []), match.payload, document)
            levels.append(_level(match, node))
            parent = node["collection_id"]
            if parent in visited:  # a cycle: tree_problem should have caught it
                raise TaxonomyError(f"hierarchical_nodes loop through {parent!r}")
            visited.add(parent)

    def _best(
        self,
        config: Mapping[str, Any],
        node: Mapping[str, Any] | None,
        collection_id: str,
        document: Mapping[str, Any],
        retrievers: Mapping[str, Mapping[str, Any]],
        collections: Mapping[str, Mapping[str, Any]],
    ) -> Document | None:
        """The best match for the document in one collection, by the node's retriever."""
        node = node or {}
        retriever_id = node.get("retriever_id") or config.get("retriever_id")
        retriever = retrievers.get(retriever_id) if retriever_id else None
        if retriever is None:
            raise TaxonomyError(f"retriever {retriever_id!r} is not among the given retrievers")
        mappings = node.get("input_mappings") or config.get("input_mappings") or []
        inputs = mapped_inputs(mappings, document)
        result = self.runner.execute(scoped(retriever, collection_id), collections, inputs, 1)
        return result.documents[0] if result.documents else None


def scoped(retriever: Mapping[str, Any], collection_id: str) -> dict[str, Any]:
    """The retriever over one collection: its own ``collection_ids`` and those of its
    searches replaced."""
    stages = []
    for stage in retriever.get("stages") or []:
        config = stage.get("config") or {}
        params = config.get("parameters") or {}
        searches = params.get("searches")
        if config.get("stage_id") == "feature_search" and isinstance(searches, list):
            plain = [{k: v for k, v in s.items() if k != "collection_ids"} for s in searches]
            stage = {**stage, "config": {**config, "parameters": {**params, "searches": plain}}}
        stages.append(stage)
    return {**retriever, "collection_ids": [collection_id], "stages": stages}


def _level(match: Document, node: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "collection_id": match.collection_id,
        "label": (node or {}).get("label"),
        "document_id": match.document_id,
        "score": match.score,
    }
