"""One function per command type: resolve, decide through the aggregates, add to the unit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contract import commands as c
from domain.aggregates import (
    ApplyTaxonomyTask,
    Bucket,
    CloneTask,
    Collection,
    Namespace,
    ReprocessTask,
    Resource,
    Retriever,
    Taxonomy,
)
from domain.as_of import data_of, namespace_at, refuse_changed_data
from domain.cloning import clone_namespace
from domain.errors import CommandRejected, ErrorCode
from domain.ids import Kind, new_id
from domain.promotion import HANDLERS as PROMOTION_HANDLERS
from domain.references import map_collections, map_source, map_stages, map_taxonomy_config
from domain.unit import Unit
from domain.values import json_of, tree_problem


def create_namespace(unit: Unit, body: c.CreateNamespace) -> None:
    namespace = Namespace(namespace_name=body.namespace_name, description=body.description)
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


def create_bucket(unit: Unit, body: c.CreateBucket) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    bucket = Bucket(
        namespace_id=namespace.id,
        bucket_name=body.bucket_name,
        description=body.description,
        bucket_schema=json_of(body.bucket_schema),
    )
    unit.add_to(namespace, bucket)


def add_objects(unit: Unit, body: c.AddObjects) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    bucket = unit.resource(namespace, Kind.BUCKET, body.bucket_identifier, "body.bucket_identifier")
    assert isinstance(bucket, Bucket)
    bucket.add_objects(json_of(body.objects))


def write_documents(unit: Unit, body: c.WriteDocuments) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    collection = _resource(unit, namespace, Kind.COLLECTION, body.collection_identifier)
    assert isinstance(collection, Collection)
    collection.write_documents(json_of(body.documents))


def delete_documents(unit: Unit, body: c.DeleteDocuments) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    collection = _resource(unit, namespace, Kind.COLLECTION, body.collection_identifier)
    assert isinstance(collection, Collection)
    collection.delete_documents(list(body.document_ids))


def create_collection(unit: Unit, body: c.CreateCollection) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    collection = Collection(
        namespace_id=namespace.id,
        collection_name=body.collection_name,
        description=body.description,
        source=map_source(json_of(body.source), unit.resolve_ref(namespace), "body.source"),
        feature_extractor=json_of(body.feature_extractor),
    )
    unit.add_to(namespace, collection)


def clone_collection(unit: Unit, body: c.CloneCollection) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    if body.as_of_position is None:
        original = _resource(unit, namespace, Kind.COLLECTION, body.collection_identifier)
    else:  # the collection that went by this name (or ID) then, with its data as of then
        past = namespace_at(unit, namespace, body.as_of_position)
        original = _resource(unit, past, Kind.COLLECTION, body.collection_identifier)
    assert isinstance(original, Collection)
    if body.as_of_position is not None:
        names = {original.id: f"collection {original.collection_name!r}"}
        refuse_changed_data(unit, body.as_of_position, data_of(unit, original), names)
    source = original.source
    if body.source is not None:
        source = map_source(json_of(body.source), unit.resolve_ref(namespace), "body.source")
    clone = original.clone(
        id=new_id(Kind.COLLECTION),
        namespace_id=namespace.id,
        collection_name=body.collection_name,
        description=_or(body.description, original.description),
        source=source,
        feature_extractor=_or(json_of(body.feature_extractor), original.feature_extractor),
    )
    unit.add_to(namespace, clone)


def create_retriever(unit: Unit, body: c.CreateRetriever) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    retriever = Retriever(
        namespace_id=namespace.id,
        retriever_name=body.retriever_name,
        description=body.description,
        collection_ids=map_collections(
            body.collection_identifiers, unit.resolve_ref(namespace), "body.collection_identifiers"
        ),
        stages=map_stages(json_of(body.stages), unit.resolve_ref(namespace), "body.stages"),
        input_schema=body.input_schema,
    )
    unit.add_to(namespace, retriever)


def clone_retriever(unit: Unit, body: c.CloneRetriever) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    original = _resource(unit, namespace, Kind.RETRIEVER, body.retriever_identifier)
    assert isinstance(original, Retriever)
    collection_ids = original.collection_ids
    if body.collection_identifiers is not None:
        collection_ids = map_collections(
            body.collection_identifiers, unit.resolve_ref(namespace), "body.collection_identifiers"
        )
    clone = original.clone(
        id=new_id(Kind.RETRIEVER),
        namespace_id=namespace.id,
        retriever_name=body.retriever_name,
        description=_or(body.description, original.description),
        collection_ids=collection_ids,
        stages=original.stages
        if body.stages is None
        else map_stages(json_of(body.stages), unit.resolve_ref(namespace), "body.stages"),
        input_schema=_or(body.input_schema, original.input_schema),
    )
    unit.add_to(namespace, clone)


def create_taxonomy(unit: Unit, body: c.CreateTaxonomy) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    taxonomy = Taxonomy(
        namespace_id=namespace.id,
        taxonomy_name=body.taxonomy_name,
        description=body.description,
        config=_resolved_taxonomy_config(unit, namespace, body.config),
    )
    unit.add_to(namespace, taxonomy)


def clone_taxonomy(unit: Unit, body: c.CloneTaxonomy) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    original = _resource(unit, namespace, Kind.TAXONOMY, body.taxonomy_identifier)
    assert isinstance(original, Taxonomy)
    config = original.config
    if body.config is not None:
        config = _resolved_taxonomy_config(unit, namespace, body.config)
    clone = original.clone(
        id=new_id(Kind.TAXONOMY),
        namespace_id=namespace.id,
        taxonomy_name=body.taxonomy_name,
        description=_or(body.description, original.description),
        config=config,
    )
    unit.add_to(namespace, clone)


def report_copy_progress(unit: Unit, body: c.ReportCopyProgress) -> None:
    task = unit.get(body.task_id, CloneTask)
    if task is None:
        raise CommandRejected(
            ErrorCode.NOT_FOUND, f"task {body.task_id!r} not found", field="body.task_id"
        )
    unit.namespace_id = task.namespace_id
    task.record_copy(body.collection_id, body.copied, body.total, body.done)


def trigger_reprocess(unit: Unit, body: c.TriggerReprocess) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    collection = _resource(unit, namespace, Kind.COLLECTION, body.collection_identifier)
    assert isinstance(collection, Collection)
    task = ReprocessTask(namespace_id=namespace.id, collection_id=collection.id)
    collection.start_reprocessing(task.id)
    unit.add(task)


def report_reprocess_progress(unit: Unit, body: c.ReportReprocessProgress) -> None:
    task = unit.get(body.task_id, ReprocessTask)
    if task is None:
        raise CommandRejected(
            ErrorCode.NOT_FOUND, f"task {body.task_id!r} not found", field="body.task_id"
        )
    unit.namespace_id = task.namespace_id
    if task.record(body.done, body.total, body.finished):
        collection = unit.get(task.collection_id, Collection)
        assert collection is not None
        collection.reprocessed(task.id)


def apply_taxonomy(unit: Unit, body: c.ApplyTaxonomy) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    collection = _resource(unit, namespace, Kind.COLLECTION, body.collection_identifier)
    taxonomy = _resource(unit, namespace, Kind.TAXONOMY, body.taxonomy_identifier)
    assert isinstance(collection, Collection)
    collection.refuse_unless_ready()
    unit.add(ApplyTaxonomyTask(namespace.id, collection.id, taxonomy.id))


def report_apply_progress(unit: Unit, body: c.ReportReprocessProgress) -> None:
    task = unit.get(body.task_id, ApplyTaxonomyTask)
    if task is None:
        raise CommandRejected(
            ErrorCode.NOT_FOUND, f"task {body.task_id!r} not found", field="body.task_id"
        )
    unit.namespace_id = task.namespace_id
    task.record(body.done, body.total, body.finished)


def update_resource(kind: Kind) -> Callable[[Unit, Any], None]:
    """Renames and re-describes a resource: the only changes a resource allows."""
    identifier_field = f"{kind.value}_identifier"
    name_field = f"{kind.value}_name"

    def update(unit: Unit, body: Any) -> None:
        namespace = unit.namespace(body.namespace_identifier)
        resource = _resource(unit, namespace, kind, getattr(body, identifier_field))
        new_name = getattr(body, name_field)
        if new_name is not None and new_name != resource.name:
            namespace.rename_resource(kind, resource.id, new_name)
            resource.rename(new_name)  # type: ignore[attr-defined]
        if body.description is not None and body.description != resource.description:
            resource.change_description(body.description)

    return update


def _resolved_taxonomy_config(unit: Unit, namespace: Namespace, config: Any) -> dict[str, Any]:
    resolved = map_taxonomy_config(json_of(config), unit.resolve_ref(namespace), "body.config")
    problem = tree_problem(resolved.get("hierarchical_nodes") or [])
    if problem is not None:
        raise CommandRejected(
            ErrorCode.VALIDATION_ERROR, problem, field="body.config.hierarchical_nodes"
        )
    return resolved


def _resource(unit: Unit, namespace: Namespace, kind: Kind, identifier: str) -> Resource:
    return unit.resource(namespace, kind, identifier, f"body.{kind.value}_identifier")


def _or(override: Any, original: Any) -> Any:
    """Override semantics: a provided field replaces the original wholesale."""
    return original if override is None else override


HANDLERS: dict[str, Callable[[Unit, Any], None]] = {
    "namespaces.create": create_namespace,
    "namespaces.update": update_namespace,
    "namespaces.clone": clone_namespace,
    "buckets.create": create_bucket,
    "buckets.update": update_resource(Kind.BUCKET),
    "buckets.objects.add": add_objects,
    "collections.create": create_collection,
    "collections.update": update_resource(Kind.COLLECTION),
    "collections.clone": clone_collection,
    "collections.documents.write": write_documents,
    "collections.documents.delete": delete_documents,
    "retrievers.create": create_retriever,
    "retrievers.update": update_resource(Kind.RETRIEVER),
    "retrievers.clone": clone_retriever,
    "taxonomies.create": create_taxonomy,
    "taxonomies.update": update_resource(Kind.TAXONOMY),
    "taxonomies.clone": clone_taxonomy,
    "tasks.copy_progress": report_copy_progress,
    "collections.trigger": trigger_reprocess,
    "tasks.reprocess_progress": report_reprocess_progress,
    "collections.apply_taxonomy": apply_taxonomy,
    "tasks.apply_progress": report_apply_progress,
    **PROMOTION_HANDLERS,
}
