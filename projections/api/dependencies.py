"""The routes' FastAPI dependencies: the services, the caller (from its API key), the
namespace a request works in (X-Namespace) and a write's command_id."""

import asyncio
import uuid
from typing import Annotated, Any, cast

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from projections.api.errors import ApiError
from projections.api.lookups import visible_namespace
from projections.api.services import Services
from projections.auth import Principal


def services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


Svc = Annotated[Services, Depends(services)]

# A security scheme rather than a header parameter: the OpenAPI document then says
# which operations need a key, and how to send it.
bearer = HTTPBearer(auto_error=False, description="An API key: `Bearer eb_...`")


async def principal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    svc: Svc,
) -> Principal:
    if credentials is None:
        raise ApiError(401, "unauthorized", "send an API key as 'Authorization: Bearer <key>'")
    found = await asyncio.to_thread(svc.keys.authenticate, credentials.credentials)
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


async def scoped_namespace(
    who: Who,
    x_namespace: Annotated[str, Header(alias="X-Namespace", min_length=1, max_length=200)],
    svc: Svc,
) -> dict[str, Any]:
    return await visible_namespace(svc, who, x_namespace)


InNamespace = Annotated[dict[str, Any], Depends(scoped_namespace)]
