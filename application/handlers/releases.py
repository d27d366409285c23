"""Refs, evaluation sets, evaluations and the promotion gate: one function per command."""

from __future__ import annotations

from typing import Any

from application.unit import Handlers, Unit
from contract import commands as c
from domain.base import Resource
from domain.errors import CommandRejected, ErrorCode
from domain.evaluation import check_gate, failure_as_dict, threshold_from_dict
from domain.ids import Kind, kind_of, new_id
from domain.namespace import Namespace
from domain.quality import Evaluation, EvaluationSet
from domain.refs import Checkpoint, Ref


def create_ref(unit: Unit, body: c.CreateRef) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    ref_id = Ref.id_for(namespace.id, body.ref_name)
    existing = unit.get(ref_id, Ref)
    if existing is not None:
        raise CommandRejected(
            ErrorCode.DUPLICATE_NAME,
            f"a ref named {body.ref_name!r} already exists in namespace "
            f"{namespace.namespace_name!r}: move it instead",
            field="body.ref_name",
            existing_target_id=existing.target_id,
        )
    target_id, target_ns = _target(unit, namespace, body.target_kind, body.target, "body.target")
    unit.add(
        Ref.create(namespace.id, body.ref_name, body.target_kind, target_id, target_ns, body.reason)
    )


def move_ref(unit: Unit, body: c.MoveRef) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    ref = _ref(unit, namespace, body.ref_name)
    target_id, target_ns = _target(unit, namespace, ref.target_kind, body.target, "body.target")
    ref.move_to(target_id, target_ns, body.reason)


def promote_ref(unit: Unit, body: c.PromoteRef) -> None:
    """Move the ref to the candidate only if every threshold of the gate holds."""
    namespace = unit.namespace(body.namespace_identifier)
    ref = _ref(unit, namespace, body.ref_name)
    candidate_id, candidate_ns = _target(
        unit, namespace, ref.target_kind, body.candidate, "body.candidate"
    )
    evaluation = unit.get(body.evaluation_id, Evaluation)
    if evaluation is None:
        raise CommandRejected(
            ErrorCode.NOT_FOUND,
            f"evaluation {body.evaluation_id!r} not found",
            field="body.evaluation_id",
        )
    candidate = evaluation.metrics_of(candidate_id)
    if candidate is None:
        raise CommandRejected(
            ErrorCode.STALE_EVALUATION,
            f"evaluation {evaluation.id} did not run the candidate {candidate_id}",
            field="body.evaluation_id",
        )
    try:
        thresholds = [
            threshold_from_dict(t.model_dump(exclude_none=True)) for t in body.gate.thresholds
        ]
    except ValueError as e:
        raise CommandRejected(ErrorCode.VALIDATION_ERROR, str(e), field="body.gate") from e
    relative = any(t.min_change is not None or t.max_change is not None for t in thresholds)
    baseline = evaluation.metrics_of(ref.target_id)
    if relative and baseline is None:
        raise CommandRejected(
            ErrorCode.STALE_EVALUATION,
            f"evaluation {evaluation.id} has no run of {ref.target_id}, the target ref "
            f"{ref.ref_name!r} points at now (it may have moved since): evaluate again",
            field="body.evaluation_id",
            current_target_id=ref.target_id,
        )
    failures = check_gate(thresholds, candidate, baseline)
    if failures:
        reported = [failure_as_dict(f) for f in failures]
        ref.refuse_promotion(candidate_id, evaluation.id, reported, body.reason)
    else:
        ref.promote(candidate_id, candidate_ns, evaluation.id, body.reason)


def roll_back_ref(unit: Unit, body: c.RollbackRef) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    ref = _ref(unit, namespace, body.ref_name)
    if body.to == "previous":
        to: dict[str, Any] = {"to": "previous"}
        entry = ref.previous_entry()
    elif body.position is not None:
        to = {"position": body.position}
        entry = ref.entry_at_position(body.position, unit.positions_of(ref.id, Ref))
    else:
        assert body.time is not None
        to = {"time": body.time.isoformat()}
        entry = ref.entry_at_time(body.time)
    gone = unit.deleted_target(ref.target_kind, entry["target_id"])  # deleted since?
    ref.roll_back(to, entry, body.reason, gone)


def create_evaluation_set(unit: Unit, body: c.CreateEvaluationSet) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    evaluation_set = EvaluationSet.create(
        namespace_id=namespace.id,
        evaluation_set_name=body.evaluation_set_name,
        description=body.description,
        set_type=body.set_type,
        id_field=body.id_field,
        label_field=body.label_field,
        queries=[q.model_dump(mode="json") for q in body.queries],
        documents=[d.model_dump(mode="json") for d in body.documents],
    )
    unit.add_to(namespace, evaluation_set)


def record_evaluation(unit: Unit, body: c.RecordEvaluation) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    field = "body.evaluation_set_identifier"
    evaluation_set = unit.resource(
        namespace, Kind.EVALUATION_SET, body.evaluation_set_identifier, field
    )
    assert isinstance(evaluation_set, EvaluationSet)
    expected = Kind(evaluation_set.set_type)
    runs = []
    for i, run in enumerate(body.runs):
        field = f"body.runs[{i}].target_id"
        if kind_of(run.target_id) is None:
            target_id = unit.resource(namespace, expected, run.target_id, field).id
        elif kind_of(run.target_id) is expected and unit.get(run.target_id, Resource):
            target_id = run.target_id
        else:
            raise CommandRejected(
                ErrorCode.INVALID_REFERENCE,
                f"{run.target_id!r} is not a {expected.value}: a {evaluation_set.set_type} "
                f"evaluation set evaluates {expected.plural}",
                field=field,
            )
        runs.append({"target_id": target_id, "target_kind": expected.value, "metrics": run.metrics})
    evaluation_id = body.evaluation_id or new_id(Kind.EVALUATION)
    if kind_of(evaluation_id) is not Kind.EVALUATION:
        raise CommandRejected(
            ErrorCode.WRONG_KIND,
            f"evaluation_id {evaluation_id!r} is not an evaluation ID (eval_ + 32 hex digits)",
            field="body.evaluation_id",
        )
    if unit.get(evaluation_id, Evaluation) is not None:
        raise CommandRejected(
            ErrorCode.DUPLICATE_NAME,
            f"evaluation {evaluation_id} exists already: choose a new evaluation_id",
            field="body.evaluation_id",
        )
    unit.add(
        Evaluation.record(
            evaluation_id,
            namespace.id,
            evaluation_set.id,
            evaluation_set.set_type,
            body.k,
            runs,
            body.agreement,
        )
    )


def request_checkpoint(unit: Unit, body: c.RequestCheckpoint) -> None:
    unit.add(Checkpoint.request(body.reason))


def _ref(unit: Unit, namespace: Namespace, ref_name: str) -> Ref:
    ref = unit.get(Ref.id_for(namespace.id, ref_name), Ref)
    if ref is None:
        raise CommandRejected(
            ErrorCode.NOT_FOUND,
            f"ref {ref_name!r} not found in namespace {namespace.namespace_name!r}",
            field="body.ref_name",
        )
    return ref


def _target(
    unit: Unit, namespace: Namespace, kind_name: str, identifier: str, field: str
) -> tuple[str, str]:
    """The ID and namespace of what a ref may point at: an ID anywhere, or a name here;
    never something deleted (nor in a deleted namespace)."""
    kind = Kind(kind_name)
    if kind is Kind.NAMESPACE:
        target_namespace = unit.namespace(identifier, field)
        return target_namespace.id, target_namespace.id
    if kind_of(identifier) is None:
        resource = unit.resource(namespace, kind, identifier, field)
        return resource.id, resource.namespace_id
    if kind_of(identifier) is not kind:
        raise CommandRejected(
            ErrorCode.WRONG_KIND,
            f"{identifier!r} is not a {kind.value} ID; this ref points at {kind.plural}",
            field=field,
        )
    found = unit.get(identifier, Resource)
    if found is None:
        raise CommandRejected(
            ErrorCode.NOT_FOUND, f"{kind.value} {identifier!r} not found", field=field
        )
    gone = unit.deleted_target(kind.value, found.id)
    if gone is not None:
        raise CommandRejected(
            ErrorCode.NOT_FOUND, f"{field} names {gone}", field=field, deleted_id=found.id
        )
    return found.id, found.namespace_id


HANDLERS: Handlers = {
    c.CreateRef: create_ref,
    c.MoveRef: move_ref,
    c.PromoteRef: promote_ref,
    c.RollbackRef: roll_back_ref,
    c.CreateEvaluationSet: create_evaluation_set,
    c.RecordEvaluation: record_evaluation,
    c.RequestCheckpoint: request_checkpoint,
}
