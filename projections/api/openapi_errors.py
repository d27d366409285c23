"""The error answers of every operation, in the OpenAPI document.

FastAPI documents an operation's success and a 422 of its own shape. The API
answers more than that, and always as ``ErrorResponse``; ``document_errors``
gives each route the statuses of what it takes and what it does, so a
generated client and a schema-driven fuzzer know them all.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from fastapi.security.base import SecurityBase
from fastapi.utils import create_model_field

from contract.responses import ErrorResponse

WHY = {
    400: "The body is not JSON (or not UTF-8), or breaks the JSON limits.",
    401: "No API key, or not a valid one.",
    403: "The API key may not do this: it does not see every namespace involved.",
    404: "Nothing by that name or ID, or only in a namespace this API key does not see.",
    409: "A conflict: the name is taken, the Idempotency-Key was sent with another "
    "request, there is nothing to do, or a collection is not ready yet.",
    413: "The request is too large to travel as a command.",
    422: "The request breaks a rule: a body field, header or parameter is missing or invalid.",
    500: "An unexpected error.",
    503: "This API process has no vector store.",
    504: "The command was sent but not applied in time: retry with the same Idempotency-Key.",
}

# POSTs that only read: a page, a search, a classification.
READING_POSTS = ("/list", "/execute", "/classify")
# Only for a key that sees every namespace (or, for a rollback, every one the ref visited).
NEEDS_WIDER_KEY = {
    "/v1/keys",
    "/v1/checkpoints",
    "/v1/refs/{name}/rollback",
    "/v1/dlq",
    "/v1/dlq/redrive",
}
# Names namespaces outside the path and X-Namespace: in the body or the query.
RESOLVES_OTHERWISE = {"/v1/keys", "/v1/diff"}
# Run on the vector store: 503 without one, 409 while a collection is not ready.
ON_VECTORS = {
    "/v1/buckets/{identifier}/objects",
    "/v1/collections/{identifier}/documents",
    "/v1/collections/{identifier}/documents/delete",
    "/v1/collections/{identifier}/index",
    "/v1/retrievers/{identifier}/execute",
    "/v1/taxonomies/{identifier}/classify",
    "/v1/evaluations",
    "/v1/refs/{name}/promote",
}


def document_errors(router: APIRouter) -> None:
    """Give every route of ``router`` its error answers; call it before it is included."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        for status in sorted(error_statuses(route)):
            route.responses.setdefault(status, {"model": ErrorResponse, "description": WHY[status]})
            # What FastAPI builds from responses={status: {"model": ...}} when a route is added
            route.response_fields[status] = create_model_field(
                name=f"Response_{status}_{route.unique_id}",
                type_=ErrorResponse,
                mode="serialization",
            )


def error_statuses(route: APIRoute) -> set[int]:
    """The error statuses a route can answer, from what it takes and what it does."""
    headers, authenticated = _headers(route.dependant)
    statuses = {500}
    if authenticated:
        statuses.add(401)
    if "{" in route.path or "x-namespace" in headers or route.path in RESOLVES_OTHERWISE:
        statuses.add(404)
    if _takes_query(route.dependant) or "{" in route.path or headers or route.body_field:
        statuses.add(422)
    if route.body_field is not None:
        statuses |= {400, 413}
    if (route.methods or set()) - {"GET"} and not route.path.endswith(READING_POSTS):
        statuses |= {409, 413, 504}  # a command: see WHY
    if route.path in NEEDS_WIDER_KEY:
        statuses.add(403)
    if route.path in ON_VECTORS:
        statuses |= {409, 503}
    return statuses


def _takes_query(dependant: Any) -> bool:
    """Whether a route reads the query string, its dependencies' included."""
    return bool(dependant.query_params) or any(_takes_query(d) for d in dependant.dependencies)


def _headers(dependant: Any) -> tuple[set[str], bool]:
    """The headers a route reads, its dependencies' included; whether it takes an API key."""
    headers = {str(p.alias).lower() for p in dependant.header_params}
    authenticated = isinstance(dependant.call, SecurityBase)
    for sub in dependant.dependencies:
        sub_headers, sub_authenticated = _headers(sub)
        headers |= sub_headers
        authenticated = authenticated or sub_authenticated
    return headers, authenticated
