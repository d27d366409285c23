"""Tasks: the asynchronous part of a clone, a reprocess or a taxonomy run."""

from typing import Any

from fastapi import APIRouter

from contract import responses as s
from projections import queries
from projections.api.dependencies import Svc, Who
from projections.api.errors import ApiError
from projections.json_bodies import LimitedJsonRoute

router = APIRouter(route_class=LimitedJsonRoute)


@router.get("/v1/tasks/{task_id}", response_model=s.Task)
async def get_task(task_id: str, who: Who, svc: Svc) -> Any:
    row = await svc.read(queries.task, task_id)
    if row is None or not who.may_see(row["namespace_id"]):
        raise ApiError(404, "not_found", f"task {task_id!r} not found")
    if row["status"] == "COMPLETED" and row["progress"]:
        row["progress"] = {**row["progress"], "percent": 100.0}
    elif row["progress"] is None:
        row["progress"] = {"percent": 100.0 if row["status"] == "COMPLETED" else 0.0}
    return row
