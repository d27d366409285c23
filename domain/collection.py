"""The collection: documents and the vectors one feature extractor made of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from eventsourcing.domain import event

from domain.base import Aggregate, Resource, keep_first_topics
from domain.errors import CommandRejected, ErrorCode
from domain.ids import Kind, new_id


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
    source_collection_id = None  # set by Cloned
    vector_mode = VectorMode.OWN
    status = CollectionStatus.READY
    reprocess_task_id = None
    if TYPE_CHECKING:  # made by the @event methods below
        ReprocessStarted: ClassVar[type[Aggregate.Event]]
        Reprocessed: ClassVar[type[Aggregate.Event]]
        DocumentsWritten: ClassVar[type[Aggregate.Event]]
        DocumentsDeleted: ClassVar[type[Aggregate.Event]]

    class Created(Resource.Created):
        collection_name: str
        source: dict[str, Any]
        feature_extractor: dict[str, Any]

    class Cloned(Created):
        source_collection_id: str
        vector_mode: str  # decided by the source collection's clone(); readers take it as is

        @property
        def status(self) -> str:
            """The one place this rule lives: a clone whose vectors must be made anew
            waits for reprocessing; any other is ready. Readers of the event take it."""
            if self.vector_mode == VectorMode.REPROCESS:
                return CollectionStatus.AWAITING_REPROCESS
            return CollectionStatus.READY

        def apply(self, aggregate: Any) -> None:
            super().apply(aggregate)
            aggregate.status = self.status

    class Renamed(Resource.Renamed):
        collection_name: str

    def clone(
        self, *, id: str | None = None, deep_copy: bool = False, **overrides: Any
    ) -> Collection:  # noqa: A002
        """A new collection from this one. Vectors are model-specific: the same
        extractor shares them (or copies them, for a deep copy), a new one needs
        reprocessing, and so does a clone of a collection that has no vectors yet (one
        awaiting or in reprocessing)."""
        extractor = overrides.get("feature_extractor")
        if extractor is None:
            extractor = self.feature_extractor
        if extractor != self.feature_extractor or self.status != CollectionStatus.READY:
            vector_mode = VectorMode.REPROCESS
        else:
            vector_mode = VectorMode.COPY if deep_copy else VectorMode.REUSE
        return super().clone(id=id, vector_mode=vector_mode, **overrides)

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


keep_first_topics(Collection)
