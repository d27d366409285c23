"""Resource IDs: a kind prefix and 32 hex digits, e.g. ``col_0f3c...``."""

from __future__ import annotations

import re
import uuid
from enum import StrEnum


class Kind(StrEnum):
    NAMESPACE = "namespace"
    BUCKET = "bucket"
    COLLECTION = "collection"
    RETRIEVER = "retriever"
    TAXONOMY = "taxonomy"
    TASK = "task"
    OBJECT = "object"
    EVALUATION_SET = "evaluation_set"
    EVALUATION = "evaluation"

    @property
    def prefix(self) -> str:
        return PREFIXES[self]

    @property
    def plural(self) -> str:
        return "taxonomies" if self is Kind.TAXONOMY else f"{self.value}s"


PREFIXES: dict[Kind, str] = {
    Kind.NAMESPACE: "ns",
    Kind.BUCKET: "bkt",
    Kind.COLLECTION: "col",
    Kind.RETRIEVER: "ret",
    Kind.TAXONOMY: "tax",
    Kind.TASK: "task",
    Kind.OBJECT: "obj",
    Kind.EVALUATION_SET: "evs",
    Kind.EVALUATION: "eval",
}
_KIND_BY_PREFIX = {prefix: kind for kind, prefix in PREFIXES.items()}
ID_PATTERN = re.compile(r"^(ns|bkt|col|ret|tax|task|obj|evs|eval)_[0-9a-f]{32}$")


def new_id(kind: Kind) -> str:
    return f"{kind.prefix}_{uuid.uuid4().hex}"


def kind_of(identifier: str) -> Kind | None:
    """The kind an ID belongs to, or None when the string is not an ID (a name)."""
    if not ID_PATTERN.match(identifier):
        return None
    return _KIND_BY_PREFIX[identifier.split("_", 1)[0]]
