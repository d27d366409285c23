"""Checkpoints: every read model records a digest of its tables at one position, which
``envbranch replay --verify`` later proves a rebuild reproduces."""

from typing import Any

from fastapi import APIRouter

from contract import requests as rq
from contract import responses as s
from domain.refs import Checkpoint
from projections import queries
from projections.api.dependencies import Svc, Who
from projections.api.errors import ApiError
from projections.api.writes import fields, write
from projections.json_bodies import LimitedJsonRoute
from projections.read_model import recorded_digests

router = APIRouter(route_class=LimitedJsonRoute)


@router.post("/v1/checkpoints", response_model=s.Checkpoint, status_code=201)
async def checkpoint(body: rq.CheckpointRequest, who: Who, svc: Svc) -> Any:
    """Have every read model record a digest of its tables at this position."""
    if not who.is_admin:
        raise ApiError(403, "forbidden", "only a key for every namespace can checkpoint")
    written = await write(svc, "checkpoints.create", fields(body), who, None, "checkpoint")
    position = await svc.read(
        queries.position_of, written.command_id, Checkpoint.Requested.__qualname__
    )
    return {"position": position, "digests": await svc.read(recorded_digests, position)}
