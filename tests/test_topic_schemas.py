"""The topics' contract as JSON Schema files (schemas/): committed as the models generate
them, one for every command type and event type, and true of real commands and events.

Validated with jsonschema-rs, a validator that knows nothing of pydantic, as a client in
another language would load them."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from application.environments import Environments
from consumers.relay import envelope_bytes
from contract.commands import BODIES, INTERNAL_COMMANDS, command_from_document
from contract.schemas import REGENERATE, schema_files
from domain.envelopes import envelope_of
from domain.errors import CommandRejected
from domain.events import EVENT_TYPES
from tests.support import command
from tests.test_readme import example_commands

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
SQLITE = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:"}

# Event types no command writes, so the scenario below cannot show them on the topic:
# evaluation sets never change nor go; the library makes a ``Created`` class for an
# aggregate that is created by another event (Accepted, Requested, Recorded) and never
# uses it.
NOT_WRITTEN = {
    "EvaluationSet.Cloned",
    "EvaluationSet.Renamed",
    "EvaluationSet.DescriptionChanged",
    "EvaluationSet.Deleted",
    "CommandReceipt.Created",
    "Checkpoint.Created",
    "Evaluation.Created",
}


@functools.cache
def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@functools.cache
def validator(name: str) -> Any:
    return jsonschema_rs.validator_for(schema(name), validate_formats=True)


def problems(name: str, document: Any) -> list[str]:
    return [f"{e.instance_path}: {e.message}" for e in validator(name).iter_errors(document)]


def index() -> dict[str, Any]:
    return schema("index.json")


# --- the files are the models' ----------------------------------------------------------


def test_the_committed_schemas_are_what_the_models_generate() -> None:
    expected = schema_files()
    on_disk = {p.relative_to(SCHEMAS).as_posix(): p for p in sorted(SCHEMAS.rglob("*.json"))}
    drift = [f"schemas/{name} is missing" for name in expected if name not in on_disk]
    drift += [f"schemas/{name} describes no type now" for name in on_disk if name not in expected]
    drift += [
        f"schemas/{name} differs from what the models generate"
        for name, text in expected.items()
        if name in on_disk and on_disk[name].read_text(encoding="utf-8") != text
    ]
    assert not drift, "\n".join(
        [*drift, f"regenerate them from the repository root: .venv/bin/python -m {REGENERATE}"]
    )


def test_every_command_type_and_every_event_type_has_its_schema() -> None:
    commands, events = index()["commands"], index()["events"]
    assert set(commands["types"]) == set(BODIES)
    assert set(commands["internal"]) == INTERNAL_COMMANDS
    assert set(events["types"]) == set(EVENT_TYPES)
    for name in [commands["envelope"], *commands["types"].values()]:
        assert schema(name)["$id"] == name
    for event_type, name in events["types"].items():
        assert schema(name)["properties"]["type"]["const"] == event_type
    assert schema(commands["envelope"])["properties"]["type"]["enum"] == sorted(BODIES)
    assert schema(events["envelope"])["properties"]["type"]["enum"] == sorted(EVENT_TYPES)


def test_every_schema_is_draft_2020_12_and_stands_alone() -> None:
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for path in sorted(SCHEMAS.glob("*/*.json")):
        document = schema(path.relative_to(SCHEMAS).as_posix())
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert jsonschema_rs.meta.is_valid(document), path
        assert all(ref.startswith("#/$defs/") for ref in refs(document)), path


# --- real commands and events validate ----------------------------------------------------


def more_commands() -> list[dict[str, Any]]:
    """After the README's examples: a promotion its gate refuses, renames, a released
    namespace name claimed again, and deletes (of resources, and of that new namespace)."""
    ns = {"namespace_identifier": "prod"}
    runs = [
        {"target_id": "article-search", "metrics": {"ndcg@10": 0.5}},
        {"target_id": "article-search-rerank", "metrics": {"ndcg@10": 0.74}},
    ]
    evaluation = {"evaluation_id": "eval_00000000000000000000000000000002", "runs": runs}
    gate = {"thresholds": [{"metric": "ndcg@10", "min_change": -0.01}]}
    candidate = {"ref_name": "production", "candidate": "article-search", "gate": gate}
    return [
        command(
            "evaluations.record",
            {**ns, "evaluation_set_identifier": "golden", "k": 10, **evaluation},
        ),
        command(
            "refs.promote",
            {**ns, **candidate, "evaluation_id": evaluation["evaluation_id"]},
        ),
        command(
            "collections.update",
            {**ns, "collection_identifier": "articles-text", "collection_name": "texts"},
        ),
        command(
            "retrievers.update",
            {**ns, "retriever_identifier": "article-search", "description": "v1"},
        ),
        command(
            "taxonomies.update",
            {**ns, "taxonomy_identifier": "topics", "taxonomy_name": "labels"},
        ),
        command("buckets.update", {**ns, "bucket_identifier": "articles", "bucket_name": "news"}),
        command("namespaces.update", {**ns, "namespace_name": "prod-renamed"}),
        command("namespaces.create", {"namespace_name": "prod"}),
        *deletes({"namespace_identifier": "prod-renamed"}),
        command("namespaces.delete", {"namespace_identifier": "prod"}),
    ]


def deletes(ns: dict[str, str]) -> list[dict[str, Any]]:
    """One delete of each kind of resource, by the names the renames gave them."""
    return [
        command("taxonomies.delete", {**ns, "taxonomy_identifier": "labels"}),
        command("retrievers.delete", {**ns, "retriever_identifier": "article-search"}),
        command("collections.delete", {**ns, "collection_identifier": "texts"}),
        command("buckets.delete", {**ns, "bucket_identifier": "news"}),
    ]


def progress_commands(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the vector processor would report for the tasks the commands started."""
    reports = []
    for event in events:
        task_id = event["aggregate_id"]
        if event["type"] == "CloneTask.Copying":
            for clone in sorted(event["data"]["copies"]):
                report = {"task_id": task_id, "collection_id": clone, "copied": 3, "total": 3}
                reports.append(command("tasks.copy_progress", {**report, "done": True}))
        kind = {"ReprocessTask.Created": "reprocess", "ApplyTaxonomyTask.Created": "apply"}
        if event["type"] in kind:
            report = {"task_id": task_id, "done": 1, "total": 2, "finished": False}
            progress = f"tasks.{kind[event['type']]}_progress"
            reports.append(command(progress, report))
            reports.append(command(progress, {**report, "done": 2, "finished": True}))
    return reports


@pytest.fixture(scope="module")
def scenario() -> tuple[list[dict[str, Any]], list[bytes]]:
    """Every kind of command, run in memory; the commands, and their events as the relay
    publishes them and as ``envelope_of`` writes them (its general way)."""
    app = Environments(env=SQLITE)
    commands = example_commands() + more_commands()
    for document in commands:
        app.execute(command_from_document(document))
    so_far = {event["position"]: event for event in map(json.loads, published(app))}
    for document in progress_commands(list(so_far.values())):
        app.execute(command_from_document(document))
        commands.append(document)
    return commands, published(app)


def published(app: Environments) -> list[bytes]:
    """Each stored event twice: as the relay publishes it, and through ``envelope_of``."""
    found = []
    for notification in app.recorder.select_notifications(1, 10**6):
        found.append(envelope_bytes(notification, app.mapper))
        event = app.mapper.to_domain_event(notification)
        found.append(envelope_of(notification.id, event).to_bytes())
    return found


def test_every_command_of_every_type_validates_as_envelope_and_as_body(
    scenario: tuple[list[dict[str, Any]], list[bytes]],
) -> None:
    commands, _ = scenario
    assert {c["type"] for c in commands} == set(BODIES)
    for document in commands:
        assert problems("commands/envelope.json", document) == [], document
        assert problems(index()["commands"]["types"][document["type"]], document["body"]) == []


def test_every_event_on_the_topic_validates_as_envelope_and_as_its_type(
    scenario: tuple[list[dict[str, Any]], list[bytes]],
) -> None:
    _, records = scenario
    seen = set()
    for raw in records:
        event = json.loads(raw)
        seen.add(event["type"])
        assert problems("events/envelope.json", event) == [], raw
        assert problems(index()["events"]["types"][event["type"]], event) == [], raw
    assert set(EVENT_TYPES) - seen == NOT_WRITTEN


# --- what does not follow the contract is refused -----------------------------------------


def _valid_clone() -> dict[str, Any]:
    body = {"namespace_identifier": "prod", "collection_identifier": "articles-text"}
    return command("collections.clone", {**body, "collection_name": "articles-copy"})


def _without(document: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != key}


WRONG_ENVELOPES = {
    "no actor": _without(_valid_clone(), "actor"),
    "an unknown type": {**_valid_clone(), "type": "collections.explode"},
    "a key the envelope does not have": {**_valid_clone(), "priority": 1},
    "a body that is no object": {**_valid_clone(), "body": ["articles-copy"]},
}
WRONG_BODIES = {
    "a body without a required field": _without(_valid_clone()["body"], "collection_name"),
    "a name in the form of an ID": {**_valid_clone()["body"], "collection_name": "col_" + "0" * 32},
    "a key the body does not have": {**_valid_clone()["body"], "vectors": "reuse"},
}
WRONG_COMMANDS = {
    **WRONG_ENVELOPES,
    **{what: {**_valid_clone(), "body": body} for what, body in WRONG_BODIES.items()},
    "an update of what a collection computes": command(
        "collections.update",
        {"namespace_identifier": "prod", "collection_identifier": "articles-text"}
        | {"feature_extractor": {"feature_extractor_name": "other"}},
    ),
    "a count that is true instead of a number": command(
        "tasks.copy_progress",
        {"task_id": "task_1", "collection_id": "col_1", "copied": True, "total": 3, "done": False},
    ),
}


def test_the_valid_command_the_wrong_ones_are_made_from_is_valid() -> None:
    assert problems("commands/envelope.json", _valid_clone()) == []
    command_from_document(_valid_clone())


@pytest.mark.parametrize("document", WRONG_COMMANDS.values(), ids=WRONG_COMMANDS.keys())
def test_a_command_the_processor_rejects_is_refused_by_the_envelope_schema(
    document: dict[str, Any],
) -> None:
    assert problems("commands/envelope.json", document) != []
    with pytest.raises(CommandRejected):
        command_from_document(document)


@pytest.mark.parametrize("body", WRONG_BODIES.values(), ids=WRONG_BODIES.keys())
def test_a_body_the_processor_rejects_is_refused_by_its_type_schema(body: dict[str, Any]) -> None:
    assert problems("commands/collections.clone.json", body) != []


def test_an_event_that_lacks_a_field_or_names_another_type_is_refused(
    scenario: tuple[list[dict[str, Any]], list[bytes]],
) -> None:
    _, records = scenario
    cloned = next(e for e in map(json.loads, records) if e["type"] == "Collection.Cloned")
    own = "events/Collection.Cloned.json"
    assert problems(own, cloned) == []

    no_mode = copy.deepcopy(cloned)
    del no_mode["data"]["vector_mode"]
    renamed = {**cloned, "type": "Bucket.Created"}
    unknown = {**cloned, "type": "Collection.Exploded"}
    unknown_key = copy.deepcopy(cloned)
    unknown_key["data"]["status"] = "ready"  # derived by readers from vector_mode, not sent
    no_time = _without(cloned, "occurred_at")
    for wrong in (no_mode, renamed, unknown, unknown_key, no_time):
        assert problems("events/envelope.json", wrong) != [], wrong
        assert problems(own, wrong) != [], wrong
