"""Namespaces: create, update, delete, and clone (deep-copy an environment, remapping
every internal ID)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from application.as_of import namespace_at, refuse_changed_data
from application.unit import Handlers, Unit
from contract import commands as c
from domain.base import Resource
from domain.bucket import Bucket
from domain.collection import Collection, VectorMode
from domain.errors import CommandRejected, ErrorCode
from domain.ids import Kind, new_id
from domain.namespace import RESOURCE_KINDS, Namespace
from domain.references import map_collections, map_source, map_stages, map_taxonomy_config
from domain.retriever import Retriever
from domain.tasks import CloneTask
from domain.taxonomy import Taxonomy
from domain.values import IncludeResources


def create_namespace(unit: Unit, body: c.CreateNamespace) -> None:
    description = body.description or ""  # null on the way in is the empty description
    namespace = Namespace(namespace_name=body.namespace_name, description=description)
    unit.namespace_id = namespace.id
    unit.claim_namespace_name(body.namespace_name, namespace.id)
    unit.add(namespace)


def update_namespace(unit: Unit, body: c.UpdateNamespace) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    if body.namespace_name is not None and body.namespace_name != namespace.namespace_name:
        unit.release_namespace_name(namespace.namespace_name)
        unit.claim_namespace_name(body.namespace_name, namespace.id)
        namespace.rename(body.namespace_name)
    if body.description is not None and body.description != namespace.description:
        namespace.change_description(body.description)


def delete_namespace(unit: Unit, body: c.DeleteNamespace) -> None:
    """One event however big the namespace: its resources are not touched, only no longer
    reachable through it; its name is free for a new namespace. A clone as of a position
    before the delete brings it back."""
    namespace = unit.namespace(body.namespace_identifier)
    namespace.delete()
    unit.release_namespace_name(namespace.namespace_name)


class DeepCloneResult(BaseModel):
    """How a namespace clone ended: every source ID and the ID of its clone."""

    task_id: str
    source_namespace_id: str
    namespace_id: str
    # plural kind ("namespaces", "buckets", ...) -> source ID -> clone ID
    mapping: dict[str, dict[str, str]]
    # plural kind -> how many were cloned
    counts: dict[str, int]


def included_kinds(include: IncludeResources) -> list[Kind]:
    """Which kinds a clone takes; refuses a selection that would leave references outside."""
    if include.retrievers and not include.collections:
        raise CommandRejected(
            ErrorCode.INVALID_INCLUDE_RESOURCES,
            "include_resources.retrievers needs include_resources.collections: "
            "cloned retrievers would read collections outside the clone",
            field="body.include_resources.retrievers",
        )
    if include.taxonomies and not include.retrievers:
        raise CommandRejected(
            ErrorCode.INVALID_INCLUDE_RESOURCES,
            "include_resources.taxonomies needs include_resources.retrievers: "
            "cloned taxonomies would classify through retrievers outside the clone",
            field="body.include_resources.taxonomies",
        )
    wanted = {
        Kind.BUCKET: True,
        Kind.COLLECTION: include.collections,
        Kind.RETRIEVER: include.retrievers,
        Kind.TAXONOMY: include.taxonomies,
    }
    return [kind for kind in RESOURCE_KINDS if wanted[kind]]


def remap_ids(source: Namespace, kinds: list[Kind]) -> dict[Kind, dict[str, str]]:
    """A new ID for every resource of the included kinds."""
    return {kind: {old: new_id(kind) for old in source.resources[kind.value]} for kind in kinds}


def clone_namespace(unit: Unit, body: c.CloneNamespace) -> None:
    as_of = body.as_of_position
    # A namespace deleted since the position is read as it stood then (an "undelete").
    source = unit.namespace(body.namespace_identifier, deleted_too=as_of is not None)
    kinds = included_kinds(body.include_resources)
    if as_of is not None:
        # The catalog as it stood then: the resources held then, under their names then.
        source = namespace_at(unit, source, as_of)
        refuse_changed_data(unit, as_of, _data_ids(source, kinds), {})
    ids = remap_ids(source, kinds)

    def remapped(kind: Kind, old: str, field: str) -> str:
        try:
            return ids[kind][old]
        except KeyError:
            if unit.deleted_target(kind.value, old) is not None:
                return old  # deleted (no FK refusal): the clone fails when used, as its source
            raise CommandRejected(
                ErrorCode.INVALID_REFERENCE,
                f"{field} refers to {kind.value} {old}, which the clone does not include",
                field=field,
            ) from None

    target_id = new_id(Kind.NAMESPACE)
    task = CloneTask(
        namespace_id=source.id,
        source_namespace_id=source.id,
        target_namespace_id=target_id,
        include_resources=body.include_resources.model_dump(),
    )
    target = source.clone(
        id=target_id,
        namespace_name=body.namespace_name,
        description=source.description if body.description is None else body.description,
        clone_task_id=task.id,
    )
    unit.claim_namespace_name(body.namespace_name, target.id)
    unit.add(task, target)

    copies: dict[str, str] = {}
    for kind in kinds:
        for old, new in ids[kind].items():
            original = unit.get(old, Resource)
            if original is None:  # the catalog and the store disagree: never written
                raise RuntimeError(f"namespace {source.id} lists {old}, which does not exist")
            if original.deleted and as_of is not None:  # deleted since: as it stood then
                original = unit.as_of(old, type(original), as_of) or original
            name = source.resources[kind.value][old]
            clone = _clone_resource(
                original, new, name, target.id, remapped, deep_copy=body.vectors == "copy"
            )
            target.add_resource(kind, clone.id, clone.name)
            unit.add(clone)
            if isinstance(clone, Collection) and clone.vector_mode == VectorMode.COPY:
                copies[clone.id] = old  # its vectors follow, copied by the vector processor

    plural = {kind: kind.plural for kind in RESOURCE_KINDS}
    result = DeepCloneResult(
        task_id=task.id,
        source_namespace_id=source.id,
        namespace_id=target.id,
        mapping={
            "namespaces": {source.id: target.id},
            **{plural[kind]: dict(ids.get(kind, {})) for kind in RESOURCE_KINDS},
        },
        counts={plural[kind]: len(ids.get(kind, {})) for kind in RESOURCE_KINDS},
    )
    task.finish_cloning(result.model_dump(), copies)


def _data_ids(source: Namespace, kinds: list[Kind]) -> set[str]:
    """The buckets and (when cloned) collections whose data the clone carries."""
    wanted = [k for k in (Kind.BUCKET, Kind.COLLECTION) if k in kinds]
    return {i for k in wanted for i in source.resources.get(k.value, {})}


def _clone_resource(
    original: Resource, new: str, name: str, namespace_id: str, ref: Any, deep_copy: bool
) -> Resource:
    """The clone of one resource inside the cloned environment: what it refers to points
    at the clones (``ref``), and it keeps the name it had in the source's catalog."""
    if isinstance(original, Bucket):
        return original.clone(id=new, namespace_id=namespace_id)
    overrides: dict[str, Any] = {original.NAME_FIELD: name}
    if isinstance(original, Collection):
        source = map_source(original.source, ref, "source")
        return original.clone(
            id=new, namespace_id=namespace_id, source=source, deep_copy=deep_copy, **overrides
        )
    if isinstance(original, Retriever):
        overrides["collection_ids"] = map_collections(
            original.collection_ids, ref, "collection_ids"
        )
        overrides["stages"] = map_stages(original.stages, ref, "stages")
    elif isinstance(original, Taxonomy):
        overrides["config"] = map_taxonomy_config(original.config, ref, "config")
    else:
        raise TypeError(f"cannot clone {type(original).__name__}")
    return original.clone(id=new, namespace_id=namespace_id, **overrides)


HANDLERS: Handlers = {
    c.CreateNamespace: create_namespace,
    c.UpdateNamespace: update_namespace,
    c.DeleteNamespace: delete_namespace,
    c.CloneNamespace: clone_namespace,
}
