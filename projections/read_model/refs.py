"""Refs (with their full history) and recorded evaluations."""

from __future__ import annotations

import json
from typing import Any

from domain.base import Aggregate
from domain.envelopes import EventEnvelope
from domain.events import typed
from domain.quality import Evaluation
from domain.refs import Ref
from projections.read_model.cursor import Projection, Projector


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def on_ref_created(cur: Projection, e: EventEnvelope) -> None:
    created = typed(e)
    occurred_at = cur.occurred_at(e)
    cur.insert(
        "refs",
        {
            "ref_id": e.aggregate_id,
            "namespace_id": e.namespace_id,
            "ref_name": created.ref_name,
            "target_kind": created.target_kind,
            "target_id": created.target_id,
            "target_namespace_id": created.target_namespace_id,
            "created_at": occurred_at,
            "updated_at": occurred_at,
            "created_by": e.actor,
            "version": e.aggregate_version,
        },
    )
    _history(
        cur,
        e,
        "create",
        target_id=created.target_id,
        target_namespace_id=created.target_namespace_id,
        reason=created.reason,
    )


def on_ref_moved(cur: Projection, e: EventEnvelope) -> None:
    moved = typed(e)
    cur.update(
        "refs",
        e.aggregate_id,
        {
            "target_id": moved.target_id,
            "target_namespace_id": moved.target_namespace_id,
            "updated_at": cur.occurred_at(e),
            "version": e.aggregate_version,
        },
    )
    _history(
        cur,
        e,
        moved.action,
        target_id=moved.target_id,
        target_namespace_id=moved.target_namespace_id,
        previous_target_id=moved.previous_target_id,
        reason=moved.reason,
        evaluation_id=moved.evaluation_id,
        detail={"rolled_back_to": moved.rolled_back_to} if moved.rolled_back_to else None,
    )


def on_promotion_refused(cur: Projection, e: EventEnvelope) -> None:
    refused = typed(e)
    current = cur.row("refs", e.aggregate_id)
    _history(
        cur,
        e,
        "promotion_refused",
        target_id=refused.candidate_id,
        previous_target_id=current["target_id"] if current else None,
        reason=refused.reason,
        evaluation_id=refused.evaluation_id,
        detail={"failures": refused.failures},
    )


def _history(
    cur: Projection,
    e: EventEnvelope,
    action: str,
    *,
    target_id: str,
    reason: str,
    target_namespace_id: str | None = None,
    previous_target_id: str | None = None,
    evaluation_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    ref = cur.row("refs", e.aggregate_id)
    assert ref is not None, f"no ref {e.aggregate_id}"  # a ref's events follow its creation
    cur.insert(
        "ref_history",
        {
            "position": e.position,
            "ref_id": e.aggregate_id,
            "namespace_id": ref["namespace_id"],
            "ref_name": ref["ref_name"],
            "action": action,
            "target_id": target_id,
            "target_namespace_id": target_namespace_id,
            "previous_target_id": previous_target_id,
            "reason": reason,
            "evaluation_id": evaluation_id,
            "detail": None if detail is None else _json(detail),
            "actor": e.actor,
            "command_id": e.command_id,
            "occurred_at": cur.occurred_at(e),
            "version": e.aggregate_version,
        },
    )


def on_evaluation_recorded(cur: Projection, e: EventEnvelope) -> None:
    recorded = typed(e)
    cur.insert(
        "evaluations",
        {
            "evaluation_id": e.aggregate_id,
            "namespace_id": e.namespace_id,
            "evaluation_set_id": recorded.evaluation_set_id,
            "set_type": recorded.set_type,
            "k": recorded.k,
            "runs": _json(recorded.runs),
            "agreement": _json(recorded.agreement),  # "null" when there is none
            "position": e.position,
            "command_id": e.command_id,
            "created_at": cur.occurred_at(e),
            "created_by": e.actor,
        },
    )


PROJECTORS: dict[type[Aggregate.Event], Projector] = {
    Ref.Created: on_ref_created,
    Ref.Moved: on_ref_moved,
    Ref.PromotionRefused: on_promotion_refused,
    Evaluation.Recorded: on_evaluation_recorded,
}
