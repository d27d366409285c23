"""The API's one error shape, and how each failure becomes it.

Every answer that is not a success is an ``ErrorResponse``: what a route refuses
itself (``ApiError``), what the domain rejects (``CommandRejected``), a command
without an outcome in time, and what FastAPI and Starlette refuse on their own.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from contract import commands as c
from contract import responses as s
from domain.errors import CommandRejected, ErrorCode
from domain.ids import Kind, kind_of
from projections.auth import Principal
from projections.gateway import CommandTimeout

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


class ApiError(Exception):
    def __init__(self, status: int, type_: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.details = status, type_, message, details


def error_response(status: int, type_: str, message: str, details: Any = None) -> JSONResponse:
    error = s.ErrorBody(message=message, type=type_, code=type_, details=details or None)
    body = s.ErrorResponse(status=status, error=error)
    return JSONResponse(status_code=status, content=body.model_dump(exclude_none=True))


def add_error_handlers(app: FastAPI) -> None:
    """Answer every failure of ``app``'s routes in the one error shape."""
    app.exception_handler(ApiError)(on_api_error)
    app.exception_handler(CommandRejected)(on_rejected)
    app.exception_handler(CommandTimeout)(on_timeout)
    app.exception_handler(Exception)(on_unexpected)
    app.exception_handler(StarletteHTTPException)(on_http_error)
    app.exception_handler(RequestValidationError)(on_invalid)


async def on_api_error(_: Request, e: ApiError) -> JSONResponse:
    return error_response(e.status, e.type, e.message, e.details)


async def on_rejected(_: Request, e: CommandRejected) -> JSONResponse:
    details = {"field": e.field, **e.details} if e.field else e.details
    return error_response(STATUS.get(e.code, 422), str(e.code), e.message, details)


async def on_timeout(_: Request, e: CommandTimeout) -> JSONResponse:
    idempotency_key = e.command_id.split("/", 1)[-1]  # as the client sends it
    message = f"{e}; retry with the header Idempotency-Key: {idempotency_key}"
    return error_response(504, "timeout", message, {"command_id": e.command_id})


async def on_unexpected(_: Request, e: Exception) -> JSONResponse:
    log.exception("unexpected error")
    return error_response(500, "internal_error", f"unexpected error: {e!r}")


async def on_http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
    """What FastAPI and Starlette refuse themselves, in the API's one error shape."""
    type_, message = HTTP_ERRORS.get(e.status_code, ("http_error", "{detail}"))
    where = f"{request.method} {request.url.path}"
    message = message.format(where=where, detail=e.detail)
    response = error_response(e.status_code, type_, message)
    response.headers.update(e.headers or {})
    if e.status_code == 405:
        response.headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path))
    return response


async def on_invalid(request: Request, e: RequestValidationError) -> JSONResponse:
    problems = [
        {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in e.errors()
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


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI document gives ``path``. Starlette's 405 names those of the
    first route that matched; but /v1/refs/list is POST, not GET /v1/refs/{name}: as in
    OpenAPI, a path without parameters comes before one with."""
    operations: dict[str, dict[str, Any]] = app.openapi()["paths"]
    matching = [p for p in operations if compile_path(p)[0].match(path)]
    exact = [p for p in matching if p == path]
    return sorted({method.upper() for p in exact or matching for method in operations[p]})


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
