"""A tenant of a running stack: a namespace with one of everything, built through the API.

Every write goes by name and carries an Idempotency-Key, so a tenant's history replays
as it is, keys and all, in any namespace holding the same names.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from tests.support import wait_until
from tests.test_auth import TEXT, Attempt, bearer

INPUTS = {"query": {"type": "text", "required": True}}
GATE = {"thresholds": [{"metric": "ndcg@10", "min_change": -0.01}]}
OBJECTS = [
    {"key": "k1", "text": "alpha heap queue"},
    {"key": "k2", "text": "beta binary search"},
    {"key": "k3", "text": "gamma hash table"},
]


def fresh_key() -> str:
    return f"idem-{uuid.uuid4().hex}"


def send(http: httpx.Client, attempt: Attempt) -> httpx.Response:
    """tests.test_auth.send over one connection (a client per request costs ~50 ms)."""
    return http.request(
        attempt.method,
        attempt.path,
        headers=attempt.headers,
        json=attempt.json,
        params=attempt.params,
        timeout=60,
    )


@dataclass(frozen=True)
class Names:
    namespace: str
    branch: str
    bucket: str
    collection: str
    collection_clone: str
    retriever: str
    retriever_clone: str
    taxonomy: str
    taxonomy_clone: str
    evaluation_set: str
    ref: str

    @staticmethod
    def of(tag: str) -> Names:
        """Names no other tenant has (so that one tenant's name means nothing to another)."""
        u = uuid.uuid4().hex[:8]
        parts = "ns branch bucket docs docs-copy search search-copy topics topics-copy queries live"
        return Names(*(f"{tag}-{part}-{u}" for part in parts.split()))


@dataclass(frozen=True)
class Step:
    """One write, as sent: ``{ns}`` in the path stands for the namespace's ID."""

    what: str
    method: str
    path: str
    body: Any
    in_namespace: bool = True  # sends X-Namespace
    idempotency_key: str = ""

    def request(self, key: str, namespace_id: str, idempotency_key: str) -> Attempt:
        headers = {**bearer(key), "Idempotency-Key": idempotency_key}
        if self.in_namespace:
            headers["X-Namespace"] = namespace_id
        path = self.path.replace("{ns}", namespace_id)
        return Attempt(self.what, self.method, path, headers, self.body)


def search_stage(collection: str) -> dict[str, Any]:
    search = {"query": "{{INPUT.query}}", "top_k": 10, "collection_ids": [collection]}
    return {
        "stage_name": "search",
        "config": {"stage_id": "feature_search", "parameters": {"searches": [search]}},
    }


def taxonomy_config(retriever: str, collection: str) -> dict[str, Any]:
    return {
        "taxonomy_type": "flat",
        "retriever_id": retriever,
        "input_mappings": [{"input_key": "query", "source_type": "payload", "path": "text"}],
        "source_collection": {"collection_id": collection},
    }


def history(n: Names) -> list[Step]:
    """Every write a tenant makes: each operation that takes an Idempotency-Key, once."""
    col, col2, ret, ret2, tax = (
        n.collection,
        n.collection_clone,
        n.retriever,
        n.retriever_clone,
        n.taxonomy,
    )
    documents = [{"document_id": "d1", "text": "delta"}, {"document_id": "d2", "text": "eta"}]
    judged = [{"query_id": "q1", "inputs": {"query": "heap"}, "judgments": {"k1": 1}}]
    return [
        Step("create namespace", "POST", "/v1/namespaces", {"namespace_name": n.namespace}, False),
        Step("update namespace", "PATCH", "/v1/namespaces/{ns}", {"description": "ours"}, False),
        Step(
            "create bucket",
            "POST",
            "/v1/buckets",
            {"bucket_name": n.bucket, "bucket_schema": {"properties": {"text": {"type": "text"}}}},
        ),
        Step("update bucket", "PATCH", f"/v1/buckets/{n.bucket}", {"description": "raw"}),
        Step(
            "create collection",
            "POST",
            "/v1/collections",
            {
                "collection_name": col,
                "source": {"type": "bucket", "bucket_ids": [n.bucket]},
                "feature_extractor": TEXT,
            },
        ),
        Step("add objects", "POST", f"/v1/buckets/{n.bucket}/objects", {"objects": OBJECTS}),
        Step(
            "write documents", "POST", f"/v1/collections/{col}/documents", {"documents": documents}
        ),
        Step(
            "delete documents",
            "POST",
            f"/v1/collections/{col}/documents/delete",
            {"document_ids": ["d2"]},
        ),
        Step("update collection", "PATCH", f"/v1/collections/{col}", {"description": "text"}),
        Step("clone collection", "POST", f"/v1/collections/{col}/clone", {"collection_name": col2}),
        Step(
            "create retriever",
            "POST",
            "/v1/retrievers",
            {
                "retriever_name": ret,
                "collection_identifiers": [col],
                "stages": [search_stage(col)],
                "input_schema": INPUTS,
            },
        ),
        Step("update retriever", "PATCH", f"/v1/retrievers/{ret}", {"description": "v1"}),
        Step("clone retriever", "POST", f"/v1/retrievers/{ret}/clone", {"retriever_name": ret2}),
        Step(
            "create taxonomy",
            "POST",
            "/v1/taxonomies",
            {"taxonomy_name": tax, "config": taxonomy_config(ret, col)},
        ),
        Step("update taxonomy", "PATCH", f"/v1/taxonomies/{tax}", {"description": "flat"}),
        Step(
            "clone taxonomy",
            "POST",
            f"/v1/taxonomies/{tax}/clone",
            {"taxonomy_name": n.taxonomy_clone},
        ),
        Step(
            "apply taxonomy",
            "POST",
            f"/v1/collections/{col2}/apply-taxonomy",
            {"taxonomy_identifier": tax},
        ),
        Step("trigger reprocessing", "POST", f"/v1/collections/{col2}/trigger", None),
        Step(
            "create evaluation set",
            "POST",
            "/v1/evaluation_sets",
            {
                "evaluation_set_name": n.evaluation_set,
                "set_type": "retriever",
                "id_field": "key",
                "queries": judged,
            },
        ),
        Step(
            "create ref",
            "POST",
            "/v1/refs",
            {"ref_name": n.ref, "target_kind": "retriever", "target": ret},
        ),
        Step("move ref", "POST", f"/v1/refs/{n.ref}/move", {"target": ret2}),
        Step("roll back ref", "POST", f"/v1/refs/{n.ref}/rollback", {"to": "previous"}),
        Step(
            "run evaluation",
            "POST",
            "/v1/evaluations",
            {"evaluation_set": n.evaluation_set, "candidate": ret, "baseline": ret2},
        ),
        Step(
            "promote",
            "POST",
            f"/v1/refs/{n.ref}/promote",
            {"candidate": ret2, "evaluation_set": n.evaluation_set, "gate": GATE},
        ),
        Step(
            "clone namespace",
            "POST",
            "/v1/namespaces/{ns}/clone",
            {"namespace_name": n.branch, "vectors": "reuse"},
            False,
        ),
        *doomed(n),
    ]


def doomed(n: Names) -> list[Step]:
    """Deletes, of resources and a namespace made for them (the rest stay for the probes)."""
    gone = {kind: f"{name}-doomed" for kind, name in (("b", n.bucket), ("c", n.collection))}
    gone |= {"r": f"{n.retriever}-doomed", "t": f"{n.taxonomy}-doomed", "n": f"{n.branch}-doomed"}
    schema = {"properties": {"text": {"type": "text"}}}
    return [
        Step(
            "create bucket to delete",
            "POST",
            "/v1/buckets",
            {"bucket_name": gone["b"], "bucket_schema": schema},
        ),
        Step(
            "clone collection to delete",
            "POST",
            f"/v1/collections/{n.collection}/clone",
            {"collection_name": gone["c"]},
        ),
        Step(
            "clone retriever to delete",
            "POST",
            f"/v1/retrievers/{n.retriever}/clone",
            {"retriever_name": gone["r"]},
        ),
        Step(
            "clone taxonomy to delete",
            "POST",
            f"/v1/taxonomies/{n.taxonomy}/clone",
            {"taxonomy_name": gone["t"]},
        ),
        Step("delete taxonomy", "DELETE", f"/v1/taxonomies/{gone['t']}", None),
        Step("delete retriever", "DELETE", f"/v1/retrievers/{gone['r']}", None),
        Step("delete collection", "DELETE", f"/v1/collections/{gone['c']}", None),
        Step("delete bucket", "DELETE", f"/v1/buckets/{gone['b']}", None),
        Step(
            "clone namespace to delete",
            "POST",
            "/v1/namespaces/{ns}/clone",
            {"namespace_name": gone["n"], "vectors": "reuse"},
            False,
        ),
        Step("delete namespace", "DELETE", f"/v1/namespaces/{gone['n']}", None, False),
    ]


@dataclass
class Tenant:
    key: str
    names: Names
    namespace_id: str = ""
    steps: list[Step] = field(default_factory=list)  # as sent, with their Idempotency-Keys
    answers: list[httpx.Response] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)  # what -> ID

    @property
    def namespace_ids(self) -> set[str]:
        return {self.ids["namespace"], self.ids["branch"], self.ids["doomed namespace"]}


def wait_for_task(http: httpx.Client, admin_key: str, answer: httpx.Response) -> None:
    """The task a write started has ended (later writes need its collection ready)."""
    if answer.status_code >= 300 or "task_id" not in answer.json():
        return
    task = f"/v1/tasks/{answer.json()['task_id']}"

    def ended() -> bool:
        status = http.get(task, headers=bearer(admin_key)).json()["status"]
        return status in {"COMPLETED", "FAILED"}

    wait_until(ended, 60, f"{task} to end")


def build(http: httpx.Client, admin_key: str, key: str, names: Names) -> Tenant:
    """A tenant's namespace, written with ``key``, each write with a fresh Idempotency-Key."""
    tenant = Tenant(key, names)
    for step in history(names):
        step = replace(step, idempotency_key=fresh_key())
        answer = send(http, step.request(key, tenant.namespace_id, step.idempotency_key))
        assert answer.status_code < 300, f"{step.what}: {answer.status_code} {answer.text}"
        tenant.namespace_id = tenant.namespace_id or answer.json()["namespace_id"]
        wait_for_task(http, admin_key, answer)
        tenant.steps.append(step)
        tenant.answers.append(answer)
    tenant.ids = ids_of(http, admin_key, tenant)
    return tenant


def ids_of(http: httpx.Client, admin_key: str, tenant: Tenant) -> dict[str, str]:
    n, ns = tenant.names, tenant.namespace_id
    answers = {s.what: a.json() for s, a in zip(tenant.steps, tenant.answers, strict=True)}

    def get(path: str, id_field: str) -> str:
        answer = http.get(path, headers={**bearer(admin_key), "X-Namespace": ns})
        assert answer.status_code == 200, answer.text
        return str(answer.json()[id_field])

    return {
        "namespace": ns,
        "branch": answers["clone namespace"]["namespace"]["namespace_id"],
        "doomed namespace": answers["clone namespace to delete"]["namespace"]["namespace_id"],
        "clone task": answers["clone namespace"]["task_id"],
        "apply task": answers["apply taxonomy"]["task_id"],
        "reprocess task": answers["trigger reprocessing"]["task_id"],
        "evaluation": answers["run evaluation"]["evaluation_id"],
        "bucket": get(f"/v1/buckets/{n.bucket}", "bucket_id"),
        "collection": get(f"/v1/collections/{n.collection}", "collection_id"),
        "collection clone": get(f"/v1/collections/{n.collection_clone}", "collection_id"),
        "retriever": get(f"/v1/retrievers/{n.retriever}", "retriever_id"),
        "retriever clone": get(f"/v1/retrievers/{n.retriever_clone}", "retriever_id"),
        "taxonomy": get(f"/v1/taxonomies/{n.taxonomy}", "taxonomy_id"),
        "taxonomy clone": get(f"/v1/taxonomies/{n.taxonomy_clone}", "taxonomy_id"),
        "evaluation set": get(f"/v1/evaluation_sets/{n.evaluation_set}", "evaluation_set_id"),
    }
