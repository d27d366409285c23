"""The read model of every environment, built from envbranch.events.

Each batch of events is applied in one transaction together with the last
applied position, so a redelivered event is a no-op and a restart resumes
where it stopped. Dropping the tables and replaying the topic from position 0
rebuilds the same state (``digest`` proves it).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from domain.envelopes import EventEnvelope
from projections import ref_model
from projections.sql import Cursor, Database

# kind -> (table, ID column, columns copied from the event data)
RESOURCES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "Namespace": (
        "namespaces",
        "namespace_id",
        ("namespace_name", "description", "source_namespace_id", "clone_task_id"),
    ),
    "Bucket": ("buckets", "bucket_id", ("bucket_name", "description", "bucket_schema")),
    "Collection": (
        "collections",
        "collection_id",
        ("collection_name", "description", "source", "feature_extractor", "vector_mode"),
    ),
    "Retriever": (
        "retrievers",
        "retriever_id",
        ("retriever_name", "description", "collection_ids", "stages", "input_schema"),
    ),
    "Taxonomy": ("taxonomies", "taxonomy_id", ("taxonomy_name", "description", "config")),
    "EvaluationSet": (
        "evaluation_sets",
        "evaluation_set_id",
        (
            "evaluation_set_name",
            "description",
            "set_type",
            "id_field",
            "label_field",
            "queries",
            "documents",
        ),
    ),
}
COMMON = "created_at TEXT, updated_at TEXT, created_by TEXT, version INTEGER"

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS read_model_state (name TEXT PRIMARY KEY, value TEXT)",
    f"""CREATE TABLE IF NOT EXISTS namespaces (namespace_id TEXT PRIMARY KEY,
        namespace_name TEXT, description TEXT, source_namespace_id TEXT, clone_task_id TEXT,
        {COMMON})""",
    f"""CREATE TABLE IF NOT EXISTS buckets (bucket_id TEXT PRIMARY KEY, namespace_id TEXT,
        bucket_name TEXT, description TEXT, bucket_schema TEXT, source_bucket_id TEXT,
        {COMMON})""",
    f"""CREATE TABLE IF NOT EXISTS collections (collection_id TEXT PRIMARY KEY,
        namespace_id TEXT, collection_name TEXT, description TEXT, source TEXT,
        feature_extractor TEXT, source_collection_id TEXT, vector_mode TEXT, status TEXT,
        {COMMON})""",
    f"""CREATE TABLE IF NOT EXISTS retrievers (retriever_id TEXT PRIMARY KEY,
        namespace_id TEXT, retriever_name TEXT, description TEXT, collection_ids TEXT,
        stages TEXT, input_schema TEXT, source_retriever_id TEXT, {COMMON})""",
    f"""CREATE TABLE IF NOT EXISTS taxonomies (taxonomy_id TEXT PRIMARY KEY,
        namespace_id TEXT, taxonomy_name TEXT, description TEXT, config TEXT,
        source_taxonomy_id TEXT, {COMMON})""",
    """CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, namespace_id TEXT,
        task_type TEXT, status TEXT, source_namespace_id TEXT, target_namespace_id TEXT,
        include_resources TEXT, progress TEXT, result TEXT, created_at TEXT, updated_at TEXT,
        created_by TEXT)""",
    """CREATE TABLE IF NOT EXISTS lineage (clone_id TEXT PRIMARY KEY, source_id TEXT,
        kind TEXT, namespace_id TEXT, position INTEGER, occurred_at TEXT, actor TEXT)""",
    """CREATE TABLE IF NOT EXISTS audit (position INTEGER PRIMARY KEY, event_id TEXT,
        type TEXT, aggregate_id TEXT, namespace_id TEXT, command_id TEXT, actor TEXT,
        occurred_at TEXT, data TEXT)""",
    """CREATE TABLE IF NOT EXISTS commands (command_id TEXT PRIMARY KEY, position INTEGER,
        command_type TEXT, actor TEXT, namespace_id TEXT, body_digest TEXT)""",
    f"""CREATE TABLE IF NOT EXISTS evaluation_sets (evaluation_set_id TEXT PRIMARY KEY,
        namespace_id TEXT, evaluation_set_name TEXT, description TEXT, set_type TEXT,
        id_field TEXT, label_field TEXT, queries TEXT, documents TEXT,
        source_evaluation_set_id TEXT, {COMMON})""",
    # A digest of every projected table at chosen positions: what a replay must reproduce.
    """CREATE TABLE IF NOT EXISTS digests (position INTEGER, table_name TEXT, digest TEXT,
        row_count INTEGER, PRIMARY KEY (position, table_name))""",
    # The running digests of the append-only tables, kept as rows are added.
    """CREATE TABLE IF NOT EXISTS digest_sums (table_name TEXT PRIMARY KEY, total TEXT,
        row_count INTEGER)""",
    *ref_model.SCHEMA,
    "CREATE INDEX IF NOT EXISTS lineage_source ON lineage (source_id)",
    "CREATE INDEX IF NOT EXISTS audit_aggregate ON audit (aggregate_id)",
    "CREATE INDEX IF NOT EXISTS audit_namespace ON audit (namespace_id)",
    *[
        f"CREATE INDEX IF NOT EXISTS {table}_by_name ON {table} (namespace_id, {fields[0]})"
        for table, _, fields in RESOURCES.values()
    ],
]

# The tables a replay rebuilds (and a digest covers), each with its key.
PROJECTED = {
    "namespaces": "namespace_id",
    "buckets": "bucket_id",
    "collections": "collection_id",
    "retrievers": "retriever_id",
    "taxonomies": "taxonomy_id",
    "tasks": "task_id",
    "lineage": "clone_id",
    "audit": "position",
    "commands": "command_id",
    "evaluation_sets": "evaluation_set_id",
    **ref_model.PROJECTED,
}
JSON_COLUMNS = {
    "bucket_schema",
    "source",
    "feature_extractor",
    "collection_ids",
    "stages",
    "input_schema",
    "config",
    "include_resources",
    "progress",
    "result",
    "data",
    "queries",
    "documents",
    *ref_model.JSON_COLUMNS,
}


def to_column(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def from_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: json.loads(value) if key in JSON_COLUMNS and isinstance(value, str) else value
        for key, value in row.items()
    }


# Digests are recorded every this many positions, and at every Checkpoint.Requested.
DIGEST_INTERVAL = 1000


class ReadModel:
    def __init__(self, db: Database, digest_interval: int = DIGEST_INTERVAL) -> None:
        self.db = db
        self.digest_interval = digest_interval

    def create(self) -> None:
        with self.db.transaction() as cur:
            for statement in SCHEMA:
                cur.execute(statement)
            if not cur.query("SELECT value FROM read_model_state WHERE name = 'generation'"):
                # A new read model replays from the start: its generation names its group.
                cur.execute(
                    "INSERT INTO read_model_state VALUES ('generation', ?)", [uuid.uuid4().hex]
                )
                cur.execute("INSERT INTO read_model_state VALUES ('position', '0')")
            # A read model from before the running digests: start them from its rows.
            if not cur.query("SELECT table_name FROM digest_sums"):
                scanned = table_digests(cur.query, scan_all=True)
                for table in APPEND_ONLY:
                    digest, count = scanned[table]
                    if count:
                        cur.execute(
                            "INSERT INTO digest_sums VALUES (?, ?, ?)", [table, digest, count]
                        )

    def drop(self) -> None:
        with self.db.transaction() as cur:
            for table in [*PROJECTED, "digests", "digest_sums", "read_model_state"]:
                cur.execute(f"DROP TABLE IF EXISTS {table}")

    def generation(self) -> str:
        return str(self._state("generation"))

    def position(self) -> int:
        return int(self._state("position") or 0)

    def _state(self, name: str) -> str | None:
        rows = self.db.query("SELECT value FROM read_model_state WHERE name = ?", [name])
        return rows[0]["value"] if rows else None

    def apply(self, envelopes: Iterable[EventEnvelope]) -> int:
        """Apply the events after the stored position; returns how many were new."""
        applied = 0
        with self.db.transaction() as tx:
            position = int(
                tx.query("SELECT value FROM read_model_state WHERE name = 'position'")[0]["value"]
            )
            cur = Projection(tx)
            for envelope in envelopes:
                if envelope.position <= position:
                    continue  # a redelivery: applied already
                project(cur, envelope)
                position = envelope.position
                applied += 1
                if self.digest_due(envelope):
                    cur.save_sums()
                    record_digests(tx, position)
            if applied:
                cur.save_sums()
                tx.execute(
                    "UPDATE read_model_state SET value = ? WHERE name = 'position'", [str(position)]
                )
        return applied

    def digest_due(self, envelope: EventEnvelope) -> bool:
        return (
            envelope.type == "Checkpoint.Requested" or envelope.position % self.digest_interval == 0
        )

    def digest(self) -> dict[str, str]:
        """A hash of every projected table, to compare two read models."""
        return {table: d for table, (d, _) in table_digests(self.db.query, scan_all=True).items()}

    def recorded_digests(self, position: int) -> dict[str, str]:
        """The digests recorded when this read model stood at ``position`` (or {})."""
        return recorded_digests(self.db, position)

    def digest_positions(self) -> list[int]:
        rows = self.db.query("SELECT DISTINCT position FROM digests ORDER BY position")
        return [int(r["position"]) for r in rows]


# Tables that only ever gain rows: their digests are kept up to date as rows are added,
# so recording a digest does not read them (the audit log grows with every event).
APPEND_ONLY = ("audit", "commands", "lineage", "ref_history", "evaluations")
_MODULUS = 2**256


def row_hash(row: dict[str, Any]) -> int:
    """A row's contribution to its table's digest: the digest of a table is the sum of its
    rows' hashes (mod 2^256), the same whether kept as rows are added or read at once."""
    # Values are str, int or None in every table, whose repr is the same everywhere.
    canonical = repr(sorted(row.items()))
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest(), "big")


def _as_digest(total: int) -> str:
    return f"{total % _MODULUS:064x}"


class Projection:
    """The cursor of one applied batch; adds rows to append-only tables with their hashes."""

    def __init__(self, cur: Cursor) -> None:
        self.cur = cur
        self.sums: dict[str, list[int]] | None = None  # table -> [total, rows], loaded lazily

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.cur.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.cur.query(sql, params)

    def append(self, table: str, row: dict[str, Any]) -> None:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.cur.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))
        if self.sums is None:
            self.sums = {
                r["table_name"]: [int(r["total"], 16), int(r["row_count"])]
                for r in self.cur.query("SELECT * FROM digest_sums")
            }
        entry = self.sums.setdefault(table, [0, 0])
        entry[0] = (entry[0] + row_hash(row)) % _MODULUS
        entry[1] += 1

    def save_sums(self) -> None:
        for table, (total, count) in (self.sums or {}).items():
            self.cur.execute("DELETE FROM digest_sums WHERE table_name = ?", [table])
            self.cur.execute(
                "INSERT INTO digest_sums VALUES (?, ?, ?)", [table, _as_digest(total), count]
            )


def table_digests(query: Any, scan_all: bool = False) -> dict[str, tuple[str, int]]:
    """A digest and a row count of every projected table, through ``query(sql, params)``:
    the kept sums of the append-only tables (unless ``scan_all``), a read of the others."""
    kept = (
        {}
        if scan_all
        else {
            r["table_name"]: (r["total"], int(r["row_count"]))
            for r in query("SELECT * FROM digest_sums")
        }
    )
    out = {}
    for table in PROJECTED:
        if table in APPEND_ONLY and not scan_all:
            out[table] = kept.get(table, (_as_digest(0), 0))
            continue
        rows = query(f"SELECT * FROM {table}")
        out[table] = (_as_digest(sum(row_hash(r) for r in rows)), len(rows))
    return out


def recorded_digests(db: Database, position: int) -> dict[str, str]:
    rows = db.query("SELECT table_name, digest FROM digests WHERE position = ?", [position])
    return {r["table_name"]: r["digest"] for r in rows}


def record_digests(cur: Cursor, position: int) -> None:
    """Record the tables' digests as they stand at ``position`` (inside its transaction)."""
    cur.execute("DELETE FROM digests WHERE position = ?", [position])
    for table, (digest, count) in table_digests(cur.query).items():
        cur.execute("INSERT INTO digests VALUES (?, ?, ?, ?)", [position, table, digest, count])


def project(cur: Projection, e: EventEnvelope) -> None:
    """Write one event into the tables."""
    cur.append(
        "audit",
        {
            "position": e.position,
            "event_id": e.event_id,
            "type": e.type,
            "aggregate_id": e.aggregate_id,
            "namespace_id": e.namespace_id,
            "command_id": e.command_id,
            "actor": e.actor,
            "occurred_at": e.occurred_at.isoformat(),
            "data": to_column(e.data),
        },
    )
    aggregate, _, what = e.type.partition(".")
    if aggregate in RESOURCES:
        _project_resource(cur, e, aggregate, what)
    elif aggregate == "CloneTask":
        _project_task(cur, e, what)
    elif aggregate in WORK_TASKS:
        _project_work(cur, e, what, WORK_TASKS[aggregate])
    elif aggregate == "Ref":
        ref_model.project_ref(cur, e, what)
    elif aggregate == "Evaluation":
        ref_model.project_evaluation(cur, e)
    elif aggregate == "CommandReceipt":
        cur.append(
            "commands",
            {
                "command_id": e.command_id,
                "position": e.position,
                "command_type": e.data.get("command_type"),
                "actor": e.actor,
                "namespace_id": e.namespace_id,
                "body_digest": e.data.get("body_digest"),
            },
        )


def _project_resource(cur: Projection, e: EventEnvelope, aggregate: str, what: str) -> None:
    table, id_column, fields = RESOURCES[aggregate]
    kind = id_column.removesuffix("_id")
    occurred_at = e.occurred_at.isoformat()
    if what in ("Created", "Cloned"):
        row: dict[str, Any] = {id_column: e.aggregate_id}
        if aggregate != "Namespace":
            row["namespace_id"] = e.namespace_id
            row[f"source_{kind}_id"] = e.data.get(f"source_{kind}_id")
        row.update({field: to_column(e.data.get(field)) for field in fields})
        if aggregate == "Collection":
            row["vector_mode"] = e.data.get("vector_mode", "own")
            reprocess = row["vector_mode"] == "reprocess"
            row["status"] = "awaiting_reprocess" if reprocess else "ready"
        row.update(
            created_at=occurred_at,
            updated_at=occurred_at,
            created_by=e.actor,
            version=e.aggregate_version,
        )
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        cur.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))
        if what == "Cloned":
            source = e.data[f"source_{kind}_id"]
            cur.append(
                "lineage",
                {
                    "clone_id": e.aggregate_id,
                    "source_id": source,
                    "kind": kind,
                    "namespace_id": e.namespace_id,
                    "position": e.position,
                    "occurred_at": occurred_at,
                    "actor": e.actor,
                },
            )
    elif what in ("ReprocessStarted", "Reprocessed"):
        status = "reprocessing" if what == "ReprocessStarted" else "ready"
        extra = ", vector_mode = 'own'" if what == "Reprocessed" else ""
        cur.execute(
            f"UPDATE collections SET status = ?{extra}, updated_at = ?, version = ? "
            "WHERE collection_id = ?",
            [status, occurred_at, e.aggregate_version, e.aggregate_id],
        )
    elif what in ("Renamed", "DescriptionChanged"):
        field = fields[0] if what == "Renamed" else "description"
        cur.execute(
            f"UPDATE {table} SET {field} = ?, updated_at = ?, version = ? WHERE {id_column} = ?",
            [e.data[field], occurred_at, e.aggregate_version, e.aggregate_id],
        )


def _project_task(cur: Projection, e: EventEnvelope, what: str) -> None:
    occurred_at = e.occurred_at.isoformat()
    if what == "Created":
        cur.execute(
            "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                e.aggregate_id,
                e.namespace_id,
                "namespace_clone",
                "PENDING",
                e.data["source_namespace_id"],
                e.data["target_namespace_id"],
                to_column(e.data["include_resources"]),
                None,
                None,
                occurred_at,
                occurred_at,
                e.actor,
            ],
        )
    elif what == "Copying":
        copies = {clone: {"copied": 0, "total": 0, "done": False} for clone in e.data["copies"]}
        cur.execute(
            "UPDATE tasks SET status = ?, result = ?, progress = ?, updated_at = ? "
            "WHERE task_id = ?",
            [
                "IN_PROGRESS",
                to_column(e.data["result"]),
                to_column(_progress(copies)),
                occurred_at,
                e.aggregate_id,
            ],
        )
    elif what == "CopyProgressed":
        row = cur.query("SELECT progress FROM tasks WHERE task_id = ?", [e.aggregate_id])[0]
        copies = json.loads(row["progress"])["collections"]
        copies[e.data["collection_id"]] = {key: e.data[key] for key in ("copied", "total", "done")}
        cur.execute(
            "UPDATE tasks SET progress = ?, updated_at = ? WHERE task_id = ?",
            [to_column(_progress(copies)), occurred_at, e.aggregate_id],
        )
    elif what == "Completed":
        cur.execute(
            "UPDATE tasks SET status = ?, result = ?, updated_at = ? WHERE task_id = ?",
            ["COMPLETED", to_column(e.data["result"]), occurred_at, e.aggregate_id],
        )


WORK_TASKS = {"ReprocessTask": "reprocess", "ApplyTaxonomyTask": "apply_taxonomy"}


def _project_work(cur: Projection, e: EventEnvelope, what: str, task_type: str) -> None:
    occurred_at = e.occurred_at.isoformat()
    if what == "Created":
        cur.execute(
            "INSERT INTO tasks (task_id, namespace_id, task_type, status, progress, result, "
            "created_at, updated_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                e.aggregate_id,
                e.namespace_id,
                task_type,
                "IN_PROGRESS",
                to_column({"documents_done": 0, "documents_total": 0, "percent": 0.0}),
                to_column(e.data),  # what the task works on: collection_id (taxonomy_id)
                occurred_at,
                occurred_at,
                e.actor,
            ],
        )
        return
    done = e.data.get("done", e.data.get("points", 0))
    total = e.data.get("total", done)
    finished = what == "Completed"
    percent = 100.0 if finished else (round(100.0 * done / total, 1) if total else 0.0)
    progress = {"documents_done": done, "documents_total": total, "percent": percent}
    cur.execute(
        "UPDATE tasks SET status = ?, progress = ?, updated_at = ? WHERE task_id = ?",
        [
            "COMPLETED" if finished else "IN_PROGRESS",
            to_column(progress),
            occurred_at,
            e.aggregate_id,
        ],
    )


def _progress(copies: dict[str, dict[str, Any]]) -> dict[str, Any]:
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
