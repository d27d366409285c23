"""Runs an evaluation set against a retriever or a taxonomy and measures it.

The API runs this (it holds the vector views); the metrics it returns are then
recorded as an event by the ``evaluations.record`` command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.evaluation import agreement, classification_metrics, retrieval_metrics
from projections.vectors.retrieval import RetrieverRunner
from projections.vectors.taxonomy import TaxonomyRunner

Rows = Mapping[str, Mapping[str, Any]]


@dataclass
class Target:
    """What a run needs: the retriever or taxonomy row and the rows it reads."""

    row: Mapping[str, Any]
    retrievers: Rows  # the taxonomy's retrievers ({} for a retriever)
    collections: Rows

    @property
    def target_id(self) -> str:
        return str(self.row.get("retriever_id") or self.row["taxonomy_id"])


def evaluate_retriever(
    runner: RetrieverRunner, target: Target, evaluation_set: Mapping[str, Any], k: int
) -> dict[str, float]:
    id_field = evaluation_set["id_field"]
    runs, latencies = [], []
    for query in evaluation_set["queries"]:
        result = runner.execute(target.row, target.collections, query["inputs"], limit=k)
        ranked = [
            str(d.document_id if id_field == "document_id" else d.payload.get(id_field))
            for d in result.documents
        ]
        runs.append((ranked, query["judgments"]))
        latencies.append(result.total_ms)
    return retrieval_metrics(runs, k, latencies)


def taxonomy_labels(
    runner: RetrieverRunner, target: Target, evaluation_set: Mapping[str, Any]
) -> list[str | None]:
    label_field = evaluation_set["label_field"]
    taxonomies = TaxonomyRunner(runner)
    labels = []
    for doc in evaluation_set["documents"]:
        payload = {"text": doc["text"], "document_id": doc["document_id"]}
        enrichment = taxonomies.classify(target.row, payload, target.retrievers, target.collections)
        label = enrichment.get(label_field)
        labels.append(None if label is None else str(label))
    return labels


def evaluate(
    runner: RetrieverRunner,
    evaluation_set: Mapping[str, Any],
    targets: list[Target],
    k: int,
) -> tuple[list[dict[str, Any]], float | None]:
    """Metrics per target (candidate first), and for two taxonomies their agreement."""
    runs: list[dict[str, Any]] = []
    if evaluation_set["set_type"] == "retriever":
        for target in targets:
            metrics = evaluate_retriever(runner, target, evaluation_set, k)
            runs.append({"target_id": target.target_id, "metrics": metrics})
        return runs, None
    expected = [
        d["expected"].get(evaluation_set["label_field"]) for d in evaluation_set["documents"]
    ]
    predictions = []
    for target in targets:
        predicted = taxonomy_labels(runner, target, evaluation_set)
        predictions.append(predicted)
        metrics = classification_metrics(expected, predicted)
        runs.append({"target_id": target.target_id, "metrics": metrics})
    both = agreement(predictions[0], predictions[1]) if len(predictions) == 2 else None
    return runs, both
