"""API keys: a key for every namespace creates keys, for every namespace or for some."""

import asyncio
from typing import Any

from fastapi import APIRouter

from contract import responses as s
from projections.api.dependencies import Svc, Who
from projections.api.errors import ApiError
from projections.api.lookups import visible_namespace
from projections.json_bodies import LimitedJsonRoute

router = APIRouter(route_class=LimitedJsonRoute)


@router.post("/v1/keys", response_model=s.ApiKey, status_code=201)
async def create_key(body: s.ApiKeyCreateRequest, who: Who, svc: Svc) -> Any:
    if not who.is_admin:
        raise ApiError(403, "forbidden", "only a key for every namespace can create keys")
    namespace_ids = None
    if body.namespaces is not None:
        namespace_ids = [
            (await visible_namespace(svc, who, n))["namespace_id"] for n in body.namespaces
        ]
    key_id, api_key = await asyncio.to_thread(svc.keys.create, body.principal, namespace_ids)
    created = await asyncio.to_thread(svc.keys.get, key_id)
    assert created is not None
    return {
        "key_id": key_id,
        "principal": created.name,
        "namespaces": None if created.namespaces is None else sorted(created.namespaces),
        "created_at": "",
        "api_key": api_key,
    }
