"""The aggregates: one class per thing, one method per thing that can happen.

What a resource computes (extractor, source, stages, collection references,
taxonomy config) is set when it is created or cloned and never changes; only
names and descriptions can. Guards live in plain methods; the decorated
methods are the state changes and run again on every replay.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from eventsourcing.domain import (
    BaseAggregate,
    CanInitAggregate,
    CanMutateAggregate,
    MetaDomainEvent,
    event,
)

from domain.errors import CommandRejected, ErrorCode
from domain.ids import Kind, new_id

RESOURCE_KINDS = (Kind.BUCKET, Kind.COLLECTION, Kind.RETRIEVER, Kind.TAXONOMY)


_clock = threading.Lock()
_last_timestamp = datetime.min.replace(tzinfo=UTC)


def monotonic_now() -> datetime:
    """Now, but never earlier than the previous call: a command's events are stored in the
    order they happened even if the wall clock steps back while it runs."""
    global _last_timestamp
    with _clock:
        now = datetime.now(UTC)
        if now <= _last_timestamp:
            now = _last_timestamp + timedelta(microseconds=1)
        _last_timestamp = now
        return now


@dataclass(frozen=True)
class DomainEvent(metaclass=MetaDomainEvent):
    originator_id: str
    originator_version: int
    timestamp: datetime

    @staticmethod
    def create_timestamp() -> datetime:
        return monotonic_now()


class Aggregate(BaseAggregate[str]):
    """The library's Aggregate, with readable string IDs instead of UUIDs."""

    @dataclass(frozen=True)
    class Event(DomainEvent, CanMutateAggregate[str]):
        pass

    @dataclass(frozen=True)
    class Created(CanInitAggregate[str], Event):
        originator_topic: str


class Entity(Aggregate):
    """An aggregate whose ID carries its kind's prefix."""

    KIND: ClassVar[Kind]

    @classmethod
    def create_id(cls, **_: Any) -> str:
        return new_id(cls.KIND)


class Namespace(Entity, created_event_name="Created"):
    """An environment: the resources it holds and the names they go by."""

    KIND = Kind.NAMESPACE

    class Created(Aggregate.Created):
        namespace_name: str
        description: str

    class Cloned(Created):
        source_namespace_id: str
        clone_task_id: str

        def apply(self, aggregate: Namespace) -> None:
            aggregate.source_namespace_id = self.source_namespace_id
            aggregate.clone_task_id = self.clone_task_id

    def __init__(self, namespace_name: str, description: str) -> None:
        self.namespace_name = namespace_name
        self.description = description
        self.source_namespace_id: str | None = None
        self.clone_task_id: str | None = None
        # kind -> resource id -> name
        self.resources: dict[str, dict[str, str]] = {kind.value: {} for kind in RESOURCE_KINDS}

    @property
    def namespace_id(self) -> str:
        return self.id

    def clone(
        self,
        *,
        id: str,
        namespace_name: str,
        description: str,
        clone_task_id: str,  # noqa: A002
    ) -> Namespace:
        return Namespace._create(
            Namespace.Cloned,
            id=id,
            namespace_name=namespace_name,
            description=description,
            source_namespace_id=self.id,
            clone_task_id=clone_task_id,
        )

    @event("Renamed")
    def rename(self, namespace_name: str) -> None:
        self.namespace_name = namespace_name

    @event("DescriptionChanged")
    def change_description(self, description: str) -> None:
        self.description = description

    def find(self, kind: Kind, name: str) -> str | None:
        """The ID of the resource of this kind that goes by this name here."""
        for resource_id, resource_name in self.resources.get(kind.value, {}).items():
            if resource_name == name:
                return resource_id
        return None

    def holds(self, kind: Kind, resource_id: str) -> bool:
        return resource_id in self.resources.get(kind.value, {})

    def add_resource(self, kind: Kind, resource_id: str, name: str) -> None:
        self._refuse_taken_name(kind, name)
        self._resource_added(kind=kind.value, resource_id=resource_id, name=name)

    def rename_resource(self, kind: Kind, resource_id: str, name: str) -> None:
        if self.resources.get(kind.value, {}).get(resource_id) == name:
            return
        self._refuse_taken_name(kind, name)
        self._resource_renamed(kind=kind.value, resource_id=resource_id, name=name)

    def _refuse_taken_name(self, kind: Kind, name: str) -> None:
        taken_by = self.find(kind, name)
        if taken_by is not None:
            raise CommandRejected(
                ErrorCode.DUPLICATE_NAME,
                f"a {kind.value} named {name!r} already exists in namespace "
                f"{self.namespace_name!r} ({taken_by})",
                field=f"body.{kind.value}_name",
                existing_id=taken_by,
            )

    @event("ResourceAdded")
    def _resource_added(self, kind: str, resource_id: str, name: str) -> None:
        # Kinds beyond RESOURCE_KINDS (evaluation sets) are catalogued on first use.
        self.resources.setdefault(kind, {})[resource_id] = name

    @event("ResourceRenamed")
    def _resource_renamed(self, kind: str, resource_id: str, name: str) -> None:
        self.resources[kind][resource_id] = name


class NamespaceName(Aggregate):
    """Claims a namespace name across the whole system, so it stays unique."""

    class Created(Aggregate.Created):
        namespace_name: str
        namespace_id: str

    def __init__(self, namespace_name: str, namespace_id: str) -> None:
        self.namespace_name = namespace_name
        self.claimed_by: str | None = namespace_id
        self.namespace_id = namespace_id  # the latest claimant, kept after a release

    @staticmethod
    def id_for(namespace_name: str) -> str:
        return f"nsname:{namespace_name}"

    @classmethod
    def claim(cls, namespace_name: str, namespace_id: str) -> NamespaceName:
        return cls._create(
            cls.Created,
            id=cls.id_for(namespace_name),
            namespace_name=namespace_name,
            namespace_id=namespace_id,
        )

    def reclaim(self, namespace_id: str) -> None:
        if self.claimed_by is not None:
            raise CommandRejected(
                ErrorCode.DUPLICATE_NAME,
                f"a namespace named {self.namespace_name!r} already exists ({self.claimed_by})",
                field="body.namespace_name",
                existing_id=self.claimed_by,
            )
        self._claimed(namespace_id=namespace_id)

    @event("Claimed")
    def _claimed(self, namespace_id: str) -> None:
        self.claimed_by = namespace_id
        self.namespace_id = namespace_id

    @event("Released")
    def release(self) -> None:
        self.claimed_by = None


class Resource(Entity):
    """Something that lives in one namespace and goes by a unique name there."""

    NAME_FIELD: ClassVar[str]
    namespace_id: str
    description: str

    @property
    def name(self) -> str:
        return str(getattr(self, self.NAME_FIELD))

    def change_description(self, description: str) -> None:
        # Each kind records its own event (Collection.DescriptionChanged, ...): an event
        # decorated here would be Resource.DescriptionChanged for every kind.
        self._description_changed(description=description)

    def _description_changed(self, description: str) -> None:
        raise NotImplementedError


class Bucket(Resource, created_event_name="Created"):
    """Raw objects and the schema they follow."""

    KIND = Kind.BUCKET
    NAME_FIELD = "bucket_name"

    class Created(Aggregate.Created):
        namespace_id: str
        bucket_name: str
        description: str
        bucket_schema: dict[str, Any]

    class Cloned(Created):
        source_bucket_id: str

        def apply(self, aggregate: Bucket) -> None:
            aggregate.source_bucket_id = self.source_bucket_id

    def __init__(
        self,
        namespace_id: str,
        bucket_name: str,
        description: str,
        bucket_schema: dict[str, Any],
    ) -> None:
        self.namespace_id = namespace_id
        self.bucket_name = bucket_name
        self.description = description
        self.bucket_schema = bucket_schema
        self.source_bucket_id: str | None = None
        self.object_keys: dict[str, str] = {}

    def add_objects(self, objects: list[dict[str, Any]]) -> list[str]:
        """Add raw objects; an object whose key the bucket holds replaces that object.
        Returns their object IDs."""
        added = []
        for obj in objects:
            key = obj.get("key")
            known = self.object_keys.get(key) if key is not None else None
            added.append({**obj, "object_id": known or new_id(Kind.OBJECT)})
        self._objects_added(objects=added)
        return [obj["object_id"] for obj in added]

    @event("ObjectsAdded")
    def _objects_added(self, objects: list[dict[str, Any]]) -> None:
        for obj in objects:
            if obj.get("key") is not None:
                self.object_keys[obj["key"]] = obj["object_id"]

    def clone(self, *, id: str, namespace_id: str) -> Bucket:  # noqa: A002
        return Bucket._create(
            Bucket.Cloned,
            id=id,
            namespace_id=namespace_id,
            bucket_name=self.bucket_name,
            description=self.description,
            bucket_schema=self.bucket_schema,
            source_bucket_id=self.id,
        )

    @event("Renamed")
    def rename(self, bucket_name: str) -> None:
        self.bucket_name = bucket_name

    @event("DescriptionChanged")
    def _description_changed(self, description: str) -> None:
        self.description = description


class VectorMode:
    """Where a collection's vectors come from."""

    OWN = "own"  # made by its own extractor from its source
    REUSE = "reuse"  # a view over the source collection's vectors: nothing copied
    COPY = "copy"  # a physical copy of the source's vectors (namespace deep clone)
    REPROCESS = "reprocess"  # a new extractor: must be re-embedded before use


class CollectionStatus:
    READY = "ready"
    AWAITING_REPROCESS = "awaiting_reprocess"
    REPROCESSING = "reprocessing"


class Collection(Resource, created_event_name="Created"):
    """Documents and the vectors one feature extractor made of them."""

    KIND = Kind.COLLECTION
    NAME_FIELD = "collection_name"

    class Created(Aggregate.Created):
        namespace_id: str
        collection_name: str
        description: str
        source: dict[str, Any]
        feature_extractor: dict[str, Any]

    class Cloned(Created):
        source_collection_id: str
        vector_mode: str

        def apply(self, aggregate: Collection) -> None:
            aggregate.source_collection_id = self.source_collection_id
            aggregate.vector_mode = self.vector_mode
            if self.vector_mode == VectorMode.REPROCESS:
                aggregate.status = CollectionStatus.AWAITING_REPROCESS

    def __init__(
        self,
        namespace_id: str,
        collection_name: str,
        description: str,
        source: dict[str, Any],
        feature_extractor: dict[str, Any],
    ) -> None:
        self.namespace_id = namespace_id
        self.collection_name = collection_name
        self.description = description
        self.source = source
        self.feature_extractor = feature_extractor
        self.source_collection_id: str | None = None
        self.vector_mode = VectorMode.OWN
        self.status = CollectionStatus.READY

    def clone(
        self,
        *,
        id: str,  # noqa: A002
        namespace_id: str,
        collection_name: str,
        description: str,
        source: dict[str, Any],
        feature_extractor: dict[str, Any],
        deep_copy: bool = False,
    ) -> Collection:
        """A new collection from this one. Vectors are model-specific: the same
        extractor shares them (or copies them, for a deep copy), a new one needs
        reprocessing, and so does a clone of a collection that has no vectors yet (one
        awaiting or in reprocessing)."""
        if feature_extractor != self.feature_extractor or self.status != CollectionStatus.READY:
            vector_mode = VectorMode.REPROCESS
        else:
            vector_mode = VectorMode.COPY if deep_copy else VectorMode.REUSE
        return Collection._create(
            Collection.Cloned,
            id=id,
            namespace_id=namespace_id,
            collection_name=collection_name,
            description=description,
            source=source,
            feature_extractor=feature_extractor,
            source_collection_id=self.id,
            vector_mode=vector_mode,
        )

    @event("Renamed")
    def rename(self, collection_name: str) -> None:
        self.collection_name = collection_name

    def start_reprocessing(self, task_id: str) -> None:
        """Re-embed the source objects with this collection's extractor, as a task."""
        if self.status == CollectionStatus.REPROCESSING:
            raise CommandRejected(
                ErrorCode.NOT_READY,
                f"collection {self.collection_name!r} is being reprocessed already "
                f"({self.reprocess_task_id})",
                field="body.collection_identifier",
            )
        self._reprocess_started(task_id=task_id)

    @event("ReprocessStarted")
    def _reprocess_started(self, task_id: str) -> None:
        self.status = CollectionStatus.REPROCESSING
        self.reprocess_task_id = task_id

    @event("Reprocessed")
    def reprocessed(self, task_id: str) -> None:
        self.status = CollectionStatus.READY
        self.vector_mode = VectorMode.OWN

    def write_documents(self, documents: list[dict[str, Any]]) -> None:
        self.refuse_unless_ready()
        with_ids = [
            {**d, "document_id": d.get("document_id") or new_id(Kind.OBJECT)} for d in documents
        ]
        self._documents_written(documents=with_ids)

    def delete_documents(self, document_ids: list[str]) -> None:
        self.refuse_unless_ready()
        self._documents_deleted(document_ids=document_ids)

    def refuse_unless_ready(self) -> None:
        if self.status != CollectionStatus.READY:
            raise CommandRejected(
                ErrorCode.NOT_READY,
                f"collection {self.collection_name!r} is {self.status}: its vectors come from a "
                "new feature extractor and must be reprocessed first (collections.trigger)",
                field="body.collection_identifier",
            )

    @event("DocumentsWritten")
    def _documents_written(self, documents: list[dict[str, Any]]) -> None:
        pass  # the documents live in the vector store; the event is their record

    @event("DocumentsDeleted")
    def _documents_deleted(self, document_ids: list[str]) -> None:
        pass

    @event("DescriptionChanged")
    def _description_changed(self, description: str) -> None:
        self.description = description


class Retriever(Resource, created_event_name="Created"):
    """A pipeline of stages over collections."""

    KIND = Kind.RETRIEVER
    NAME_FIELD = "retriever_name"

    class Created(Aggregate.Created):
        namespace_id: str
        retriever_name: str
        description: str
        collection_ids: list[str]
        stages: list[dict[str, Any]]
        input_schema: dict[str, Any]

    class Cloned(Created):
        source_retriever_id: str

        def apply(self, aggregate: Retriever) -> None:
            aggregate.source_retriever_id = self.source_retriever_id

    def __init__(
        self,
        namespace_id: str,
        retriever_name: str,
        description: str,
        collection_ids: list[str],
        stages: list[dict[str, Any]],
        input_schema: dict[str, Any],
    ) -> None:
        self.namespace_id = namespace_id
        self.retriever_name = retriever_name
        self.description = description
        self.collection_ids = collection_ids
        self.stages = stages
        self.input_schema = input_schema
        self.source_retriever_id: str | None = None

    def clone(
        self,
        *,
        id: str,  # noqa: A002
        namespace_id: str,
        retriever_name: str,
        description: str,
        collection_ids: list[str],
        stages: list[dict[str, Any]],
        input_schema: dict[str, Any],
    ) -> Retriever:
        return Retriever._create(
            Retriever.Cloned,
            id=id,
            namespace_id=namespace_id,
            retriever_name=retriever_name,
            description=description,
            collection_ids=collection_ids,
            stages=stages,
            input_schema=input_schema,
            source_retriever_id=self.id,
        )

    @event("Renamed")
    def rename(self, retriever_name: str) -> None:
        self.retriever_name = retriever_name

    @event("DescriptionChanged")
    def _description_changed(self, description: str) -> None:
        self.description = description


class Taxonomy(Resource, created_event_name="Created"):
    """Classification through a retriever against reference collections."""

    KIND = Kind.TAXONOMY
    NAME_FIELD = "taxonomy_name"

    class Created(Aggregate.Created):
        namespace_id: str
        taxonomy_name: str
        description: str
        config: dict[str, Any]

    class Cloned(Created):
        source_taxonomy_id: str

        def apply(self, aggregate: Taxonomy) -> None:
            aggregate.source_taxonomy_id = self.source_taxonomy_id

    def __init__(
        self,
        namespace_id: str,
        taxonomy_name: str,
        description: str,
        config: dict[str, Any],
    ) -> None:
        self.namespace_id = namespace_id
        self.taxonomy_name = taxonomy_name
        self.description = description
        self.config = config
        self.source_taxonomy_id: str | None = None

    def clone(
        self,
        *,
        id: str,  # noqa: A002
        namespace_id: str,
        taxonomy_name: str,
        description: str,
        config: dict[str, Any],
    ) -> Taxonomy:
        return Taxonomy._create(
            Taxonomy.Cloned,
            id=id,
            namespace_id=namespace_id,
            taxonomy_name=taxonomy_name,
            description=description,
            config=config,
            source_taxonomy_id=self.id,
        )

    @event("Renamed")
    def rename(self, taxonomy_name: str) -> None:
        self.taxonomy_name = taxonomy_name

    @event("DescriptionChanged")
    def _description_changed(self, description: str) -> None:
        self.description = description


class TaskStatus:
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class CloneTask(Entity):
    """The asynchronous part of a namespace clone, ending in a DeepCloneResult."""

    KIND = Kind.TASK

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
    """A task the vector processor works through, reporting how far it got."""

    status: str
    done: int

    def record(self, done: int, total: int, finished: bool) -> bool:
        """Progress; True when this report finished the task."""
        if self.status != TaskStatus.IN_PROGRESS or done < self.done:
            return False  # late or repeated
        if finished:
            self._completed(points=done)
            return True
        self._progressed(done=done, total=total)
        return False

    def _progressed(self, done: int, total: int) -> None:
        raise NotImplementedError

    def _completed(self, points: int) -> None:
        raise NotImplementedError


class ReprocessTask(WorkTask):
    """Re-embedding a collection's source objects with its (new) feature extractor."""

    KIND = Kind.TASK

    class Created(Aggregate.Created):
        namespace_id: str
        collection_id: str

    def __init__(self, namespace_id: str, collection_id: str) -> None:
        self.namespace_id = namespace_id
        self.collection_id = collection_id
        self.status = TaskStatus.IN_PROGRESS
        self.done = 0
        self.total = 0

    # Decorated here, not on WorkTask: events are named after the class that declares them.
    @event("Progressed")
    def _progressed(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    @event("Completed")
    def _completed(self, points: int) -> None:
        self.status = TaskStatus.COMPLETED
        self.done = self.total = points


class ApplyTaxonomyTask(WorkTask):
    """Classifying every document of a collection with a taxonomy, enriching them."""

    KIND = Kind.TASK

    class Created(Aggregate.Created):
        namespace_id: str
        collection_id: str
        taxonomy_id: str

    def __init__(self, namespace_id: str, collection_id: str, taxonomy_id: str) -> None:
        self.namespace_id = namespace_id
        self.collection_id = collection_id
        self.taxonomy_id = taxonomy_id
        self.status = TaskStatus.IN_PROGRESS
        self.done = 0
        self.total = 0

    @event("Progressed")
    def _progressed(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    @event("Completed")
    def _completed(self, points: int) -> None:
        self.status = TaskStatus.COMPLETED
        self.done = self.total = points


class CommandReceipt(Aggregate):
    """That a command was applied: makes a command_id an idempotency key."""

    class Accepted(Aggregate.Created):
        command_id: str
        command_type: str
        body_digest: str

    def __init__(self, command_id: str, command_type: str, body_digest: str) -> None:
        self.command_id = command_id
        self.command_type = command_type
        self.body_digest = body_digest

    @staticmethod
    def id_for(command_id: str) -> str:
        return f"cmd:{command_id}"

    @classmethod
    def accept(cls, command_id: str, command_type: str, body_digest: str) -> CommandReceipt:
        return cls._create(
            cls.Accepted,
            id=cls.id_for(command_id),
            command_id=command_id,
            command_type=command_type,
            body_digest=body_digest,
        )
