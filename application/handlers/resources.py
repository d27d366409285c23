"""Buckets, collections, retrievers and taxonomies: create, clone, update, and what they
hold (objects, documents). Each handler resolves, decides through the aggregates and
adds what it touched to the unit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from application.as_of import data_of, namespace_at, refuse_changed_data, resource_at
from application.unit import Handlers, Unit
from contract import commands as c
from domain.base import Resource
from domain.bucket import Bucket
from domain.collection import Collection
from domain.errors import CommandRejected, ErrorCode
from domain.ids import Kind
from domain.namespace import Namespace
from domain.references import map_collections, map_source, map_stages, map_taxonomy_config
from domain.retriever import Retriever
from domain.taxonomy import Taxonomy
from domain.values import json_of, tree_problem


def create_resource(unit: Unit, body: Any) -> None:
    cls, made_of = _MADE_OF[type(body)]
    namespace = unit.namespace(body.namespace_identifier)
    resource = cls.create(namespace_id=namespace.id, **made_of(unit, namespace, body))
    unit.add_to(namespace, resource)


def clone_resource(unit: Unit, body: Any) -> None:
    cls, made_of = _MADE_OF[type(body)]
    namespace = unit.namespace(body.namespace_identifier)
    original = unit.resource_of(namespace, cls, getattr(body, f"{cls.KIND.value}_identifier"))
    clone = original.clone(namespace_id=namespace.id, **made_of(unit, namespace, body))
    unit.add_to(namespace, clone)


def clone_collection(unit: Unit, body: c.CloneCollection) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    if body.as_of_position is None:
        original = unit.resource_of(namespace, Collection, body.collection_identifier)
    else:  # the collection that went by this name (or ID) then, with its data as of then
        past = namespace_at(unit, namespace, body.as_of_position)
        original = resource_at(
            unit, past, Collection, body.collection_identifier, body.as_of_position
        )
        names = {original.id: f"collection {original.collection_name!r}"}
        refuse_changed_data(unit, body.as_of_position, data_of(unit, original), names)
    clone = original.clone(namespace_id=namespace.id, **_collection(unit, namespace, body))
    unit.add_to(namespace, clone)


def add_objects(unit: Unit, body: c.AddObjects) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    bucket = unit.resource_of(namespace, Bucket, body.bucket_identifier)
    bucket.add_objects(json_of(body.objects))


def write_documents(unit: Unit, body: c.WriteDocuments) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    collection = unit.resource_of(namespace, Collection, body.collection_identifier)
    collection.write_documents(json_of(body.documents))


def delete_documents(unit: Unit, body: c.DeleteDocuments) -> None:
    namespace = unit.namespace(body.namespace_identifier)
    collection = unit.resource_of(namespace, Collection, body.collection_identifier)
    collection.delete_documents(list(body.document_ids))


# What a create or clone command says a resource is made of, its references resolved in
# the namespace. A clone keeps its original's value wherever this says None.


def _bucket(unit: Unit, namespace: Namespace, body: Any) -> dict[str, Any]:
    return {
        "bucket_name": body.bucket_name,
        "description": body.description,
        "bucket_schema": json_of(body.bucket_schema),
    }


def _collection(unit: Unit, namespace: Namespace, body: Any) -> dict[str, Any]:
    source = None
    if body.source is not None:
        source = map_source(json_of(body.source), unit.resolve_ref(namespace), "body.source")
    return {
        "collection_name": body.collection_name,
        "description": body.description,
        "source": source,
        "feature_extractor": json_of(body.feature_extractor),
    }


def _retriever(unit: Unit, namespace: Namespace, body: Any) -> dict[str, Any]:
    ref = unit.resolve_ref(namespace)
    collection_ids = stages = None
    if body.collection_identifiers is not None:
        collection_ids = map_collections(
            body.collection_identifiers, ref, "body.collection_identifiers"
        )
    if body.stages is not None:
        stages = map_stages(json_of(body.stages), ref, "body.stages")
    return {
        "retriever_name": body.retriever_name,
        "description": body.description,
        "collection_ids": collection_ids,
        "stages": stages,
        "input_schema": body.input_schema,
    }


def _taxonomy(unit: Unit, namespace: Namespace, body: Any) -> dict[str, Any]:
    config = None
    if body.config is not None:
        ref = unit.resolve_ref(namespace)
        config = map_taxonomy_config(json_of(body.config), ref, "body.config")
        problem = tree_problem(config.get("hierarchical_nodes") or [])
        if problem is not None:
            raise CommandRejected(
                ErrorCode.VALIDATION_ERROR, problem, field="body.config.hierarchical_nodes"
            )
    return {
        "taxonomy_name": body.taxonomy_name,
        "description": body.description,
        "config": config,
    }


MadeOf = Callable[[Unit, Namespace, Any], dict[str, Any]]
_MADE_OF: dict[type[Any], tuple[type[Resource], MadeOf]] = {
    c.CreateBucket: (Bucket, _bucket),
    c.CreateCollection: (Collection, _collection),
    c.CreateRetriever: (Retriever, _retriever),
    c.CloneRetriever: (Retriever, _retriever),
    c.CreateTaxonomy: (Taxonomy, _taxonomy),
    c.CloneTaxonomy: (Taxonomy, _taxonomy),
}


def update_resource(unit: Unit, body: Any) -> None:
    """Renames and re-describes a resource: the only changes a resource allows."""
    kind = _UPDATED_KIND[type(body)]
    namespace = unit.namespace(body.namespace_identifier)
    resource = unit.resource(
        namespace, kind, getattr(body, f"{kind.value}_identifier"), f"body.{kind.value}_identifier"
    )
    new_name = getattr(body, f"{kind.value}_name")
    if new_name is not None and new_name != resource.name:
        namespace.rename_resource(kind, resource.id, new_name)
        resource.rename(new_name)
    if body.description is not None and body.description != resource.description:
        resource.change_description(body.description)


_UPDATED_KIND: dict[type[Any], Kind] = {
    c.UpdateBucket: Kind.BUCKET,
    c.UpdateCollection: Kind.COLLECTION,
    c.UpdateRetriever: Kind.RETRIEVER,
    c.UpdateTaxonomy: Kind.TAXONOMY,
}


def delete_resource(unit: Unit, body: Any) -> None:
    """The resource leaves its namespace: its name is free again, it cannot be changed or
    found any more. Nothing else is touched: what reads it (a retriever reading a deleted
    collection, a collection sourced from a deleted bucket) fails when used, clones made
    from it go on, refs to it refuse to resolve, and its vectors stay."""
    kind = _DELETED_KIND[type(body)]
    namespace = unit.namespace(body.namespace_identifier)
    field = f"body.{kind.value}_identifier"
    resource = unit.resource(namespace, kind, getattr(body, f"{kind.value}_identifier"), field)
    resource.delete()
    namespace.remove_resource(kind, resource.id)


_DELETED_KIND: dict[type[Any], Kind] = {
    c.DeleteBucket: Kind.BUCKET,
    c.DeleteCollection: Kind.COLLECTION,
    c.DeleteRetriever: Kind.RETRIEVER,
    c.DeleteTaxonomy: Kind.TAXONOMY,
}


HANDLERS: Handlers = {
    c.CreateBucket: create_resource,
    c.UpdateBucket: update_resource,
    c.DeleteBucket: delete_resource,
    c.AddObjects: add_objects,
    c.CreateCollection: create_resource,
    c.UpdateCollection: update_resource,
    c.DeleteCollection: delete_resource,
    c.CloneCollection: clone_collection,
    c.WriteDocuments: write_documents,
    c.DeleteDocuments: delete_documents,
    c.CreateRetriever: create_resource,
    c.UpdateRetriever: update_resource,
    c.DeleteRetriever: delete_resource,
    c.CloneRetriever: clone_resource,
    c.CreateTaxonomy: create_resource,
    c.UpdateTaxonomy: update_resource,
    c.DeleteTaxonomy: delete_resource,
    c.CloneTaxonomy: clone_resource,
}
