"""Buckets, collections, retrievers and taxonomies: the same five operations on each
kind (taxonomies, retrievers and collections clone; buckets do not), in a namespace
named by X-Namespace."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from contract import requests as rq
from contract import responses as s
from domain.events import RESOURCES
from domain.ids import Kind, kind_of
from projections import queries
from projections.api.dependencies import IdempotencyKey, InNamespace, Svc, Who
from projections.api.errors import ApiError
from projections.api.lookups import Row, reachable_resource, refuse_deleted
from projections.api.pages import ListBody, page, paging, query_paging
from projections.api.services import Services
from projections.api.writes import (
    Written,
    created_by,
    deleted_answer,
    earlier_delete,
    fields,
    write,
)
from projections.auth import Principal
from projections.json_bodies import LimitedJsonRoute

router = APIRouter(route_class=LimitedJsonRoute)
Paging = Annotated[dict[str, int], Depends(query_paging)]


# --- what each kind's routes do -------------------------------------------------------


async def find(
    svc: Services, kind: Kind, ns: Row, identifier: str, who: Principal | None = None
) -> Row:
    row = await reachable_resource(svc, kind, ns, identifier, who)
    if row is None:
        if kind_of(identifier) is kind:
            await refuse_deleted(svc, kind, identifier, ns["namespace_id"])
        message = f"{kind.value} {identifier!r} not found in namespace"
        raise ApiError(404, "not_found", f"{message} {ns['namespace_name']!r}")
    return row


async def create(
    svc: Services, kind: Kind, body: BaseModel, ns: Row, who: Principal, idem: str
) -> Row:
    payload = {"namespace_identifier": ns["namespace_id"], **fields(body)}
    written = await write(svc, f"{kind.plural}.create", payload, who, idem, ns["namespace_id"])
    return await made_by(svc, kind, ns, written, RESOURCES[kind].Created)


async def made_by(svc: Services, kind: Kind, ns: Row, written: Written, event: type) -> Row:
    """The resource a command made, from its own events: its name may have moved on to
    another resource since (a replayed command writes nothing new)."""
    resource_id = await created_by(svc, written.command_id, event)
    if resource_id is None:
        raise ApiError(404, "not_found", f"the {kind.value} this command made is gone")
    return await find(svc, kind, ns, resource_id)


async def list_page(svc: Services, kind: Kind, ns: Row, body: ListBody) -> dict[str, Any]:
    limit, offset = body.window()
    rows, total = await svc.read(queries.page, kind, [ns["namespace_id"]], limit, offset)
    return page(rows, total, body)


async def update(
    svc: Services, kind: Kind, identifier: str, body: BaseModel, ns: Row, who: Principal, idem: str
) -> Row:
    id_field = f"{kind.value}_id"
    row = await find(svc, kind, ns, identifier)
    payload = {
        "namespace_identifier": ns["namespace_id"],
        f"{kind.value}_identifier": row[id_field],
        **fields(body),
    }
    await write(svc, f"{kind.plural}.update", payload, who, idem, ns["namespace_id"])
    return await find(svc, kind, ns, row[id_field])


async def delete(
    svc: Services, kind: Kind, identifier: str, ns: Row, who: Principal, idem: str
) -> dict[str, Any]:
    if idem and (earlier := await earlier_delete(svc, kind.value, idem, identifier)):
        return earlier  # a retry of a delete that was applied: its first answer
    row = await find(svc, kind, ns, identifier, who)
    resource_id = row[f"{kind.value}_id"]
    payload = {
        "namespace_identifier": ns["namespace_id"],
        f"{kind.value}_identifier": resource_id,
    }
    written = await write(svc, f"{kind.plural}.delete", payload, who, idem, ns["namespace_id"])
    return await deleted_answer(svc, kind.value, resource_id, row[f"{kind.value}_name"], written)


async def clone(
    svc: Services, kind: Kind, identifier: str, body: BaseModel, ns: Row, who: Principal, idem: str
) -> dict[str, Any]:
    if getattr(body, "as_of_position", None) is None:
        identifier = (await find(svc, kind, ns, identifier))[f"{kind.value}_id"]
    # else: the name (or ID) resolves as of then, in the domain
    payload = {
        "namespace_identifier": ns["namespace_id"],
        f"{kind.value}_identifier": identifier,
        **fields(body),
    }
    written = await write(svc, f"{kind.plural}.clone", payload, who, idem, ns["namespace_id"])
    created = await made_by(svc, kind, ns, written, RESOURCES[kind].Cloned)
    source_id = created[f"source_{kind.value}_id"]
    return {kind.value: created, f"source_{kind.value}_id": source_id}


# --- the routes of each kind -----------------------------------------------------------


def add_routes(
    kind: Kind,
    create_body: type[BaseModel],
    update_body: type[BaseModel],
    response: type[BaseModel],
    clone_body: type[BaseModel] | None = None,
    clone_response: type[BaseModel] | None = None,
) -> None:
    """Add ``kind``'s routes to the router: create, list, get, update (and clone)."""

    async def create_(body: Any, ns: InNamespace, who: Who, idem: IdempotencyKey, svc: Svc) -> Any:
        return await create(svc, kind, body, ns, who, idem)

    async def list_(ns: InNamespace, svc: Svc, query: Paging, body: ListBody | None = None) -> Any:
        return await list_page(svc, kind, ns, paging(body, query))

    async def get(identifier: str, ns: InNamespace, who: Who, svc: Svc) -> Any:
        return await find(svc, kind, ns, identifier, who)

    async def update_(
        identifier: str, body: Any, ns: InNamespace, who: Who, idem: IdempotencyKey, svc: Svc
    ) -> Any:
        return await update(svc, kind, identifier, body, ns, who, idem)

    async def clone_(
        identifier: str, body: Any, ns: InNamespace, who: Who, idem: IdempotencyKey, svc: Svc
    ) -> Any:
        return await clone(svc, kind, identifier, body, ns, who, idem)

    async def delete_(
        identifier: str, ns: InNamespace, who: Who, idem: IdempotencyKey, svc: Svc
    ) -> Any:
        return await delete(svc, kind, identifier, ns, who, idem)

    # The body models differ per kind; FastAPI reads them from the annotations.
    create_.__annotations__["body"] = create_body
    update_.__annotations__["body"] = update_body
    clone_.__annotations__["body"] = clone_body
    page_model: Any = s.Page[response]  # type: ignore[valid-type]
    base, one = f"/v1/{kind.plural}", f"/v1/{kind.plural}/{{identifier}}"
    post, name = router.post, kind.value
    post(base, response_model=response, name=f"create_{name}")(create_)
    post(f"{base}/list", response_model=page_model, name=f"list_{kind.plural}")(list_)
    router.get(one, response_model=response, name=f"get_{name}")(get)
    updated = s.RetrieverUpdated if kind is Kind.RETRIEVER else response  # Mixpeek's shape
    router.patch(one, response_model=updated, name=f"update_{name}")(update_)
    router.delete(one, response_model=s.Deleted, name=f"delete_{name}")(delete_)
    if clone_body is not None:
        clone_route = post(f"{one}/clone", response_model=clone_response, name=f"clone_{name}")
        clone_route(clone_)


add_routes(Kind.BUCKET, rq.BucketCreateRequest, rq.BucketUpdateRequest, s.Bucket)
add_routes(
    Kind.COLLECTION,
    rq.CollectionCreateRequest,
    rq.CollectionUpdateRequest,
    s.Collection,
    rq.CollectionCloneRequest,
    s.CollectionCloneResponse,
)
add_routes(
    Kind.RETRIEVER,
    rq.RetrieverCreateRequest,
    rq.RetrieverUpdateRequest,
    s.Retriever,
    rq.RetrieverCloneRequest,
    s.RetrieverCloneResponse,
)
add_routes(
    Kind.TAXONOMY,
    rq.TaxonomyCreateRequest,
    rq.TaxonomyUpdateRequest,
    s.Taxonomy,
    rq.TaxonomyCloneRequest,
    s.TaxonomyCloneResponse,
)
