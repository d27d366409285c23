"""A schema-driven fuzz run of every API operation against the running stack.

Schemathesis reads the API's own OpenAPI document and sends what it allows and what
it does not; every answer must be what the document promises: never a 500, a status
it lists, the content type and schema it gives for that status. It runs once with an
admin key and once with a key scoped to one namespace, with a fixed seed, and draws
the identifiers of real resources often enough that the happy paths run too.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import engine
from schemathesis.engine import events

from envbranch import Client
from envbranch.demo import INPUTS, TEXT, search_stage
from tests.conftest import LiveStack

SEED = 8_2026
RUNS = ("admin", "namespace")  # the key the fuzzer sends: an admin's, or one namespace's
# Per operation, for the fuzzing phase; the examples and coverage phases add their own.
FUZZED_EXAMPLES = 6
# How often a path identifier, the X-Namespace header or a body reference is drawn from
# the real resources rather than generated.
REAL = 0.8


@dataclass(frozen=True)
class World:
    """A namespace with one resource of each kind, and a key that sees only it."""

    namespace: dict[str, str]  # name and ID
    resources: dict[str, list[str]]  # path family -> identifiers that exist
    scoped_key: str


def build_world(client: Client) -> World:
    name = f"fuzz-{uuid.uuid4().hex[:8]}"
    ns = client.namespaces.create({"namespace_name": name})
    client.namespace = ns.namespace_id
    bucket = client.buckets.create(
        {"bucket_name": "docs", "bucket_schema": {"properties": {"text": {"type": "text"}}}}
    )
    collection = client.collections.create(
        {
            "collection_name": "docs",
            "source": {"type": "bucket", "bucket_ids": ["docs"]},
            "feature_extractor": TEXT,
        }
    )
    client.buckets.add_objects(
        "docs", [{"key": f"d{i}", "text": f"document number {i}"} for i in range(3)]
    )
    retriever = client.retrievers.create(
        {
            "retriever_name": "search",
            "collection_identifiers": ["docs"],
            "stages": [search_stage(3)],
            "input_schema": INPUTS,
        }
    )
    taxonomy = client.taxonomies.create(
        {
            "taxonomy_name": "topics",
            "config": {
                "taxonomy_type": "flat",
                "retriever_id": "search",
                "input_mappings": [
                    {"input_key": "query", "source_type": "payload", "path": "text"}
                ],
                "source_collection": {"collection_id": "docs", "enrichment_fields": []},
            },
        }
    )
    client.retrievers.clone("search", {"retriever_name": "search-b"})
    client.refs.create({"ref_name": "live", "target_kind": "retriever", "target": "search"})
    for action in ("move", "promote", "rollback"):  # the happy paths do each once
        client.refs.create({"ref_name": action, "target_kind": "retriever", "target": "search"})
    client.refs.move("rollback", {"target": "search-b"})
    evaluation_set = client.evaluation_sets.create(
        {
            "evaluation_set_name": "golden",
            "set_type": "retriever",
            "queries": [
                {"query_id": "q1", "inputs": {"query": "document number 1"}, "judgments": {"d1": 1}}
            ],
        }
    )
    evaluation = client.evaluations.run({"evaluation_set": "golden", "candidate": "search"})
    clone = client.namespaces.clone(ns.namespace_id, {"namespace_name": f"{name}-clone"})
    scoped = client.keys.create("fuzzer", namespaces=[ns.namespace_id])
    assert scoped.api_key is not None
    ids = {
        "namespaces": [ns.namespace_id, name],
        "buckets": [bucket.bucket_id, "docs"],
        "collections": [collection.collection_id, "docs"],
        "retrievers": [retriever.retriever_id, "search", "ref:live"],
        "taxonomies": [taxonomy.taxonomy_id, "topics"],
        "refs": ["live"],
        "evaluation_sets": [evaluation_set.evaluation_set_id, "golden"],
        "evaluations": [evaluation.evaluation_id],
        "tasks": [clone.task_id],
    }
    ids["lineage"] = [ids[kind][0] for kind in ("namespaces", "buckets", "collections")]
    return World({"name": name, "id": ns.namespace_id}, ids, scoped.api_key)


def happy_paths(world: World, run: str) -> dict[str, dict[str, Any]]:
    """One request per operation that succeeds, by operation: its path identifier and
    body. The examples phase sends them before anything is generated."""
    ns, bucket, collection, retriever, taxonomy = (
        world.resources[family][0]
        for family in ("namespaces", "buckets", "collections", "retrievers", "taxonomies")
    )
    new = f"{world.namespace['name']}-new"
    flat = {
        "taxonomy_type": "flat",
        "retriever_id": retriever,
        "source_collection": {"collection_id": collection},
    }
    stages = [search_stage(3)]
    gate = {"thresholds": [{"metric": "ndcg@10", "min_change": -1.0}]}
    return {
        "POST /v1/namespaces": {"body": {"namespace_name": new}},
        "PATCH /v1/namespaces/{identifier}": {"path": ns, "body": {"description": run}},
        "POST /v1/namespaces/{identifier}/clone": {
            "path": ns,
            "body": {"namespace_name": f"{new}-clone", "vectors": "reuse"},
        },
        "POST /v1/buckets": {"body": {"bucket_name": new, "bucket_schema": {"properties": {}}}},
        "PATCH /v1/buckets/{identifier}": {"path": bucket, "body": {"description": run}},
        "POST /v1/buckets/{identifier}/objects": {
            "path": bucket,
            "body": {"objects": [{"key": run, "text": f"added by {run}"}]},
        },
        "POST /v1/collections": {
            "body": {
                "collection_name": new,
                "source": {"type": "bucket", "bucket_ids": [bucket]},
                "feature_extractor": TEXT,
            }
        },
        "PATCH /v1/collections/{identifier}": {"path": collection, "body": {"description": run}},
        "POST /v1/collections/{identifier}/clone": {
            "path": collection,
            "body": {"collection_name": f"{new}-clone"},
        },
        "POST /v1/collections/{identifier}/documents": {
            "path": collection,
            "body": {"documents": [{"document_id": run, "text": f"written by {run}"}]},
        },
        "POST /v1/collections/{identifier}/documents/delete": {
            "path": collection,
            "body": {"document_ids": [run]},
        },
        "POST /v1/collections/{identifier}/trigger": {"path": collection},
        "POST /v1/collections/{identifier}/apply-taxonomy": {
            "path": collection,
            "body": {"taxonomy_identifier": taxonomy},
        },
        "POST /v1/retrievers": {
            "body": {
                "retriever_name": new,
                "collection_identifiers": [collection],
                "stages": stages,
                "input_schema": INPUTS,
            }
        },
        "PATCH /v1/retrievers/{identifier}": {"path": retriever, "body": {"description": run}},
        "POST /v1/retrievers/{identifier}/clone": {
            "path": retriever,
            "body": {"retriever_name": f"{new}-clone"},
        },
        "POST /v1/retrievers/{identifier}/execute": {
            "path": retriever,
            "body": {"inputs": {"query": "document"}, "limit": 2},
        },
        "POST /v1/taxonomies": {"body": {"taxonomy_name": new, "config": flat}},
        "PATCH /v1/taxonomies/{identifier}": {"path": taxonomy, "body": {"description": run}},
        "POST /v1/taxonomies/{identifier}/clone": {
            "path": taxonomy,
            "body": {"taxonomy_name": f"{new}-clone"},
        },
        "POST /v1/taxonomies/{identifier}/classify": {
            "path": taxonomy,
            "body": {"documents": [{"text": "document number 2"}]},
        },
        "POST /v1/taxonomies/{identifier}/execute": {
            "path": taxonomy,
            "body": {"source_documents": [{"text": "document number 2"}]},
        },
        "POST /v1/refs": {
            "body": {"ref_name": new, "target_kind": "retriever", "target": retriever}
        },
        "POST /v1/refs/{name}/move": {"path": "move", "body": {"target": "search-b"}},
        "POST /v1/refs/{name}/promote": {
            "path": "promote",
            "body": {"candidate": "search-b", "evaluation_set": "golden", "gate": gate},
        },
        "POST /v1/refs/{name}/rollback": {"path": "rollback", "body": {"to": "previous"}},
        "POST /v1/evaluation_sets": {
            "body": {
                "evaluation_set_name": new,
                "set_type": "retriever",
                "queries": [{"query_id": "q", "inputs": {"query": "x"}, "judgments": {"d0": 1}}],
            }
        },
        "POST /v1/evaluations": {
            "body": {"evaluation_set": "golden", "candidate": "search", "baseline": "search-b"}
        },
        "POST /v1/keys": {"body": {"principal": new, "namespaces": [ns]}},
        "POST /v1/checkpoints": {"body": {"reason": run}},
        "GET /v1/diff": {"query": {"from": ns, "to": world.namespace["name"]}},
    }


def with_examples(document: dict[str, Any], world: World, run: str) -> dict[str, Any]:
    """The API's OpenAPI document with a happy path as each operation's example (and the
    namespace and the real identifiers as the parameters' examples)."""
    happy = happy_paths(world, run)
    for operations in document["paths"].values():
        # A fuzzed DELETE would remove the resources every other operation is fuzzed
        # against; deletes are tested in tests/test_api_delete.py.
        operations.pop("delete", None)
    document["paths"] = {path: ops for path, ops in document["paths"].items() if ops}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            example = happy.get(f"{method.upper()} {path}", {})
            family = path.split("/")[2]
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "X-Namespace":
                    parameter["example"] = world.namespace["id"]
                elif parameter["name"] == "Idempotency-Key":  # one request per key
                    parameter["example"] = f"{run} {method} {path}"
                elif parameter["in"] == "path":
                    parameter["example"] = example.get("path", world.resources[family][0])
                elif parameter["in"] == "query" and parameter["name"] in example.get("query", {}):
                    parameter["example"] = example["query"][parameter["name"]]
            if "body" in example:
                content = operation["requestBody"]["content"]["application/json"]
                content["example"] = example["body"]
    return document


@pytest.fixture
def world(live_stack: LiveStack) -> World:
    """A world of its own for each run: what one run changes, the other does not see."""
    with live_stack.client() as client:
        return build_world(client)


# Operations whose bodies follow rules the JSON Schema does not state: they answer 422
# to some bodies the OpenAPI document allows. Everywhere else a schema-valid request
# answered 422 fails the run (positive_data_acceptance).
RULES_BEYOND_THE_SCHEMA = {
    "POST /v1/buckets/{identifier}/objects": "an object has text or metadata; Mixpeek's "
    "blobs (one of them text) or objects, not both",
    "POST /v1/collections": "a bucket source has bucket_ids, a collection source a collection_id",
    "POST /v1/collections/{identifier}/clone": "the same; as_of_position before a data change",
    "POST /v1/namespaces/{identifier}/clone": "retrievers need collections, taxonomies "
    "retrievers; as_of_position before a data change",
    "POST /v1/collections/{identifier}/documents": "a document has text or a vector",
    "POST /v1/evaluation_sets": "a set has queries or documents, as its set_type says",
    "POST /v1/evaluations": "the set's queries fit the candidate (422 evaluation_failed)",
    "POST /v1/refs/{name}/promote": "a threshold has a rule, and the gate holds (gate_failed)",
    "POST /v1/refs/{name}/rollback": "exactly one of to, position and time",
    "POST /v1/retrievers": "a stage_id of no known type needs a stage_type",
    "POST /v1/retrievers/{identifier}/clone": "the same stage rule",
    "POST /v1/retrievers/{identifier}/execute": "the inputs the retriever's input_schema asks",
    "POST /v1/taxonomies": "hierarchical nodes form a tree; a node without retriever needs one",
    "POST /v1/taxonomies/{identifier}/clone": "the same tree rule",
    "POST /v1/taxonomies/{identifier}/classify": "the inputs the taxonomy's retriever asks",
    "POST /v1/taxonomies/{identifier}/execute": "the same",
    "POST /v1/collections/{identifier}/trigger": "not while the collection is reprocessed",
    "POST /v1/collections/{identifier}/apply-taxonomy": "taxonomy_identifier or taxonomy_id",
    "GET /v1/dlq": "since and until are times Python reads (RFC 3339 allows a leap second)",
}


def fuzz_config(url: str, world: World, api_key: str, coverage: bool) -> schemathesis.Config:
    """Every check, a fixed seed, the real resources' identifiers drawn often; the
    coverage phase (each field's boundaries and every way to break it) if asked."""

    def drawn(dictionary: str) -> dict[str, Any]:
        return {"dictionary": dictionary, "probability": REAL}

    path_parameters = {"tasks": "task_id", "refs": "name", "evaluations": "evaluation_id"}
    identifiers = [
        {
            "include-path-regex": f"^/v1/{family}/",
            "parameters": {f"path.{path_parameters.get(family, 'identifier')}": drawn(family)},
        }
        for family in world.resources
    ]
    rules = [
        {
            "include-name": label,
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "4xx"]}},
        }
        for label in RULES_BEYOND_THE_SCHEMA
    ]
    resources = world.resources
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": url,
            # A body larger than a command may hold is refused before it is read (413).
            "checks": {
                "negative_data_rejection": {
                    "expected-statuses": [
                        "400",
                        "401",
                        "403",
                        "404",
                        "405",
                        "406",
                        "409",
                        "413",
                        "415",
                        "422",
                        "428",
                        "429",
                        "5xx",
                    ]
                }
            },
            "auth": {"openapi": {"HTTPBearer": {"bearer": api_key}}},
            # No example database: a run replays nothing an earlier run saved.
            "generation": {"max-examples": FUZZED_EXAMPLES, "database": "none"},
            "phases": {
                # The happy paths as written, not with identifiers seen in other answers
                "examples": {"extra-data-sources": {"responses": False}},
                # Not DELETE: /v1/<kind>/list lies under /v1/<kind>/{identifier}, whose
                # DELETE deletes a resource named "list" (and deletes are not fuzzed).
                "coverage": {"enabled": coverage, "unexpected-methods": ["PUT"]},
            },
            "dictionaries": {
                **{family: {"values": ids} for family, ids in resources.items()},
                "references": {"values": resources["retrievers"] + resources["taxonomies"]},
            },
            "parameters": {
                "header.X-Namespace": drawn("namespaces"),
                "body.namespaces[*]": drawn("namespaces"),
                "body.source.bucket_ids[*]": drawn("buckets"),
                "body.source.collection_id": drawn("collections"),
                "body.collection_identifiers[*]": drawn("collections"),
                "body.config.retriever_id": drawn("retrievers"),
                "body.config.source_collection.collection_id": drawn("collections"),
                "body.candidate": drawn("references"),
                "body.baseline": drawn("references"),
                "body.target": drawn("references"),
                "body.evaluation_set": drawn("evaluation_sets"),
                "body.taxonomy_identifier": drawn("taxonomies"),
            },
            "operations": identifiers + rules,
        }
    )


@dataclass
class Findings:
    """What a fuzz run saw: the failed checks and every operation's answers."""

    failures: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    answers: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    errors: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per phase

    def report(self) -> str:
        lines = [f"{check}: {len(found)}" for check, found in sorted(self.failures.items())]
        for check, found in sorted(self.failures.items()):
            lines += [f"--- {check}", *found[:10]]
        seconds = ", ".join(f"{phase} {s:.0f}s" for phase, s in self.seconds.items())
        return "\n".join([*lines, *self.errors, f"phases: {seconds}"])


def fuzz(url: str, world: World, run: str, api_key: str) -> Findings:
    """Run every phase of schemathesis on every operation of the API at ``url``."""
    document = with_examples(httpx.get(f"{url}/openapi.json").json(), world, run)
    # The coverage phase is deterministic and slow: once, with the key that sees everything.
    config = fuzz_config(url, world, api_key, coverage=run == "admin")
    schema = schemathesis.openapi.from_dict(document, config=config)
    found = Findings()
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    found.answers[recorder.label][interaction.response.status_code] += 1
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.failure_info is not None:
                        case = recorder.cases[case_id].value
                        failure = check.failure_info.failure
                        answer = recorder.interactions.get(case_id)
                        found.failures[check.name].append(
                            f"{recorder.label}: {failure.title}: {failure.message[:300]}\n"
                            f"{_request(case)}\n  -> {_answer(answer)}"
                        )
        elif isinstance(event, events.PhaseStarted):
            found.seconds[event.phase.name.value] = -event.timestamp
        elif isinstance(event, events.PhaseFinished):
            found.seconds[event.phase.name.value] += event.timestamp
        elif isinstance(event, events.NonFatalError):
            found.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            found.errors.append(f"the fuzzer stopped: {event.exception!r}")
    return found


def _request(case: schemathesis.Case) -> str:
    return (
        f"  {case.method} {case.formatted_path} query={case.query} "
        f"headers={_shown(case.headers)} body={str(case.body)[:300]}"
    )


def _answer(interaction: Any) -> str:
    if interaction is None or interaction.response is None:
        return "no answer"
    response = interaction.response
    return f"{response.status_code} {response.content[:300]!r}"


def _shown(headers: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}


def operations(url: str) -> set[str]:
    """Every operation the fuzzer runs: all but the deletes (tests/test_api_delete.py)."""
    document = httpx.get(f"{url}/openapi.json").json()
    return {
        f"{method.upper()} {path}"
        for path, ops in document["paths"].items()
        for method in ops
        if method != "delete"
    }


# What a key for one namespace may not do: the fuzzer must be refused.
ADMIN_ONLY = {"POST /v1/keys", "POST /v1/checkpoints", "GET /v1/dlq", "POST /v1/dlq/redrive"}


@pytest.mark.slow  # about two minutes and a half, both runs
@pytest.mark.parametrize("run", RUNS)
def test_fuzzing_every_operation_finds_no_answer_the_openapi_document_does_not_promise(
    live_stack: LiveStack, world: World, run: str
) -> None:
    api_key = live_stack.admin_key if run == "admin" else world.scoped_key

    found = fuzz(live_stack.url, world, run, api_key)

    assert not found.failures and not found.errors, found.report()
    every = operations(live_stack.url)
    assert every <= found.answers.keys(), f"never called: {every - found.answers.keys()}"
    succeeded = {label for label in every if any(200 <= s < 300 for s in found.answers[label])}
    failed = {label: dict(found.answers[label]) for label in every - succeeded}
    if run == "admin":
        assert succeeded == every, f"never succeeded: {failed}"
    else:
        assert succeeded == every - ADMIN_ONLY, f"never succeeded: {failed}"
        assert all(403 in found.answers[label] for label in ADMIN_ONLY)
