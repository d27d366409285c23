"""Namespaces and the resources they hold: one row each, and a lineage row per clone."""

from __future__ import annotations

from functools import partial
from typing import Any

from domain.base import Aggregate, Resource
from domain.bucket import Bucket
from domain.collection import Collection, CollectionStatus, VectorMode
from domain.envelopes import EventEnvelope
from domain.events import typed
from domain.namespace import Namespace
from domain.quality import EvaluationSet
from domain.retriever import Retriever
from domain.taxonomy import Taxonomy
from projections.read_model.cursor import Projection, Projector, to_column
from projections.read_model.schema import PROJECTED, RESOURCES, ResourceTable

COLLECTIONS = RESOURCES[Collection]
BUCKETS = RESOURCES[Bucket]


def on_created(table: ResourceTable, cur: Projection, e: EventEnvelope) -> None:
    cur.insert(table.name, _row(table, cur, e))


def on_cloned(table: ResourceTable, cur: Projection, e: EventEnvelope) -> None:
    cur.insert(table.name, _row(table, cur, e))
    _record_lineage(cur, table, e)


def on_collection_created(cur: Projection, e: EventEnvelope) -> None:
    row = _row(COLLECTIONS, cur, e, vector_mode=VectorMode.OWN, status=CollectionStatus.READY)
    cur.insert(COLLECTIONS.name, row)


def on_collection_cloned(cur: Projection, e: EventEnvelope) -> None:
    clone = typed(e)
    mode = clone.vector_mode or VectorMode.OWN  # a clone from before modes were recorded
    row = _row(COLLECTIONS, cur, e, vector_mode=mode, status=clone.status)
    cur.insert(COLLECTIONS.name, row)
    _record_lineage(cur, COLLECTIONS, e)


def on_deleted(table: ResourceTable, cur: Projection, e: EventEnvelope) -> None:
    """A deleted resource leaves the tables that serve reads; its audit and lineage stay
    (the history does not change), and so do clones of it."""
    cur.delete(table.name, e.aggregate_id)
    # a deleted bucket's bucket_objects rows stay: counts are read through live buckets,
    # and a clone as of before the delete holds what the bucket held


def on_namespace_deleted(cur: Projection, e: EventEnvelope) -> None:
    """One event deletes a namespace and everything in it: its rows go, resource by resource
    (the read model pays for the size; the write model does not)."""
    cur.delete("namespaces", e.aggregate_id)
    for table in (*(t.name for t in RESOURCES.values() if t.name != "namespaces"), "refs"):
        cur.write_rows(table)
        key = PROJECTED[table]
        found = cur.cur.query(f"SELECT {key} FROM {table} WHERE namespace_id = ?", [e.aggregate_id])
        for row in found:
            cur.delete(table, row[key])


def on_objects_added(cur: Projection, e: EventEnvelope) -> None:
    objects = e.data["objects"]
    keys = [f"{e.aggregate_id}/{obj['object_id']}" for obj in objects]
    cur.write_rows("bucket_objects")
    existing: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        sql = f"SELECT object_key FROM bucket_objects WHERE object_key IN ({marks})"
        existing |= {row["object_key"] for row in cur.cur.query(sql, chunk)}
    for key, obj in zip(keys, objects, strict=True):
        metadata = to_column(obj.get("metadata") or {})
        size = len((obj.get("text") or "").encode()) + len(metadata.encode())
        if key in existing:  # added again under its key: it replaces the object
            cur.update("bucket_objects", key, {"size_bytes": size})
        else:
            row = {"object_key": key, "bucket_id": e.aggregate_id, "object_id": obj["object_id"]}
            cur.insert("bucket_objects", {**row, "size_bytes": size})
            existing.add(key)


def on_bucket_cloned(cur: Projection, e: EventEnvelope) -> None:
    """A bucket clone holds what its source held."""
    on_cloned(BUCKETS, cur, e)
    source = typed(e).source_bucket_id
    cur.write_rows("bucket_objects")
    rows = cur.cur.query(
        "SELECT object_id, size_bytes FROM bucket_objects WHERE bucket_id = ? ORDER BY object_id",
        [source],
    )
    for row in rows:
        key = f"{e.aggregate_id}/{row['object_id']}"
        copy = {"object_key": key, "bucket_id": e.aggregate_id, "object_id": row["object_id"]}
        cur.insert("bucket_objects", {**copy, "size_bytes": row["size_bytes"]})


def on_renamed(table: ResourceTable, cur: Projection, e: EventEnvelope) -> None:
    name_column = table.fields[0]
    _update(cur, table, e, {name_column: e.data[name_column]})


def on_description_changed(table: ResourceTable, cur: Projection, e: EventEnvelope) -> None:
    _update(cur, table, e, {"description": e.data["description"]})


def on_reprocess_started(cur: Projection, e: EventEnvelope) -> None:
    _update(cur, COLLECTIONS, e, {"status": CollectionStatus.REPROCESSING})


def on_reprocessed(cur: Projection, e: EventEnvelope) -> None:
    changes = {"status": CollectionStatus.READY, "vector_mode": VectorMode.OWN}
    _update(cur, COLLECTIONS, e, changes)


def _row(table: ResourceTable, cur: Projection, e: EventEnvelope, **columns: Any) -> dict[str, Any]:
    """A resource's row: its columns from the event's data (``columns`` replace some)."""
    occurred_at = cur.occurred_at(e)
    row: dict[str, Any] = {table.id_column: e.aggregate_id}
    if table.in_namespace:
        row["namespace_id"] = e.namespace_id
        row[table.source_column] = e.data.get(table.source_column)
    row.update({field: to_column(e.data.get(field)) for field in table.fields})
    row.update(columns)
    row.update(
        created_at=occurred_at,
        updated_at=occurred_at,
        created_by=e.actor,
        version=e.aggregate_version,
    )
    return row


def _record_lineage(cur: Projection, table: ResourceTable, e: EventEnvelope) -> None:
    cur.insert(
        "lineage",
        {
            "clone_id": e.aggregate_id,
            "source_id": e.data[table.source_column],
            "kind": table.kind,
            "namespace_id": e.namespace_id,
            "position": e.position,
            "occurred_at": cur.occurred_at(e),
            "actor": e.actor,
        },
    )


def _update(
    cur: Projection, table: ResourceTable, e: EventEnvelope, changes: dict[str, Any]
) -> None:
    stamp = {"updated_at": cur.occurred_at(e), "version": e.aggregate_version}
    cur.update(table.name, e.aggregate_id, {**changes, **stamp})


def _projectors() -> dict[type[Aggregate.Event], Projector]:
    projectors: dict[type[Aggregate.Event], Projector] = {
        Collection.Created: on_collection_created,
        Collection.Cloned: on_collection_cloned,
        Collection.ReprocessStarted: on_reprocess_started,
        Collection.Reprocessed: on_reprocessed,
        EvaluationSet.Created: partial(on_created, RESOURCES[EvaluationSet]),
    }
    plain: tuple[type[Namespace | Resource], ...] = (Namespace, Bucket, Retriever, Taxonomy)
    for aggregate in plain:
        projectors[aggregate.Created] = partial(on_created, RESOURCES[aggregate])
        projectors[aggregate.Cloned] = partial(on_cloned, RESOURCES[aggregate])
    for aggregate in (*plain, Collection):
        projectors[aggregate.Renamed] = partial(on_renamed, RESOURCES[aggregate])
        projectors[aggregate.DescriptionChanged] = partial(
            on_description_changed, RESOURCES[aggregate]
        )
    for kind in (Bucket, Collection, Retriever, Taxonomy):
        projectors[kind.Deleted] = partial(on_deleted, RESOURCES[kind])
    projectors[Namespace.Deleted] = on_namespace_deleted
    projectors[Bucket.ObjectsAdded] = on_objects_added
    projectors[Bucket.Cloned] = on_bucket_cloned
    return projectors


PROJECTORS = _projectors()
