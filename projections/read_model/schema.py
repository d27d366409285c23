"""The read model's tables: their columns, their keys, and which columns hold JSON."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from domain.base import Aggregate
from domain.bucket import Bucket
from domain.collection import Collection
from domain.namespace import Namespace
from domain.quality import EvaluationSet
from domain.retriever import Retriever
from domain.taxonomy import Taxonomy


class ResourceTable(NamedTuple):
    """The table of one kind of resource, with the columns copied from its events' data."""

    name: str
    id_column: str
    fields: tuple[str, ...]

    @property
    def kind(self) -> str:
        return self.id_column.removesuffix("_id")

    @property
    def source_column(self) -> str:
        """The column naming what a clone was cloned from."""
        return f"source_{self.kind}_id"

    @property
    def in_namespace(self) -> bool:
        """Every resource lives in a namespace, except a namespace."""
        return self.id_column != "namespace_id"


RESOURCES: dict[type[Aggregate], ResourceTable] = {
    Namespace: ResourceTable(
        "namespaces",
        "namespace_id",
        ("namespace_name", "description", "source_namespace_id", "clone_task_id"),
    ),
    Bucket: ResourceTable("buckets", "bucket_id", ("bucket_name", "description", "bucket_schema")),
    Collection: ResourceTable(
        "collections",
        "collection_id",
        ("collection_name", "description", "source", "feature_extractor", "vector_mode"),
    ),
    Retriever: ResourceTable(
        "retrievers",
        "retriever_id",
        ("retriever_name", "description", "collection_ids", "stages", "input_schema"),
    ),
    Taxonomy: ResourceTable(
        "taxonomies", "taxonomy_id", ("taxonomy_name", "description", "config")
    ),
    EvaluationSet: ResourceTable(
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

REF_TABLES = [
    """CREATE TABLE IF NOT EXISTS refs (ref_id TEXT PRIMARY KEY, namespace_id TEXT,
        ref_name TEXT, target_kind TEXT, target_id TEXT, target_namespace_id TEXT,
        created_at TEXT, updated_at TEXT, created_by TEXT, version INTEGER)""",
    # One row per thing that happened to a ref, refused promotions included.
    """CREATE TABLE IF NOT EXISTS ref_history (position INTEGER PRIMARY KEY, ref_id TEXT,
        namespace_id TEXT, ref_name TEXT, action TEXT, target_id TEXT,
        target_namespace_id TEXT, previous_target_id TEXT, reason TEXT, evaluation_id TEXT,
        detail TEXT, actor TEXT, command_id TEXT, occurred_at TEXT, version INTEGER)""",
    """CREATE TABLE IF NOT EXISTS evaluations (evaluation_id TEXT PRIMARY KEY,
        namespace_id TEXT, evaluation_set_id TEXT, set_type TEXT, k INTEGER, runs TEXT,
        agreement TEXT, position INTEGER, command_id TEXT, created_at TEXT, created_by TEXT)""",
]

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
    # Each bucket's objects (what Mixpeek's object_count and total_size_bytes count); the
    # key is "<bucket_id>/<object_id>": a bucket clone holds its source's objects.
    """CREATE TABLE IF NOT EXISTS bucket_objects (object_key TEXT PRIMARY KEY,
        bucket_id TEXT, object_id TEXT, size_bytes INTEGER)""",
    # The running digests of the projected tables, kept as rows change (digests.py).
    """CREATE TABLE IF NOT EXISTS digest_sums (table_name TEXT PRIMARY KEY, total TEXT,
        row_count INTEGER)""",
    *REF_TABLES,
]

# The indexes of the projected tables besides their keys. A rebuild into an empty read
# model makes them once it has caught up (``ReadModel.begin_catch_up``): built from sorted
# rows at once instead of one random insert per row and index.
INDEXES = [
    "CREATE INDEX IF NOT EXISTS refs_by_name ON refs (namespace_id, ref_name)",
    "CREATE INDEX IF NOT EXISTS ref_history_by_ref ON ref_history (ref_id, position)",
    "CREATE INDEX IF NOT EXISTS lineage_source ON lineage (source_id)",
    "CREATE INDEX IF NOT EXISTS audit_aggregate ON audit (aggregate_id)",
    "CREATE INDEX IF NOT EXISTS audit_namespace ON audit (namespace_id)",
    # An API write answers with what its command created: found by command, not by a scan.
    "CREATE INDEX IF NOT EXISTS audit_command ON audit (command_id)",
    "CREATE INDEX IF NOT EXISTS bucket_objects_by_bucket ON bucket_objects (bucket_id)",
    *[
        f"CREATE INDEX IF NOT EXISTS {t.name}_by_name ON {t.name} (namespace_id, {t.fields[0]})"
        for t in RESOURCES.values()
    ],
]
INDEX_NAMES = [statement.split()[5] for statement in INDEXES]

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
    "refs": "ref_id",
    "ref_history": "position",
    "evaluations": "evaluation_id",
    "bucket_objects": "object_key",
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
    "detail",
    "runs",
    "agreement",
}


# json.dumps(value, sort_keys=True), without making an encoder per call.
_encode_sorted = json.JSONEncoder(sort_keys=True).encode


def to_column(value: Any) -> Any:
    if isinstance(value, dict | list):
        return _encode_sorted(value)
    return value


def from_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: json.loads(value) if key in JSON_COLUMNS and isinstance(value, str) else value
        for key, value in row.items()
    }
