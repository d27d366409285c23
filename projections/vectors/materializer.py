"""The vector materializer: envbranch.events in, copy-on-write collections out.

It turns each event into vector work: a created collection gets a view in the
store of its extractor's vector space, filled from its buckets' objects; a
reuse clone shares its source's points; a copy clone copies them in resumable
batches; a clone with a new extractor gets an empty space that waits for
reprocessing; written documents are embedded (unless they bring a vector) and
deleted ones hidden. Its position is stored with its state, so a redelivered
event is skipped and a crash resumes the event it was in (every step of which
is idempotent).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from domain import packed_vectors
from domain.base import Aggregate
from domain.bucket import Bucket
from domain.collection import Collection, CollectionStatus, VectorMode
from domain.envelopes import EventEnvelope
from domain.events import event_type, typed
from domain.retriever import Retriever
from domain.tasks import ApplyTaxonomyTask, CloneTask, ReprocessTask
from domain.taxonomy import Taxonomy
from projections.sql import Database
from projections.vectors.extractors import get_extractor
from projections.vectors.store import StoreNotFound, VectorPoint, VectorStore
from projections.vectors.views import CopyOnWrite, CopyProgress

log = logging.getLogger(__name__)

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS vector_state (name TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE IF NOT EXISTS vector_objects (bucket_id TEXT, object_id TEXT, key TEXT,
        text TEXT, metadata TEXT, PRIMARY KEY (bucket_id, object_id))""",
    """CREATE TABLE IF NOT EXISTS vector_collections (collection_id TEXT PRIMARY KEY,
        source TEXT, feature_extractor TEXT, status TEXT)""",
    # What retrievers and taxonomies compute, to apply a taxonomy to a collection.
    "CREATE TABLE IF NOT EXISTS vector_definitions (resource_id TEXT PRIMARY KEY, body TEXT)",
]
COPY_BATCH = 1024
MAX_DEPTH = 8  # layers a view may stack before it is compacted into one
GC_INTERVAL = 30.0  # seconds between garbage collections, when there may be garbage

Progress = Callable[[str, str, CopyProgress], None]  # (task_id, clone collection_id, progress)
# (task_id, documents embedded, total, finished)
ReprocessProgress = Callable[[str, int, int, bool], None]


def store_name(feature_extractor: dict[str, Any]) -> str:
    return f"vs-{get_extractor(feature_extractor).signature}"


class VectorMaterializer:
    def __init__(
        self,
        vectors: VectorStore,
        db: Database,
        on_copy_progress: Progress | None = None,
        on_reprocess_progress: ReprocessProgress | None = None,
    ) -> None:
        self.vectors = vectors
        self.db = db
        self.cow = CopyOnWrite(vectors, db)
        self.on_copy_progress = on_copy_progress
        self.on_reprocess_progress = on_reprocess_progress
        self.on_apply_progress: ReprocessProgress | None = None
        self.garbage = False  # something may no longer be referenced
        self.last_gc = 0.0
        self.gc_interval = GC_INTERVAL

    def create_schema(self) -> None:
        self.cow.create_schema()
        with self.db.transaction() as cur:
            for statement in SCHEMA:
                cur.execute(statement)
            if not cur.query("SELECT value FROM vector_state WHERE name = 'position'"):
                cur.execute("INSERT INTO vector_state VALUES ('position', '0')")
                cur.execute("INSERT INTO vector_state VALUES ('generation', ?)", [uuid.uuid4().hex])

    def generation(self) -> str:
        rows = self.db.query("SELECT value FROM vector_state WHERE name = 'generation'")
        return str(rows[0]["value"])

    def position(self) -> int:
        rows = self.db.query("SELECT value FROM vector_state WHERE name = 'position'")
        return int(rows[0]["value"]) if rows else 0

    def apply(self, envelopes: Iterable[EventEnvelope]) -> int:
        applied = 0
        position = self.position()
        for envelope in envelopes:
            if envelope.position <= position:
                continue  # redelivered: done already
            self._apply(envelope)
            with self.db.transaction() as cur:
                cur.execute(
                    "UPDATE vector_state SET value = ? WHERE name = 'position'",
                    [str(envelope.position)],
                )
            position = envelope.position
            applied += 1
        if self.garbage and time.monotonic() - self.last_gc >= self.gc_interval:
            removed = self.cow.collect_garbage()
            self.garbage, self.last_gc = False, time.monotonic()
            log.info("garbage collection removed %s points", removed)
        return applied

    def maintain_indexes(self) -> None:
        """Start or finish the HNSW index builds the stores need (never waits for one)."""
        for store in self.vectors.list_stores():
            try:
                self.vectors.maintain_index(store)
            except StoreNotFound:
                pass  # dropped meanwhile (garbage collection)
            except Exception:  # one store's trouble does not stop the others' upkeep
                log.exception("looking after the index of store %s failed", store)

    def _apply(self, e: EventEnvelope) -> None:
        event_class = event_type(e)
        if event_class in HANDLERS:
            HANDLERS[event_class](self, e)

    # --- buckets -------------------------------------------------------------

    def _on_objects_added(self, e: EventEnvelope) -> None:
        objects = typed(e).objects
        with self.db.transaction() as cur:
            for obj in objects:
                cur.execute(
                    "DELETE FROM vector_objects WHERE bucket_id = ? AND object_id = ?",
                    [e.aggregate_id, obj["object_id"]],
                )
                cur.execute(
                    "INSERT INTO vector_objects VALUES (?, ?, ?, ?, ?)",
                    [
                        e.aggregate_id,
                        obj["object_id"],
                        obj.get("key"),
                        obj.get("text"),
                        json.dumps(obj.get("metadata") or {}),
                    ],
                )
        for collection in self._collections_of_bucket(e.aggregate_id):
            self._write_objects(collection, e.aggregate_id, objects)

    def _on_bucket_cloned(self, e: EventEnvelope) -> None:
        # A bucket clone holds what its source held (metadata of the objects, not vectors).
        source = typed(e).source_bucket_id
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM vector_objects WHERE bucket_id = ?", [e.aggregate_id])
            cur.execute(
                "INSERT INTO vector_objects SELECT CAST(? AS TEXT), object_id, key, text, "
                "metadata FROM vector_objects WHERE bucket_id = ?",
                [e.aggregate_id, source],
            )

    def _collections_of_bucket(self, bucket_id: str) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT * FROM vector_collections WHERE status = ?", [CollectionStatus.READY]
        )
        found = []
        for row in rows:
            source = json.loads(row["source"])
            if bucket_id in source.get("bucket_ids", []):
                found.append({**row, "source": source})
        return found

    # --- collections -----------------------------------------------------------

    def _remember(self, e: EventEnvelope, status: str) -> None:
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM vector_collections WHERE collection_id = ?", [e.aggregate_id])
            cur.execute(
                "INSERT INTO vector_collections VALUES (?, ?, ?, ?)",
                [
                    e.aggregate_id,
                    json.dumps(e.data["source"]),
                    json.dumps(e.data["feature_extractor"]),
                    status,
                ],
            )

    def _on_collection_created(self, e: EventEnvelope) -> None:
        created = typed(e)
        extractor = get_extractor(created.feature_extractor)
        self.cow.create(e.aggregate_id, store_name(created.feature_extractor), extractor.space)
        self._remember(e, CollectionStatus.READY)
        self._fill_from_source(e.aggregate_id, created.source)

    def _on_collection_cloned(self, e: EventEnvelope) -> None:
        clone = typed(e)
        mode, source_id = clone.vector_mode, clone.source_collection_id
        status = clone.status
        if mode == VectorMode.REUSE:
            self.cow.reuse_clone(source_id, e.aggregate_id)
            self._remember(e, status)
            for collection_id in (source_id, e.aggregate_id):  # keep clone chains shallow
                if self.cow.compact(collection_id, MAX_DEPTH):
                    self.garbage = True
        elif mode == VectorMode.COPY:
            self._remember(e, status)  # its points are copied when its task says so
        else:  # a new extractor: its own space, empty until reprocessed
            extractor = get_extractor(clone.feature_extractor)
            self.cow.create(e.aggregate_id, store_name(clone.feature_extractor), extractor.space)
            self._remember(e, status)

    def _on_copying(self, e: EventEnvelope) -> None:
        """Copy the vectors of every collection the namespace clone copies, reporting progress."""
        for clone, source in sorted(typed(e).copies.items()):
            copy_id = f"copy-{clone}"
            store = self.cow.view(source).store
            self.cow.start_deep_copy(copy_id, source, clone, store)
            while True:
                progress = self.cow.copy_batch(copy_id, COPY_BATCH)
                if self.on_copy_progress is not None:
                    self.on_copy_progress(e.aggregate_id, clone, progress)
                if progress.done:
                    self.garbage = True  # the copy's snapshot is gone
                    break

    def _define(self, e: EventEnvelope, fields: tuple[str, ...], id_field: str) -> None:
        body = {id_field: e.aggregate_id, **{f: e.data[f] for f in fields}}
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM vector_definitions WHERE resource_id = ?", [e.aggregate_id])
            cur.execute(
                "INSERT INTO vector_definitions VALUES (?, ?)", [e.aggregate_id, json.dumps(body)]
            )

    def _on_retriever_defined(self, e: EventEnvelope) -> None:
        self._define(e, ("collection_ids", "stages", "input_schema"), "retriever_id")

    def _on_taxonomy_defined(self, e: EventEnvelope) -> None:
        self._define(e, ("config",), "taxonomy_id")

    def _definition(self, resource_id: str) -> dict[str, Any]:
        rows = self.db.query(
            "SELECT body FROM vector_definitions WHERE resource_id = ?", [resource_id]
        )
        return dict(json.loads(rows[0]["body"]))

    def _on_apply_taxonomy(self, e: EventEnvelope) -> None:
        """Classify every document of the collection; write the enrichment into its payload."""
        from projections.vectors.retrieval import RetrieverRunner
        from projections.vectors.taxonomy import TaxonomyRunner

        task = typed(e)
        taxonomy = self._definition(task.taxonomy_id)
        config = taxonomy["config"]
        retriever_ids = {config.get("retriever_id")} | {
            n.get("retriever_id") for n in config.get("hierarchical_nodes") or []
        }
        retrievers = {r: self._definition(r) for r in retriever_ids if r}
        collections = {
            row["collection_id"]: {
                "collection_id": row["collection_id"],
                "feature_extractor": json.loads(row["feature_extractor"]),
                "status": row["status"],
            }
            for row in self.db.query("SELECT * FROM vector_collections")
        }
        runner = TaxonomyRunner(RetrieverRunner(self.cow))
        target = task.collection_id
        documents = list(self.cow.documents(target))
        done = 0
        for start in range(0, len(documents), 256):
            batch = []
            for doc in documents[start : start + 256]:
                enrichment = runner.classify(taxonomy, doc.payload, retrievers, collections)
                enrichment.pop("_taxonomy", None)
                batch.append(VectorPoint(doc.id, doc.vector, {**doc.payload, **enrichment}))
            self.cow.write(target, batch)
            done += len(batch)
            if self.on_apply_progress is not None:
                self.on_apply_progress(e.aggregate_id, done, len(documents), False)
        if self.on_apply_progress is not None:
            self.on_apply_progress(e.aggregate_id, done, len(documents), True)

    def _on_reprocess(self, e: EventEnvelope) -> None:
        """Re-embed the collection's source objects with its extractor, reporting progress."""
        collection_id = typed(e).collection_id
        row = self._collection(collection_id)
        total = self._source_size(row["source"])
        done = 0

        def report(count: int) -> None:
            nonlocal done
            done += count
            if self.on_reprocess_progress is not None:
                self.on_reprocess_progress(e.aggregate_id, done, total, False)

        self._fill_from_source(collection_id, row["source"], report)
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE vector_collections SET status = ? WHERE collection_id = ?",
                [CollectionStatus.READY, collection_id],
            )
        if self.on_reprocess_progress is not None:
            self.on_reprocess_progress(e.aggregate_id, done, total, True)

    def _source_size(self, source: dict[str, Any]) -> int:
        size = 0
        for bucket_id in source.get("bucket_ids", []):
            rows = self.db.query(
                "SELECT COUNT(*) AS n FROM vector_objects WHERE bucket_id = ?", [bucket_id]
            )
            size += int(rows[0]["n"])
        if source.get("collection_id"):
            size += self.cow.count(source["collection_id"])
        return size

    def _fill_from_source(
        self,
        collection_id: str,
        source: dict[str, Any],
        report: Callable[[int], None] | None = None,
    ) -> None:
        row = self._collection(collection_id)
        for bucket_id in source.get("bucket_ids", []):
            objects = self.db.query(
                "SELECT * FROM vector_objects WHERE bucket_id = ? ORDER BY object_id", [bucket_id]
            )
            for start in range(0, len(objects), 256):
                batch = [
                    {**o, "metadata": json.loads(o["metadata"])}
                    for o in objects[start : start + 256]
                ]
                self._write_objects(row, bucket_id, batch)
                if report is not None:
                    report(len(batch))
        if source.get("collection_id"):
            parent = source["collection_id"]
            docs = [
                {"document_id": d.id, "text": d.payload.get("text"), "payload": d.payload}
                for d in self.cow.documents(parent, with_vectors=False)
                if d.payload.get("text")
            ]
            for start in range(0, len(docs), 256):
                self._write_documents(collection_id, docs[start : start + 256])
                if report is not None:
                    report(len(docs[start : start + 256]))

    def _collection(self, collection_id: str) -> dict[str, Any]:
        rows = self.db.query(
            "SELECT * FROM vector_collections WHERE collection_id = ?", [collection_id]
        )
        row = rows[0]
        return {**row, "source": json.loads(row["source"])}

    def _write_objects(
        self, collection: dict[str, Any], bucket_id: str, objects: list[dict[str, Any]]
    ) -> None:
        documents = []
        for obj in objects:
            text = obj.get("text") or json.dumps(obj.get("metadata") or {}, sort_keys=True)
            payload = {**(obj.get("metadata") or {}), "text": text, "bucket_id": bucket_id}
            payload["object_id"] = obj["object_id"]
            documents.append({"document_id": obj["object_id"], "text": text, "payload": payload})
        self._write_documents(collection["collection_id"], documents)

    def _write_documents(self, collection_id: str, documents: list[dict[str, Any]]) -> None:
        row = self.db.query(
            "SELECT feature_extractor FROM vector_collections WHERE collection_id = ?",
            [collection_id],
        )
        extractor = get_extractor(json.loads(row[0]["feature_extractor"]))
        to_embed = [d for d in documents if d.get("vector") is None]
        vectors = extractor.embed([d.get("text") or "" for d in to_embed]) if to_embed else []
        embedded = dict(zip([id(d) for d in to_embed], vectors, strict=True))
        points = []
        for d in documents:
            vector = d.get("vector") or embedded[id(d)]
            if isinstance(vector, str):
                vector = packed_vectors.unpack(vector)
            if len(vector) != extractor.space.size:
                log.warning(
                    "document %s of %s has a %s-d vector; the collection's space is %s-d: skipped",
                    d["document_id"],
                    collection_id,
                    len(vector),
                    extractor.space.size,
                )
                continue
            payload = {**(d.get("payload") or {})}
            if d.get("text") is not None:
                payload.setdefault("text", d["text"])
            points.append(VectorPoint(d["document_id"], vector, payload))
        if points:
            self.cow.write(collection_id, points)

    def _on_documents_written(self, e: EventEnvelope) -> None:
        self._write_documents(e.aggregate_id, typed(e).documents)

    def _on_documents_deleted(self, e: EventEnvelope) -> None:
        self.cow.delete(e.aggregate_id, typed(e).document_ids)


# What each event means for the vectors; events of other classes mean nothing here.
HANDLERS: dict[type[Aggregate.Event], Callable[[VectorMaterializer, EventEnvelope], None]] = {
    Bucket.ObjectsAdded: VectorMaterializer._on_objects_added,
    Bucket.Cloned: VectorMaterializer._on_bucket_cloned,
    Collection.Created: VectorMaterializer._on_collection_created,
    Collection.Cloned: VectorMaterializer._on_collection_cloned,
    Collection.DocumentsWritten: VectorMaterializer._on_documents_written,
    Collection.DocumentsDeleted: VectorMaterializer._on_documents_deleted,
    CloneTask.Copying: VectorMaterializer._on_copying,
    Retriever.Created: VectorMaterializer._on_retriever_defined,
    Retriever.Cloned: VectorMaterializer._on_retriever_defined,
    Taxonomy.Created: VectorMaterializer._on_taxonomy_defined,
    Taxonomy.Cloned: VectorMaterializer._on_taxonomy_defined,
    ReprocessTask.Created: VectorMaterializer._on_reprocess,
    ApplyTaxonomyTask.Created: VectorMaterializer._on_apply_taxonomy,
}
