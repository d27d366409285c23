"""Every kind of bad command ends in the DLQ with a specific reason; nothing is written."""

from __future__ import annotations

import dataclasses
import json

from domain.envelopes import Topics
from envbranch.settings import Settings
from tests import scenario
from tests.support import (
    BackgroundStack,
    command,
    dlq_entries,
    encode,
    events_until,
    produce,
    read_events,
    receipts,
    wait_until,
)

MISSING_COLLECTION = "col_" + "0" * 32
A_RETRIEVER_ID = "ret_" + "1" * 32
LIMIT = 64 * 1024


def bad_inputs() -> list[tuple[str, bytes, str, str | None]]:
    """(what, message bytes, expected code, expected field)."""
    collection_create = scenario.production()[2]
    no_extractor = json.loads(json.dumps(collection_create))
    del no_extractor["body"]["feature_extractor"]
    no_extractor["body"]["collection_name"] = "other"
    return [
        ("not UTF-8", b"\xff\xfe\x00garbage", "not_utf8", None),
        ("not JSON", b'{"command_id": "x", ', "invalid_json", None),
        ("JSON but not an object", b"[1, 2, 3]", "invalid_envelope", None),
        (
            "envelope without command_id",
            encode({"type": "namespaces.create", "body": {}, "actor": "a"}),
            "invalid_envelope",
            "command_id",
        ),
        (
            "unknown command type",
            encode(command("namespaces.explode", {"namespace_identifier": "prod"})),
            "unknown_command_type",
            "type",
        ),
        (
            "required field missing",
            encode(no_extractor),
            "validation_error",
            "body.feature_extractor",
        ),
        (
            "field of the wrong type",
            encode(
                command(
                    "retrievers.create",
                    {
                        "namespace_identifier": "prod",
                        "retriever_name": "r",
                        "collection_identifiers": ["docs-text"],
                        "stages": "feature_search",
                    },
                )
            ),
            "validation_error",
            "body.stages",
        ),
        (
            "unknown field",
            encode(command("namespaces.create", {"namespace_name": "n2", "colour": "red"})),
            "validation_error",
            "body.colour",
        ),
        (
            "name that is not a name",
            encode(command("namespaces.create", {"namespace_name": "bad name!"})),
            "validation_error",
            "body.namespace_name",
        ),
        (
            "unknown ID",
            encode(
                command(
                    "collections.clone",
                    {
                        "namespace_identifier": "prod",
                        "collection_identifier": MISSING_COLLECTION,
                        "collection_name": "c2",
                    },
                )
            ),
            "not_found",
            "body.collection_identifier",
        ),
        (
            "unknown namespace",
            encode(
                command(
                    "buckets.create",
                    {
                        "namespace_identifier": "nowhere",
                        "bucket_name": "b",
                        "bucket_schema": {"properties": {}},
                    },
                )
            ),
            "not_found",
            "body.namespace_identifier",
        ),
        (
            "ID of the wrong kind",
            encode(
                command(
                    "retrievers.create",
                    {
                        "namespace_identifier": "prod",
                        "retriever_name": "r",
                        "collection_identifiers": [A_RETRIEVER_ID],
                        "stages": [scenario.SEARCH_STAGE],
                    },
                )
            ),
            "wrong_kind",
            "body.collection_identifiers[0]",
        ),
        (
            "duplicate name",
            encode(command("namespaces.create", {"namespace_name": "prod"})),
            "duplicate_name",
            "body.namespace_name",
        ),
        (
            "change of an immutable field",
            encode(
                command(
                    "collections.update",
                    {
                        "namespace_identifier": "prod",
                        "collection_identifier": "docs-text",
                        "feature_extractor": scenario.MINILM,
                    },
                )
            ),
            "immutable_field",
            "body.feature_extractor",
        ),
        (
            "namespace clone leaving references outside",
            encode(
                command(
                    "namespaces.clone",
                    {
                        "namespace_identifier": "prod",
                        "namespace_name": "half",
                        "include_resources": {"collections": False},
                    },
                )
            ),
            "invalid_include_resources",
            "body.include_resources.retrievers",
        ),
        (
            "command_id reused for another command",
            encode(command("namespaces.create", {"namespace_name": "other"}, command_id="first")),
            "command_id_reused",
            "command_id",
        ),
        (
            "oversized message",
            encode(
                command("namespaces.create", {"namespace_name": "big", "description": "x" * LIMIT})
            ),
            "message_too_large",
            None,
        ),
    ]


def test_each_bad_input_goes_to_the_dlq_with_its_reason_and_writes_nothing(
    settings: Settings, bootstrap: str, topics: Topics
) -> None:
    settings = dataclasses.replace(settings, max_command_bytes=LIMIT)
    setup = [
        command("namespaces.create", {"namespace_name": "prod"}, command_id="first"),
        *scenario.production()[1:3],
    ]
    cases = bad_inputs()
    last = command("namespaces.create", {"namespace_name": "after-the-bad-ones"})
    with BackgroundStack(settings, bootstrap, ("command-processor", "relay")):
        produce(bootstrap, topics.commands, [encode(c) for c in setup])
        events_until(bootstrap, topics, lambda ev: len(receipts(ev)) == len(setup))
        before = read_events(bootstrap, topics)
        produce(bootstrap, topics.commands, [raw for _, raw, _, _ in cases] + [encode(last)])
        events = events_until(
            bootstrap,
            topics,
            lambda ev: last["command_id"] in receipts(ev),
            what="the last command",
        )
        entries = wait_until(
            lambda: (d := dlq_entries(bootstrap, topics)) and len(d) >= len(cases) and d,
            what="every bad input on the DLQ",
        )

    assert len(entries) == len(cases)
    for (what, raw, code, field), entry in zip(cases, entries, strict=True):
        assert entry["value"] == raw, what
        assert entry["code"] == code, f"{what}: {entry['error']}"
        assert entry["error"]["message"], what
        if field is not None:
            assert entry["error"].get("field") == field, f"{what}: {entry['error']}"
    # Nothing was written for any of them: only the last good command added events.
    new = events[len(before) :]
    assert {e.command_id for e in new} == {last["command_id"]}
