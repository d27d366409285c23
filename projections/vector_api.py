"""The vector endpoints: ingest objects and documents, execute retrievers, classify.

Writes travel as commands like every other write; they answer once the vector
processor has applied them too, so a search right after an ingest sees it.
Retrievers and taxonomies run here, in the API's process, against the same
vector store the vector processor writes (with Qdrant Edge: the same process).
"""

# FastAPI reads the routes' annotations, built from the API's own dependency types at run
# time: real objects (no __future__ annotations), which mypy cannot check as types.
# mypy: disable-error-code="valid-type,index"

import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, Strict

from contract import requests as rq
from domain.ids import Kind
from domain.values import Count, JsonInteger
from projections import queries
from projections.sql import Database
from projections.vectors.materializer import VectorMaterializer
from projections.vectors.retrieval import (
    CollectionNotFound,
    CollectionNotReady,
    RetrievalError,
    RetrieverRunner,
)
from projections.vectors.taxonomy import TaxonomyRunner


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict)
    limit: Annotated[int, Strict(), Field(ge=1, le=1000), JsonInteger] = 10
    offset: Count = 0


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=100)]


class WriteAccepted(BaseModel):
    command_id: str
    position: int


def add_vector_routes(
    app: FastAPI,
    db: Database,
    materializer: VectorMaterializer | None,
    write: Callable[..., Any],
    deps: dict[str, Any],
    timeout: float,
) -> None:
    """``write(type, payload, who, idempotency_key, key)`` sends a command and returns its
    (command_id, position); ``deps`` holds the API's dependency types (Who, InNamespace...)."""
    from projections.api import ApiError, fields, reachable

    Who, InNamespace, IdempotencyKey = deps["Who"], deps["InNamespace"], deps["IdempotencyKey"]
    runner = RetrieverRunner(materializer.cow) if materializer else None

    def vectors() -> VectorMaterializer:
        if materializer is None:
            raise ApiError(
                503,
                "vectors_unavailable",
                "this API process has no vector store: run it with the vector processor "
                "(envbranch up) or point QDRANT_URL at a Qdrant server",
            )
        return materializer

    async def until_materialized(position: int) -> None:
        """Wait until the vector processor has applied everything up to ``position``."""
        m = vectors()
        deadline = time.monotonic() + timeout
        while await asyncio.to_thread(m.position) < position:
            if time.monotonic() > deadline:
                raise ApiError(504, "timeout", "the vector processor has not caught up yet")
            await asyncio.sleep(0.01)

    async def find(
        kind: Kind, ns: dict[str, Any], identifier: str, who: Any = None
    ) -> dict[str, Any]:
        """By ID, name or ref:; another namespace's only for reads by a key that sees it."""
        row = await asyncio.to_thread(queries.resolve, db, kind, ns["namespace_id"], identifier)
        if row is not None and not reachable(row, ns, who):
            row = None
        if row is None:
            raise ApiError(404, "not_found", f"{kind.value} {identifier!r} not found")
        return row

    @app.post("/v1/buckets/{identifier}/objects", response_model=WriteAccepted, status_code=201)
    async def add_objects(
        identifier: str,
        body: rq.BucketObjectsAddRequest,
        ns: InNamespace,
        who: Who,
        idem: IdempotencyKey,
    ) -> Any:
        bucket = await find(Kind.BUCKET, ns, identifier)
        payload = {
            "namespace_identifier": ns["namespace_id"],
            "bucket_identifier": bucket["bucket_id"],
            **fields(body),
        }
        command_id, position = await write(
            "buckets.objects.add", payload, who, idem, ns["namespace_id"]
        )
        await until_materialized(position)
        return {"command_id": command_id, "position": position}

    async def documents_command(
        type_: str, identifier: str, body: BaseModel, ns: dict[str, Any], who: Any, idem: Any
    ) -> Any:
        collection = await find(Kind.COLLECTION, ns, identifier)
        payload = {
            "namespace_identifier": ns["namespace_id"],
            "collection_identifier": collection["collection_id"],
            **fields(body),
        }
        command_id, position = await write(type_, payload, who, idem, ns["namespace_id"])
        await until_materialized(position)
        return {"command_id": command_id, "position": position}

    @app.post(
        "/v1/collections/{identifier}/documents", response_model=WriteAccepted, status_code=201
    )
    async def write_documents(
        identifier: str,
        body: rq.DocumentsWriteRequest,
        ns: InNamespace,
        who: Who,
        idem: IdempotencyKey,
    ) -> Any:
        return await documents_command(
            "collections.documents.write", identifier, body, ns, who, idem
        )

    @app.post("/v1/collections/{identifier}/documents/delete", response_model=WriteAccepted)
    async def delete_documents(
        identifier: str,
        body: rq.DocumentsDeleteRequest,
        ns: InNamespace,
        who: Who,
        idem: IdempotencyKey,
    ) -> Any:
        return await documents_command(
            "collections.documents.delete", identifier, body, ns, who, idem
        )

    @app.post("/v1/collections/{identifier}/trigger", status_code=202)
    async def trigger_reprocess(
        identifier: str, ns: InNamespace, who: Who, idem: IdempotencyKey
    ) -> Any:
        """Re-embed the collection's source objects with its extractor, as a task."""
        collection = await find(Kind.COLLECTION, ns, identifier)
        payload = {
            "namespace_identifier": ns["namespace_id"],
            "collection_identifier": collection["collection_id"],
        }
        command_id, _ = await write("collections.trigger", payload, who, idem, ns["namespace_id"])
        works_on = {"collection_id": collection["collection_id"]}
        return await task_of(command_id, "ReprocessTask.Created", works_on)

    async def task_of(command_id: str, created: str, works_on: dict[str, str]) -> dict[str, Any]:
        """The task this command started (also when the command was a replay)."""
        task_id = await asyncio.to_thread(queries.created_by_command, db, command_id, [created])
        task = await asyncio.to_thread(queries.task, db, task_id) if task_id else None
        if task is None:
            raise ApiError(404, "not_found", f"command {command_id} started no task")
        return {"task_id": task_id, "status": task["status"], **works_on}

    @app.post("/v1/collections/{identifier}/apply-taxonomy", status_code=202)
    async def apply_taxonomy(
        identifier: str,
        body: rq.ApplyTaxonomyRequest,
        ns: InNamespace,
        who: Who,
        idem: IdempotencyKey,
    ) -> Any:
        """Classify every document of the collection with the taxonomy, as a task."""
        collection = await find(Kind.COLLECTION, ns, identifier)
        taxonomy = await find(Kind.TAXONOMY, ns, body.taxonomy_identifier)
        payload = {
            "namespace_identifier": ns["namespace_id"],
            "collection_identifier": collection["collection_id"],
            "taxonomy_identifier": taxonomy["taxonomy_id"],
        }
        command_id, _ = await write(
            "collections.apply_taxonomy", payload, who, idem, ns["namespace_id"]
        )
        works_on = {
            "collection_id": collection["collection_id"],
            "taxonomy_id": taxonomy["taxonomy_id"],
        }
        return await task_of(command_id, "ApplyTaxonomyTask.Created", works_on)

    async def collections_of(ns: dict[str, Any], ids: list[str]) -> dict[str, dict[str, Any]]:
        rows = {}
        for collection_id in ids:
            row = await asyncio.to_thread(
                queries.resource, db, Kind.COLLECTION, ns["namespace_id"], collection_id
            )
            if row is not None:
                rows[collection_id] = row
        return rows

    async def taxonomy_inputs(
        taxonomy: dict[str, Any],
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The retrievers and collections a taxonomy classifies with (in its namespace)."""
        home = {"namespace_id": taxonomy["namespace_id"]}
        retrievers: dict[str, dict[str, Any]] = {}
        for ret_id in _retriever_ids(taxonomy["config"]):
            retrievers[ret_id] = await find(Kind.RETRIEVER, home, ret_id)
        collection_ids = {cid for r in retrievers.values() for cid in r["collection_ids"]}
        collection_ids |= _reference_collections(taxonomy["config"])
        return retrievers, await collections_of(home, sorted(collection_ids))

    deps["taxonomy_inputs"] = taxonomy_inputs
    deps["collections_of"] = collections_of
    deps["runner"] = runner

    @app.post("/v1/retrievers/{identifier}/execute")
    async def execute_retriever(
        identifier: str, body: ExecuteRequest, ns: InNamespace, who: Who
    ) -> Any:
        vectors()
        retriever = await find(Kind.RETRIEVER, ns, identifier, who)
        # A ref may point at a retriever of another namespace: it reads its own collections.
        home = {"namespace_id": retriever["namespace_id"]}
        collections = await collections_of(home, retriever["collection_ids"])
        assert runner is not None
        try:
            result = await asyncio.to_thread(
                runner.execute, retriever, collections, body.inputs, body.limit, body.offset
            )
        except CollectionNotReady as e:
            raise ApiError(409, "not_ready", str(e)) from e
        except CollectionNotFound as e:
            raise ApiError(404, "not_found", str(e)) from e
        except RetrievalError as e:
            raise ApiError(422, "invalid_retriever_input", str(e)) from e
        return {"retriever_id": retriever["retriever_id"], **result.as_dict()}

    @app.post("/v1/taxonomies/{identifier}/classify")
    async def classify(identifier: str, body: ClassifyRequest, ns: InNamespace, who: Who) -> Any:
        vectors()
        taxonomy = await find(Kind.TAXONOMY, ns, identifier, who)
        retrievers, collections = await taxonomy_inputs(taxonomy)
        assert runner is not None
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


def _retriever_ids(config: dict[str, Any]) -> set[str]:
    ids = {config["retriever_id"]} if config.get("retriever_id") else set()
    ids |= {
        n["retriever_id"] for n in config.get("hierarchical_nodes") or [] if n.get("retriever_id")
    }
    return ids


def _reference_collections(config: dict[str, Any]) -> set[str]:
    ids = set()
    if config.get("source_collection"):
        ids.add(config["source_collection"]["collection_id"])
    ids |= {n["collection_id"] for n in config.get("hierarchical_nodes") or []}
    return ids
