"""Tasks: a namespace clone copying its vectors, and the vector processor's work tasks
(reprocessing a collection, applying a taxonomy), each with how far it got."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from domain.base import Aggregate
from domain.envelopes import EventEnvelope
from domain.events import typed
from domain.tasks import ApplyTaxonomyTask, CloneTask, ReprocessTask, TaskStatus
from projections.read_model.cursor import Projection, Projector, to_column

# --- a namespace clone ---------------------------------------------------------------


def on_clone_task_created(cur: Projection, e: EventEnvelope) -> None:
    created = typed(e)
    occurred_at = cur.occurred_at(e)
    cur.insert(
        "tasks",
        {
            "task_id": e.aggregate_id,
            "namespace_id": e.namespace_id,
            "task_type": "namespace_clone",
            "status": TaskStatus.PENDING,
            "source_namespace_id": created.source_namespace_id,
            "target_namespace_id": created.target_namespace_id,
            "include_resources": to_column(created.include_resources),
            "progress": None,
            "result": None,
            "created_at": occurred_at,
            "updated_at": occurred_at,
            "created_by": e.actor,
        },
    )


def on_copying(cur: Projection, e: EventEnvelope) -> None:
    copying = typed(e)
    copies = {clone: {"copied": 0, "total": 0, "done": False} for clone in copying.copies}
    cur.update(
        "tasks",
        e.aggregate_id,
        {
            "status": TaskStatus.IN_PROGRESS,
            "result": to_column(copying.result),
            "progress": to_column(_copy_progress(copies)),
            "updated_at": cur.occurred_at(e),
        },
    )


def on_copy_progressed(cur: Projection, e: EventEnvelope) -> None:
    progressed = typed(e)
    row = cur.row("tasks", e.aggregate_id)
    assert row is not None, f"no task {e.aggregate_id}"  # a task's events follow its creation
    copies = json.loads(row["progress"])["collections"]
    copies[progressed.collection_id] = {
        "copied": progressed.copied,
        "total": progressed.total,
        "done": progressed.done,
    }
    cur.update(
        "tasks",
        e.aggregate_id,
        {"progress": to_column(_copy_progress(copies)), "updated_at": cur.occurred_at(e)},
    )


def on_clone_task_completed(cur: Projection, e: EventEnvelope) -> None:
    cur.update(
        "tasks",
        e.aggregate_id,
        {
            "status": TaskStatus.COMPLETED,
            "result": to_column(typed(e).result),
            "updated_at": cur.occurred_at(e),
        },
    )


def _copy_progress(copies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    copied = sum(c["copied"] for c in copies.values())
    total = sum(c["total"] for c in copies.values())
    done = all(c["done"] for c in copies.values())
    percent = 100.0 if done else (100.0 * copied / total if total else 0.0)
    return {
        "points_copied": copied,
        "points_total": total,
        "percent": round(percent, 1),
        "collections": copies,
    }


# --- work the vector processor reports on --------------------------------------------


def on_work_created(task_type: str, cur: Projection, e: EventEnvelope) -> None:
    occurred_at = cur.occurred_at(e)
    cur.insert(
        "tasks",
        {
            "task_id": e.aggregate_id,
            "namespace_id": e.namespace_id,
            "task_type": task_type,
            "status": TaskStatus.IN_PROGRESS,
            "progress": to_column({"documents_done": 0, "documents_total": 0, "percent": 0.0}),
            "result": to_column(e.data),  # what the task works on: collection_id (taxonomy_id)
            "created_at": occurred_at,
            "updated_at": occurred_at,
            "created_by": e.actor,
        },
    )


def on_work_progressed(cur: Projection, e: EventEnvelope) -> None:
    progressed = typed(e)
    done = progressed.done or 0
    total = done if progressed.total is None else progressed.total
    percent = round(100.0 * done / total, 1) if total else 0.0
    _record_work(cur, e, TaskStatus.IN_PROGRESS, done, total, percent)


def on_work_completed(cur: Projection, e: EventEnvelope) -> None:
    points = typed(e).points
    _record_work(cur, e, TaskStatus.COMPLETED, points, points, 100.0)


def _record_work(
    cur: Projection, e: EventEnvelope, status: str, done: int, total: int, percent: float
) -> None:
    progress = {"documents_done": done, "documents_total": total, "percent": percent}
    cur.update(
        "tasks",
        e.aggregate_id,
        {
            "status": status,
            "progress": to_column(progress),
            "updated_at": cur.occurred_at(e),
        },
    )


PROJECTORS: dict[type[Aggregate.Event], Projector] = {
    CloneTask.Created: on_clone_task_created,
    CloneTask.Copying: on_copying,
    CloneTask.CopyProgressed: on_copy_progressed,
    CloneTask.Completed: on_clone_task_completed,
    ReprocessTask.Created: partial(on_work_created, "reprocess"),
    ReprocessTask.Progressed: on_work_progressed,
    ReprocessTask.Completed: on_work_completed,
    ApplyTaxonomyTask.Created: partial(on_work_created, "apply_taxonomy"),
    ApplyTaxonomyTask.Progressed: on_work_progressed,
    ApplyTaxonomyTask.Completed: on_work_completed,
}
