"""Tasks: the asynchronous work a command starts (a namespace clone's copies,
reprocessing, applying a taxonomy), and how far it got."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Self

from eventsourcing.domain import event

from domain.base import Aggregate, Entity, keep_first_topics, recorded_fields
from domain.errors import CommandRejected, ErrorCode
from domain.ids import Kind, new_id


class TaskStatus:
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class CloneTask(Entity):
    """The asynchronous part of a namespace clone, ending in a DeepCloneResult."""

    KIND = Kind.TASK
    if TYPE_CHECKING:  # made by the @event methods below
        Copying: ClassVar[type[Aggregate.Event]]
        CopyProgressed: ClassVar[type[Aggregate.Event]]
        Completed: ClassVar[type[Aggregate.Event]]

    class Created(Aggregate.Created):
        namespace_id: str
        source_namespace_id: str
        target_namespace_id: str
        include_resources: dict[str, bool]

    def __init__(
        self,
        namespace_id: str,
        source_namespace_id: str,
        target_namespace_id: str,
        include_resources: dict[str, bool],
    ) -> None:
        self.namespace_id = namespace_id
        self.source_namespace_id = source_namespace_id
        self.target_namespace_id = target_namespace_id
        self.include_resources = include_resources
        self.status = TaskStatus.PENDING
        self.result: dict[str, Any] | None = None
        # clone collection ID -> {"source": id, "copied": n, "total": n, "done": bool}
        self.copies: dict[str, dict[str, Any]] = {}

    def finish_cloning(self, result: dict[str, Any], copies: dict[str, str]) -> None:
        """The resources are cloned; the vectors of ``copies`` (clone -> source) follow."""
        if copies:
            self._copying(result=result, copies=copies)
        else:
            self._completed(result=result)

    @event("Copying")
    def _copying(self, result: dict[str, Any], copies: dict[str, str]) -> None:
        self.status = TaskStatus.IN_PROGRESS
        self.result = result
        self.copies = {
            clone: {"source": source, "copied": 0, "total": 0, "done": False}
            for clone, source in copies.items()
        }

    def record_copy(self, collection_id: str, copied: int, total: int, done: bool) -> None:
        """Progress of one collection's copy; the task completes with the last one."""
        if self.status != TaskStatus.IN_PROGRESS or collection_id not in self.copies:
            raise CommandRejected(
                ErrorCode.INVALID_REFERENCE,
                f"task {self.id} is not copying collection {collection_id}",
                field="body.collection_id",
            )
        known = self.copies[collection_id]
        if known["done"] or copied < known["copied"]:
            return  # a late or repeated report: nothing new
        self._copy_progressed(collection_id=collection_id, copied=copied, total=total, done=done)
        if all(c["done"] for c in self.copies.values()):
            points = {clone: c["copied"] for clone, c in self.copies.items()}
            assert self.result is not None
            self._completed(result={**self.result, "points": points})

    @event("CopyProgressed")
    def _copy_progressed(self, collection_id: str, copied: int, total: int, done: bool) -> None:
        self.copies[collection_id].update(copied=copied, total=total, done=done)

    @event("Completed")
    def _completed(self, result: dict[str, Any]) -> None:
        self.status = TaskStatus.COMPLETED
        self.result = result


class WorkTask(Entity):
    """A task the vector processor works through over one collection, reporting how far
    it got. Each kind records its own events (ReprocessTask.Progressed, ...)."""

    KIND = Kind.TASK
    status = TaskStatus.IN_PROGRESS
    done = 0
    total = 0
    if TYPE_CHECKING:
        namespace_id: str
        collection_id: str

    class Created(Aggregate.Created):
        namespace_id: str
        collection_id: str

        def apply(self, aggregate: Any) -> None:
            for name in recorded_fields(type(self)):
                setattr(aggregate, name, getattr(self, name))

    class Progressed(Aggregate.Event):
        done: int
        total: int

        def apply(self, aggregate: Any) -> None:
            aggregate.done, aggregate.total = self.done, self.total

    class Completed(Aggregate.Event):
        points: int

        def apply(self, aggregate: Any) -> None:
            aggregate.status = TaskStatus.COMPLETED
            aggregate.done = aggregate.total = self.points

    @classmethod
    def start(cls, **fields: Any) -> Self:
        """A new task over ``fields["collection_id"]`` (its ``Created`` event's fields)."""
        return cls._create(cls.Created, id=new_id(cls.KIND), **fields)

    def record(self, done: int, total: int, finished: bool) -> bool:
        """Progress; True when this report finished the task."""
        if self.status != TaskStatus.IN_PROGRESS or done < self.done:
            return False  # late or repeated
        if finished:
            self.trigger_event(type(self).Completed, points=done)
            return True
        self.trigger_event(type(self).Progressed, done=done, total=total)
        return False


class ReprocessTask(WorkTask):
    """Re-embedding a collection's source objects with its (new) feature extractor."""


class ApplyTaxonomyTask(WorkTask):
    """Classifying every document of a collection with a taxonomy, enriching them."""

    class Created(WorkTask.Created):
        taxonomy_id: str


keep_first_topics(CloneTask, ReprocessTask, ApplyTaxonomyTask)
