"""Tasks: the asynchronous part of a clone, a reprocess or a taxonomy run, answered in
Mixpeek's task shape (its task types, ``additional_data``, ``outputs``, ``error``) with
envbranch's own fields beside it."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import ConfigDict

from contract import responses as s
from domain.mixpeek_options import Unsupported
from projections import queries
from projections.api.dependencies import Svc, Who
from projections.api.errors import ApiError
from projections.api.pages import ListBody, page, paging, query_paging
from projections.json_bodies import LimitedJsonRoute

router = APIRouter(route_class=LimitedJsonRoute)

# envbranch's operations and the Mixpeek task types they are answered as: Mixpeek has no
# namespace-clone type, and a clone creates a namespace.
TASK_TYPES = {
    "namespace_clone": "api_namespaces_create",
    "reprocess": "api_collections_trigger",
    "apply_taxonomy": "api_taxonomies_execute",
}
Status = Literal["PENDING", "IN_PROGRESS", "COMPLETED", "FAILED"]


class TaskListBody(ListBody):
    model_config = ConfigDict(extra="forbid")

    status: Status | list[Status] | None = None
    # Mixpeek's task type or envbranch's operation
    task_type: str | list[str] | None = None
    filters: Unsupported = None
    sort: Unsupported = None
    search: Unsupported = None


def as_mixpeek(row: dict[str, Any]) -> dict[str, Any]:
    """A task row as both envbranch and Mixpeek read it."""
    operation = row["task_type"]
    if row["status"] == "COMPLETED" and row["progress"]:
        row["progress"] = {**row["progress"], "percent": 100.0}
    elif row["progress"] is None:
        row["progress"] = {"percent": 100.0 if row["status"] == "COMPLETED" else 0.0}
    result = row.get("result") or {}
    error = result.get("error") if isinstance(result, dict) else None
    additional = {
        "operation": operation,
        **{k: row.get(k) for k in ("namespace_id", "source_namespace_id", "target_namespace_id")},
        "progress": row["progress"],
        **(result if isinstance(result, dict) else {}),
    }
    outputs = [row["target_namespace_id"]] if row.get("target_namespace_id") else None
    mixpeek = {"additional_data": additional, "outputs": outputs, "error": error}
    return {
        **row,
        **mixpeek,
        "task_type": TASK_TYPES.get(operation, operation),
        "operation": operation,
    }


@router.get("/v1/tasks/{task_id}", response_model=s.Task)
async def get_task(task_id: str, who: Who, svc: Svc) -> Any:
    row = await svc.read(queries.task, task_id)
    if row is None or not who.may_see(row["namespace_id"]):
        raise ApiError(404, "not_found", f"task {task_id!r} not found")
    return as_mixpeek(row)


@router.post("/v1/tasks/list", response_model=s.Page[s.Task])
async def list_tasks(
    who: Who,
    svc: Svc,
    query: Annotated[dict[str, int], Depends(query_paging)],
    body: TaskListBody | None = None,
) -> Any:
    """The tasks of the namespaces the key may see, oldest first; filtered by status and
    task type (Mixpeek's or envbranch's name)."""
    asked = body or TaskListBody()
    window = paging(asked, query)
    limit, offset = window.window()
    where: dict[str, list[str]] = {}
    if asked.status is not None:
        statuses = [asked.status] if isinstance(asked.status, str) else asked.status
        where["status"] = [str(status) for status in statuses]
    if asked.task_type is not None:
        types = [asked.task_type] if isinstance(asked.task_type, str) else asked.task_type
        ours = {mixpeek: op for op, mixpeek in TASK_TYPES.items()}
        where["task_type"] = [ours.get(t, t) for t in types]
    scope = None if who.namespaces is None else sorted(who.namespaces)
    rows, total = await svc.read(queries.tasks_page, scope, where, limit, offset)
    return page([as_mixpeek(r) for r in rows], total, window)
