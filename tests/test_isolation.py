"""Tenant isolation, proved operation by operation.

Two API keys carry the same principal. The admin creates both with an empty scope and
each creates its own namespace (and a branch of it): A's key is scoped to NA, B's to NB.
NB holds one of everything (bucket with objects, collection with documents, retriever,
taxonomy, ref, evaluation set, evaluation, tasks). For every operation of the OpenAPI
document and every place an identifier goes (path, X-Namespace, body fields, stage
parameters, ``ref:`` names, query filters), A naming B's resource is answered exactly as
A naming one that does not exist: same status, same error, a message that differs only
by the identifier. Nothing of B changes. A replaying B's Idempotency-Keys gets what fresh
keys would get it, never B's resources.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import httpx
import pytest

from domain.ids import Kind, kind_of
from tests.conftest import LiveStack
from tests.isolation_probes import (
    INTO_B,
    TEMPLATED,
    Probe,
    Sides,
    missing_like,
    probes_of,
    templated_retriever,
)
from tests.tenants import Names, Tenant, build, fresh_key, send, wait_for_task
from tests.test_auth import Attempt, bearer, unique

T = TypeVar("T")
R = TypeVar("R")
CLONABLE = (Kind.NAMESPACE, Kind.BUCKET, Kind.COLLECTION, Kind.RETRIEVER, Kind.TAXONOMY)


@dataclass
class World:
    stack: LiveStack
    http: httpx.Client
    sides: Sides
    b_before: dict[str, Any]  # B's read model, as the admin reads it
    audit_from: int  # B's audit entries are those past this position

    @property
    def a(self) -> Tenant:
        return self.sides.a

    @property
    def b(self) -> Tenant:
        return self.sides.b

    def b_secrets(self) -> set[str]:
        """What A must never learn: B's IDs and names."""
        return {*self.b.ids.values(), *vars(self.b.names).values()}


def in_parallel(work: Callable[[T], R], items: list[T]) -> list[R]:
    """Requests wait on the network, not on the CPU: send them side by side."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(work, items))


def position(http: httpx.Client) -> int:
    return int(http.get("/v1/health").json()["read_model_position"])


def new_key(http: httpx.Client, admin_key: str, principal: str) -> str:
    """A key of ``principal`` with an empty scope: it sees what it creates."""
    body = {"principal": principal, "namespaces": []}
    answer = http.post("/v1/keys", headers=bearer(admin_key), json=body)
    assert answer.status_code == 201 and answer.json()["principal"] == principal, answer.text
    return str(answer.json()["api_key"])


@pytest.fixture(scope="module")
def world(live_stack: LiveStack) -> Iterator[World]:
    admin = live_stack.admin_key
    with httpx.Client(base_url=live_stack.url, timeout=60) as http:
        principal = unique("tenant")
        start = position(http)

        def tenant(tag: str) -> Tenant:
            return build(http, admin, new_key(http, admin, principal), Names.of(tag))

        b, a = in_parallel(tenant, ["b", "a"])
        in_a = {**bearer(a.key), "X-Namespace": a.namespace_id}
        answer = http.post("/v1/retrievers", headers=in_a, json=templated_retriever(a.names))
        assert answer.status_code == 200, answer.text
        for kind, ref_name in INTO_B.items():
            body = {"ref_name": ref_name, "target_kind": kind, "target": b.ids[kind]}
            headers = {**bearer(admin), "X-Namespace": a.namespace_id}
            answer = http.post("/v1/refs", headers=headers, json=body)
            assert answer.status_code == 201, answer.text
        audit = b_audit(http, admin, b, start)
        sides = Sides(a, b, principal, frozenset(e["command_id"] for e in audit), position(http))
        yield World(live_stack, http, sides, b_read_model(http, admin, b), position(http))


# --- B as the admin sees it ------------------------------------------------------------


def b_read_model(http: httpx.Client, admin_key: str, b: Tenant) -> dict[str, Any]:
    """Every row of B's: its namespaces and the resources, refs, tasks, evaluation set,
    evaluation and lineage in them, and what B's retriever finds in its vectors."""
    admin, ns = bearer(admin_key), {**bearer(admin_key), "X-Namespace": b.namespace_id}
    reads = {
        "evaluation": Attempt("", "GET", f"/v1/evaluations/{b.ids['evaluation']}", admin),
        "evaluation set": Attempt("", "GET", f"/v1/evaluation_sets/{b.names.evaluation_set}", ns),
        "search": Attempt(
            "",
            "POST",
            f"/v1/retrievers/{b.names.retriever}/execute",
            ns,
            {"inputs": {"query": "heap"}, "limit": 100},
        ),
    }
    for namespace in b.namespace_ids:
        reads[namespace] = Attempt("", "GET", f"/v1/namespaces/{namespace}", admin)
        for plural in ("buckets", "collections", "retrievers", "taxonomies", "refs"):
            in_it = {**admin, "X-Namespace": namespace}
            reads[f"{namespace} {plural}"] = Attempt(
                "", "POST", f"/v1/{plural}/list", in_it, {"limit": 1000}
            )
    for what, rid in b.ids.items():
        if kind_of(rid) is Kind.TASK:
            reads[what] = Attempt("", "GET", f"/v1/tasks/{rid}", admin)
        elif kind_of(rid) in CLONABLE:
            reads[f"lineage of {what}"] = Attempt("", "GET", f"/v1/lineage/{rid}", admin)
    answers = dict(
        zip(reads, in_parallel(lambda r: send(http, r), list(reads.values())), strict=True)
    )
    rows = {what: (answer.status_code, answer.json()) for what, answer in answers.items()}
    rows["search"] = rows["search"][0], rows["search"][1].get("documents")  # not its timings
    return rows


def b_audit(http: httpx.Client, admin_key: str, b: Tenant, after: int) -> list[dict[str, Any]]:
    """B's audit entries past a position (in B's namespaces, or about B's aggregates)."""
    entries: list[dict[str, Any]] = []
    offset = 0
    while True:
        params = {"from_position": after + 1, "limit": 1000, "offset": offset}
        page = http.get("/v1/audit", headers=bearer(admin_key), params=params).json()
        entries += [
            e
            for e in page["results"]
            if e["namespace_id"] in b.namespace_ids or e["aggregate_id"] in b.ids.values()
        ]
        if not page["pagination"]["has_more"]:
            return entries
        offset += 1000


def assert_b_unchanged(w: World, checked: str) -> None:
    new = b_audit(w.http, w.stack.admin_key, w.b, w.audit_from)
    assert new == [], f"{checked} wrote to B: {new}"
    assert b_read_model(w.http, w.stack.admin_key, w.b) == w.b_before, f"{checked} changed B"


# --- which positions the OpenAPI document says hold identifiers --------------------------

IDENTIFIER_NAME = re.compile(r"(_id|_ids|_identifier|_identifiers)$")
IDENTIFIER_FIELDS = {"target", "candidate", "baseline", "evaluation_set", "namespaces"}
IDENTIFIER_QUERY = {"from", "to"}
# Named like identifiers, but naming a document of the collection the path names, a judged
# query of a set, or a stage type: nothing a namespace owns.
NOT_RESOURCES = {"document_id", "document_ids", "query_id", "stage_id"}
# Free-form parameters the schema cannot describe, which the domain resolves all the same.
UNDESCRIBED = {
    operation: {"body.stages[].config.parameters.searches[].collection_ids"}
    for operation in ["POST /v1/retrievers", "POST /v1/retrievers/{identifier}/clone"]
}


def api_operations(http: httpx.Client) -> dict[str, dict[str, Any]]:
    """``METHOD /path`` -> the operation, with the document's schemas at hand."""
    doc = http.get("/openapi.json").json()
    return {
        f"{method.upper()} {path}": {**op, "schemas": doc["components"]["schemas"]}
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }


def identifier_positions(operation: str, op: dict[str, Any]) -> set[str]:
    """Path parameters, X-Namespace, and query parameters and body fields named like
    identifiers."""
    positions = set(UNDESCRIBED.get(operation, set()))
    for parameter in op.get("parameters", []):
        where, name = parameter["in"], parameter["name"]
        query_id = IDENTIFIER_NAME.search(name) or name in IDENTIFIER_QUERY
        if where == "path" or (where == "query" and query_id and name not in NOT_RESOURCES):
            positions.add(f"{where}.{name}")
        elif where == "header" and name.lower() == "x-namespace":
            positions.add("header.X-Namespace")
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    if "schema" in body:
        positions |= _body_fields(body["schema"], "body", op["schemas"], frozenset())
    return positions


def _body_fields(schema: dict, at: str, schemas: dict, seen: frozenset[str]) -> set[str]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return set() if name in seen else _body_fields(schemas[name], at, schemas, seen | {name})
    found: set[str] = set()
    for alternative in [*schema.get("anyOf", []), *schema.get("oneOf", [])]:
        found |= _body_fields(alternative, at, schemas, seen)
    for name, sub in schema.get("properties", {}).items():
        if sub.get("x-mixpeek-option"):
            continue  # takes only null or Mixpeek's default: it names nothing
        named = IDENTIFIER_NAME.search(name) or name in IDENTIFIER_FIELDS
        if named and name not in NOT_RESOURCES:
            found.add(f"{at}.{name}")
        found |= _body_fields(sub, f"{at}.{name}", schemas, seen)
    if "items" in schema:
        found |= _body_fields(schema["items"], f"{at}[]", schemas, seen)
    return found


def operation_of(operations: dict[str, Any], method: str, path: str) -> str:
    """The operation a request belongs to."""
    for operation in operations:
        op_method, template = operation.split(" ", 1)
        if op_method == method and re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path):
            return operation
    raise AssertionError(f"no operation for {method} {path}")


# --- answers -----------------------------------------------------------------------------


def seen(answer: httpx.Response, identifier: str) -> tuple[int, Any]:
    """Status and body, with the identifier the request named replaced by a placeholder."""
    try:
        body: Any = answer.json()
    except ValueError:
        body = answer.text
    return answer.status_code, _without(body, identifier)


def _without(value: Any, identifier: str) -> Any:
    if isinstance(value, str):
        return value.replace(identifier, "<identifier>")
    if isinstance(value, dict):
        return {k: _without(v, identifier) for k, v in value.items()}
    if isinstance(value, list):
        return [_without(v, identifier) for v in value]
    return value


def named(value: Any, secrets: set[str]) -> list[str]:
    return sorted(secret for secret in secrets if secret in str(value))


def probe_problem(w: World, probe: Probe, key: str) -> str | None:
    """What is wrong with the answer to B's identifier, if anything."""
    request = probe.request(key, probe.identifier)
    theirs = seen(send(w.http, request), probe.identifier)
    where = f"{probe.position} ({probe.what})"
    told = named(theirs[1], w.b_secrets() - set(named(request, w.b_secrets())))
    if told:  # more than the request said
        return f"{where}: the answer names {told}: {theirs}"
    if probe.clash:
        error = theirs[1].get("error", {}) if isinstance(theirs[1], dict) else {}
        if (theirs[0], error.get("type")) != (409, "duplicate_name"):
            return f"{where}: a taken namespace name answered {theirs}"
        return None
    missing = missing_like(probe.identifier)
    nothing = seen(send(w.http, probe.request(key, missing)), missing)
    if theirs != nothing:
        return f"{where}:\n    B's:     {theirs}\n    missing: {nothing}"
    return None


# --- the specification -----------------------------------------------------------------

RESOURCE_OPERATIONS = [
    op
    for plural in ("buckets", "collections", "retrievers", "taxonomies")
    for op in [
        f"POST /v1/{plural}",
        f"POST /v1/{plural}/list",
        f"GET /v1/{plural}/{{identifier}}",
        f"PATCH /v1/{plural}/{{identifier}}",
        f"DELETE /v1/{plural}/{{identifier}}",
        *([] if plural == "buckets" else [f"POST /v1/{plural}/{{identifier}}/clone"]),
    ]
]
OPERATIONS = [
    "POST /v1/namespaces",
    "GET /v1/namespaces/{identifier}",
    "PATCH /v1/namespaces/{identifier}",
    "POST /v1/namespaces/list",
    "GET /v1/namespaces",
    "DELETE /v1/namespaces/{identifier}",
    "POST /v1/namespaces/{identifier}/clone",
    *RESOURCE_OPERATIONS,
    "GET /v1/tasks/{task_id}",
    "POST /v1/tasks/list",
    "GET /v1/lineage/{identifier}",
    "GET /v1/audit",
    "POST /v1/keys",
    "POST /v1/buckets/{identifier}/objects",
    "POST /v1/collections/{identifier}/documents",
    "POST /v1/collections/{identifier}/documents/delete",
    "GET /v1/collections/{identifier}/index",
    "POST /v1/collections/{identifier}/trigger",
    "POST /v1/collections/{identifier}/apply-taxonomy",
    "POST /v1/retrievers/{identifier}/execute",
    "POST /v1/taxonomies/{identifier}/classify",
    "POST /v1/taxonomies/{identifier}/execute",
    "POST /v1/refs",
    "GET /v1/refs/{name}",
    "POST /v1/refs/list",
    "POST /v1/refs/{name}/move",
    "POST /v1/refs/{name}/rollback",
    "POST /v1/refs/{name}/promote",
    "POST /v1/evaluation_sets",
    "GET /v1/evaluation_sets/{identifier}",
    "POST /v1/evaluations",
    "GET /v1/evaluations/{evaluation_id}",
    "GET /v1/diff",
    "POST /v1/checkpoints",
    "GET /v1/dlq",
    "POST /v1/dlq/redrive",
    "GET /v1/health",
    "GET /v1/health/live",
    "GET /v1/health/ready",
]


def test_every_operation_of_the_api_is_probed_at_every_identifier_position(world: World) -> None:
    operations = api_operations(world.http)
    probes = probes_of(world.sides)
    assert sorted(probes) == sorted(OPERATIONS)
    assert sorted(operations) == sorted(OPERATIONS), (
        f"not probed: {sorted(set(operations) - set(OPERATIONS))}; "
        f"probed but not in the API: {sorted(set(OPERATIONS) - set(operations))}"
    )
    unprobed = {
        operation: missing
        for operation, op in operations.items()
        if (
            missing := identifier_positions(operation, op) - {p.position for p in probes[operation]}
        )
    }
    assert not unprobed, f"identifier positions without a probe: {unprobed}"


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_key_naming_another_tenants_resource_gets_the_answer_for_a_missing_one(
    world: World, operation: str
) -> None:
    probes = probes_of(world.sides)[operation]
    problems = in_parallel(lambda probe: probe_problem(world, probe, world.a.key), probes)
    wrong = [problem for problem in problems if problem]
    assert not wrong, "\n".join(wrong)
    assert_b_unchanged(world, operation)


@pytest.mark.parametrize(
    "operation",
    ["GET /v1/namespaces/{identifier}", "GET /v1/tasks/{task_id}", "GET /v1/lineage/{identifier}"],
)
def test_the_probes_tell_a_visible_resource_from_a_missing_one(
    world: World, operation: str
) -> None:
    """Sent with the admin key, which sees B, every probe shows B's resource."""
    probes = probes_of(world.sides)[operation]
    problems = in_parallel(lambda probe: probe_problem(world, probe, world.stack.admin_key), probes)
    assert all(problems), [
        probe.what for probe, problem in zip(probes, problems, strict=True) if not problem
    ]


def test_replaying_the_key_another_tenant_created_its_namespace_with_neither_returns_nor_grants_it(
    world: World,
) -> None:
    http, b = world.http, world.b
    key = new_key(http, world.stack.admin_key, world.sides.principal)
    create = b.steps[0]
    replayed = send(http, create.request(key, "", create.idempotency_key))
    fresh = fresh_key()
    again = send(http, create.request(key, "", fresh))
    assert not named(replayed.text, set(b.ids.values())), replayed.text
    assert seen(replayed, create.idempotency_key) == seen(again, fresh)
    for namespace in [*b.namespace_ids, b.names.namespace]:
        answer = http.get(f"/v1/namespaces/{namespace}", headers=bearer(key))
        assert answer.status_code == 404, answer.text
    listed = http.post("/v1/namespaces/list", headers=bearer(key), json={})
    assert listed.json()["pagination"]["total"] == 0, listed.text
    assert_b_unchanged(world, "the replay")


def test_a_tenant_replaying_every_idempotency_key_of_another_gets_what_fresh_keys_get(
    world: World,
) -> None:
    """A twin namespace holds B's names, so B's writes replay there verbatim with B's
    Idempotency-Keys: each does what it does with a fresh key (B's own answer when it
    succeeds, the fresh key's refusal when it does not), never B's resources, never a
    refusal telling that B used the key."""
    http, b, admin = world.http, world.b, world.stack.admin_key
    operations = api_operations(http)
    idempotent = {
        operation
        for operation, op in operations.items()
        if any(p["name"] == "Idempotency-Key" for p in op.get("parameters", []))
    }
    replayed = {operation_of(operations, s.method, s.path.replace("{ns}", "x")) for s in b.steps}
    assert idempotent <= replayed, f"not replayed: {sorted(idempotent - replayed)}"

    key = new_key(http, admin, world.sides.principal)
    twin = replace(b.steps[0], body={"namespace_name": unique("twin")})
    created = send(http, twin.request(key, "", fresh_key()))
    assert created.status_code == 200, created.text
    ns = created.json()["namespace_id"]
    wrong = []
    for step, bs in zip(b.steps[1:], b.answers[1:], strict=True):
        answer = send(http, step.request(key, ns, step.idempotency_key))
        if leak := named(answer.text, set(b.ids.values())):
            wrong.append(f"{step.what}: answered with B's {leak}")
        if answer.status_code < 300:
            if answer.status_code != bs.status_code:
                wrong.append(f"{step.what}: {answer.status_code}, where B got {bs.status_code}")
            wait_for_task(http, admin, answer)
            continue
        fresh = fresh_key()
        again = send(http, step.request(key, ns, fresh))
        if seen(answer, step.idempotency_key) != seen(again, fresh):
            wrong.append(
                f"{step.what}:\n    B's key:   {seen(answer, step.idempotency_key)}"
                f"\n    fresh key: {seen(again, fresh)}"
            )
        wait_for_task(http, admin, again)
    assert not wrong, "\n".join(wrong)
    for namespace in b.namespace_ids:
        answer = http.get(f"/v1/namespaces/{namespace}", headers=bearer(key))
        assert answer.status_code == 404, answer.text
    assert_b_unchanged(world, "the replays")


def test_the_audit_filtered_by_the_principal_both_tenants_share_shows_each_only_its_own(
    world: World,
) -> None:
    for tenant, other in [(world.a, world.b), (world.b, world.a)]:
        params: dict[str, str | int] = {"actor": world.sides.principal, "limit": 1000}
        answer = world.http.get("/v1/audit", headers=bearer(tenant.key), params=params)
        assert answer.status_code == 200, answer.text
        entries = answer.json()["results"]
        assert entries and {e["namespace_id"] for e in entries} <= tenant.namespace_ids
        assert not named(entries, set(other.ids.values()))


def test_made_up_identifiers_have_the_shape_of_the_ones_they_stand_for() -> None:
    ids = [f"{kind.prefix}_{uuid.uuid4().hex}" for kind in Kind]
    for identifier in [*ids, "ref:live", "docs"]:
        missing = missing_like(identifier)
        assert missing != identifier
        assert kind_of(missing) == kind_of(identifier)
        assert missing.startswith("ref:") == identifier.startswith("ref:")


def test_a_retriever_whose_inputs_name_its_collections_reads_its_own_tenants(
    world: World,
) -> None:
    """The probe of stage parameters named at execution is sharp: with A's own collection
    the search runs; with B's it is answered as for a missing one (the probes above)."""
    headers = {**bearer(world.a.key), "X-Namespace": world.a.namespace_id}
    inputs = {"query": "heap", "collections": [world.a.ids["collection"]]}
    answer = world.http.post(
        f"/v1/retrievers/{TEMPLATED}/execute", headers=headers, json={"inputs": inputs}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["documents"], answer.text
