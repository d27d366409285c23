"""Cloning an environment as it stood at an earlier log position.

Configuration has its whole history in the log: a namespace's catalog (which
resources it held, under which names) is rebuilt at any position, and what a
resource computes never changes. Vectors do not: a collection is a stack of
copy-on-write layers with no per-point history, so the data of a clone "as of"
a position is exact only if nothing changed it since. A clone that would need
older data is refused, naming the change and the earliest position that works.

Deleting does not rewrite this history: a namespace or resource deleted since the
position is read as it stood then, so cloning it as of then brings it back (as a new
clone; its vectors were never removed).
"""

from __future__ import annotations

from typing import TypeVar

from application.unit import Unit
from domain.base import Resource
from domain.collection import Collection
from domain.errors import CommandRejected, ErrorCode
from domain.namespace import Namespace

R = TypeVar("R", bound=Resource)


def namespace_at(unit: Unit, namespace: Namespace, position: int) -> Namespace:
    past = unit.as_of(namespace.id, Namespace, position)
    if past is None:
        raise CommandRejected(
            ErrorCode.NOT_FOUND,
            f"namespace {namespace.namespace_name!r} did not exist at position {position}",
            field="body.as_of_position",
        )
    return past


def resource_at(unit: Unit, past: Namespace, cls: type[R], identifier: str, position: int) -> R:
    """The resource an ID or name referred to in the namespace as it stood at ``position``
    (``past``), as it stood then: one deleted since is read too."""
    field = f"body.{cls.KIND.value}_identifier"
    resource_id = unit.resource_id(past, cls.KIND, identifier, field)
    found = None if resource_id is None else unit.as_of(resource_id, cls, position)
    if found is None:
        raise CommandRejected(
            ErrorCode.NOT_FOUND,
            f"{cls.KIND.value} {identifier!r} was not in namespace {past.namespace_name!r} "
            f"at position {position}",
            field=field,
        )
    return found


def data_of(unit: Unit, collection: Collection) -> set[str]:
    """The collection, the buckets and upstream collections its documents come from."""
    ids, todo = set[str](), [collection]
    while todo:
        current = todo.pop()
        ids.add(current.id)
        source = current.source
        if source.get("type") == "bucket":
            ids |= set(source.get("bucket_ids") or [])
        elif source.get("collection_id") and source["collection_id"] not in ids:
            upstream = unit.get(source["collection_id"], Collection)
            if upstream is not None:
                todo.append(upstream)
    return ids


def refuse_changed_data(unit: Unit, position: int, ids: set[str], names: dict[str, str]) -> None:
    """Refuse unless the documents and objects of ``ids`` are as they were at ``position``."""
    changed = unit.log.data_changes_after(position, ids)
    if not changed:
        return
    latest = max(changed.values())
    what = ", ".join(
        f"{names.get(i, i)} (last at {p})" for i, p in sorted(changed.items(), key=lambda x: x[1])
    )
    raise CommandRejected(
        ErrorCode.HISTORY_UNAVAILABLE,
        f"cannot clone as of position {position}: data changed since then: {what}. Vectors "
        "are copy-on-write layers without per-point history, so a clone goes back only to "
        f"a position its data has not changed since: {latest} or later",
        field="body.as_of_position",
        changed=changed,
        earliest_position=latest,
    )
