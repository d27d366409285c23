"""Namespaces: create, read, list, update and clone; a scoped key is granted what it
creates or clones."""

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from contract import requests as rq
from contract import responses as s
from domain.ids import Kind, kind_of
from domain.namespace import Namespace
from domain.tasks import CloneTask
from projections import queries
from projections.api.dependencies import IdempotencyKey, Svc, Who
from projections.api.errors import ApiError
from projections.api.lookups import visible_namespace
from projections.api.pages import ListBody, page, paging, query_paging
from projections.api.services import Services
from projections.api.writes import created_by, deleted_answer, earlier_delete, fields, write
from projections.json_bodies import LimitedJsonRoute
from projections.sql import Database

router = APIRouter(route_class=LimitedJsonRoute)


@router.post("/v1/namespaces", response_model=s.Namespace)
async def create_namespace(
    body: rq.NamespaceCreateRequest, who: Who, idem: IdempotencyKey, svc: Svc
) -> Any:
    written = await write(svc, "namespaces.create", fields(body), who, idem, body.namespace_name)
    row = await created_namespace(svc, written.command_id)
    await asyncio.to_thread(svc.keys.grant, who.key_id, row["namespace_id"])
    return row


@router.get("/v1/namespaces/{identifier}", response_model=s.Namespace)
async def get_namespace(identifier: str, who: Who, svc: Svc) -> Any:
    return await visible_namespace(svc, who, identifier)


@router.post("/v1/namespaces/list", response_model=s.Page[s.Namespace])
async def list_namespaces(
    who: Who,
    svc: Svc,
    query: Annotated[dict[str, int], Depends(query_paging)],
    body: ListBody | None = None,
) -> Any:
    body = paging(body, query)
    limit, offset = body.window()
    if who.namespaces is None:
        rows, total = await svc.read(queries.page, Kind.NAMESPACE, None, limit, offset)
    else:
        rows, total = await svc.read(_namespaces_in, sorted(who.namespaces), limit, offset)
    return page(rows, total, body)


@router.get("/v1/namespaces", response_model=s.Page[s.Namespace])
async def list_namespaces_get(
    who: Who, svc: Svc, query: Annotated[dict[str, int], Depends(query_paging)]
) -> Any:
    """Mixpeek's GET form of the list: paging in the query string."""
    return await list_namespaces(who, svc, query)


@router.patch("/v1/namespaces/{identifier}", response_model=s.Namespace)
async def update_namespace(
    identifier: str, body: rq.NamespaceUpdateRequest, who: Who, idem: IdempotencyKey, svc: Svc
) -> Any:
    row = await visible_namespace(svc, who, identifier)
    ns_id = row["namespace_id"]
    payload = {"namespace_identifier": ns_id, **fields(body)}
    await write(svc, "namespaces.update", payload, who, idem, ns_id)
    return await svc.read(queries.namespace, ns_id)


@router.delete("/v1/namespaces/{identifier}", response_model=s.Deleted)
async def delete_namespace(identifier: str, who: Who, idem: IdempotencyKey, svc: Svc) -> Any:
    """Delete a namespace and, with it, everything in it (one event; clones elsewhere keep
    working, and a clone as of an earlier position restores it)."""
    if idem and (earlier := await earlier_delete(svc, "namespace", idem, identifier)):
        return earlier  # a retry of a delete that was applied: its first answer
    row = await visible_namespace(svc, who, identifier)
    ns_id = row["namespace_id"]
    payload = {"namespace_identifier": ns_id}
    written = await write(svc, "namespaces.delete", payload, who, idem, ns_id)
    return await deleted_answer(svc, "namespace", ns_id, row["namespace_name"], written)


@router.post(
    "/v1/namespaces/{identifier}/clone",
    response_model=s.NamespaceCloneResponse,
)
async def clone_namespace(
    identifier: str, body: rq.NamespaceCloneRequest, who: Who, idem: IdempotencyKey, svc: Svc
) -> Any:
    if body.as_of_position is not None and kind_of(identifier) is Kind.NAMESPACE:
        # as of then: the domain reads the namespace at that position, deleted since or not
        if not who.may_see(identifier):
            raise ApiError(404, "not_found", f"namespace {identifier!r} not found")
        source = {"namespace_id": identifier}
    else:
        source = await visible_namespace(svc, who, identifier)
    payload = {"namespace_identifier": source["namespace_id"], **fields(body)}
    written = await write(svc, "namespaces.clone", payload, who, idem, source["namespace_id"])
    clone = await created_namespace(svc, written.command_id)
    await asyncio.to_thread(svc.keys.grant, who.key_id, clone["namespace_id"])
    # The answer describes the clone as this command left it: a clone whose vectors
    # are still to be copied is "cloning" even if the copy has finished since.
    done = await created_by(svc, written.command_id, CloneTask.Completed)
    task = await svc.read(queries.task, clone["clone_task_id"])
    return {
        "namespace": clone,
        "source_namespace_id": source["namespace_id"],
        "status": "cloning" if done is None else "ready",
        "task_id": clone["clone_task_id"],
        **mixpeek_clone_summary((task or {}).get("result"), ready=done is not None),
    }


def mixpeek_clone_summary(result: dict[str, Any] | None, ready: bool) -> dict[str, Any]:
    """Mixpeek's primary_retriever_id (the first retriever cloned) and, once the clone is
    ready, its cloned_resources (how many of each, and the vector points copied)."""
    if not result:
        return {}
    retrievers = list(result.get("mapping", {}).get("retrievers", {}).values())
    summary: dict[str, Any] = {"primary_retriever_id": retrievers[0] if retrievers else None}
    if ready:
        counts = result.get("counts", {})
        summary["cloned_resources"] = {**counts, "points": sum(result.get("points", {}).values())}
    return summary


async def created_namespace(svc: Services, command_id: str) -> dict[str, Any]:
    """The namespace this command created, from its own events: a name may have
    moved to another namespace since (a replayed command writes nothing new)."""
    namespace_id = await created_by(svc, command_id, Namespace.Created, Namespace.Cloned)
    row = None if namespace_id is None else await svc.read(queries.namespace, namespace_id)
    if row is None:
        raise ApiError(404, "not_found", "the namespace this command created is gone")
    return row


def _namespaces_in(db: Database, ids: list[str], limit: int, offset: int) -> tuple[list, int]:
    marks = ", ".join("?" for _ in ids)
    where = f"WHERE namespace_id IN ({marks})" if ids else "WHERE 1 = 0"
    total = db.query(f"SELECT COUNT(*) AS n FROM namespaces {where}", ids)[0]["n"]
    rows = db.query(
        f"SELECT * FROM namespaces {where} ORDER BY created_at, namespace_id LIMIT ? OFFSET ?",
        [*ids, limit, offset],
    )
    return rows, int(total)
