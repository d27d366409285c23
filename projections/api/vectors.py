"""The vector endpoints: ingest objects and documents, reprocess, apply a taxonomy,
execute retrievers, classify.

Writes travel as commands like every other write; they answer once the vector
processor has applied them too, so a search right after an ingest sees it.
Retrievers and taxonomies run here, in the API's process, against the same
vector store the vector processor writes (with Qdrant Edge: the same process).
"""

import asyncio
import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, Strict

from contract import requests as rq
from contract.objects import DocumentsCreateRequest, ObjectsWriteRequest
from domain.ids import Kind
from domain.mixpeek_options import BatchOf1000, FalseByDefault, Unsupported
from domain.tasks import ApplyTaxonomyTask, ReprocessTask
from domain.values import Count, JsonInteger
from projections import queries
from projections.api.dependencies import IdempotencyKey, InNamespace, Svc, Who
from projections.api.errors import ApiError
from projections.api.lookups import Row, collections_of, find, taxonomy_inputs
from projections.api.services import Services
from projections.api.writes import Written, created_by, fields, write
from projections.auth import Principal
from projections.json_bodies import LimitedJsonRoute, VectorJsonRoute
from projections.vectors.materializer import VectorMaterializer
from projections.vectors.retrieval import (
    CollectionNotFound,
    CollectionNotReady,
    RetrievalError,
    RetrieverRunner,
)
from projections.vectors.store import StoreNotFound
from projections.vectors.taxonomy import TRACE, TaxonomyRunner
from projections.vectors.views import UnknownCollection

router = APIRouter(route_class=LimitedJsonRoute)


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] | None = None
    limit: Annotated[int, Strict(), Field(ge=1, le=1000), JsonInteger] = 10
    offset: Count = 0
    # Mixpeek's options; its SDK always sends the five flags as false
    stream: FalseByDefault = None
    skip_cache: FalseByDefault = None
    return_presigned_urls: FalseByDefault = None
    return_vectors: FalseByDefault = None
    explain: FalseByDefault = None
    filters: Unsupported = None
    pagination: Unsupported = None
    expand: Unsupported = None
    write_token: Unsupported = None
    consistency: Unsupported = None
    target_collection_id: Unsupported = None
    settings: Unsupported = None  # what Mixpeek's hand-written client sends when given


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=100)]


class ExecuteTaxonomyRequest(BaseModel):
    """Mixpeek's on-demand taxonomy execution: classify the documents given."""

    model_config = ConfigDict(extra="forbid")

    source_documents: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=100)]
    join_mode: Literal["on_demand"] = "on_demand"
    batch_size: BatchOf1000 = None
    taxonomy: Unsupported = None  # the stored taxonomy runs, not one sent along
    retriever: Unsupported = None
    source_collection_id: Unsupported = None
    target_collection_id: Unsupported = None
    scroll_filters: Unsupported = None


class TriggerRequest(BaseModel):
    """Mixpeek's trigger options: envbranch re-embeds the whole collection."""

    model_config = ConfigDict(extra="forbid")

    include_buckets: Unsupported = None
    include_collections: Unsupported = None
    object_ids: Unsupported = None
    source_filters: Unsupported = None
    dedup_strategy: Unsupported = None
    reembed: Unsupported = None


class WriteAccepted(BaseModel):
    command_id: str
    position: int


class DocumentsWritten(WriteAccepted):
    """What a document write did; Mixpeek's DocumentResponse: the first document's ID."""

    collection_id: str
    document_ids: list[str]
    document_id: str | None = None


class ObjectsWritten(WriteAccepted):
    """What an object write did, in envbranch's terms and Mixpeek's (its ObjectResponse:
    the first object's ID, its blobs' properties and types)."""

    bucket_id: str
    object_ids: list[str]
    object_id: str | None = None
    blobs: list[dict[str, str]] | None = None
    status: str = "COMPLETED"  # the vector processor has it when this answers


def vector_store(svc: Services) -> VectorMaterializer:
    """This process's vector store; 503 if it has none."""
    if svc.materializer is None:
        raise ApiError(
            503,
            "vectors_unavailable",
            "this API process has no vector store: run it with the vector processor "
            "(envbranch up) or point QDRANT_URL at a Qdrant server",
            retryable=False,  # Mixpeek's SDK retries a 503 for minutes unless told not to
        )
    return svc.materializer


def runner_of(svc: Services) -> RetrieverRunner:
    """The retriever runner on this process's vector store; 503 if it has none."""
    vector_store(svc)
    assert svc.runner is not None  # there is one with every vector store
    return svc.runner


async def until_materialized(svc: Services, written: Written) -> dict[str, Any]:
    """Wait until the vector processor has applied everything up to the write."""
    materializer = vector_store(svc)
    deadline = time.monotonic() + svc.timeout
    while await asyncio.to_thread(materializer.position) < written.position:
        if time.monotonic() > deadline:
            raise ApiError(504, "timeout", "the vector processor has not caught up yet")
        await asyncio.sleep(0.01)
    return {"command_id": written.command_id, "position": written.position}


@router.post("/v1/buckets/{identifier}/objects", response_model=ObjectsWritten)
async def add_objects(
    identifier: str,
    body: ObjectsWriteRequest,
    ns: InNamespace,
    who: Who,
    idem: IdempotencyKey,
    svc: Svc,
) -> Any:
    type_ = "buckets.objects.add"
    objects = rq.BucketObjectsAddRequest(objects=body.as_objects())
    written = await data_command(svc, Kind.BUCKET, type_, identifier, objects, ns, who, idem)
    bucket_id, object_ids = await svc.read(
        queries.written_by, written["command_id"], "Bucket.ObjectsAdded", "objects"
    )
    blobs = [{"property": b.property, "type": b.type} for b in body.blobs or []]
    first = object_ids[0] if object_ids else None
    mixpeek = {"object_id": first, "blobs": blobs or None}
    return {**written, "bucket_id": bucket_id, "object_ids": object_ids, **mixpeek}


async def data_command(
    svc: Services,
    kind: Kind,
    type_: str,
    identifier: str,
    body: BaseModel,
    ns: Row,
    who: Principal,
    idem: str,
) -> dict[str, Any]:
    """Write into a bucket or a collection; answer once the vector store has it too."""
    found = await find(svc, kind, ns, identifier)
    payload = {
        "namespace_identifier": ns["namespace_id"],
        f"{kind.value}_identifier": found[f"{kind.value}_id"],
        **fields(body),
    }
    written = await write(svc, type_, payload, who, idem, ns["namespace_id"])
    return await until_materialized(svc, written)


async def write_documents(
    identifier: str,
    body: DocumentsCreateRequest,
    ns: InNamespace,
    who: Who,
    idem: IdempotencyKey,
    svc: Svc,
) -> Any:
    type_ = "collections.documents.write"
    documents = rq.DocumentsWriteRequest(documents=body.as_documents())
    written = await data_command(svc, Kind.COLLECTION, type_, identifier, documents, ns, who, idem)
    collection_id, ids = await svc.read(
        queries.written_by, written["command_id"], "Collection.DocumentsWritten", "documents"
    )
    first = ids[0] if ids else None  # Mixpeek's one document
    return {**written, "collection_id": collection_id, "document_ids": ids, "document_id": first}


router.add_api_route(
    "/v1/collections/{identifier}/documents",
    write_documents,
    methods=["POST"],
    response_model=DocumentsWritten,
    route_class_override=VectorJsonRoute,
)


@router.post("/v1/collections/{identifier}/documents/delete", response_model=WriteAccepted)
async def delete_documents(
    identifier: str,
    body: rq.DocumentsDeleteRequest,
    ns: InNamespace,
    who: Who,
    idem: IdempotencyKey,
    svc: Svc,
) -> Any:
    type_ = "collections.documents.delete"
    return await data_command(svc, Kind.COLLECTION, type_, identifier, body, ns, who, idem)


@router.post("/v1/collections/{identifier}/trigger", status_code=202)
async def trigger_reprocess(
    identifier: str,
    ns: InNamespace,
    who: Who,
    idem: IdempotencyKey,
    svc: Svc,
    body: TriggerRequest | None = None,
) -> Any:
    """Re-embed the collection's source objects with its extractor, as a task."""
    collection = await find(svc, Kind.COLLECTION, ns, identifier)
    payload = {
        "namespace_identifier": ns["namespace_id"],
        "collection_identifier": collection["collection_id"],
    }
    written = await write(svc, "collections.trigger", payload, who, idem, ns["namespace_id"])
    works_on = {
        "collection_id": collection["collection_id"],
        "total_tiers": 1,  # Mixpeek's: one processing tier, the collection's extractor
        "message": "reprocessing started: every source object is embedded again",
    }
    return await task_of(svc, written.command_id, ReprocessTask.Created, works_on)


@router.post("/v1/collections/{identifier}/apply-taxonomy")
async def apply_taxonomy(
    identifier: str,
    body: rq.ApplyTaxonomyRequest,
    ns: InNamespace,
    who: Who,
    idem: IdempotencyKey,
    svc: Svc,
) -> Any:
    """Classify every document of the collection with the taxonomy, as a task."""
    collection = await find(svc, Kind.COLLECTION, ns, identifier)
    assert body.taxonomy_identifier is not None  # the body's validator sees to it
    taxonomy = await find(svc, Kind.TAXONOMY, ns, body.taxonomy_identifier)
    payload = {
        "namespace_identifier": ns["namespace_id"],
        "collection_identifier": collection["collection_id"],
        "taxonomy_identifier": taxonomy["taxonomy_id"],
    }
    type_ = "collections.apply_taxonomy"
    written = await write(svc, type_, payload, who, idem, ns["namespace_id"])
    works_on = {
        "collection_id": collection["collection_id"],
        "taxonomy_id": taxonomy["taxonomy_id"],
    }
    return await task_of(svc, written.command_id, ApplyTaxonomyTask.Created, works_on)


async def task_of(
    svc: Services, command_id: str, created: type, works_on: dict[str, Any]
) -> dict[str, Any]:
    """The task this command started (also when the command was a replay)."""
    task_id = await created_by(svc, command_id, created)
    task = await svc.read(queries.task, task_id) if task_id else None
    if task is None:
        raise ApiError(404, "not_found", f"command {command_id} started no task")
    return {"task_id": task_id, "status": task["status"], **works_on}


class CollectionIndex(BaseModel):
    """How far the HNSW index of the store holding a collection's vectors is built."""

    collection_id: str
    documents: int = Field(description="the collection's documents with vectors")
    state: Literal["indexed", "indexing", "pending", "failed"] = Field(
        description="indexed: what the index lacks is few enough to search exactly; "
        "indexing: a build runs, searches go on; pending: a build is due"
    )


@router.get("/v1/collections/{identifier}/index", response_model=CollectionIndex)
async def collection_index(identifier: str, ns: InNamespace, svc: Svc) -> Any:
    materializer = vector_store(svc)
    found = await find(svc, Kind.COLLECTION, ns, identifier)
    collection_id = found["collection_id"]

    def read() -> tuple[int, str]:
        store = materializer.cow.view(collection_id).store  # shared by every namespace:
        state = materializer.vectors.index_state(store).state  # only its state is told
        return materializer.cow.count(collection_id), state

    try:
        documents, state = await asyncio.to_thread(read)
    except (UnknownCollection, StoreNotFound):
        raise ApiError(
            409, "not_materialized", f"collection {collection_id} has no vectors yet"
        ) from None
    return {"collection_id": collection_id, "documents": documents, "state": state}


@router.post("/v1/retrievers/{identifier}/execute")
async def execute_retriever(
    identifier: str, body: ExecuteRequest, ns: InNamespace, who: Who, svc: Svc
) -> Any:
    runner = runner_of(svc)
    retriever = await find(svc, Kind.RETRIEVER, ns, identifier, who)
    # A ref may point at a retriever of another namespace: it reads its own collections.
    home = {"namespace_id": retriever["namespace_id"]}
    collections = await collections_of(svc, home, retriever["collection_ids"])
    try:
        result = await asyncio.to_thread(
            runner.execute, retriever, collections, body.inputs or {}, body.limit, body.offset
        )
    except CollectionNotReady as e:
        raise ApiError(409, "not_ready", str(e)) from e
    except CollectionNotFound as e:
        raise ApiError(404, "not_found", str(e)) from e
    except RetrievalError as e:
        raise ApiError(422, "invalid_retriever_input", str(e)) from e
    # Mixpeek's execution_id and status: executions run synchronously and are not kept
    mixpeek = {"execution_id": f"exec_{uuid.uuid4().hex}", "status": "completed"}
    return {"retriever_id": retriever["retriever_id"], **mixpeek, **result.as_dict()}


@router.post("/v1/taxonomies/{identifier}/classify")
async def classify(
    identifier: str, body: ClassifyRequest, ns: InNamespace, who: Who, svc: Svc
) -> Any:
    runner = runner_of(svc)
    taxonomy = await find(svc, Kind.TAXONOMY, ns, identifier, who)
    retrievers, collections = await taxonomy_inputs(svc, taxonomy)
    taxonomies = TaxonomyRunner(runner)
    try:
        results = await asyncio.to_thread(
            lambda: [
                taxonomies.classify(taxonomy, doc, retrievers, collections)
                for doc in body.documents
            ]
        )
    except CollectionNotReady as e:
        raise ApiError(409, "not_ready", str(e)) from e
    except RetrievalError as e:
        raise ApiError(422, "invalid_taxonomy_input", str(e)) from e
    return {"taxonomy_id": taxonomy["taxonomy_id"], "results": results}


@router.post("/v1/taxonomies/{identifier}/execute")
async def execute_taxonomy(
    identifier: str, body: ExecuteTaxonomyRequest, ns: InNamespace, who: Who, svc: Svc
) -> Any:
    """Mixpeek's on-demand execution: classify's work, answered as Mixpeek's JoinResponse."""
    classified = await classify(
        identifier, ClassifyRequest(documents=body.source_documents), ns, who, svc
    )
    results = classified["results"]
    # a document is enriched when the taxonomy matched it at some level
    enriched = sum(1 for r in results if r.get(TRACE, {}).get("levels"))
    stats = {"processed_docs": len(results), "batches": 1, "errors": 0, "enriched": enriched}
    return {**classified, "stats": stats}
