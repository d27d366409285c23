"""API keys against a running stack: who may see and change what, and what a refusal leaves.

A key scoped to namespace A is refused everything in namespace B (403 or 404, never
a leak), may do everything in A, and grows its scope by the namespaces it creates or
clones. Requests without a valid key get 401, malformed ones 422 naming the field,
and no refused request writes anything.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from envbranch import Client, EnvbranchError
from tests.conftest import LiveStack

TEXT = {"feature_extractor_name": "text_extractor", "version": "v1"}
SEARCH_STAGE = {
    "stage_name": "search",
    "config": {"stage_id": "feature_search", "parameters": {"top_k": 10}},
}
REFUSED = frozenset({403, 404})
KINDS = ["bucket", "collection", "retriever", "taxonomy"]
PLURAL = {
    "bucket": "buckets",
    "collection": "collections",
    "retriever": "retrievers",
    "taxonomy": "taxonomies",
}
CLONABLE = {"collection", "retriever", "taxonomy"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- the world: namespaces A and B, each with one resource of every kind -------------


@dataclass
class Space:
    """A namespace and the IDs of its resources (kind -> (ID, name))."""

    id: str
    name: str
    resources: dict[str, tuple[str, str]] = field(default_factory=dict)

    def ids(self) -> list[str]:
        return [self.id, *(rid for rid, _ in self.resources.values())]


@dataclass
class World:
    stack: LiveStack
    a: Space
    b: Space
    b_copy: Space  # B cloned by the admin: its ids are out of A's scope too
    b_clone_task_id: str
    a_copy: Space  # A cloned by the admin: descendants of A that A's key may not see
    key_a: str  # scoped to A only; never creates anything, so its scope stays {A}
    key_a_id: str
    principal_a: str


def create_body(kind: str, name: str) -> dict[str, Any]:
    if kind == "bucket":
        return {"bucket_name": name, "bucket_schema": {"properties": {"text": {"type": "text"}}}}
    if kind == "collection":
        return {
            "collection_name": name,
            "source": {"type": "bucket", "bucket_ids": ["docs"]},
            "feature_extractor": TEXT,
        }
    if kind == "retriever":
        return {
            "retriever_name": name,
            "collection_identifiers": ["docs-text"],
            "stages": [SEARCH_STAGE],
        }
    return {
        "taxonomy_name": name,
        "config": {
            "taxonomy_type": "flat",
            "retriever_id": "search",
            "input_mappings": [{"input_key": "query", "source_type": "payload", "path": "text"}],
            "source_collection": {"collection_id": "docs-text"},
        },
    }


BASE_NAMES = {
    "bucket": "docs",
    "collection": "docs-text",
    "retriever": "search",
    "taxonomy": "topics",
}


def populate(admin: Client, name: str) -> Space:
    """A namespace with a bucket, a collection, a retriever and a taxonomy."""
    namespace = admin.namespaces.create({"namespace_name": name, "description": "start"})
    space = Space(namespace.namespace_id, name)
    resources = {
        "bucket": admin.buckets,
        "collection": admin.collections,
        "retriever": admin.retrievers,
        "taxonomy": admin.taxonomies,
    }
    for kind in KINDS:
        created = resources[kind].create(
            create_body(kind, BASE_NAMES[kind]), namespace=namespace.namespace_id
        )
        space.resources[kind] = (getattr(created, f"{kind}_id"), BASE_NAMES[kind])
    return space


def copy_of(admin: Client, source: Space) -> tuple[Space, str]:
    """Clone a namespace with every kind; returns the copy and the clone task's ID."""
    name = unique(f"{source.name}-copy")
    answer = admin.namespaces.clone(
        source.id,
        {
            "namespace_name": name,
            "include_resources": {"collections": True, "retrievers": True, "taxonomies": True},
        },
    )
    task = admin.tasks.wait(answer.task_id, timeout=60)
    assert task.status == "COMPLETED" and task.result is not None
    copy = Space(answer.namespace.namespace_id, name)
    for kind in KINDS:
        source_id = source.resources[kind][0]
        copy.resources[kind] = (task.result.mapping[PLURAL[kind]][source_id], BASE_NAMES[kind])
    return copy, answer.task_id


@pytest.fixture(scope="module")
def world(live_stack: LiveStack) -> World:
    with live_stack.client() as admin:
        a = populate(admin, unique("auth-a"))
        b = populate(admin, unique("auth-b"))
        b_copy, b_task = copy_of(admin, b)
        a_copy, _ = copy_of(admin, a)
        principal = unique("alice")
        key = admin.keys.create(principal, [a.id])
    assert key.api_key is not None and key.namespaces == [a.id]
    return World(live_stack, a, b, b_copy, b_task, a_copy, key.api_key, key.key_id, principal)


def new_key(stack: LiveStack, principal: str, namespaces: list[str] | None) -> str:
    with stack.client() as admin:
        created = admin.keys.create(principal, namespaces)
    assert created.api_key is not None
    return created.api_key


# --- raw requests ---------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    what: str
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    params: dict[str, Any] | None = None
    expected: frozenset[int] = REFUSED


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def send(stack: LiveStack, attempt: Attempt) -> httpx.Response:
    return httpx.request(
        attempt.method,
        stack.url + attempt.path,
        headers=attempt.headers,
        json=attempt.json,
        params=attempt.params,
        timeout=60,
    )


def check(stack: LiveStack, attempts: list[Attempt]) -> list[httpx.Response]:
    """Send every attempt; fail listing every one whose status was not expected."""
    answers = [send(stack, attempt) for attempt in attempts]
    wrong = [
        f"{attempt.what}: {attempt.method} {attempt.path} -> {answer.status_code} {answer.text}"
        for attempt, answer in zip(attempts, answers, strict=True)
        if answer.status_code not in attempt.expected
    ]
    assert not wrong, "\n".join(wrong)
    for answer in answers:
        if answer.status_code >= 400:
            error = answer.json()["error"]
            assert isinstance(error["message"], str) and error["message"]
    return answers


def namespace_b_attempts(w: World) -> list[Attempt]:
    """Namespace B itself, its clone task, its lineage, and key creation, with A's key."""
    auth = bearer(w.key_a)
    attempts = []
    for form, ident in [("ID", w.b.id), ("name", w.b.name)]:
        attempts += [
            Attempt(f"get B by {form}", "GET", f"/v1/namespaces/{ident}", auth),
            Attempt(
                f"rename B by {form}",
                "PATCH",
                f"/v1/namespaces/{ident}",
                auth,
                {"namespace_name": unique("stolen"), "description": "pwned"},
            ),
            Attempt(
                f"clone B by {form}",
                "POST",
                f"/v1/namespaces/{ident}/clone",
                auth,
                {"namespace_name": unique("stolen")},
            ),
        ]
    attempts.append(
        Attempt("get B's clone task", "GET", f"/v1/tasks/{w.b_clone_task_id}", auth),
    )
    for resource_id in [*w.b.ids(), *w.b_copy.ids()]:
        attempts.append(Attempt("lineage in B", "GET", f"/v1/lineage/{resource_id}", auth))
    attempts += [
        Attempt("create a key", "POST", "/v1/keys", auth, {"principal": "mallory"}, expected={403}),
        Attempt(
            "create a key for B",
            "POST",
            "/v1/keys",
            auth,
            {"principal": "mallory", "namespaces": [w.b.id]},
            expected={403},
        ),
    ]
    return attempts


def resource_b_attempts(w: World, kind: str, header_form: str) -> list[Attempt]:
    """Create, get, list, update and clone a kind in B (X-Namespace by name or ID)."""
    header = w.b.id if header_form == "ID" else w.b.name
    auth = {**bearer(w.key_a), "X-Namespace": header}
    base = f"/v1/{PLURAL[kind]}"
    rid, rname = w.b.resources[kind]
    attempts = [
        Attempt(f"create {kind}", "POST", base, auth, create_body(kind, unique("stolen"))),
        Attempt(f"list {kind}s", "POST", f"{base}/list", auth, {"limit": 100}),
        Attempt(f"list {kind}s without a body", "POST", f"{base}/list", auth),
    ]
    for form, ident in [("ID", rid), ("name", rname)]:
        attempts += [
            Attempt(f"get {kind} by {form}", "GET", f"{base}/{ident}", auth),
            Attempt(
                f"update {kind} by {form}",
                "PATCH",
                f"{base}/{ident}",
                auth,
                {f"{kind}_name": unique("stolen"), "description": "pwned"},
            ),
        ]
        if kind in CLONABLE:
            attempts.append(
                Attempt(
                    f"clone {kind} by {form}",
                    "POST",
                    f"{base}/{ident}/clone",
                    auth,
                    {f"{kind}_name": unique("stolen")},
                )
            )
    return attempts


def through_a_attempts(w: World) -> list[Attempt]:
    """B's resources reached by ID through namespace A's header, or referenced from A."""
    auth = {**bearer(w.key_a), "X-Namespace": w.a.name}
    b_bucket, b_collection, b_retriever = (w.b.resources[k][0] for k in KINDS[:3])
    b_taxonomy = w.b.resources["taxonomy"][0]
    attempts = []
    for kind in KINDS:
        rid = w.b.resources[kind][0]
        base = f"/v1/{PLURAL[kind]}"
        attempts += [
            Attempt(f"get B's {kind} through A", "GET", f"{base}/{rid}", auth),
            Attempt(
                f"update B's {kind} through A",
                "PATCH",
                f"{base}/{rid}",
                auth,
                {"description": "pwned"},
            ),
        ]
        if kind in CLONABLE:
            attempts.append(
                Attempt(
                    f"clone B's {kind} into A",
                    "POST",
                    f"{base}/{rid}/clone",
                    auth,
                    {f"{kind}_name": unique("stolen")},
                )
            )
    taxonomy = create_body("taxonomy", unique("stolen"))
    taxonomy["config"]["retriever_id"] = b_retriever
    a_collection = w.a.resources["collection"][0]
    attempts += [
        Attempt(
            "a collection in A fed by B's bucket",
            "POST",
            "/v1/collections",
            auth,
            {
                **create_body("collection", unique("stolen")),
                "source": {"type": "bucket", "bucket_ids": [b_bucket]},
            },
        ),
        Attempt(
            "a collection in A derived from B's collection",
            "POST",
            "/v1/collections",
            auth,
            {
                **create_body("collection", unique("stolen")),
                "source": {"type": "collection", "collection_id": b_collection},
            },
        ),
        Attempt(
            "a retriever in A over B's collection",
            "POST",
            "/v1/retrievers",
            auth,
            {
                **create_body("retriever", unique("stolen")),
                "collection_identifiers": [b_collection],
            },
        ),
        Attempt("a taxonomy in A using B's retriever", "POST", "/v1/taxonomies", auth, taxonomy),
        Attempt(
            "a clone in A of A's collection fed by B's bucket",
            "POST",
            f"/v1/collections/{a_collection}/clone",
            auth,
            {
                "collection_name": unique("stolen"),
                "source": {"type": "bucket", "bucket_ids": [b_bucket]},
            },
        ),
        Attempt(
            "a clone in A of A's retriever over B's collection",
            "POST",
            f"/v1/retrievers/{w.a.resources['retriever'][0]}/clone",
            auth,
            {"retriever_name": unique("stolen"), "collection_identifiers": [b_collection]},
        ),
        Attempt("B's taxonomy ID as A's", "GET", f"/v1/taxonomies/{b_taxonomy}", auth),
    ]
    return attempts


# Authorization header values that must not authenticate, built from a real key.
BAD_AUTHORIZATION: dict[str, Callable[[World], str | None]] = {
    "no Authorization header": lambda w: None,
    "a scheme other than Bearer": lambda w: "Token x",
    "Bearer without a key": lambda w: "Bearer",
    "an empty Authorization header": lambda w: "",
    "the key without Bearer": lambda w: w.key_a,
    "a key that is not of the form eb_<id>_<secret>": lambda w: "Bearer not-a-key",
    "a known key ID with a wrong secret": lambda w: f"Bearer eb_{w.key_a_id}_{'x' * 43}",
    "an unknown key ID with a real secret": lambda w: (
        "Bearer eb_000000000000_" + w.key_a.split("_", 2)[2]
    ),
    "a real key with its secret cut short": lambda w: f"Bearer {w.key_a[:-1]}",
}


def unauthorized_attempts(w: World, authorization: str | None) -> list[Attempt]:
    headers = {} if authorization is None else {"Authorization": authorization}
    in_a = {**headers, "X-Namespace": w.a.name}
    bucket = w.a.resources["bucket"][0]
    return [
        Attempt(
            "create a namespace",
            "POST",
            "/v1/namespaces",
            headers,
            {"namespace_name": unique("anon")},
            expected={401},
        ),
        Attempt("get A", "GET", f"/v1/namespaces/{w.a.id}", headers, expected={401}),
        Attempt("list namespaces", "POST", "/v1/namespaces/list", headers, {}, expected={401}),
        Attempt(
            "rename A",
            "PATCH",
            f"/v1/namespaces/{w.a.id}",
            headers,
            {"description": "anon"},
            expected={401},
        ),
        Attempt(
            "clone A",
            "POST",
            f"/v1/namespaces/{w.a.name}/clone",
            headers,
            {"namespace_name": unique("anon")},
            expected={401},
        ),
        Attempt(
            "create a bucket",
            "POST",
            "/v1/buckets",
            in_a,
            create_body("bucket", unique("anon")),
            expected={401},
        ),
        Attempt("get a bucket", "GET", f"/v1/buckets/{bucket}", in_a, expected={401}),
        Attempt(
            "update a bucket",
            "PATCH",
            f"/v1/buckets/{bucket}",
            in_a,
            {"description": "anon"},
            expected={401},
        ),
        Attempt("list buckets", "POST", "/v1/buckets/list", in_a, expected={401}),
        Attempt(
            "clone a collection",
            "POST",
            f"/v1/collections/{w.a.resources['collection'][0]}/clone",
            in_a,
            {"collection_name": unique("anon")},
            expected={401},
        ),
        Attempt("a task", "GET", f"/v1/tasks/{w.b_clone_task_id}", headers, expected={401}),
        Attempt("lineage", "GET", f"/v1/lineage/{w.a.id}", headers, expected={401}),
        Attempt("audit", "GET", "/v1/audit", headers, expected={401}),
        Attempt("create a key", "POST", "/v1/keys", headers, {"principal": "anon"}, expected={401}),
    ]


# (what, method, path template, body, headers beyond the key, expected error.details.field)
MALFORMED: list[tuple[str, str, str, Any, dict[str, str], str]] = [
    (
        "a collection without collection_name",
        "POST",
        "/v1/collections",
        {"source": {"type": "bucket", "bucket_ids": ["docs"]}, "feature_extractor": TEXT},
        {"X-Namespace": "{a}"},
        "body.collection_name",
    ),
    (
        "a retriever whose stages is a string",
        "POST",
        "/v1/retrievers",
        {"retriever_name": "r-{u}", "collection_identifiers": ["docs-text"], "stages": "search"},
        {"X-Namespace": "{a}"},
        "body.stages",
    ),
    (
        "a namespace named 'bad name!'",
        "POST",
        "/v1/namespaces",
        {"namespace_name": "bad name!"},
        {},
        "body.namespace_name",
    ),
    (
        "a namespace with an unknown field",
        "POST",
        "/v1/namespaces",
        {"namespace_name": "n-{u}", "colour": "red"},
        {},
        "body.colour",
    ),
    (
        "a namespace update with an unknown field",
        "PATCH",
        "/v1/namespaces/{a}",
        {"description": "x", "colour": "red"},
        {},
        "body.colour",
    ),
    (
        "a bucket with an unknown field",
        "POST",
        "/v1/buckets",
        {"bucket_name": "b-{u}", "bucket_schema": {"properties": {}}, "colour": "red"},
        {"X-Namespace": "{a}"},
        "body.colour",
    ),
    (
        "a namespace clone without namespace_name",
        "POST",
        "/v1/namespaces/{a}/clone",
        {"description": "x"},
        {},
        "body.namespace_name",
    ),
    (
        "a bucket created without X-Namespace",
        "POST",
        "/v1/buckets",
        {"bucket_name": "b-{u}", "bucket_schema": {"properties": {}}},
        {},
        "header.X-Namespace",
    ),
    (
        "collections listed without X-Namespace",
        "POST",
        "/v1/collections/list",
        None,
        {},
        "header.X-Namespace",
    ),
    (
        "a retriever read without X-Namespace",
        "GET",
        "/v1/retrievers/search",
        None,
        {},
        "header.X-Namespace",
    ),
    (
        "a taxonomy updated without X-Namespace",
        "PATCH",
        "/v1/taxonomies/topics",
        {"description": "x"},
        {},
        "header.X-Namespace",
    ),
    ("a page of 0 audit entries", "GET", "/v1/audit?limit=0", None, {}, "query.limit"),
    ("a page of 5000 namespaces", "POST", "/v1/namespaces/list", {"limit": 5000}, {}, "body.limit"),
]


def fill(value: Any, w: World, u: str) -> Any:
    if isinstance(value, str):
        return value.replace("{a}", w.a.name).replace("{u}", u)
    if isinstance(value, dict):
        return {k: fill(v, w, u) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, w, u) for v in value]
    return value


def malformed_attempt(w: World, case: tuple[str, str, str, Any, dict[str, str], str]) -> Attempt:
    what, method, path, body, headers, _ = case
    u = uuid.uuid4().hex[:10]
    return Attempt(
        what,
        method,
        fill(path, w, u),
        {**bearer(w.key_a), **fill(headers, w, u)},
        fill(body, w, u),
        expected={422},
    )


# --- what the read model holds --------------------------------------------------------


def read_model_position(stack: LiveStack) -> int:
    answer = httpx.get(f"{stack.url}/v1/health", timeout=10)
    answer.raise_for_status()
    return int(answer.json()["read_model_position"])


def settled_position(stack: LiveStack, quiet: float = 0.5, timeout: float = 30.0) -> int:
    """The read model's position once it has not moved for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    position = read_model_position(stack)
    still_since = time.monotonic()
    while time.monotonic() - still_since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError(f"the read model did not settle within {timeout}s")
        time.sleep(0.05)  # the polling interval, not a synchronisation
        now = read_model_position(stack)
        if now != position:
            position, still_since = now, time.monotonic()
    return position


def snapshot(stack: LiveStack) -> tuple[int, int]:
    """(read-model position, audit total), read once the stack is quiet."""
    position = settled_position(stack)
    with stack.client() as admin:
        total = admin.audit(limit=1000).pagination.total
    assert settled_position(stack) == position, "something wrote during the snapshot"
    return position, total


# --- a key scoped to A is refused everything in B ---------------------------------------


def test_a_key_scoped_to_a_cannot_read_rename_or_clone_namespace_b_nor_see_its_tasks_or_lineage(
    world: World,
) -> None:
    check(world.stack, namespace_b_attempts(world))


@pytest.mark.parametrize("header_form", ["name", "ID"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_key_scoped_to_a_cannot_create_get_list_update_or_clone_resources_in_namespace_b(
    world: World, kind: str, header_form: str
) -> None:
    check(world.stack, resource_b_attempts(world, kind, header_form))
    with world.stack.client() as admin:
        rid, name = world.b.resources[kind]
        resources = getattr(admin, PLURAL[kind])
        unchanged = resources.get(rid, namespace=world.b.id)
        assert getattr(unchanged, f"{kind}_name") == name
        assert unchanged.version == 1 and unchanged.description == ""
        assert resources.list(limit=1000, namespace=world.b.id).pagination.total == 1


def test_namespace_b_looks_to_a_key_scoped_to_a_like_a_namespace_that_does_not_exist(
    world: World,
) -> None:
    auth = bearer(world.key_a)
    missing = unique("auth-missing")
    for b_ident in [world.b.name, world.b.id]:
        nowhere = missing if b_ident == world.b.name else "ns_" + "0" * 32
        pairs = [
            ("GET", "/v1/namespaces/{}", {}, None),
            ("PATCH", "/v1/namespaces/{}", {}, {"description": "x"}),
            ("POST", "/v1/namespaces/{}/clone", {}, {"namespace_name": unique("x")}),
            ("POST", "/v1/buckets/list", {"X-Namespace": "{}"}, None),
            ("GET", "/v1/collections/docs-text", {"X-Namespace": "{}"}, None),
        ]
        for method, path, extra, body in pairs:
            answers = []
            for ident in [b_ident, nowhere]:
                headers = {**auth, **{k: v.format(ident) for k, v in extra.items()}}
                answer = send(world.stack, Attempt("", method, path.format(ident), headers, body))
                error = answer.json()["error"]
                answers.append(
                    (answer.status_code, error["type"], error["message"].replace(ident, "?"))
                )
            assert answers[0] == answers[1], (method, path, answers)
            assert answers[0][0] in REFUSED


def test_a_key_scoped_to_a_cannot_reach_resources_of_b_through_namespace_a(world: World) -> None:
    check(world.stack, through_a_attempts(world))


def test_namespace_b_is_unchanged_after_a_key_scoped_to_a_tried_to_change_it(
    world: World,
) -> None:
    check(world.stack, namespace_b_attempts(world))
    with world.stack.client() as admin:
        b = admin.namespaces.get(world.b.id)
        assert (b.namespace_name, b.description, b.version) == (world.b.name, "start", 1)


def test_listing_namespaces_with_a_key_scoped_to_a_shows_and_counts_only_a(world: World) -> None:
    with world.stack.client(world.key_a) as client:
        page = client.namespaces.list(limit=1000)
        assert [n.namespace_id for n in page.results] == [world.a.id]
        assert page.pagination.total == 1 and not page.pagination.has_more
        assert client.namespaces.list(limit=1, offset=1).results == []
    with world.stack.client() as admin:
        every = {n.namespace_id for n in admin.namespaces.list(limit=1000).results}
        assert {world.a.id, world.b.id, world.b_copy.id} <= every


def test_the_audit_log_shows_a_key_scoped_to_a_no_event_of_namespace_b(world: World) -> None:
    b_ids = {*world.b.ids(), *world.b_copy.ids(), *world.a_copy.ids()}
    with world.stack.client(world.key_a) as client:
        page = client.audit(limit=1000)
        assert page.pagination.total == len(page.results) > 0
        assert {e.namespace_id for e in page.results} == {world.a.id}
        assert not {e.aggregate_id for e in page.results} & b_ids
        for b_kind in ["Namespace", "Bucket", "Collection"]:
            typed = client.audit(type=f"{b_kind}.Created", limit=1000)
            assert {e.namespace_id for e in typed.results} <= {world.a.id}
    with world.stack.client() as admin:
        assert admin.audit(resource_id=world.b.id).pagination.total > 0


def test_the_audit_log_filtered_to_a_resource_of_b_is_empty_for_a_key_scoped_to_a(
    world: World,
) -> None:
    with world.stack.client(world.key_a) as client:
        for resource_id in [*world.b.ids(), *world.b_copy.ids()]:
            page = client.audit(resource_id=resource_id)
            assert page.results == [] and page.pagination.total == 0, resource_id


def test_lineage_seen_by_a_key_scoped_to_a_leaves_out_clones_in_other_namespaces(
    world: World,
) -> None:
    collection = world.a.resources["collection"][0]
    with world.stack.client() as admin:
        everything = admin.lineage(collection)
        assert world.a_copy.resources["collection"][0] in {
            e.clone_id for e in everything.descendants
        }
    with world.stack.client(world.key_a) as client:
        seen = client.lineage(collection)
        assert seen.descendants == [] and seen.ancestors == []
        assert client.lineage(world.a.id).descendants == []


def test_a_key_scoped_to_a_may_not_create_api_keys(world: World) -> None:
    with world.stack.client(world.key_a) as client:
        for scope in [None, [world.a.id]]:
            with pytest.raises(EnvbranchError) as refused:
                client.keys.create(unique("mallory"), scope)
            assert (refused.value.status, refused.value.type) == (403, "forbidden")


# --- ... and may do all of it in A -----------------------------------------------------


def test_a_key_scoped_to_a_can_read_update_and_clone_namespace_a_and_everything_in_it(
    world: World,
) -> None:
    stack, a = world.stack, world.a
    key = new_key(stack, unique("carol"), [a.name])  # a name is taken for the ID
    with stack.client(key) as client:
        assert client.namespaces.get(a.id).namespace_name == a.name
        assert client.namespaces.get(a.name).namespace_id == a.id
        assert [n.namespace_id for n in client.namespaces.list(limit=1000).results] == [a.id]
        updated = client.namespaces.update(a.name, {"description": "carol was here"})
        assert updated.description == "carol was here"

        for kind in KINDS:
            resources = getattr(client, PLURAL[kind])
            name = unique(kind)
            for header in [a.name, a.id]:
                existing, existing_name = a.resources[kind]
                assert getattr(resources.get(existing, namespace=header), f"{kind}_name") == (
                    existing_name
                )
                assert getattr(resources.get(existing_name, namespace=header), f"{kind}_id") == (
                    existing
                )
            created = resources.create(create_body(kind, name), namespace=a.name)
            rid = getattr(created, f"{kind}_id")
            assert created.namespace_id == a.id and created.created_by is not None
            listed = resources.list(limit=1000, namespace=a.id)
            assert rid in {getattr(r, f"{kind}_id") for r in listed.results}
            changed = resources.update(rid, {"description": "d"}, namespace=a.id)
            assert changed.description == "d"
            if kind in CLONABLE:
                clone = resources.clone(name, {f"{kind}_name": unique(kind)}, namespace=a.name)
                assert getattr(clone, f"source_{kind}_id") == rid

        answer = client.namespaces.clone(a.id, {"namespace_name": unique("auth-a-branch")})
        task = client.tasks.wait(answer.task_id, timeout=60)
        assert task.status == "COMPLETED" and task.namespace_id == a.id
        branch = answer.namespace.namespace_id
        assert client.namespaces.get(branch).source_namespace_id == a.id

        lineage = client.lineage(a.id)
        assert [e.clone_id for e in lineage.descendants] == [branch]
        audit = client.audit(resource_id=a.id)
        assert audit.pagination.total > 0
        assert {e.namespace_id for e in client.audit(limit=1000).results} == {a.id, branch}


# --- 401 and 422 ------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", list(BAD_AUTHORIZATION))
def test_a_request_without_a_valid_api_key_gets_401_with_the_error_shape(
    world: World, authorization: str
) -> None:
    header = BAD_AUTHORIZATION[authorization](world)
    for answer in check(world.stack, unauthorized_attempts(world, header)):
        error = answer.json()
        assert set(error) == {"success", "status", "error"}
        assert (error["success"], error["status"]) == (False, 401)
        assert set(error["error"]) == {"message", "type", "code"}
        assert error["error"]["type"] == "unauthorized"


@pytest.mark.parametrize("case", MALFORMED, ids=[case[0] for case in MALFORMED])
def test_a_malformed_request_gets_422_naming_the_field(
    world: World, case: tuple[str, str, str, Any, dict[str, str], str]
) -> None:
    (answer,) = check(world.stack, [malformed_attempt(world, case)])
    error = answer.json()["error"]
    assert error["type"] == "validation_error"
    assert error["details"]["field"] == case[5]
    assert case[5] in error["message"]
    assert error["details"]["problems"][0]["field"] == case[5]


def test_an_admin_key_creating_a_key_with_a_malformed_body_gets_422_naming_the_field(
    world: World,
) -> None:
    auth = bearer(world.stack.admin_key)
    for body, field_name in [
        ({"principal": "p", "colour": "red"}, "body.colour"),
        ({"namespaces": None}, "body.principal"),
        ({"principal": "p", "namespaces": "all"}, "body.namespaces"),
    ]:
        attempt = Attempt("create a key", "POST", "/v1/keys", auth, body, expected={422})
        (answer,) = check(world.stack, [attempt])
        error = answer.json()["error"]
        assert (error["type"], error["details"]["field"]) == ("validation_error", field_name)


@pytest.mark.parametrize("path", ["/v1/namespaces/list", "/v1/buckets/list"])
def test_a_list_body_with_an_unknown_field_gets_422_naming_it(world: World, path: str) -> None:
    headers = {**bearer(world.key_a), "X-Namespace": world.a.name}
    answer = send(
        world.stack, Attempt("", "POST", path, headers, {"limit": 5, "ofset": 1}, expected={422})
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["details"]["field"]) == ("validation_error", "body.ofset")


# --- nothing written for what was refused ---------------------------------------------


def test_no_refused_request_writes_anything(world: World) -> None:
    attempts = [
        *namespace_b_attempts(world),
        *(
            attempt
            for kind in KINDS
            for form in ["name", "ID"]
            for attempt in resource_b_attempts(world, kind, form)
        ),
        *through_a_attempts(world),
        *(
            attempt
            for make in BAD_AUTHORIZATION.values()
            for attempt in unauthorized_attempts(world, make(world))
        ),
        *(malformed_attempt(world, case) for case in MALFORMED),
    ]
    before = snapshot(world.stack)
    check(world.stack, attempts)
    after = snapshot(world.stack)
    assert after == before, f"(position, audit total) moved from {before} to {after}"


# --- a key's scope grows with what it creates; its principal is the actor ---------------


def test_a_scoped_key_can_read_and_clone_a_namespace_it_created_and_sees_the_clone(
    world: World,
) -> None:
    key = new_key(world.stack, unique("dave"), [world.a.id])
    with world.stack.client(key) as client:
        created = client.namespaces.create({"namespace_name": unique("auth-dave")})
        assert client.namespaces.get(created.namespace_name) == created
        client.buckets.create(create_body("bucket", "docs"), namespace=created.namespace_id)
        answer = client.namespaces.clone(created.namespace_id, {"namespace_name": unique("dv")})
        clone_id = answer.namespace.namespace_id
        task = client.tasks.wait(answer.task_id, timeout=60)
        assert task.status == "COMPLETED"
        assert client.namespaces.get(clone_id).source_namespace_id == created.namespace_id
        assert client.buckets.list(namespace=clone_id).pagination.total == 1
        page = client.namespaces.list(limit=1000)
        assert {n.namespace_id for n in page.results} == {
            world.a.id,
            created.namespace_id,
            clone_id,
        }
        assert page.pagination.total == 3
        with pytest.raises(EnvbranchError) as refused:
            client.namespaces.get(world.b.id)
        assert refused.value.status in REFUSED


def test_a_key_with_an_empty_scope_sees_nothing_until_it_creates_a_namespace(
    world: World,
) -> None:
    key = new_key(world.stack, unique("erin"), [])
    with world.stack.client(key) as client:
        assert client.namespaces.list().pagination.total == 0
        assert client.audit().pagination.total == 0
        with pytest.raises(EnvbranchError) as refused:
            client.namespaces.get(world.a.id)
        assert refused.value.status in REFUSED
        created = client.namespaces.create({"namespace_name": unique("auth-erin")})
        page = client.namespaces.list()
        assert [n.namespace_id for n in page.results] == [created.namespace_id]


def test_the_principal_of_a_key_is_the_actor_on_every_event_it_causes(world: World) -> None:
    principal = unique("frank")
    key = new_key(world.stack, principal, [world.a.id])
    with world.stack.client(key) as client:
        namespace = client.namespaces.create({"namespace_name": unique("auth-frank")})
        ns = namespace.namespace_id
        bucket = client.buckets.create(create_body("bucket", "docs"), namespace=ns)
        client.buckets.update(bucket.bucket_id, {"description": "mine"}, namespace=ns)
        client.namespaces.update(ns, {"description": "mine"})
        answer = client.namespaces.clone(ns, {"namespace_name": unique("auth-frank-copy")})
        assert namespace.created_by == principal and bucket.created_by == principal
        mine = client.audit(actor=principal, limit=1000)
        in_scope = client.audit(limit=1000)
    with world.stack.client() as admin:
        everything = admin.audit(actor=principal, limit=1000)
    assert everything.pagination.total == mine.pagination.total > 0
    assert {e.actor for e in mine.results} == {principal}
    touched = {e.aggregate_id for e in mine.results}
    assert {ns, bucket.bucket_id, answer.namespace.namespace_id, answer.task_id} <= touched
    ours = {ns, answer.namespace.namespace_id}
    assert {e.actor for e in in_scope.results if e.namespace_id in ours} == {principal}
    types = {e.type for e in mine.results}
    assert {"Namespace.Created", "Bucket.Created", "Namespace.Cloned"} <= types


def test_replaying_another_principals_idempotency_key_does_not_hand_over_its_namespace(
    world: World,
) -> None:
    name = unique("auth-replayed")
    idempotency_key = f"create-{name}"
    with world.stack.client() as admin:
        target = admin.namespaces.create({"namespace_name": name}, idempotency_key=idempotency_key)
    key = new_key(world.stack, unique("mallory"), [world.a.id])
    answer = httpx.post(
        f"{world.stack.url}/v1/namespaces",
        headers={**bearer(key), "Idempotency-Key": idempotency_key},
        json={"namespace_name": name},
        timeout=60,
    )
    assert answer.status_code in {403, 404, 409}, answer.text
    with world.stack.client(key) as client:
        with pytest.raises(EnvbranchError) as refused:
            client.namespaces.get(target.namespace_id)
        assert refused.value.status in REFUSED


def test_replaying_a_create_after_its_name_moved_on_grants_nothing_new(live_stack) -> None:  # type: ignore[no-untyped-def]
    import uuid as _uuid

    from envbranch import EnvbranchError

    admin = live_stack.client()
    scoped_key = admin.keys.create("replayer", []).api_key
    assert scoped_key is not None
    scoped = live_stack.client(api_key=scoped_key)
    name, key = f"shared-{_uuid.uuid4().hex[:6]}", f"k-{_uuid.uuid4().hex}"
    mine = scoped.namespaces.create({"namespace_name": name}, idempotency_key=key)
    scoped.namespaces.update(mine.namespace_id, {"namespace_name": f"{name}-mine"})
    theirs = admin.namespaces.create({"namespace_name": name})  # the name is free again

    replayed = scoped.namespaces.create({"namespace_name": name}, idempotency_key=key)
    assert replayed.namespace_id == mine.namespace_id  # the command's own namespace
    with pytest.raises(EnvbranchError) as refused:
        scoped.namespaces.get(theirs.namespace_id)
    assert refused.value.status == 404
    assert scoped.namespaces.list().pagination.total == 1
