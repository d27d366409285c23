"""Evaluation sets and evaluations: what quality means, and what a run measured.

An evaluation set is data the team trusts (queries with graded judgments, or
documents with their expected labels); like every resource it never changes.
An evaluation records the metrics one or two targets scored on a set: the
event a promotion's gate is decided on.
"""

from __future__ import annotations

from typing import Any, Self

from domain.base import Aggregate, Entity, Resource
from domain.ids import Kind


class EvaluationSet(Resource, created_event_name="Created"):
    """Queries with graded relevance judgments (retrievers) or labelled documents
    (taxonomies)."""

    KIND = Kind.EVALUATION_SET
    NAME_FIELD = "evaluation_set_name"

    class Created(Resource.Created):
        evaluation_set_name: str
        set_type: str
        id_field: str
        label_field: str | None
        queries: list[dict[str, Any]]
        documents: list[dict[str, Any]]

    # Immutable: an evaluation recorded against a set must stay reproducible from it.
    def clone(self, *, id: str | None = None, **overrides: Any) -> Self:  # noqa: A002
        raise NotImplementedError("evaluation sets are immutable")

    def rename(self, name: str) -> None:
        raise NotImplementedError("evaluation sets are immutable")

    def change_description(self, description: str) -> None:
        raise NotImplementedError("evaluation sets are immutable")


class Evaluation(Entity):
    """The metrics of one run of an evaluation set against one or two targets."""

    KIND = Kind.EVALUATION

    class Recorded(Aggregate.Created):
        namespace_id: str
        evaluation_set_id: str
        set_type: str
        k: int
        # [{"target_id", "target_kind", "metrics": {name: value}}]; the first is the
        # candidate, a second one its baseline
        runs: list[dict[str, Any]]
        agreement: float | None

    def __init__(
        self,
        namespace_id: str,
        evaluation_set_id: str,
        set_type: str,
        k: int,
        runs: list[dict[str, Any]],
        agreement: float | None,
    ) -> None:
        self.namespace_id = namespace_id
        self.evaluation_set_id = evaluation_set_id
        self.set_type = set_type
        self.k = k
        self.runs = runs
        self.agreement = agreement

    @classmethod
    def record(
        cls,
        evaluation_id: str,
        namespace_id: str,
        evaluation_set_id: str,
        set_type: str,
        k: int,
        runs: list[dict[str, Any]],
        agreement: float | None,
    ) -> Evaluation:
        return cls._create(
            cls.Recorded,
            id=evaluation_id,
            namespace_id=namespace_id,
            evaluation_set_id=evaluation_set_id,
            set_type=set_type,
            k=k,
            runs=runs,
            agreement=agreement,
        )

    def metrics_of(self, target_id: str) -> dict[str, float] | None:
        for run in self.runs:
            if run["target_id"] == target_id:
                return dict(run["metrics"])
        return None
