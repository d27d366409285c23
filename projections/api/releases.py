"""The release endpoints: refs, evaluation sets, evaluations and promotion.

A promotion is two commands: the evaluation runs here (next to the vector views)
and is recorded as an event, then ``refs.promote`` lets the domain decide the gate
on that recorded evaluation, so a ref never moves on numbers nobody can see.
"""

import asyncio
from typing import Any

from fastapi import APIRouter

from contract import requests as rq
from contract import responses as s
from domain.ids import Kind, kind_of
from domain.quality import Evaluation, EvaluationSet
from projections import queries
from projections.api.dependencies import IdempotencyKey, InNamespace, Svc, Who
from projections.api.errors import ApiError
from projections.api.lookups import Row, collections_of, taxonomy_inputs
from projections.api.pages import ListBody, page
from projections.api.services import Services
from projections.api.writes import created_by, fields, write
from projections.auth import Principal
from projections.evaluator import Target, evaluate
from projections.json_bodies import LimitedJsonRoute
from projections.vectors.retrieval import CollectionNotReady, RetrievalError
from projections.vectors.taxonomy import TaxonomyError

router = APIRouter(route_class=LimitedJsonRoute)


async def find_ref(svc: Services, ns: Row, name: str) -> Row:
    row = await svc.read(queries.ref, ns["namespace_id"], name)
    if row is None:
        message = f"ref {name!r} not found in namespace {ns['namespace_name']!r}"
        raise ApiError(404, "not_found", message)
    return row


async def target_row(svc: Services, who: Principal, ns: Row, kind: Kind, identifier: str) -> Row:
    """A ref's target: an ID in any namespace the caller may see, or a name (or ref:)
    in this namespace."""
    if kind is Kind.NAMESPACE:
        row = await svc.read(queries.namespace, identifier)
    elif kind_of(identifier) is kind:
        row = await svc.read(queries.resource_by_id, kind, identifier)
    else:
        row = await svc.read(queries.resolve, kind, ns["namespace_id"], identifier)
    if row is None or not who.may_see(row["namespace_id"]):
        raise ApiError(404, "not_found", f"{kind.value} {identifier!r} not found")
    return row


async def ref_command(
    svc: Services,
    type_: str,
    ns: Row,
    name: str,
    body: dict[str, Any],
    who: Principal,
    idem: str,
) -> Row:
    payload = {"namespace_identifier": ns["namespace_id"], "ref_name": name, **body}
    await write(svc, type_, payload, who, idem, ns["namespace_id"])
    return await find_ref(svc, ns, name)


# --- refs ---------------------------------------------------------------------------


@router.post("/v1/refs", response_model=s.Ref, status_code=201)
async def create_ref(
    body: rq.RefCreateRequest, ns: InNamespace, who: Who, idem: IdempotencyKey, svc: Svc
) -> Any:
    target = await target_row(svc, who, ns, Kind(body.target_kind), body.target)
    payload = {**fields(body), "target": target[f"{body.target_kind}_id"]}
    payload.pop("ref_name")
    return await ref_command(svc, "refs.create", ns, body.ref_name, payload, who, idem)


@router.get("/v1/refs/{name}", response_model=s.Ref)
async def get_ref(name: str, ns: InNamespace, svc: Svc) -> Any:
    return await find_ref(svc, ns, name)


@router.post("/v1/refs/list", response_model=s.Page[s.Ref])
async def list_refs(ns: InNamespace, svc: Svc, body: ListBody | None = None) -> Any:
    body = body or ListBody()
    limit, offset = body.window()
    rows, total = await svc.read(queries.refs_page, ns["namespace_id"], limit, offset)
    return page(rows, total, body)


@router.post("/v1/refs/{name}/move", response_model=s.Ref)
async def move_ref(
    name: str,
    body: rq.RefMoveRequest,
    ns: InNamespace,
    who: Who,
    idem: IdempotencyKey,
    svc: Svc,
) -> Any:
    ref = await find_ref(svc, ns, name)
    kind = Kind(ref["target_kind"])
    target = await target_row(svc, who, ns, kind, body.target)
    payload = {**fields(body), "target": target[f"{kind.value}_id"]}
    return await ref_command(svc, "refs.move", ns, name, payload, who, idem)


@router.post("/v1/refs/{name}/rollback", response_model=s.Ref)
async def rollback_ref(
    name: str,
    body: rq.RefRollbackRequest,
    ns: InNamespace,
    who: Who,
    idem: IdempotencyKey,
    svc: Svc,
) -> Any:
    ref = await find_ref(svc, ns, name)
    hidden = {
        h["target_namespace_id"]
        for h in ref["history"]
        if h["target_namespace_id"] and not who.may_see(h["target_namespace_id"])
    }
    if hidden:
        raise ApiError(
            403,
            "forbidden",
            f"ref {name!r} has pointed into namespaces this key cannot see; a rollback "
            "could land there: use a key that sees them",
        )
    return await ref_command(svc, "refs.rollback", ns, name, fields(body), who, idem)


# --- evaluation sets and evaluations --------------------------------------------------


async def find_set(svc: Services, ns: Row, identifier: str) -> Row:
    row = await svc.read(queries.resolve, Kind.EVALUATION_SET, ns["namespace_id"], identifier)
    if row is None:
        raise ApiError(404, "not_found", f"evaluation set {identifier!r} not found")
    return row


@router.post("/v1/evaluation_sets", response_model=s.EvaluationSet, status_code=201)
async def create_evaluation_set(
    body: rq.EvaluationSetCreateRequest,
    ns: InNamespace,
    who: Who,
    idem: IdempotencyKey,
    svc: Svc,
) -> Any:
    payload = {"namespace_identifier": ns["namespace_id"], **fields(body)}
    written = await write(svc, "evaluation_sets.create", payload, who, idem, ns["namespace_id"])
    # From the command's own events: the name may have moved on by the time of a retry.
    set_id = await created_by(svc, written.command_id, EvaluationSet.Created)
    if set_id is None:
        raise ApiError(404, "not_found", "the evaluation set this command made is gone")
    return await find_set(svc, ns, set_id)


@router.get("/v1/evaluation_sets/{identifier}", response_model=s.EvaluationSet)
async def get_evaluation_set(identifier: str, ns: InNamespace, svc: Svc) -> Any:
    return await find_set(svc, ns, identifier)


async def target_of(svc: Services, who: Principal, ns: Row, kind: Kind, identifier: str) -> Target:
    row = await target_row(svc, who, ns, kind, identifier)
    if kind is Kind.RETRIEVER:
        home = {"namespace_id": row["namespace_id"]}
        return Target(row, {}, await collections_of(svc, home, row["collection_ids"]))
    retrievers, collections = await taxonomy_inputs(svc, row)
    return Target(row, retrievers, collections)


async def run_evaluation(
    svc: Services,
    who: Principal,
    ns: Row,
    evaluation_set: Row,
    identifiers: list[str],
    k: int,
    idem: str | None = None,
) -> Row:
    """Run the set on each target (candidate first) and record what it measured."""
    if svc.runner is None:
        raise ApiError(503, "vectors_unavailable", "this API process has no vector store")
    kind = Kind(evaluation_set["set_type"])
    targets = [await target_of(svc, who, ns, kind, i) for i in identifiers]
    try:
        runs, agreement = await asyncio.to_thread(evaluate, svc.runner, evaluation_set, targets, k)
    except CollectionNotReady as e:
        raise ApiError(409, "not_ready", str(e)) from e
    except (RetrievalError, TaxonomyError) as e:
        raise ApiError(422, "evaluation_failed", str(e)) from e
    payload = {
        "namespace_identifier": ns["namespace_id"],
        "evaluation_set_identifier": evaluation_set["evaluation_set_id"],
        "k": k,
        "runs": runs,
        "agreement": agreement,
    }
    written = await write(svc, "evaluations.record", payload, who, idem, ns["namespace_id"])
    row = await recorded_evaluation(svc, written.command_id)
    if row is None:
        raise ApiError(404, "not_found", f"command {written.command_id} recorded no evaluation")
    return row


async def recorded_evaluation(svc: Services, command_id: str) -> Row | None:
    evaluation_id = await created_by(svc, command_id, Evaluation.Recorded)
    return None if evaluation_id is None else await svc.read(queries.evaluation, evaluation_id)


@router.post("/v1/evaluations", response_model=s.Evaluation, status_code=201)
async def create_evaluation(
    body: rq.EvaluationRunRequest, ns: InNamespace, who: Who, idem: IdempotencyKey, svc: Svc
) -> Any:
    if idem is not None and (done := await recorded_evaluation(svc, idem)) is not None:
        return done  # a retry: the evaluation this key recorded, not a new run
    evaluation_set = await find_set(svc, ns, body.evaluation_set)
    identifiers = [body.candidate] + ([body.baseline] if body.baseline else [])
    return await run_evaluation(svc, who, ns, evaluation_set, identifiers, body.k, idem)


@router.get("/v1/evaluations/{evaluation_id}", response_model=s.Evaluation)
async def get_evaluation(evaluation_id: str, who: Who, svc: Svc) -> Any:
    row = await svc.read(queries.evaluation, evaluation_id)
    if row is None or not who.may_see(row["namespace_id"]):
        raise ApiError(404, "not_found", f"evaluation {evaluation_id!r} not found")
    return row


# --- promotion ------------------------------------------------------------------------


@router.post("/v1/refs/{name}/promote", response_model=s.PromotionResult)
async def promote(
    name: str,
    body: rq.RefPromoteRequest,
    ns: InNamespace,
    who: Who,
    idem: IdempotencyKey,
    svc: Svc,
) -> Any:
    """Evaluate the candidate against the ref's current target, then move the ref only
    if every threshold holds; a failed gate answers 422 with the failing metrics."""
    ref = await find_ref(svc, ns, name)
    kind = Kind(ref["target_kind"])
    if kind not in (Kind.RETRIEVER, Kind.TAXONOMY):
        raise ApiError(
            422,
            "validation_error",
            f"ref {name!r} points at a {kind.value}: promotion evaluates retrievers and "
            "taxonomies; move it with POST /v1/refs/{name}/move",
        )
    candidate = await target_row(svc, who, ns, kind, body.candidate)
    evaluation_set = await find_set(svc, ns, body.evaluation_set)
    if evaluation_set["set_type"] != kind.value:
        raise ApiError(
            422,
            "validation_error",
            f"evaluation set {body.evaluation_set!r} evaluates {evaluation_set['set_type']}s, "
            f"ref {name!r} points at a {kind.value}",
        )
    candidate_id = candidate[f"{kind.value}_id"]
    # A retry of a decided promotion sends the same command again: the processor answers
    # it from its receipt, or refuses it (command_id_reused) if the request changed.
    retry = any(h["command_id"] == idem for h in ref["history"])
    if not retry and candidate_id == ref["target_id"]:
        raise ApiError(409, "nothing_to_do", f"ref {name!r} already points at {candidate_id}")
    # A retry reuses the evaluation its first try recorded (same key, derived).
    evaluation_key = None if idem is None else f"{idem}.evaluation"
    evaluation = (
        await recorded_evaluation(svc, evaluation_key) if evaluation_key else None
    ) or await run_evaluation(
        svc, who, ns, evaluation_set, [candidate_id, ref["target_id"]], body.k, evaluation_key
    )
    payload = {
        "namespace_identifier": ns["namespace_id"],
        "ref_name": name,
        "candidate": candidate_id,
        "evaluation_id": evaluation["evaluation_id"],
        "gate": fields(body.gate),
        "reason": body.reason,
    }
    written = await write(svc, "refs.promote", payload, who, idem, ns["namespace_id"])
    return await promotion_outcome(svc, ns, name, written.command_id)


async def promotion_outcome(svc: Services, ns: Row, name: str, command_id: str) -> Any:
    """What the promote command decided: the moved ref, or 422 with the failures."""
    ref = await find_ref(svc, ns, name)
    outcome = next(h for h in ref["history"] if h["command_id"] == command_id)
    evaluation = await svc.read(queries.evaluation, outcome["evaluation_id"])
    if outcome["action"] == "promotion_refused":
        failures = outcome["detail"]["failures"]
        raise ApiError(
            422,
            "gate_failed",
            "the gate failed: " + "; ".join(f["message"] for f in failures),
            failures=failures,
            evaluation=evaluation,
            ref_target_id=ref["target_id"],
        )
    return {"promoted": True, "ref": ref, "evaluation": evaluation}
