"""The Python SDK: typed calls to the envbranch HTTP API.

    from envbranch import Client

    client = Client(base_url="http://127.0.0.1:8420", api_key="eb_...")
    client.namespaces.create({"namespace_name": "prod"})
    result = client.namespaces.clone("prod", {"namespace_name": "staging"})
    task = client.tasks.wait(result.task_id)

Requests take a dict or a ``contract.requests`` model; answers are the API's own response
models (``contract.responses``), so the SDK and the API cannot drift apart.
"""

from __future__ import annotations

import os
import time
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from contract import requests as rq
from contract import responses as s

M = TypeVar("M", bound=BaseModel)
Body = dict[str, Any] | BaseModel

TERMINAL = {"COMPLETED", "FAILED"}


class EnvbranchError(Exception):
    """An error answer from the API: HTTP status, machine-readable type, message, details."""

    def __init__(self, status: int, type_: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {type_}: {message}")
        self.status = status
        self.type = type_
        self.message = message
        self.details = details


def _json(body: Body) -> dict[str, Any]:
    if isinstance(body, BaseModel):
        return body.model_dump(mode="json", exclude_none=True)
    return body


class Client:
    """A connection to the API; ``base_url`` and ``api_key`` default to
    ENVBRANCH_URL and ENVBRANCH_API_KEY. ``namespace`` is the default X-Namespace."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        namespace: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        base_url = base_url or os.environ.get("ENVBRANCH_URL") or "http://127.0.0.1:8420"
        api_key = api_key or os.environ.get("ENVBRANCH_API_KEY")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.namespace = namespace
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)
        self.namespaces = Namespaces(self)
        self.buckets = Buckets(self, "buckets", s.Bucket)
        self.collections = Collections(self, "collections", s.Collection, s.CollectionCloneResponse)
        self.retrievers = Retrievers(self, "retrievers", s.Retriever, s.RetrieverCloneResponse)
        self.taxonomies = Taxonomies(self, "taxonomies", s.Taxonomy, s.TaxonomyCloneResponse)
        self.tasks = Tasks(self)
        self.keys = Keys(self)
        self.refs = Refs(self)
        self.evaluation_sets = EvaluationSets(self)
        self.evaluations = Evaluations(self)

    def request(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        namespace: str | None = None,
        idempotency_key: str | None = None,
    ) -> M:
        """Send one request; raise EnvbranchError for an error answer."""
        headers = {}
        if namespace or self.namespace:
            headers["X-Namespace"] = str(namespace or self.namespace)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        response = self._http.request(method, path, json=json, params=params, headers=headers)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                raise EnvbranchError(response.status_code, "http_error", response.text) from None
            raise EnvbranchError(
                response.status_code, error["type"], error["message"], error.get("details")
            )
        return model.model_validate(response.json())

    def lineage(self, resource_id: str) -> s.Lineage:
        """Ancestors and descendants of a resource along clone edges."""
        return self.request("GET", f"/v1/lineage/{resource_id}", s.Lineage)

    def audit(self, **filters: Any) -> s.Page[s.AuditEntry]:
        """Audit log; filters: resource_id actor type command_id from_/to_position since until."""
        params = {k: v for k, v in filters.items() if v is not None}
        return self.request("GET", "/v1/audit", s.Page[s.AuditEntry], params=params)

    def diff(self, from_: str, to: str) -> dict[str, Any]:
        """What differs between two namespaces (IDs or names) or two resources (IDs)."""
        params = {"from": from_, "to": to}
        return self.request("GET", "/v1/diff", _Json, params=params).model_dump()

    def checkpoint(self, reason: str = "") -> s.Checkpoint:
        """Have the read models record a digest of their tables at this position."""
        return self.request("POST", "/v1/checkpoints", s.Checkpoint, json={"reason": reason})

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Namespaces:
    """Namespaces: create, get, list, update, clone (a deep copy, as a task)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, body: Body | rq.NamespaceCreateRequest, **kw: Any) -> s.Namespace:
        """Create a namespace."""
        return self._client.request("POST", "/v1/namespaces", s.Namespace, json=_json(body), **kw)

    def get(self, namespace_identifier: str) -> s.Namespace:
        """A namespace by ID or name."""
        return self._client.request("GET", f"/v1/namespaces/{namespace_identifier}", s.Namespace)

    def list(self, limit: int = 20, offset: int = 0) -> s.Page[s.Namespace]:
        """The namespaces this key may see."""
        body = {"limit": limit, "offset": offset}
        return self._client.request("POST", "/v1/namespaces/list", s.Page[s.Namespace], json=body)

    def update(self, namespace_identifier: str, body: Body, **kw: Any) -> s.Namespace:
        """Rename or re-describe a namespace."""
        path = f"/v1/namespaces/{namespace_identifier}"
        return self._client.request("PATCH", path, s.Namespace, json=_json(body), **kw)

    def clone(
        self, namespace_identifier: str, body: Body | rq.NamespaceCloneRequest, **kw: Any
    ) -> s.NamespaceCloneResponse:
        """Deep-copy a namespace; answers at once with the new namespace and a task_id."""
        path = f"/v1/namespaces/{namespace_identifier}/clone"
        return self._client.request("POST", path, s.NamespaceCloneResponse, json=_json(body), **kw)

    def delete(self, namespace_identifier: str, **kw: Any) -> s.Deleted:
        """Delete a namespace and what it holds (an event: clones of it keep working)."""
        return self._client.request(
            "DELETE", f"/v1/namespaces/{namespace_identifier}", s.Deleted, **kw
        )


class Resources(Generic[M]):
    """Resources inside a namespace (the client's, or ``namespace=``)."""

    def __init__(self, client: Client, plural: str, model: type[M]) -> None:
        self._client = client
        self._path = f"/v1/{plural}"
        self._model = model

    def create(self, body: Body, *, namespace: str | None = None, **kw: Any) -> M:
        """Create one in the namespace."""
        return self._client.request(
            "POST", self._path, self._model, json=_json(body), namespace=namespace, **kw
        )

    def get(self, identifier: str, *, namespace: str | None = None) -> M:
        """One by ID or name."""
        path = f"{self._path}/{identifier}"
        return self._client.request("GET", path, self._model, namespace=namespace)

    def list(self, limit: int = 20, offset: int = 0, *, namespace: str | None = None) -> s.Page[M]:
        """A page of them, oldest first."""
        return self._client.request(
            "POST",
            f"{self._path}/list",
            s.Page[self._model],  # type: ignore[name-defined]
            json={"limit": limit, "offset": offset},
            namespace=namespace,
        )

    def update(self, identifier: str, body: Body, *, namespace: str | None = None, **kw: Any) -> M:
        """Rename or re-describe one; what it computes cannot change (clone instead)."""
        path = f"{self._path}/{identifier}"
        return self._client.request(
            "PATCH", path, self._model, json=_json(body), namespace=namespace, **kw
        )

    def delete(self, identifier: str, *, namespace: str | None = None, **kw: Any) -> s.Deleted:
        """Delete one (an event: its clones keep working, a clone as of before restores it)."""
        path = f"{self._path}/{identifier}"
        return self._client.request("DELETE", path, s.Deleted, namespace=namespace, **kw)


class Clonable(Resources[M]):
    def __init__(
        self, client: Client, plural: str, model: type[M], clone_model: type[BaseModel]
    ) -> None:
        super().__init__(client, plural, model)
        self._clone_model = clone_model

    def clone(self, identifier: str, body: Body, *, namespace: str | None = None, **kw: Any) -> Any:
        """A new resource from this one: omitted fields are copied, given ones replace."""
        path = f"{self._path}/{identifier}/clone"
        return self._client.request(
            "POST", path, self._clone_model, json=_json(body), namespace=namespace, **kw
        )


class Buckets(Resources[s.Bucket]):
    def add_objects(
        self, identifier: str, objects: list[dict[str, Any]], *, namespace: str | None = None
    ) -> Any:
        """Add raw objects; returns once every collection sourced from the bucket has them."""
        path = f"{self._path}/{identifier}/objects"
        return _ingest(self._client, path, {"objects": objects}, namespace)


class Collections(Clonable[s.Collection]):
    def write_documents(
        self, identifier: str, documents: list[dict[str, Any]], *, namespace: str | None = None
    ) -> Any:
        """Write documents (their own ``vector`` or ``text`` to embed); returns once searchable."""
        path = f"{self._path}/{identifier}/documents"
        return _ingest(self._client, path, {"documents": documents}, namespace)

    def trigger(self, identifier: str, *, namespace: str | None = None) -> dict[str, Any]:
        """Re-embed from the source objects (after an extractor swap); wait on the task_id."""
        path = f"{self._path}/{identifier}/trigger"
        return self._client.request("POST", path, _Json, namespace=namespace).model_dump()

    def apply_taxonomy(
        self, identifier: str, taxonomy_identifier: str, *, namespace: str | None = None
    ) -> dict[str, Any]:
        """Classify every document with the taxonomy, as a task; wait on the task_id."""
        path = f"{self._path}/{identifier}/apply-taxonomy"
        body = {"taxonomy_identifier": taxonomy_identifier}
        return self._client.request(
            "POST", path, _Json, json=body, namespace=namespace
        ).model_dump()

    def delete_documents(
        self, identifier: str, document_ids: list[str], *, namespace: str | None = None
    ) -> Any:
        """Delete documents by ID; returns once they are gone from searches."""
        path = f"{self._path}/{identifier}/documents/delete"
        return _ingest(self._client, path, {"document_ids": document_ids}, namespace)


class Retrievers(Clonable[s.Retriever]):
    def execute(
        self,
        identifier: str,
        inputs: dict[str, Any],
        *,
        limit: int = 10,
        offset: int = 0,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """Run the retriever's stages; documents, per-stage timings and pagination."""
        body = {"inputs": inputs, "limit": limit, "offset": offset}
        path = f"{self._path}/{identifier}/execute"
        return self._client.request(
            "POST", path, _Json, json=body, namespace=namespace
        ).model_dump()


class Taxonomies(Clonable[s.Taxonomy]):
    def classify(
        self, identifier: str, documents: list[dict[str, Any]], *, namespace: str | None = None
    ) -> dict[str, Any]:
        """Classify documents (payloads) now; one enrichment per document."""
        path = f"{self._path}/{identifier}/classify"
        return self._client.request(
            "POST", path, _Json, json={"documents": documents}, namespace=namespace
        ).model_dump()


class _Json(BaseModel):
    model_config = {"extra": "allow"}


class Tasks:
    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self, task_id: str) -> s.Task:
        """A task's status, progress and, when completed, its result."""
        return self._client.request("GET", f"/v1/tasks/{task_id}", s.Task)

    def wait(self, task_id: str, timeout: float = 300.0, poll: float = 0.2) -> s.Task:
        """Poll until the task is COMPLETED or FAILED; TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            task = self.get(task_id)
            if task.status in TERMINAL:
                return task
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} still {task.status} after {timeout}s")
            time.sleep(poll)


class Keys:
    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, principal: str, namespaces: list[str] | None = None) -> s.ApiKey:
        """A new API key (admin keys only); ``namespaces`` limits its scope."""
        body = {"principal": principal, "namespaces": namespaces}
        return self._client.request("POST", "/v1/keys", s.ApiKey, json=body)


def _post(
    client: Client,
    path: str,
    model: type[M],
    body: Body,
    namespace: str | None,
    idempotency_key: str | None,
) -> M:
    """A write: the body as JSON, in a namespace, retried safely with the same key."""
    return client.request(
        "POST",
        path,
        model,
        json=_json(body),
        namespace=namespace,
        idempotency_key=idempotency_key,
    )


def _ingest(client: Client, path: str, body: dict[str, Any], namespace: str | None) -> Any:
    return client.request("POST", path, _Accepted, json=body, namespace=namespace)


class _Accepted(BaseModel):
    command_id: str
    position: int


class Refs:
    """Named pointers (production, staging ...): create, move, promote through a gate,
    roll back; ``ref:<name>`` works wherever a retriever or taxonomy identifier does."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self, body: Body, *, namespace: str | None = None, idempotency_key: str | None = None
    ) -> s.Ref:
        """A ref: ``{ref_name, target_kind, target, reason}``."""
        return _post(self._client, "/v1/refs", s.Ref, body, namespace, idempotency_key)

    def get(self, name: str, *, namespace: str | None = None) -> s.Ref:
        """A ref with its whole history."""
        return self._client.request("GET", f"/v1/refs/{name}", s.Ref, namespace=namespace)

    def move(
        self,
        name: str,
        body: Body,
        *,
        namespace: str | None = None,
        idempotency_key: str | None = None,
    ) -> s.Ref:
        """Point the ref at ``{target, reason}`` (no gate)."""
        path = f"/v1/refs/{name}/move"
        return _post(self._client, path, s.Ref, body, namespace, idempotency_key)

    def promote(
        self,
        name: str,
        body: Body,
        *,
        namespace: str | None = None,
        idempotency_key: str | None = None,
    ) -> s.PromotionResult:
        """Evaluate ``candidate`` against the current target on ``evaluation_set``; move the
        ref only if every threshold of ``gate`` holds, else 422 gate_failed (its metrics)."""
        path = f"/v1/refs/{name}/promote"
        return _post(self._client, path, s.PromotionResult, body, namespace, idempotency_key)

    def rollback(
        self,
        name: str,
        body: Body,
        *,
        namespace: str | None = None,
        idempotency_key: str | None = None,
    ) -> s.Ref:
        """Back to ``{"to": "previous"}``, ``{"position": n}`` or ``{"time": iso}``."""
        path = f"/v1/refs/{name}/rollback"
        return _post(self._client, path, s.Ref, body, namespace, idempotency_key)


class EvaluationSets:
    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self, body: Body, *, namespace: str | None = None, idempotency_key: str | None = None
    ) -> s.EvaluationSet:
        """Queries with judgments (retrievers) or labelled documents (taxonomies)."""
        return _post(
            self._client, "/v1/evaluation_sets", s.EvaluationSet, body, namespace, idempotency_key
        )

    def get(self, identifier: str, *, namespace: str | None = None) -> s.EvaluationSet:
        """An evaluation set by ID or name."""
        path = f"/v1/evaluation_sets/{identifier}"
        return self._client.request("GET", path, s.EvaluationSet, namespace=namespace)


class Evaluations:
    def __init__(self, client: Client) -> None:
        self._client = client

    def run(
        self, body: Body, *, namespace: str | None = None, idempotency_key: str | None = None
    ) -> s.Evaluation:
        """Run ``evaluation_set`` on ``candidate`` (and ``baseline``); recorded as an event."""
        return _post(
            self._client, "/v1/evaluations", s.Evaluation, body, namespace, idempotency_key
        )

    def get(self, evaluation_id: str) -> s.Evaluation:
        """A recorded evaluation: the metrics of each target it ran (candidate, baseline)."""
        return self._client.request("GET", f"/v1/evaluations/{evaluation_id}", s.Evaluation)
