"""GET /v1/diff: what differs between two namespaces, or two resources of one kind."""

import asyncio
import functools
from typing import Any

from fastapi import APIRouter, Query

from domain.ids import Kind, kind_of
from projections import diff, queries
from projections.api.dependencies import Svc, Who
from projections.api.errors import ApiError
from projections.api.lookups import Row
from projections.api.services import Services
from projections.json_bodies import LimitedJsonRoute
from projections.vectors.views import CopyOnWrite

router = APIRouter(route_class=LimitedJsonRoute)


@router.get("/v1/diff")
async def get_diff(who: Who, svc: Svc, from_: str = Query(alias="from"), to: str = Query()) -> Any:
    """Two namespaces (IDs or names) or two resources of one kind (IDs): what exists on
    one side only, which configs differ field by field, and for collections how many
    documents were added, removed or changed since they diverged."""
    kinds = {kind_of(from_), kind_of(to)}
    kind: Kind | None
    if kinds <= {None, Kind.NAMESPACE}:
        a = await svc.read(queries.namespace, from_)
        b = await svc.read(queries.namespace, to)
        kind = None
    elif len(kinds) == 1 and str(next(iter(kinds))) in diff.KINDS:
        kind = kinds.pop()
        a = await svc.read(queries.resource_by_id, kind, from_)
        b = await svc.read(queries.resource_by_id, kind, to)
    else:
        raise ApiError(
            422,
            "validation_error",
            "diff compares two namespaces (IDs or names) or two resources of one kind (IDs)",
        )
    for identifier, row in ((from_, a), (to, b)):
        if row is None or not who.may_see(row["namespace_id"]):
            raise ApiError(404, "not_found", f"{identifier!r} not found")
    assert a is not None and b is not None  # each was checked just above
    return await asyncio.to_thread(compare, svc, a, b, kind)


def compare(svc: Services, a: Row, b: Row, kind: Kind | None) -> dict[str, Any]:
    documents_of = functools.partial(documents, svc)
    if kind is None:
        return diff.namespace_diff(side(svc, a), side(svc, b), documents_of)
    names_a = side(svc, queries.namespace(svc.db, a["namespace_id"]) or {}).names()
    names_b = side(svc, queries.namespace(svc.db, b["namespace_id"]) or {}).names()
    return diff.resource_diff(kind.value, a, b, names_a, names_b, documents_of)


def side(svc: Services, namespace: Row) -> diff.Side:
    resources = {}
    for kind in diff.KINDS:
        rows, _ = queries.page(svc.db, Kind(kind), [namespace["namespace_id"]], 100_000, 0)
        resources[kind] = rows
    return diff.Side(namespace, resources)


def documents(svc: Services, a: Row, b: Row) -> diff.DocumentDiff | None:
    """How two collections' documents differ, if both have a view in the vector store."""
    if svc.materializer is None:
        return None
    cow = svc.materializer.cow
    if not (cow.has_view(a["collection_id"]) and cow.has_view(b["collection_id"])):
        return None
    return diff.document_diff(_digests(cow, a["collection_id"]), _digests(cow, b["collection_id"]))


def _digests(cow: CopyOnWrite, collection_id: str) -> list[tuple[str, str]]:
    return [
        (p.id, diff.content_digest(p.payload, p.payload.get("text")))
        for p in cow.documents(collection_id, with_vectors=False)
    ]
