"""Health, without an API key: live (the process answers), ready (every component this
process runs is), and a report of each component's state and lag."""

import asyncio
import logging
from typing import Any

from fastapi import APIRouter

from contract import responses as s
from projections.api.dependencies import Svc
from projections.api.errors import error_response
from projections.api.services import ProcessHealth
from projections.json_bodies import LimitedJsonRoute
from projections.sql import Database

log = logging.getLogger(__name__)

router = APIRouter(route_class=LimitedJsonRoute)


@router.get("/v1/health/live", response_model=s.Live)
async def live() -> Any:
    return s.Live()


@router.get("/v1/health/ready", response_model=s.Ready, responses={503: {"model": s.ErrorResponse}})
async def ready(svc: Svc) -> Any:
    waiting = svc.process.not_ready() if svc.process is not None else []
    if waiting:
        message = f"not ready yet: {', '.join(waiting)}"
        return error_response(503, "not_ready", message, {"components": waiting})
    return s.Ready()


@router.get("/v1/health", response_model=s.Health)
async def health(svc: Svc) -> Any:
    return await asyncio.to_thread(report, svc.db, svc.process)


def report(db: Database, process: ProcessHealth | None) -> s.Health:
    rows = db.query("SELECT value FROM read_model_state WHERE name = 'position'")
    read_model_position = int(rows[0]["value"]) if rows else 0
    if process is None:
        return s.Health(status="ok", read_model_position=read_model_position)
    try:
        store_position = process.event_store_position()
    except Exception:  # noqa: BLE001 - the lag is extra; the report must still answer
        log.warning("cannot read the event store's position", exc_info=True)
        store_position = None
    components = process.components(store_position)
    return s.Health(
        status="ok" if all(c.state == "ready" for c in components) else "starting",
        read_model_position=read_model_position,
        event_store_position=store_position,
        read_model_lag=None
        if store_position is None
        else max(0, store_position - read_model_position),
        components=components,
    )
