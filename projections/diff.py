"""What differs between two namespaces, or two resources of one kind.

Plain functions over read-model rows (JSON columns already decoded), so the
HTTP route and the CLI only fetch rows and hand them in.

Resources of two namespaces are matched by (kind, name). A namespace clone
gives every resource a new ID and remaps the references inside configs, so
before comparing, every string in a config that is the ID of a resource of
the same side is replaced by ``"<kind>:<name>"`` (see ``names_of``): a clone
then compares equal to its source, and a reference that points elsewhere
shows up as a change of name.

Field-by-field rule (``field_diffs``), applied to normalized values, where a
missing key counts as ``None``:

* equal values: no entry;
* two dicts: each key of either side, in sorted order, at ``path.key``;
* two lists whose items are all dicts (on both sides; an empty list counts):
  each index up to the longer length, at ``path[i]``; an index only one side
  has is reported whole, from ``None`` or to ``None`` (e.g. an added stage);
* anything else (scalars, lists with a non-dict item, a dict against a
  list or ``None``): the whole value at ``path``.

The differing paths are therefore always the deepest ones; values reported
are the normalized ones (names instead of IDs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("bucket", "collection", "retriever", "taxonomy")

# The fields that decide what a resource computes, compared field by field.
CONFIG_FIELDS: dict[str, tuple[str, ...]] = {
    "bucket": ("bucket_schema",),
    "collection": ("source", "feature_extractor"),
    "retriever": ("collection_ids", "stages", "input_schema"),
    "taxonomy": ("config",),
}
# Compared too, and reported with config=False.
OTHER_FIELDS = ("description",)

# Payload keys a document digest leaves out: a namespace clone gives buckets new IDs.
IGNORED_PAYLOAD_KEYS = frozenset({"bucket_id"})


@dataclass
class Side:
    """One side of a namespace diff: the namespace row and its resources by kind."""

    namespace: dict[str, Any]
    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def rows(self, kind: str) -> list[dict[str, Any]]:
        return self.resources.get(kind) or []

    def names(self) -> dict[str, str]:
        return names_of(self.resources)


@dataclass
class DocumentDiff:
    """How the documents of two collections differ (from the first to the second)."""

    added: int
    removed: int
    changed: int
    unchanged: int

    @property
    def differs(self) -> bool:
        return self.added + self.removed + self.changed > 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


DocumentsOf = Callable[[dict[str, Any], dict[str, Any]], DocumentDiff | None]


def _check_kind(kind: str) -> None:
    if kind not in CONFIG_FIELDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")


def resource_id(kind: str, row: Mapping[str, Any]) -> str:
    return str(row[f"{kind}_id"])


def resource_name(kind: str, row: Mapping[str, Any]) -> str:
    return str(row[f"{kind}_name"])


def names_of(resources: Mapping[str, Iterable[Mapping[str, Any]]]) -> dict[str, str]:
    """ID -> ``"<kind>:<name>"`` for every resource of one side (kinds outside KINDS ignored)."""
    return {
        resource_id(kind, row): f"{kind}:{resource_name(kind, row)}"
        for kind in KINDS
        for row in resources.get(kind) or []
    }


def normalize(value: Any, names: Mapping[str, str]) -> Any:
    """``value`` with every string that is a key of ``names`` replaced by its name, recursively
    through dicts and lists (dict keys are left as they are)."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, dict):
        return {key: normalize(item, names) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(item, names) for item in value]
    return value


def field_diffs(path: str, a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    """(path, from, to) for every deepest difference between ``a`` and ``b`` (module docstring)."""
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(a) | set(b), key=str):
            out.extend(field_diffs(f"{path}.{key}" if path else str(key), a.get(key), b.get(key)))
        return out
    if (
        isinstance(a, list)
        and isinstance(b, list)
        and all(isinstance(item, dict) for item in [*a, *b])
    ):
        out = []
        for index in range(max(len(a), len(b))):
            out.extend(
                field_diffs(
                    f"{path}[{index}]",
                    a[index] if index < len(a) else None,
                    b[index] if index < len(b) else None,
                )
            )
        return out
    return [(path, a, b)]


def resource_diff(
    kind: str,
    a: dict[str, Any],
    b: dict[str, Any],
    names_a: Mapping[str, str],
    names_b: Mapping[str, str],
    documents: DocumentsOf | None = None,
) -> dict[str, Any]:
    """How resource ``b`` differs from resource ``a`` of the same kind.

    ``names_a``/``names_b`` map the IDs of each side's resources to names (``names_of``);
    for two resources of one namespace pass the same map. ``documents`` is asked only for
    collections. Returns ``{"kind", "name", "from_id", "to_id", "fields", "documents"}``
    where ``name`` is b's name, or ``"<a> -> <b>"`` when the names differ, ``fields`` is a
    list of ``{"field", "from", "to", "config"}`` (config fields in CONFIG_FIELDS order,
    then description) and ``documents`` is a DocumentDiff as a dict, or None.
    """
    _check_kind(kind)
    name_a, name_b = resource_name(kind, a), resource_name(kind, b)
    fields: list[dict[str, Any]] = []
    for column in CONFIG_FIELDS[kind]:
        for path, old, new in field_diffs(
            column, normalize(a.get(column), names_a), normalize(b.get(column), names_b)
        ):
            fields.append({"field": path, "from": old, "to": new, "config": True})
    for column in OTHER_FIELDS:
        for path, old, new in field_diffs(column, a.get(column), b.get(column)):
            fields.append({"field": path, "from": old, "to": new, "config": False})
    docs = documents(a, b) if documents is not None and kind == "collection" else None
    return {
        "kind": kind,
        "name": name_b if name_a == name_b else f"{name_a} -> {name_b}",
        "from_id": resource_id(kind, a),
        "to_id": resource_id(kind, b),
        "fields": fields,
        "documents": docs.as_dict() if docs is not None else None,
    }


def is_changed(diff: Mapping[str, Any]) -> bool:
    """Whether a ``resource_diff`` shows any difference (a field or documents)."""
    docs = diff.get("documents") or {}
    moved = docs.get("added", 0) + docs.get("removed", 0) + docs.get("changed", 0) > 0
    return bool(diff["fields"]) or moved


def _by_name(kind: str, rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        name = resource_name(kind, row)
        if name in out:
            raise ValueError(f"two {kind}s are named {name!r} on one side")
        out[name] = row
    return out


def _namespace_ref(namespace: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "namespace_id": namespace.get("namespace_id"),
        "namespace_name": namespace.get("namespace_name"),
    }


def namespace_diff(a: Side, b: Side, documents: DocumentsOf | None = None) -> dict[str, Any]:
    """What differs from namespace ``a`` to namespace ``b``, resources matched by (kind, name).

    Returns ``{"from": {"namespace_id", "namespace_name"}, "to": {...},
    "only_in_from": [{"kind", "name", "id"}], "only_in_to": [...],
    "changed": [resource_diff, ...], "unchanged": [{"kind", "name"}],
    "summary": {"only_in_from", "only_in_to", "changed", "unchanged"}}``,
    every list ordered by KINDS, then name.
    """
    names_a, names_b = a.names(), b.names()
    only_in_from: list[dict[str, Any]] = []
    only_in_to: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    unchanged: list[dict[str, Any]] = []
    for kind in KINDS:
        rows_a, rows_b = _by_name(kind, a.rows(kind)), _by_name(kind, b.rows(kind))
        for name in sorted(set(rows_a) | set(rows_b)):
            if name not in rows_b:
                only_in_from.append(
                    {"kind": kind, "name": name, "id": resource_id(kind, rows_a[name])}
                )
            elif name not in rows_a:
                only_in_to.append(
                    {"kind": kind, "name": name, "id": resource_id(kind, rows_b[name])}
                )
            else:
                diff = resource_diff(kind, rows_a[name], rows_b[name], names_a, names_b, documents)
                if is_changed(diff):
                    changed.append(diff)
                else:
                    unchanged.append({"kind": kind, "name": name})
    return {
        "from": _namespace_ref(a.namespace),
        "to": _namespace_ref(b.namespace),
        "only_in_from": only_in_from,
        "only_in_to": only_in_to,
        "changed": changed,
        "unchanged": unchanged,
        "summary": {
            "only_in_from": len(only_in_from),
            "only_in_to": len(only_in_to),
            "changed": len(changed),
            "unchanged": len(unchanged),
        },
    }


def content_digest(payload: Mapping[str, Any] | None, text: str | None) -> str:
    """sha256 of a document's canonical JSON: payload (keys sorted, top-level
    IGNORED_PAYLOAD_KEYS left out) and text. The caller chooses what to compare."""
    kept = {k: v for k, v in (payload or {}).items() if k not in IGNORED_PAYLOAD_KEYS}
    canonical = json.dumps(
        {"payload": kept, "text": text},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def document_diff(
    a_docs: Iterable[tuple[str, str]], b_docs: Iterable[tuple[str, str]]
) -> DocumentDiff:
    """Compare (document_id, content digest) pairs: added are in b only, removed in a only,
    changed in both with different digests. A repeated document_id keeps its last digest."""
    a, b = dict(a_docs), dict(b_docs)
    common = a.keys() & b.keys()
    changed = sum(1 for doc in common if a[doc] != b[doc])
    return DocumentDiff(
        added=len(b.keys() - a.keys()),
        removed=len(a.keys() - b.keys()),
        changed=changed,
        unchanged=len(common) - changed,
    )
