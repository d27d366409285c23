"""Work that runs as a task (reprocessing, applying a taxonomy) and the progress the
vector processor reports for it and for a namespace clone's copies."""

from __future__ import annotations

from typing import TypeVar

from application.unit import Handlers, Unit
from contract import commands as c
from domain.base import Aggregate
from domain.collection import Collection
from domain.errors import CommandRejected, ErrorCode
from domain.tasks import ApplyTaxonomyTask, CloneTask, ReprocessTask
from domain.taxonomy import Taxonomy

T = TypeVar("T", bound=Aggregate)


def trigger_reprocess(unit: Unit, body: c.TriggerReprocess) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    collection = unit.resource_of(namespace, Collection, body.collection_identifier)
    task = ReprocessTask.start(namespace_id=namespace.id, collection_id=collection.id)
    collection.start_reprocessing(task.id)
    unit.add(task)


def apply_taxonomy(unit: Unit, body: c.ApplyTaxonomy) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    collection = unit.resource_of(namespace, Collection, body.collection_identifier)
    assert body.taxonomy_identifier is not None  # the body's validator sees to it
    taxonomy = unit.resource_of(namespace, Taxonomy, body.taxonomy_identifier)
    collection.refuse_unless_ready()
    unit.add(
        ApplyTaxonomyTask.start(
            namespace_id=namespace.id, collection_id=collection.id, taxonomy_id=taxonomy.id
        )
    )


def report_copy_progress(unit: Unit, body: c.ReportCopyProgress) -> None:
    task = _task(unit, body.task_id, CloneTask)
    task.record_copy(body.collection_id, body.copied, body.total, body.done)


def report_reprocess_progress(unit: Unit, body: c.ReportReprocessProgress) -> None:
    task = _task(unit, body.task_id, ReprocessTask)
    if task.record(body.done, body.total, body.finished):
        collection = unit.get(task.collection_id, Collection)
        assert collection is not None
        collection.reprocessed(task.id)


def report_apply_progress(unit: Unit, body: c.ReportApplyProgress) -> None:
    task = _task(unit, body.task_id, ApplyTaxonomyTask)
    task.record(body.done, body.total, body.finished)


def _task(unit: Unit, task_id: str, cls: type[T]) -> T:
    """The task a progress report is about; the command acts in the task's namespace."""
    task = unit.get(task_id, cls)
    if task is None:
        raise CommandRejected(
            ErrorCode.NOT_FOUND, f"task {task_id!r} not found", field="body.task_id"
        )
    unit.namespace_id = task.namespace_id  # type: ignore[attr-defined]
    return task


HANDLERS: Handlers = {
    c.TriggerReprocess: trigger_reprocess,
    c.ApplyTaxonomy: apply_taxonomy,
    c.ReportCopyProgress: report_copy_progress,
    c.ReportReprocessProgress: report_reprocess_progress,
    c.ReportApplyProgress: report_apply_progress,
}
