"""Dead letters you can act on: list rejected commands and redrive them, over the API and
from the command line, against a live stack."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from domain.envelopes import Topics
from envbranch.publisher import Publisher
from tests.conftest import LiveStack
from tests.support import wait_until

TEXT = {"feature_extractor_name": "text_extractor", "version": "v1", "params": {"dim": 8}}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def publisher(stack: LiveStack) -> Publisher:
    return Publisher(
        stack.env["KAFKA_BOOTSTRAP_SERVERS"], Topics(stack.env["ENVBRANCH_TOPIC_PREFIX"])
    )


def namespace(http: httpx.Client) -> str:
    name = f"dlq-{uuid.uuid4().hex[:8]}"
    http.post("/v1/namespaces", json={"namespace_name": name}).raise_for_status()
    bucket = {"bucket_name": "b", "bucket_schema": {"properties": {}}}
    http.post("/v1/buckets", json=bucket, headers={"X-Namespace": name}).raise_for_status()
    return name


def create_collection(http: httpx.Client, ns: str, name: str) -> None:
    body = {
        "collection_name": name,
        "source": {"type": "bucket", "bucket_ids": ["b"]},
        "feature_extractor": TEXT,
    }
    http.post("/v1/collections", json=body, headers={"X-Namespace": ns}).raise_for_status()


def rejected_write(stack: LiveStack, ns: str, collection: str) -> str:
    """A document write into a collection that does not exist (yet), sent to the topic."""
    command_id = str(uuid.uuid4())
    body = {
        "namespace_identifier": ns,
        "collection_identifier": collection,
        "documents": [{"document_id": "d1", "vector": [1.0] + [0.0] * 7}],
    }
    outcome = publisher(stack).publish(
        "collections.documents.write", body, actor="tester", command_id=command_id
    )
    assert outcome.status == "rejected", outcome
    assert outcome.error is not None and outcome.error["code"] == "not_found"
    return command_id


def entries_of(http: httpx.Client, command_id: str, **params: Any) -> list[dict[str, Any]]:
    """The DLQ entries of a command, newest first."""
    answer = http.get("/v1/dlq", params={"limit": 1000, **params})
    answer.raise_for_status()
    return [e for e in answer.json()["results"] if e["command_id"] == command_id]


@pytest.fixture
def http(live_stack: LiveStack) -> Any:
    with httpx.Client(
        base_url=live_stack.url, headers=bearer(live_stack.admin_key), timeout=60
    ) as client:
        yield client


def documents(http: httpx.Client, ns: str, collection: str) -> int:
    answer = http.get(f"/v1/collections/{collection}/index", headers={"X-Namespace": ns})
    answer.raise_for_status()
    return int(answer.json()["documents"])


def test_a_command_rejected_for_a_missing_collection_is_redriven_once_it_exists(
    live_stack: LiveStack, http: httpx.Client
) -> None:
    ns = namespace(http)
    command_id = rejected_write(live_stack, ns, "later")
    (entry,) = entries_of(http, command_id, code="not_found")
    assert entry["command_type"] == "collections.documents.write"
    assert entry["command"]["body"]["collection_identifier"] == "later"
    assert entry["applied"] is False and "later" in entry["message"]
    # filters: another code or type leaves it out
    for params in ({"code": "validation_error"}, {"command_type": "collections.create"}):
        listed = http.get("/v1/dlq", params={"limit": 1000, **params}).json()["results"]
        assert command_id not in [e["command_id"] for e in listed]
    # redriven before the cause is fixed: rejected again, nothing applied
    offset = entry["dlq_offset"]
    (again,) = http.post("/v1/dlq/redrive", json={"dlq_offsets": [offset]}).json()["results"]
    assert again["outcome"] == "rejected" and "not_found" in again["message"]

    create_collection(http, ns, "later")
    (first,) = http.post("/v1/dlq/redrive", json={"dlq_offsets": [offset]}).json()["results"]
    assert first["outcome"] == "applied" and first["command_id"] == command_id
    assert documents(http, ns, "later") == 1
    later, first_entry = entries_of(http, command_id)  # the rejected redrive's entry, and it
    assert later["dlq_offset"] > offset and first_entry["dlq_offset"] == offset
    assert later["applied"] is True and first_entry["applied"] is True
    # a second redrive, of this entry or of the later rejection, sends nothing
    offsets = [offset, later["dlq_offset"], offset, offset + 10**6]  # the first one once
    second = http.post("/v1/dlq/redrive", json={"dlq_offsets": offsets})
    outcomes = [r["outcome"] for r in second.json()["results"]]
    assert outcomes == ["already_applied", "already_applied", "not_found"]
    audit = http.get("/v1/audit", params={"command_id": command_id, "limit": 100}).json()
    written = [e for e in audit["results"] if e["type"] == "Collection.DocumentsWritten"]
    assert len(written) == 1  # applied once


def test_the_dead_letter_queue_is_for_admin_keys_only(
    live_stack: LiveStack, http: httpx.Client
) -> None:
    ns = namespace(http)
    scoped = http.post("/v1/keys", json={"principal": "scoped", "namespaces": [ns]}).json()
    with httpx.Client(base_url=live_stack.url, headers=bearer(scoped["api_key"])) as other:
        assert other.get("/v1/dlq").status_code == 403
        answer = other.post("/v1/dlq/redrive", json={"dlq_offsets": [0]})
        assert answer.status_code == 403
        assert "every namespace" in answer.json()["error"]["message"]
    for since in ("2026-01-01T00:00:00", "0.5", "yesterday"):
        answer = http.get("/v1/dlq", params={"since": since})
        assert answer.status_code == 422 and "time zone" in answer.json()["error"]["message"]
    assert http.get("/v1/dlq", params={"since": "2026-01-01T00:00:00Z"}).status_code == 200
    assert http.post("/v1/dlq/redrive", json={"dlq_offsets": [False]}).status_code == 422
    assert http.post("/v1/dlq/redrive", json={"dlq_offsets": [0] * 101}).status_code == 422
    assert http.post("/v1/dlq/redrive", json={"dlq_offsets": []}).status_code == 422


def cli(stack: LiveStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envbranch", "dlq", *args],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_line_lists_and_redrives_dead_letters(
    live_stack: LiveStack, http: httpx.Client
) -> None:
    ns = namespace(http)
    command_id = rejected_write(live_stack, ns, "cli-later")
    listed = cli(live_stack, "list", "--code", "not_found", "--json", "--limit", "1000")
    assert listed.returncode == 0, listed.stderr
    (entry,) = [e for e in json.loads(listed.stdout)["results"] if e["command_id"] == command_id]
    offset = str(entry["dlq_offset"])
    table = cli(live_stack, "list", "--type", "collections.documents.write", "--limit", "1000")
    assert command_id in table.stdout and "not_found" in table.stdout

    refused = cli(live_stack, "redrive", offset, "--timeout", "60")
    assert refused.returncode == 1 and "rejected again" in refused.stdout
    create_collection(http, ns, "cli-later")
    redriven = cli(live_stack, "redrive", offset, "--timeout", "60")
    assert redriven.returncode == 0, redriven.stdout + redriven.stderr
    assert f"{command_id} applied" in redriven.stdout
    # the command line answers once the receipt is on the events topic: the read model
    # and the vector store follow
    wait_until(lambda: documents(http, ns, "cli-later") == 1, 60, "the redriven document")
    wait_until(lambda: all(e["applied"] for e in entries_of(http, command_id)), 60, "the receipt")
    twice = cli(live_stack, "redrive", offset)
    assert twice.returncode == 0 and "applied already: not sent again" in twice.stdout
    missing = cli(live_stack, "redrive", "999999999")
    assert missing.returncode == 1 and "not found" in missing.stdout
    bad = cli(live_stack, "list", "--since", "yesterday")
    assert bad.returncode == 2 and "--since must be an ISO-8601 time" in bad.stderr


def test_an_entry_that_is_not_a_command_is_never_sent_again(
    live_stack: LiveStack, http: httpx.Client
) -> None:
    """Not JSON, or a command without its command_id: sending it again could only fail, or
    apply it under an ID made up now, once per redrive."""
    topics = Topics(live_stack.env["ENVBRANCH_TOPIC_PREFIX"])
    producer = Producer({"bootstrap.servers": live_stack.env["KAFKA_BOOTSTRAP_SERVERS"]})
    marker = uuid.uuid4().hex
    no_id = {"type": "namespaces.create", "body": {"namespace_name": f"x-{marker}"}}
    for raw in (f"not json {marker}".encode(), json.dumps(no_id).encode()):
        producer.produce(topics.commands, raw)
    assert producer.flush(30) == 0

    def rejected() -> list[int]:
        listed = http.get("/v1/dlq", params={"limit": 1000}).json()["results"]
        found = [e["dlq_offset"] for e in listed if marker in json.dumps(e)]
        return found if len(found) == 2 else []

    offsets = wait_until(rejected, 60, "both on the DLQ")
    answer = http.post("/v1/dlq/redrive", json={"dlq_offsets": offsets}).json()["results"]
    assert [r["outcome"] for r in answer] == ["rejected", "rejected"]
    for offset in offsets:
        refused = cli(live_stack, "redrive", str(offset))
        assert refused.returncode == 1 and "not a readable command" in refused.stdout
    names = http.get("/v1/namespaces", params={"limit": 1000}).json()["results"]
    assert f"x-{marker}" not in [n["namespace_name"] for n in names]
