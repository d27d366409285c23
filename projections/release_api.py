"""The release endpoints: refs, evaluation sets, evaluations, promotion, checkpoints.

A promotion is two commands: the evaluation runs here (next to the vector views)
and is recorded as an event, then ``refs.promote`` lets the domain decide the gate
on that recorded evaluation, so a ref never moves on numbers nobody can see.
"""

# FastAPI reads the routes' annotations, built from the API's own dependency types at run
# time: real objects (no __future__ annotations), which mypy cannot check as types.
# mypy: disable-error-code="valid-type,index,attr-defined"

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Query

from contract import requests as rq
from contract import responses as s
from domain.ids import Kind, kind_of
from projections import diff, queries
from projections.evaluator import Target, evaluate
from projections.read_model import recorded_digests
from projections.sql import Database
from projections.vectors.retrieval import CollectionNotReady, RetrievalError
from projections.vectors.taxonomy import TaxonomyError


def add_release_routes(
    app: FastAPI, db: Database, write: Callable[..., Any], deps: dict[str, Any]
) -> None:
    """``write(type, payload, who, idempotency_key, key)`` sends a command and returns its
    (command_id, position) once the read model applied it."""
    from projections.api import ApiError, ListBody, _page, fields

    Who, InNamespace, IdempotencyKey = deps["Who"], deps["InNamespace"], deps["IdempotencyKey"]
    taxonomy_inputs, collections_of = deps["taxonomy_inputs"], deps["collections_of"]

    async def read(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, db, *args)

    async def find_ref(ns: dict[str, Any], name: str) -> dict[str, Any]:
        row = await read(queries.ref, ns["namespace_id"], name)
        if row is None:
            message = f"ref {name!r} not found in namespace {ns['namespace_name']!r}"
            raise ApiError(404, "not_found", message)
        return row

    async def target_row(who: Any, ns: dict[str, Any], kind: Kind, identifier: str) -> dict:
        """A ref's target: an ID in any namespace the caller may see, or a name (or ref:)
        in this namespace."""
        if kind is Kind.NAMESPACE:
            row = await read(queries.namespace, identifier)
        elif kind_of(identifier) is kind:
            row = await read(queries.resource_by_id, kind, identifier)
        else:
            row = await read(queries.resolve, kind, ns["namespace_id"], identifier)
        if row is None or not who.may_see(row["namespace_id"]):
            raise ApiError(404, "not_found", f"{kind.value} {identifier!r} not found")
        return row

    async def ref_command(
        type_: str, ns: dict[str, Any], name: str, body: dict[str, Any], who: Any, idem: Any
    ) -> dict[str, Any]:
        payload = {"namespace_identifier": ns["namespace_id"], "ref_name": name, **body}
        await write(type_, payload, who, idem, ns["namespace_id"])
        return await find_ref(ns, name)

    # --- refs ---------------------------------------------------------------------

    @app.post("/v1/refs", response_model=s.Ref, status_code=201)
    async def create_ref(
        body: rq.RefCreateRequest, ns: InNamespace, who: Who, idem: IdempotencyKey
    ) -> Any:
        target = await target_row(who, ns, Kind(body.target_kind), body.target)
        payload = {**fields(body), "target": target[f"{body.target_kind}_id"]}
        payload.pop("ref_name")
        return await ref_command("refs.create", ns, body.ref_name, payload, who, idem)

    @app.get("/v1/refs/{name}", response_model=s.Ref)
    async def get_ref(name: str, ns: InNamespace) -> Any:
        return await find_ref(ns, name)

    @app.post("/v1/refs/list", response_model=s.Page[s.Ref])
    async def list_refs(ns: InNamespace, body: ListBody | None = None) -> Any:
        body = body or ListBody()
        rows, total = await read(queries.refs_page, ns["namespace_id"], body.limit, body.offset)
        return _page(rows, total, body)

    @app.post("/v1/refs/{name}/move", response_model=s.Ref)
    async def move_ref(
        name: str, body: rq.RefMoveRequest, ns: InNamespace, who: Who, idem: IdempotencyKey
    ) -> Any:
        ref = await find_ref(ns, name)
        kind = Kind(ref["target_kind"])
        target = await target_row(who, ns, kind, body.target)
        payload = {**fields(body), "target": target[f"{kind.value}_id"]}
        return await ref_command("refs.move", ns, name, payload, who, idem)

    @app.post("/v1/refs/{name}/rollback", response_model=s.Ref)
    async def rollback_ref(
        name: str,
        body: rq.RefRollbackRequest,
        ns: InNamespace,
        who: Who,
        idem: IdempotencyKey,
    ) -> Any:
        ref = await find_ref(ns, name)
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
        return await ref_command("refs.rollback", ns, name, fields(body), who, idem)

    # --- evaluation sets and evaluations ---------------------------------------------

    async def find_set(ns: dict[str, Any], identifier: str) -> dict[str, Any]:
        row = await read(queries.resolve, Kind.EVALUATION_SET, ns["namespace_id"], identifier)
        if row is None:
            raise ApiError(404, "not_found", f"evaluation set {identifier!r} not found")
        return row

    @app.post("/v1/evaluation_sets", response_model=s.EvaluationSet, status_code=201)
    async def create_evaluation_set(
        body: rq.EvaluationSetCreateRequest,
        ns: InNamespace,
        who: Who,
        idem: IdempotencyKey,
    ) -> Any:
        payload = {"namespace_identifier": ns["namespace_id"], **fields(body)}
        await write("evaluation_sets.create", payload, who, idem, ns["namespace_id"])
        return await find_set(ns, body.evaluation_set_name)

    @app.get("/v1/evaluation_sets/{identifier}", response_model=s.EvaluationSet)
    async def get_evaluation_set(identifier: str, ns: InNamespace) -> Any:
        return await find_set(ns, identifier)

    async def target_of(who: Any, ns: dict[str, Any], kind: Kind, identifier: str) -> Target:
        row = await target_row(who, ns, kind, identifier)
        if kind is Kind.RETRIEVER:
            home = {"namespace_id": row["namespace_id"]}
            return Target(row, {}, await collections_of(home, row["collection_ids"]))
        retrievers, collections = await taxonomy_inputs(row)
        return Target(row, retrievers, collections)

    async def run_evaluation(
        who: Any,
        ns: dict[str, Any],
        evaluation_set: dict[str, Any],
        identifiers: list[str],
        k: int,
        idem: Any = None,
    ) -> dict[str, Any]:
        """Run the set on each target (candidate first) and record what it measured."""
        if deps["runner"] is None:
            raise ApiError(503, "vectors_unavailable", "this API process has no vector store")
        kind = Kind(evaluation_set["set_type"])
        targets = [await target_of(who, ns, kind, i) for i in identifiers]
        try:
            runs, agreement = await asyncio.to_thread(
                evaluate, deps["runner"], evaluation_set, targets, k
            )
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
        command_id, _ = await write("evaluations.record", payload, who, idem, ns["namespace_id"])
        evaluation_id = await read(queries.created_by_command, command_id, ["Evaluation.Recorded"])
        row = await read(queries.evaluation, evaluation_id) if evaluation_id else None
        if row is None:
            raise ApiError(404, "not_found", f"command {command_id} recorded no evaluation")
        return row

    @app.post("/v1/evaluations", response_model=s.Evaluation, status_code=201)
    async def create_evaluation(
        body: rq.EvaluationRunRequest, ns: InNamespace, who: Who, idem: IdempotencyKey
    ) -> Any:
        if idem is not None and (done := await recorded_evaluation(idem)) is not None:
            return done  # a retry: the evaluation this key recorded, not a new run
        evaluation_set = await find_set(ns, body.evaluation_set)
        identifiers = [body.candidate] + ([body.baseline] if body.baseline else [])
        return await run_evaluation(who, ns, evaluation_set, identifiers, body.k, idem)

    async def recorded_evaluation(command_id: str) -> dict[str, Any] | None:
        evaluation_id = await read(queries.created_by_command, command_id, ["Evaluation.Recorded"])
        return None if evaluation_id is None else await read(queries.evaluation, evaluation_id)

    @app.get("/v1/evaluations/{evaluation_id}", response_model=s.Evaluation)
    async def get_evaluation(evaluation_id: str, who: Who) -> Any:
        row = await read(queries.evaluation, evaluation_id)
        if row is None or not who.may_see(row["namespace_id"]):
            raise ApiError(404, "not_found", f"evaluation {evaluation_id!r} not found")
        return row

    # --- promotion ---------------------------------------------------------------------

    @app.post("/v1/refs/{name}/promote", response_model=s.PromotionResult)
    async def promote(
        name: str,
        body: rq.RefPromoteRequest,
        ns: InNamespace,
        who: Who,
        idem: IdempotencyKey,
    ) -> Any:
        """Evaluate the candidate against the ref's current target, then move the ref only
        if every threshold holds; a failed gate answers 422 with the failing metrics."""
        ref = await find_ref(ns, name)
        kind = Kind(ref["target_kind"])
        if kind not in (Kind.RETRIEVER, Kind.TAXONOMY):
            raise ApiError(
                422,
                "validation_error",
                f"ref {name!r} points at a {kind.value}: promotion evaluates retrievers and "
                "taxonomies; move it with POST /v1/refs/{name}/move",
            )
        candidate = await target_row(who, ns, kind, body.candidate)
        evaluation_set = await find_set(ns, body.evaluation_set)
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
            await recorded_evaluation(evaluation_key) if evaluation_key else None
        ) or await run_evaluation(
            who, ns, evaluation_set, [candidate_id, ref["target_id"]], body.k, evaluation_key
        )
        payload = {
            "candidate": candidate_id,
            "evaluation_id": evaluation["evaluation_id"],
            "gate": fields(body.gate),
            "reason": body.reason,
        }
        command_id, _ = await write(
            "refs.promote",
            {"namespace_identifier": ns["namespace_id"], "ref_name": name, **payload},
            who,
            idem,
            ns["namespace_id"],
        )
        return await promotion_outcome(ns, name, command_id)

    async def promotion_outcome(ns: dict[str, Any], name: str, command_id: str) -> Any:
        """What the promote command decided: the moved ref, or 422 with the failures."""
        ref = await find_ref(ns, name)
        outcome = next(h for h in ref["history"] if h["command_id"] == command_id)
        evaluation = await read(queries.evaluation, outcome["evaluation_id"])
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

    # --- diff ---------------------------------------------------------------------------

    materializer = deps["materializer"]

    def documents_of(a: dict[str, Any], b: dict[str, Any]) -> diff.DocumentDiff | None:
        if materializer is None:
            return None
        cow = materializer.cow
        if not (cow.has_view(a["collection_id"]) and cow.has_view(b["collection_id"])):
            return None

        def digests(collection_id: str) -> list[tuple[str, str]]:
            return [
                (p.id, diff.content_digest(p.payload, p.payload.get("text")))
                for p in cow.documents(collection_id, with_vectors=False)
            ]

        return diff.document_diff(digests(a["collection_id"]), digests(b["collection_id"]))

    def side(namespace: dict[str, Any]) -> diff.Side:
        resources = {}
        for kind in diff.KINDS:
            rows, _ = queries.page(db, Kind(kind), [namespace["namespace_id"]], 100_000, 0)
            resources[kind] = rows
        return diff.Side(namespace, resources)

    def compare(a: dict[str, Any], b: dict[str, Any], kind: Kind | None) -> dict[str, Any]:
        if kind is None:
            return diff.namespace_diff(side(a), side(b), documents_of)
        names_a = side(queries.namespace(db, a["namespace_id"]) or {}).names()
        names_b = side(queries.namespace(db, b["namespace_id"]) or {}).names()
        return diff.resource_diff(kind.value, a, b, names_a, names_b, documents_of)

    @app.get("/v1/diff")
    async def get_diff(who: Who, from_: str = Query(alias="from"), to: str = Query()) -> Any:
        """Two namespaces (IDs or names) or two resources of one kind (IDs): what exists on
        one side only, which configs differ field by field, and for collections how many
        documents were added, removed or changed since they diverged."""
        kinds = {kind_of(from_), kind_of(to)}
        if kinds <= {None, Kind.NAMESPACE}:
            a = await read(queries.namespace, from_)
            b = await read(queries.namespace, to)
            kind = None
        elif len(kinds) == 1 and str(next(iter(kinds))) in diff.KINDS:
            kind = kinds.pop()
            a = await read(queries.resource_by_id, kind, from_)
            b = await read(queries.resource_by_id, kind, to)
        else:
            raise ApiError(
                422,
                "validation_error",
                "diff compares two namespaces (IDs or names) or two resources of one kind (IDs)",
            )
        for identifier, row in ((from_, a), (to, b)):
            if row is None or not who.may_see(row["namespace_id"]):
                raise ApiError(404, "not_found", f"{identifier!r} not found")
        return await asyncio.to_thread(compare, a, b, kind)

    # --- checkpoints ---------------------------------------------------------------------

    @app.post("/v1/checkpoints", response_model=s.Checkpoint, status_code=201)
    async def checkpoint(body: rq.CheckpointRequest, who: Who) -> Any:
        """Have every read model record a digest of its tables at this position."""
        if not who.is_admin:
            raise ApiError(403, "forbidden", "only a key for every namespace can checkpoint")
        command_id, _ = await write("checkpoints.create", fields(body), who, None, "checkpoint")
        position = await read(queries.position_of, command_id, "Checkpoint.Requested")
        return {"position": position, "digests": await read(recorded_digests, position)}
