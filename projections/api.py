"""The read-model HTTP API, Mixpeek-shaped, under /v1.

Writes become commands on envbranch.commands and answer once the read model
has applied them (read your writes) or with the processor's reason for
rejecting them. Reads come from the read model only.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, Strict
from starlette.exceptions import HTTPException as StarletteHTTPException

from contract import commands as c
from contract import requests as rq
from contract import responses as s
from domain.errors import CommandRejected, ErrorCode
from domain.ids import Kind, kind_of
from domain.json_limits import MAX_INT
from domain.values import INT64, Count, JsonInteger
from projections import queries
from projections.auth import ApiKeys, Principal
from projections.gateway import CommandGateway, CommandTimeout
from projections.health_api import ProcessHealth, add_health_routes
from projections.json_bodies import LimitedJsonRoute
from projections.openapi_errors import document_errors
from projections.release_api import add_release_routes
from projections.sql import Database
from projections.vector_api import add_vector_routes
from projections.vectors.materializer import VectorMaterializer

log = logging.getLogger(__name__)

STATUS = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.NOT_UTF8: 400,
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.NOTHING_TO_DO: 409,
    ErrorCode.STALE_EVALUATION: 409,
    ErrorCode.DUPLICATE_NAME: 409,
    ErrorCode.COMMAND_ID_REUSED: 409,
    ErrorCode.MESSAGE_TOO_LARGE: 413,
    ErrorCode.INTERNAL_ERROR: 500,
}


# The errors FastAPI and Starlette raise themselves: (type, message).
HTTP_ERRORS = {
    400: ("invalid_json", "the body is not valid JSON"),
    404: ("not_found", "no operation at {where}"),
    405: ("method_not_allowed", "{where}: this method is not allowed here"),
}


# What GET /v1/lineage/{identifier} takes: the ID of a resource that can be cloned.
LINEAGE_ID = f"^({'|'.join(kind.prefix for kind in queries.TABLE)})_[0-9a-f]{{32}}$"


class ApiError(Exception):
    def __init__(self, status: int, type_: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.details = status, type_, message, details


def fields(body: BaseModel) -> dict[str, Any]:
    """A request body as the command payload carries it."""
    return body.model_dump(mode="json", exclude_none=True)


def error_response(status: int, type_: str, message: str, details: Any = None) -> JSONResponse:
    body = s.ErrorResponse(error=s.ErrorBody(message=message, type=type_, details=details or None))
    return JSONResponse(status_code=status, content=body.model_dump(exclude_none=True))


class ListBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: Annotated[int, Strict(), Field(ge=1, le=1000), JsonInteger] = 20
    offset: Count = 0


def int64_query(ge: int) -> Any:
    """A query parameter that fits 64 bits, as the JSON bodies' integers do."""
    return Query(ge=ge, le=MAX_INT, json_schema_extra=INT64)


def create_app(
    db: Database,
    gateway: CommandGateway,
    keys: ApiKeys,
    materializer: VectorMaterializer | None = None,
    process: ProcessHealth | None = None,
) -> FastAPI:
    app = FastAPI(
        title="envbranch",
        version="0.1.0",
        description="Environment branching for AI retrieval pipelines.",
        on_startup=[gateway.start],
        on_shutdown=[gateway.stop],
    )
    app.router.route_class = LimitedJsonRoute

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.type, e.message, e.details)

    @app.exception_handler(CommandRejected)
    async def _rejected(_: Request, e: CommandRejected) -> JSONResponse:
        details = {"field": e.field, **e.details} if e.field else e.details
        return error_response(STATUS.get(e.code, 422), str(e.code), e.message, details)

    @app.exception_handler(CommandTimeout)
    async def _timeout(_: Request, e: CommandTimeout) -> JSONResponse:
        idempotency_key = e.command_id.split("/", 1)[-1]  # as the client sends it
        message = f"{e}; retry with the header Idempotency-Key: {idempotency_key}"
        return error_response(504, "timeout", message, {"command_id": e.command_id})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, "internal_error", f"unexpected error: {e!r}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        """What FastAPI and Starlette refuse themselves, in the API's one error shape."""
        type_, message = HTTP_ERRORS.get(e.status_code, ("http_error", "{detail}"))
        where = f"{request.method} {request.url.path}"
        message = message.format(where=where, detail=e.detail)
        response = error_response(e.status_code, type_, message)
        response.headers.update(e.headers or {})
        if e.status_code == 405:
            response.headers["Allow"] = ", ".join(allowed_methods(app, request.url.path))
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
            for err in e.errors()
        ]
        plural = request.url.path.removeprefix("/v1/").split("/", 1)[0]
        immutable: tuple[str, ...] = ()
        if request.method == "PATCH":  # PATCH /v1/{plural}/{identifier}
            immutable = c.IMMUTABLE_FIELDS.get(f"{plural}.update", ())
        for err in e.errors():
            loc = err["loc"]
            if err["type"] == "extra_forbidden" and loc[-1] in immutable:
                field = ".".join(str(p) for p in loc)
                message = c.immutable_field_message(plural, str(loc[-1]))
                return error_response(422, "immutable_field", message, {"field": field})
        first = problems[0]
        message = f"{first['field']}: {first['message']}"
        return error_response(
            422, "validation_error", message, {"field": first["field"], "problems": problems}
        )

    async def read(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, db, *args)

    # A security scheme rather than a header parameter: the OpenAPI document then says
    # which operations need a key, and how to send it.
    bearer = HTTPBearer(auto_error=False, description="An API key: `Bearer eb_...`")

    async def principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if credentials is None:
            raise ApiError(401, "unauthorized", "send an API key as 'Authorization: Bearer <key>'")
        found = await asyncio.to_thread(keys.authenticate, credentials.credentials)
        if found is None:
            raise ApiError(401, "unauthorized", "the API key is not valid")
        return found

    Who = Annotated[Principal, Depends(principal)]

    async def command_id_of(
        who: Who,
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
        ] = None,
    ) -> str:
        """A write's command_id. An Idempotency-Key belongs to the API key that sent it:
        the same header from another key is another command, so a replay can only ever
        return (or grant) what this key did itself."""
        return f"{who.key_id}/{idempotency_key or uuid.uuid4()}"

    IdempotencyKey = Annotated[str, Depends(command_id_of)]

    async def visible_namespace(who: Principal, identifier: str) -> dict[str, Any]:
        row = await read(queries.namespace, identifier)
        if row is None or not who.may_see(row["namespace_id"]):
            raise ApiError(404, "not_found", f"namespace {identifier!r} not found")
        return row

    async def scoped_namespace(
        who: Who,
        x_namespace: Annotated[str, Header(alias="X-Namespace", min_length=1, max_length=200)],
    ) -> dict[str, Any]:
        return await visible_namespace(who, x_namespace)

    InNamespace = Annotated[dict[str, Any], Depends(scoped_namespace)]

    async def command(
        type_: str, body: dict[str, Any], who: Principal, idempotency_key: str | None, key: str
    ) -> str:
        try:
            sent = await gateway.execute(type_, body, who.name, command_id=idempotency_key, key=key)
        except CommandRejected as e:
            raise for_principal(e, who) from None
        return sent.command_id

    async def created_namespace(command_id: str) -> dict[str, Any]:
        """The namespace this command created, from its own events: a name may have
        moved to another namespace since (a replayed command writes nothing new)."""
        types = ["Namespace.Created", "Namespace.Cloned"]
        namespace_id = await read(queries.created_by_command, command_id, types)
        row = None if namespace_id is None else await read(queries.namespace, namespace_id)
        if row is None:
            raise ApiError(404, "not_found", "the namespace this command created is gone")
        return row

    # --- namespaces -------------------------------------------------------

    @app.post("/v1/namespaces", response_model=s.Namespace, status_code=201)
    async def create_namespace(
        body: rq.NamespaceCreateRequest, who: Who, idem: IdempotencyKey
    ) -> Any:
        command_id = await command(
            "namespaces.create", fields(body), who, idem, body.namespace_name
        )
        row = await created_namespace(command_id)
        await asyncio.to_thread(keys.grant, who.key_id, row["namespace_id"])
        return row

    @app.get("/v1/namespaces/{identifier}", response_model=s.Namespace)
    async def get_namespace(identifier: str, who: Who) -> Any:
        return await visible_namespace(who, identifier)

    @app.post("/v1/namespaces/list", response_model=s.Page[s.Namespace])
    async def list_namespaces(who: Who, body: ListBody | None = None) -> Any:
        body = body or ListBody()
        scope = None if who.namespaces is None else sorted(who.namespaces)
        rows, total = await read(queries.page, Kind.NAMESPACE, None, body.limit, body.offset)
        if scope is not None:
            rows, total = await read(_namespaces_in, scope, body.limit, body.offset)
        return _page(rows, total, body)

    @app.patch("/v1/namespaces/{identifier}", response_model=s.Namespace)
    async def update_namespace(
        identifier: str, body: rq.NamespaceUpdateRequest, who: Who, idem: IdempotencyKey
    ) -> Any:
        row = await visible_namespace(who, identifier)
        ns_id = row["namespace_id"]
        payload = {"namespace_identifier": ns_id, **fields(body)}
        await command("namespaces.update", payload, who, idem, ns_id)
        return await read(queries.namespace, ns_id)

    @app.post(
        "/v1/namespaces/{identifier}/clone",
        response_model=s.NamespaceCloneResponse,
        status_code=202,
    )
    async def clone_namespace(
        identifier: str, body: rq.NamespaceCloneRequest, who: Who, idem: IdempotencyKey
    ) -> Any:
        source = await visible_namespace(who, identifier)
        payload = {"namespace_identifier": source["namespace_id"], **fields(body)}
        command_id = await command("namespaces.clone", payload, who, idem, source["namespace_id"])
        clone = await created_namespace(command_id)
        await asyncio.to_thread(keys.grant, who.key_id, clone["namespace_id"])
        # The answer describes the clone as this command left it: a clone whose vectors
        # are still to be copied is "cloning" even if the copy has finished since.
        done = await read(queries.created_by_command, command_id, ["CloneTask.Completed"])
        status = "cloning" if done is None else "ready"
        return {
            "namespace": clone,
            "source_namespace_id": source["namespace_id"],
            "status": status,
            "task_id": clone["clone_task_id"],
        }

    # --- buckets, collections, retrievers, taxonomies -----------------------

    def resource_routes(
        kind: Kind,
        create_model: type[BaseModel],
        update_model: type[BaseModel],
        response: type[BaseModel],
        clone_model: type[BaseModel] | None = None,
        clone_response: type[BaseModel] | None = None,
    ) -> None:
        plural, name_field = kind.plural, f"{kind.value}_name"
        id_field, identifier_field = f"{kind.value}_id", f"{kind.value}_identifier"

        async def find(
            ns: dict[str, Any], identifier: str, who: Principal | None = None
        ) -> dict[str, Any]:
            row = await read(queries.resolve, kind, ns["namespace_id"], identifier)
            if row is not None and not reachable(row, ns, who):
                row = None
            if row is None:
                message = f"{kind.value} {identifier!r} not found in namespace"
                raise ApiError(404, "not_found", f"{message} {ns['namespace_name']!r}")
            return row

        async def create(body: Any, ns: InNamespace, who: Who, idem: IdempotencyKey) -> Any:
            payload = {"namespace_identifier": ns["namespace_id"], **fields(body)}
            await command(f"{plural}.create", payload, who, idem, ns["namespace_id"])
            return await find(ns, getattr(body, name_field))

        async def get(identifier: str, ns: InNamespace, who: Who) -> Any:
            return await find(ns, identifier, who)

        async def list_(ns: InNamespace, body: ListBody | None = None) -> Any:
            body = body or ListBody()
            rows, total = await read(
                queries.page, kind, [ns["namespace_id"]], body.limit, body.offset
            )
            return _page(rows, total, body)

        async def update(
            identifier: str, body: Any, ns: InNamespace, who: Who, idem: IdempotencyKey
        ) -> Any:
            row = await find(ns, identifier)
            payload = {
                "namespace_identifier": ns["namespace_id"],
                identifier_field: row[id_field],
                **fields(body),
            }
            await command(f"{plural}.update", payload, who, idem, ns["namespace_id"])
            return await find(ns, row[id_field])

        async def clone(
            identifier: str, body: Any, ns: InNamespace, who: Who, idem: IdempotencyKey
        ) -> Any:
            if getattr(body, "as_of_position", None) is None:
                identifier = (await find(ns, identifier))[id_field]
            # else: the name (or ID) resolves as of then, in the domain
            payload = {
                "namespace_identifier": ns["namespace_id"],
                identifier_field: identifier,
                **fields(body),
            }
            await command(f"{plural}.clone", payload, who, idem, ns["namespace_id"])
            created = await find(ns, getattr(body, name_field))
            source_id = created[f"source_{kind.value}_id"]
            return {kind.value: created, f"source_{kind.value}_id": source_id}

        # The body models differ per kind; FastAPI reads them from the annotations.
        create.__annotations__["body"] = create_model
        update.__annotations__["body"] = update_model
        clone.__annotations__["body"] = clone_model
        page_model: Any = s.Page[response]  # type: ignore[valid-type]
        base = f"/v1/{plural}"
        app.post(base, response_model=response, status_code=201, name=f"create_{kind}")(create)
        app.post(f"{base}/list", response_model=page_model, name=f"list_{plural}")(list_)
        app.get(base + "/{identifier}", response_model=response, name=f"get_{kind}")(get)
        app.patch(base + "/{identifier}", response_model=response, name=f"update_{kind}")(update)
        if clone_model is not None:
            app.post(
                base + "/{identifier}/clone",
                response_model=clone_response,
                status_code=201,
                name=f"clone_{kind}",
            )(clone)

    resource_routes(Kind.BUCKET, rq.BucketCreateRequest, rq.BucketUpdateRequest, s.Bucket)
    resource_routes(
        Kind.COLLECTION,
        rq.CollectionCreateRequest,
        rq.CollectionUpdateRequest,
        s.Collection,
        rq.CollectionCloneRequest,
        s.CollectionCloneResponse,
    )
    resource_routes(
        Kind.RETRIEVER,
        rq.RetrieverCreateRequest,
        rq.RetrieverUpdateRequest,
        s.Retriever,
        rq.RetrieverCloneRequest,
        s.RetrieverCloneResponse,
    )
    resource_routes(
        Kind.TAXONOMY,
        rq.TaxonomyCreateRequest,
        rq.TaxonomyUpdateRequest,
        s.Taxonomy,
        rq.TaxonomyCloneRequest,
        s.TaxonomyCloneResponse,
    )

    # --- tasks, lineage, audit ---------------------------------------------

    @app.get("/v1/tasks/{task_id}", response_model=s.Task)
    async def get_task(task_id: str, who: Who) -> Any:
        row = await read(queries.task, task_id)
        if row is None or not who.may_see(row["namespace_id"]):
            raise ApiError(404, "not_found", f"task {task_id!r} not found")
        if row["status"] == "COMPLETED" and row["progress"]:
            row["progress"] = {**row["progress"], "percent": 100.0}
        elif row["progress"] is None:
            row["progress"] = {"percent": 100.0 if row["status"] == "COMPLETED" else 0.0}
        return row

    @app.get("/v1/lineage/{identifier}", response_model=s.Lineage)
    async def get_lineage(
        identifier: Annotated[str, Path(json_schema_extra={"pattern": LINEAGE_ID})], who: Who
    ) -> Any:
        kind = kind_of(identifier)
        if kind is None or kind not in queries.TABLE:
            prefixes = ", ".join(f"{k.prefix}_" for k in queries.TABLE)
            message = f"lineage takes a resource ID ({prefixes})"
            raise ApiError(422, "validation_error", message)
        row = await read(queries.resource_by_id, kind, identifier)
        if row is None or not who.may_see(row["namespace_id"]):
            raise ApiError(404, "not_found", f"{kind.value} {identifier!r} not found")
        ancestors, descendants = await read(queries.lineage, identifier)

        def visible(edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [e for e in edges if who.may_see(e["namespace_id"])]

        return {
            "resource_id": identifier,
            "ancestors": visible(ancestors),
            "descendants": visible(descendants),
        }

    @app.get("/v1/audit", response_model=s.Page[s.AuditEntry])
    async def get_audit(
        who: Who,
        resource_id: str | None = None,
        actor: str | None = None,
        type: str | None = None,  # noqa: A002 - the query parameter's name
        command_id: str | None = None,
        from_position: Annotated[int | None, int64_query(ge=0)] = None,
        to_position: Annotated[int | None, int64_query(ge=0)] = None,
        since: str | None = None,
        until: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, int64_query(ge=0)] = 0,
    ) -> Any:
        filters = {
            "resource_id": resource_id,
            "actor": actor,
            "type": type,
            "command_id": command_id,
            "from_position": from_position,
            "to_position": to_position,
            "since": since,
            "until": until,
        }
        scope = None if who.namespaces is None else sorted(who.namespaces)
        rows, total = await read(queries.audit, scope, filters, limit, offset)
        return _page(rows, total, ListBody(limit=limit, offset=offset))

    # --- keys and health ---------------------------------------------------

    @app.post("/v1/keys", response_model=s.ApiKey, status_code=201)
    async def create_key(body: s.ApiKeyCreateRequest, who: Who) -> Any:
        if not who.is_admin:
            raise ApiError(403, "forbidden", "only a key for every namespace can create keys")
        namespace_ids = None
        if body.namespaces is not None:
            namespace_ids = [
                (await visible_namespace(who, n))["namespace_id"] for n in body.namespaces
            ]
        key_id, api_key = await asyncio.to_thread(keys.create, body.principal, namespace_ids)
        created = await asyncio.to_thread(keys.get, key_id)
        assert created is not None
        return {
            "key_id": key_id,
            "principal": created.name,
            "namespaces": None if created.namespaces is None else sorted(created.namespaces),
            "created_at": "",
            "api_key": api_key,
        }

    async def write(
        type_: str, body: dict[str, Any], who: Principal, idem: str | None, key: str
    ) -> tuple[str, int]:
        try:
            sent = await gateway.execute(type_, body, who.name, command_id=idem, key=key)
        except CommandRejected as e:
            raise for_principal(e, who) from None
        assert sent.position is not None  # execute returns once the receipt was applied
        return sent.command_id, sent.position

    deps: dict[str, Any] = {
        "Who": Who,
        "InNamespace": InNamespace,
        "IdempotencyKey": IdempotencyKey,
    }
    add_vector_routes(app, db, materializer, write, deps, gateway.timeout)
    add_release_routes(app, db, write, {**deps, "materializer": materializer})

    add_health_routes(app, db, process)

    document_errors(app)  # last: it documents the routes added so far
    return app


def for_principal(rejected: CommandRejected, who: Principal) -> CommandRejected:
    """A rejection as the key that sent the command may see it: a namespace name taken in
    another tenant is named as taken, without the ID of the namespace that holds it."""
    existing = rejected.details.get("existing_id")
    if (
        rejected.code != ErrorCode.DUPLICATE_NAME
        or not isinstance(existing, str)
        or kind_of(existing) is not Kind.NAMESPACE  # a resource in the key's own namespace
        or who.may_see(existing)
    ):
        return rejected
    return CommandRejected(
        ErrorCode.DUPLICATE_NAME,
        "that namespace name is taken: namespace names are unique across envbranch, choose another",
        field=rejected.field,
    )


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI document gives ``path``. Starlette's 405 names those of the
    first route that matched; but /v1/refs/list is POST, not GET /v1/refs/{name}: as in
    OpenAPI, a path without parameters comes before one with."""
    routes = [r for r in app.routes if isinstance(r, APIRoute) and r.path_regex.match(path)]
    exact = [r for r in routes if r.path == path]
    return sorted({method for route in exact or routes for method in route.methods or ()})


def reachable(row: dict[str, Any], ns: dict[str, Any], who: Principal | None) -> bool:
    """Whether a resource found from namespace ``ns`` may be served: its own resources
    always; another namespace's (through a ref:) only to reads by a key that may see it."""
    if row["namespace_id"] == ns["namespace_id"]:
        return True
    return who is not None and who.may_see(row["namespace_id"])


def _namespaces_in(db: Database, ids: list[str], limit: int, offset: int) -> tuple[list, int]:
    marks = ", ".join("?" for _ in ids)
    where = f"WHERE namespace_id IN ({marks})" if ids else "WHERE 1 = 0"
    total = db.query(f"SELECT COUNT(*) AS n FROM namespaces {where}", ids)[0]["n"]
    rows = db.query(
        f"SELECT * FROM namespaces {where} ORDER BY created_at, namespace_id LIMIT ? OFFSET ?",
        [*ids, limit, offset],
    )
    return rows, int(total)


def _page(rows: list[dict[str, Any]], total: int, body: ListBody) -> dict[str, Any]:
    return {
        "results": rows,
        "pagination": {
            "total": total,
            "limit": body.limit,
            "offset": body.offset,
            "has_more": body.offset + len(rows) < total,
        },
    }
