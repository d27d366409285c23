"""Reads of the read model: what the API serves. Scoped by the caller's namespaces."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from domain.ids import Kind, kind_of
from projections.read_model import from_row
from projections.sql import Database

TABLE = {
    Kind.NAMESPACE: ("namespaces", "namespace_id", "namespace_name"),
    Kind.BUCKET: ("buckets", "bucket_id", "bucket_name"),
    Kind.COLLECTION: ("collections", "collection_id", "collection_name"),
    Kind.RETRIEVER: ("retrievers", "retriever_id", "retriever_name"),
    Kind.TAXONOMY: ("taxonomies", "taxonomy_id", "taxonomy_name"),
    Kind.EVALUATION_SET: ("evaluation_sets", "evaluation_set_id", "evaluation_set_name"),
}

Scope = frozenset[str] | None  # namespace IDs a caller may see; None: all


def _one(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return from_row(rows[0]) if rows else None


def namespace(db: Database, identifier: str) -> dict[str, Any] | None:
    """A namespace by ID or name."""
    column = "namespace_id" if kind_of(identifier) else "namespace_name"
    return _one(db.query(f"SELECT * FROM namespaces WHERE {column} = ?", [identifier]))


# A bucket's rows come with Mixpeek's object_count and total_size_bytes.
BUCKET_COUNTS = (
    "SELECT buckets.*, (SELECT COUNT(*) FROM bucket_objects WHERE bucket_objects.bucket_id "
    "= buckets.bucket_id) AS object_count, (SELECT COALESCE(SUM(size_bytes), 0) FROM "
    "bucket_objects WHERE bucket_objects.bucket_id = buckets.bucket_id) AS total_size_bytes "
    "FROM buckets"
)


def _select(kind: Kind) -> str:
    """SELECT ... FROM the kind's table (what a read of it answers)."""
    return BUCKET_COUNTS if kind is Kind.BUCKET else f"SELECT * FROM {TABLE[kind][0]}"


def resource(db: Database, kind: Kind, namespace_id: str, identifier: str) -> dict | None:
    """A resource of a namespace, by ID or name."""
    table, id_column, name_column = TABLE[kind]
    column = id_column if kind_of(identifier) else name_column
    return _one(
        db.query(
            f"{_select(kind)} WHERE namespace_id = ? AND {column} = ?",
            [namespace_id, identifier],
        )
    )


def resource_by_id(db: Database, kind: Kind, resource_id: str) -> dict[str, Any] | None:
    _, id_column, _ = TABLE[kind]
    return _one(db.query(f"{_select(kind)} WHERE {id_column} = ?", [resource_id]))


def page(
    db: Database, kind: Kind, namespace_ids: Sequence[str] | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Resources in the given namespaces (all when None), oldest first."""
    table, id_column, _ = TABLE[kind]
    where, params = _in("namespace_id", namespace_ids)
    total = db.query(f"SELECT COUNT(*) AS n FROM {table} {where}", params)[0]["n"]
    rows = db.query(
        f"{_select(kind)} {where} ORDER BY created_at, {id_column} LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return [from_row(r) for r in rows], int(total)


def task(db: Database, task_id: str) -> dict[str, Any] | None:
    return _one(db.query("SELECT * FROM tasks WHERE task_id = ?", [task_id]))


def tasks_page(
    db: Database,
    namespace_ids: Sequence[str] | None,
    where: dict[str, Sequence[str]],
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Tasks in the given namespaces (all when None) whose columns hold one of the values
    ``where`` gives (status, task_type), oldest first."""
    clause, params = _in("namespace_id", namespace_ids)
    for column, values in where.items():
        more, more_params = _in(column, values)
        clause = f"{clause} AND {more[6:]}" if clause else more
        params += more_params
    total = db.query(f"SELECT COUNT(*) AS n FROM tasks {clause}", params)[0]["n"]
    rows = db.query(
        f"SELECT * FROM tasks {clause} ORDER BY created_at, task_id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return [from_row(r) for r in rows], int(total)


def deletion(db: Database, aggregate_id: str, event_type: str) -> tuple[int, str | None] | None:
    """(position, namespace_id) of the event that deleted this aggregate, if one did."""
    rows = db.query(
        "SELECT position, namespace_id FROM audit WHERE aggregate_id = ? AND type = ?",
        [aggregate_id, event_type],
    )
    return (int(rows[0]["position"]), rows[0]["namespace_id"]) if rows else None


def written_by(db: Database, command_id: str, event_type: str, field: str) -> tuple[str, list[str]]:
    """The aggregate and the IDs of what a data command wrote: ``field`` (objects,
    documents) of its ``event_type`` event, each with its ``<object|document>_id``."""
    rows = db.query(
        "SELECT aggregate_id, data FROM audit WHERE command_id = ? AND type = ? ORDER BY position",
        [command_id, event_type],
    )
    if not rows:
        return "", []
    data = rows[0]["data"]
    items = (json.loads(data) if isinstance(data, str) else data).get(field, [])
    id_key = f"{field[:-1]}_id"
    return str(rows[0]["aggregate_id"]), [str(item[id_key]) for item in items]


def command_receipt(db: Database, command_id: str) -> tuple[int, str] | None:
    """(position, digest) of a command's receipt, once the read model applied it."""
    rows = db.query("SELECT position, body_digest FROM commands WHERE command_id = ?", [command_id])
    return (int(rows[0]["position"]), str(rows[0]["body_digest"])) if rows else None


def command_receipts(db: Database, command_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """(position, digest) of each of these commands' receipts the read model applied."""
    found: dict[str, tuple[int, str]] = {}
    for start in range(0, len(command_ids), 500):
        chunk = list(command_ids[start : start + 500])
        marks = ", ".join("?" for _ in chunk)
        rows = db.query(
            f"SELECT command_id, position, body_digest FROM commands WHERE command_id IN ({marks})",
            chunk,
        )
        found.update({r["command_id"]: (int(r["position"]), str(r["body_digest"])) for r in rows})
    return found


def created_by_command(db: Database, command_id: str, event_types: Sequence[str]) -> str | None:
    """The aggregate a command created (from its own events, not from a name)."""
    marks = ", ".join("?" for _ in event_types)
    rows = db.query(
        f"SELECT aggregate_id FROM audit WHERE command_id = ? AND type IN ({marks}) "
        "ORDER BY position",
        [command_id, *event_types],
    )
    return str(rows[0]["aggregate_id"]) if rows else None


def position_of(db: Database, command_id: str, event_type: str) -> int | None:
    """The position of a command's event of this type."""
    rows = db.query(
        "SELECT position FROM audit WHERE command_id = ? AND type = ? ORDER BY position",
        [command_id, event_type],
    )
    return int(rows[0]["position"]) if rows else None


def lineage(db: Database, resource_id: str) -> tuple[list[dict], list[dict]]:
    """Every clone edge above (ancestors, nearest first) and below (descendants) a resource."""
    ancestors = []
    current = resource_id
    while rows := db.query("SELECT * FROM lineage WHERE clone_id = ?", [current]):
        ancestors.append(rows[0])
        current = rows[0]["source_id"]
    descendants, frontier = [], [resource_id]
    while frontier:
        where, params = _in("source_id", frontier)
        rows = db.query(f"SELECT * FROM lineage {where} ORDER BY position", params)
        descendants.extend(rows)
        frontier = [r["clone_id"] for r in rows]
    return ancestors, descendants


def audit(
    db: Database,
    namespace_ids: Sequence[str] | None,
    filters: dict[str, Any],
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    where, params = _in("namespace_id", namespace_ids)
    clauses = [where.removeprefix("WHERE ")] if where else []
    for column, op, key in [
        ("aggregate_id", "=", "resource_id"),
        ("actor", "=", "actor"),
        ("type", "=", "type"),
        ("command_id", "=", "command_id"),
        ("position", ">=", "from_position"),
        ("position", "<=", "to_position"),
        ("occurred_at", ">=", "since"),
        ("occurred_at", "<=", "until"),
    ]:
        if filters.get(key) is not None:
            clauses.append(f"{column} {op} ?")
            params.append(filters[key])
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    total = db.query(f"SELECT COUNT(*) AS n FROM audit {where}", params)[0]["n"]
    rows = db.query(
        f"SELECT * FROM audit {where} ORDER BY position LIMIT ? OFFSET ?", [*params, limit, offset]
    )
    return [from_row(r) for r in rows], int(total)


def _in(column: str, values: Sequence[str] | None) -> tuple[str, list[Any]]:
    if values is None:
        return "", []
    if not values:
        return "WHERE 1 = 0", []
    return f"WHERE {column} IN ({', '.join('?' for _ in values)})", list(values)


# --- refs -------------------------------------------------------------------------

REF_PREFIX = "ref:"


def ref(db: Database, namespace_id: str, ref_name: str) -> dict[str, Any] | None:
    """A ref of a namespace with its whole history, oldest first."""
    row = _one(
        db.query(
            "SELECT * FROM refs WHERE namespace_id = ? AND ref_name = ?", [namespace_id, ref_name]
        )
    )
    if row is None:
        return None
    history = db.query(
        "SELECT * FROM ref_history WHERE ref_id = ? ORDER BY position", [row["ref_id"]]
    )
    return {**row, "history": [from_row(h) for h in history]}


def refs_page(
    db: Database, namespace_id: str, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    total = db.query("SELECT COUNT(*) AS n FROM refs WHERE namespace_id = ?", [namespace_id])
    rows = db.query(
        "SELECT ref_name FROM refs WHERE namespace_id = ? ORDER BY ref_name LIMIT ? OFFSET ?",
        [namespace_id, limit, offset],
    )
    found = [ref(db, namespace_id, r["ref_name"]) for r in rows]
    return [r for r in found if r is not None], int(total[0]["n"])


def resolve(db: Database, kind: Kind, namespace_id: str, identifier: str) -> dict | None:
    """A resource by ID or name in a namespace, or by ``ref:<name>``: the resource a ref
    of this namespace points at now (which may live in another namespace)."""
    if not identifier.startswith(REF_PREFIX):
        return resource(db, kind, namespace_id, identifier)
    found = ref(db, namespace_id, identifier.removeprefix(REF_PREFIX))
    if found is None or found["target_kind"] != kind.value:
        return None
    return resource(db, kind, found["target_namespace_id"], found["target_id"])


def evaluation(db: Database, evaluation_id: str) -> dict[str, Any] | None:
    return _one(db.query("SELECT * FROM evaluations WHERE evaluation_id = ?", [evaluation_id]))
