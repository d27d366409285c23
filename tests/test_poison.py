"""No message can stop the stack: any bytes on any topic, any JSON in any request."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg.errors
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from consumers.dead_letters import MAX_ERROR_HEADER, error_header
from contract.commands import decode_command
from domain import json_limits
from domain.envelopes import POSITION_HEADER, EventEnvelope, Topics
from domain.errors import CommandRejected, ErrorCode
from envbranch.settings import Settings
from projections.faust_app import ATTEMPTS_BEFORE_PASSING_OVER, apply_until_done, decode_events
from projections.sql import is_transient
from tests.conftest import LiveStack, start_live_stack
from tests.support import (
    BackgroundStack,
    command,
    dlq_entries,
    encode,
    events_until,
    receipts,
    run,
    spawn,
    wait_until,
)
from tests.test_vectors_e2e import environment

DEEP = 1000  # the probe that stopped the whole stack: a description nesting 1,000 arrays


def deeply_nested(command_id: str, depth: int = DEEP) -> bytes:
    description = "[" * depth + "]" * depth
    return (
        f'{{"command_id":"{command_id}","type":"namespaces.create","actor":"a",'
        f'"body":{{"namespace_name":"{command_id}","description":{description}}}}}'
    ).encode()


# (what, message bytes, DLQ code) for messages that break one limit of domain.json_limits
LIMIT_BREAKERS: list[tuple[str, bytes, str]] = [
    ("1,000 nested arrays", deeply_nested("deep"), "too_deeply_nested"),
    ("65 nested objects", ('{"a":' * 65 + "1" + "}" * 65).encode(), "too_deeply_nested"),
    (
        "NaN in free JSON",
        encode(command("namespaces.create", {"namespace_name": "n"}))[:-1] + b',"x":NaN}',
        "validation_error",
    ),
    (
        "Infinity in a bucket schema",
        b'{"command_id":"inf","type":"buckets.create","actor":"a","body":{'
        b'"namespace_identifier":"p","bucket_name":"b","bucket_schema":'
        b'{"properties":{"t":{"type":"string","max":Infinity}}}}}',
        "validation_error",
    ),
    (
        "a literal that overflows to infinity",
        b'{"command_id":"big","type":"namespaces.create","actor":"a","body":'
        b'{"namespace_name":"n","description":"d"},"issued_at":null,"extra":1e400}',
        "validation_error",
    ),
    (
        "an integer of 5,000 digits, infinite as a double",
        b'{"command_id":"digits","type":"x","actor":"a","body":{"n":' + b"9" * 5000 + b"}}",
        "validation_error",
    ),
    (
        "as_of_position 1e30",
        encode(
            command(
                "namespaces.clone",
                {"namespace_identifier": "p", "namespace_name": "c", "as_of_position": 1e30},
            )
        ),
        "validation_error",
    ),
    (
        "as_of_position 2^63",
        encode(
            command(
                "namespaces.clone",
                {"namespace_identifier": "p", "namespace_name": "c", "as_of_position": 2**63},
            )
        ),
        "validation_error",
    ),
    (
        "as_of_position true",
        encode(
            command(
                "namespaces.clone",
                {"namespace_identifier": "p", "namespace_name": "c", "as_of_position": True},
            )
        ),
        "validation_error",
    ),
    (
        "a lone surrogate",
        b'{"command_id":"sur","type":"namespaces.create","actor":"a",'
        b'"body":{"namespace_name":"n","description":"\\ud800"}}',
        "validation_error",
    ),
    (
        "a vector component beyond float32",
        encode(
            command(
                "collections.documents.write",
                {
                    "namespace_identifier": "p",
                    "collection_identifier": "c",
                    "documents": [{"vector": [1.0, 1e300]}],
                },
            )
        ),
        "validation_error",
    ),
]


# --- the decoder alone: any bytes become a command or a CommandRejected -------------------


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(raw=st.binary(max_size=300))
def test_decoding_any_bytes_yields_a_command_or_a_rejection(raw: bytes) -> None:
    try:
        decode_command(raw)
    except CommandRejected as e:
        assert e.code and e.message


@settings(max_examples=400, deadline=None)
@given(
    body=json_values,
    type_=st.sampled_from(["namespaces.create", "buckets.create", "refs.rollback", "x"]),
)
def test_decoding_any_json_yields_a_command_or_a_rejection(body: Any, type_: str) -> None:
    document = {"command_id": "c", "type": type_, "actor": "a", "body": body}
    raw = json.dumps(document, allow_nan=True).encode()
    try:
        decode_command(raw)
    except CommandRejected as e:
        assert e.code and e.message


@pytest.mark.parametrize("depth", [DEEP, 10_000, 100_000])
def test_nesting_beyond_the_limit_is_refused_as_too_deeply_nested(depth: int) -> None:
    with pytest.raises(CommandRejected) as refused:
        decode_command(deeply_nested("d", depth))
    assert refused.value.code == "too_deeply_nested"
    assert str(json_limits.MAX_DEPTH) in refused.value.message


def test_nesting_up_to_the_limit_is_read() -> None:
    # the body is at depth 1 of the envelope, so the description may nest 62 arrays more
    document = json_limits.parse(deeply_nested("d", json_limits.MAX_DEPTH - 2))
    assert document["command_id"] == "d"


@pytest.mark.parametrize("what,raw,code", LIMIT_BREAKERS, ids=[c[0] for c in LIMIT_BREAKERS])
def test_each_limit_breaker_is_refused_with_its_code(what: str, raw: bytes, code: str) -> None:
    with pytest.raises(CommandRejected) as refused:
        decode_command(raw)
    assert refused.value.code == code, refused.value.message


def test_an_integer_beyond_64_bits_in_free_json_is_read_as_a_double() -> None:
    body = {"namespace_identifier": "p", "bucket_identifier": "b"}
    objects = [{"text": "t", "metadata": {"n": 2**64, "small": 2**63 - 1}}]
    decoded = decode_command(encode(command("buckets.objects.add", {**body, "objects": objects})))
    metadata = decoded.body.objects[0].metadata  # type: ignore[attr-defined]
    assert metadata == {"n": float(2**64), "small": 2**63 - 1}
    assert type(metadata["n"]) is float and type(metadata["small"]) is int


def test_vectors_of_finite_floats_pass_and_any_non_finite_one_is_named() -> None:
    assert json_limits.parse(b"[1.5, -2.0, 3e38]") == [1.5, -2.0, 3e38]
    assert json_limits.parse(b"[1e308, 1e308]") == [1e308, 1e308]  # finite, sum overflows
    for raw in (b"[1.0, 2.0, -1e400]", b"[1.0, 1e400, -1e400]"):
        with pytest.raises(CommandRejected) as refused:
            json_limits.parse(raw)
        assert refused.value.field in ("[1]", "[2]")
    assert math.isfinite(json_limits.parse(b"[0.1]")[0])


# --- the command processor, against the real broker ---------------------------------------


async def _produce_records(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None, list]]
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=8 * 1024 * 1024
    )
    await producer.start()
    try:
        for value, key, headers in records:
            if value is None and key is None:
                key = b"a null value needs a key"  # Kafka's rule, not ours
            await producer.send_and_wait(topic, value, key=key, headers=headers, partition=0)
    finally:
        await producer.stop()


def produce_records(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None, list]]
) -> None:
    """Publish (value, key, headers) records in order, to partition 0."""
    run(_produce_records(bootstrap, topic, records))


poison_values = st.one_of(
    st.binary(max_size=200),
    st.none(),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.builds(
        lambda command_id, body: json.dumps(
            {"command_id": command_id.hex, "type": "namespaces.create", "actor": "a", "body": body},
            allow_nan=True,
        ).encode(),
        st.uuids(),
        json_values,
    ),
    st.sampled_from([raw for _, raw, _ in LIMIT_BREAKERS] + [deeply_nested("deep2")]),
)
poison_records = st.tuples(
    poison_values,
    st.none() | st.binary(max_size=20),  # keys, UTF-8 or not
    st.lists(st.tuples(st.text(max_size=10), st.binary(max_size=20)), max_size=3),
)


@pytest.fixture
def processor(sqlite_settings: Settings, bootstrap: str) -> Iterator[tuple[Settings, Topics]]:
    with BackgroundStack(sqlite_settings, bootstrap, ("command-processor", "relay")):
        yield sqlite_settings, sqlite_settings.topics


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(poison=st.lists(poison_records, min_size=1, max_size=12))
def test_the_processor_applies_the_commands_behind_any_records(
    processor: tuple[Settings, Topics], bootstrap: str, poison: list
) -> None:
    _, topics = processor
    good = [
        command("namespaces.create", {"namespace_name": f"behind-{uuid.uuid4().hex[:10]}"})
        for _ in range(2)
    ]
    records = [
        *poison[: len(poison) // 2],
        (encode(good[0]), None, []),
        *poison[len(poison) // 2 :],
    ]
    records.append((encode(good[1]), b"\xff\xfe", [("\xff", b"\xff\x00")]))
    produce_records(bootstrap, topics.commands, records)

    events = events_until(
        bootstrap,
        topics,
        lambda ev: all(g["command_id"] in receipts(ev) for g in good),
        what="the commands behind the poison",
    )
    assert {g["command_id"] for g in good} <= set(receipts(events))


def test_every_limit_breaker_goes_to_the_dlq_with_its_code_and_the_next_command_applies(
    processor: tuple[Settings, Topics], bootstrap: str
) -> None:
    _, topics = processor
    after = command("namespaces.create", {"namespace_name": f"after-{uuid.uuid4().hex[:8]}"})
    produce_records(
        bootstrap,
        topics.commands,
        [(raw, None, []) for _, raw, _ in LIMIT_BREAKERS] + [(encode(after), None, [])],
    )
    events_until(bootstrap, topics, lambda ev: after["command_id"] in receipts(ev))
    entries = wait_until(
        lambda: (d := dlq_entries(bootstrap, topics)) and len(d) >= len(LIMIT_BREAKERS) and d,
        what="every limit breaker on the DLQ",
    )
    assert [e["code"] for e in entries] == [code for _, _, code in LIMIT_BREAKERS]
    assert [e["value"] for e in entries] == [raw for _, raw, _ in LIMIT_BREAKERS]


def test_a_restarted_processor_over_a_kept_poison_message_applies_the_commands_behind_it(
    sqlite_settings: Settings, bootstrap: str, tmp_path: Path
) -> None:
    """The broker keeps the poison message; the processor starts, dies (kill -9) and
    starts again over it: the commands behind it are applied, each exactly once."""
    settings = dataclasses.replace(sqlite_settings, command_partitions=1)
    topics = settings.topics
    from envbranch.topics import ensure_topics, topic_plan

    run(ensure_topics(bootstrap, topic_plan(topics, 1)))
    first = command("namespaces.create", {"namespace_name": f"first-{uuid.uuid4().hex[:8]}"})
    produce_records(
        bootstrap,
        topics.commands,
        [(deeply_nested(f"deep-{uuid.uuid4().hex[:6]}"), None, []), (encode(first), None, [])],
    )
    with open(tmp_path / "processor.log", "wb") as log:
        process = spawn(settings, bootstrap, "command-processor", "relay", log=log)
        try:
            events_until(bootstrap, topics, lambda ev: first["command_id"] in receipts(ev))
            os.kill(process.pid, signal.SIGKILL)
            process.wait(30)
            second = command(
                "namespaces.create", {"namespace_name": f"second-{uuid.uuid4().hex[:8]}"}
            )
            produce_records(
                bootstrap,
                topics.commands,
                [
                    (deeply_nested(f"deep-{uuid.uuid4().hex[:6]}"), None, []),
                    (encode(second), None, []),
                ],
            )
            process = spawn(settings, bootstrap, "command-processor", "relay", log=log)
            events = events_until(
                bootstrap, topics, lambda ev: second["command_id"] in receipts(ev)
            )
            assert process.poll() is None, (tmp_path / "processor.log").read_text()
        finally:
            process.kill()
            process.wait(30)
    accepted = [e.command_id for e in events if e.type == "CommandReceipt.Accepted"]
    assert accepted.count(first["command_id"]) == 1
    assert accepted.count(second["command_id"]) == 1
    codes = [e["code"] for e in dlq_entries(bootstrap, topics)]
    assert codes.count("too_deeply_nested") >= 2


# --- the read side: any records on the events topic, any JSON in a request ----------------


@pytest.fixture(scope="module")
def own_stack(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """A stack of its own: this module writes garbage onto its events topic."""
    yield from start_live_stack(tmp_path_factory.mktemp("poison"), broker.bootstrap_servers)


def test_records_that_are_not_events_do_not_stop_the_projector_vectors_or_relay(
    own_stack: LiveStack,
) -> None:
    prefix = own_stack.env["ENVBRANCH_TOPIC_PREFIX"]
    topics = Topics(prefix)
    bootstrap = own_stack.env["KAFKA_BOOTSTRAP_SERVERS"]
    with own_stack.client() as admin:
        admin.namespaces.create({"namespace_name": f"before-{uuid.uuid4().hex[:8]}"})
        not_events = [
            (b"\xff\xfe not UTF-8", b"\xff", [(POSITION_HEADER, b"\xff\xfe")]),
            (None, None, []),
            (b"[" * DEEP + b"]" * DEEP, None, [(POSITION_HEADER, b"not a number")]),
            (b'{"position": "x"}', b"k", [(POSITION_HEADER, b"99999999999")]),
            (json.dumps({"position": -1, "type": "Nothing"}).encode(), None, []),
        ]
        produce_records(bootstrap, topics.events, not_events)
        # The relay's tail check reads these within a second; the read side goes on.
        created = admin.namespaces.create({"namespace_name": f"after-{uuid.uuid4().hex[:8]}"})
        assert admin.namespaces.get(created.namespace_id).namespace_name == created.namespace_name
        ns = environment(admin)  # a bucket feeding a collection, objects embedded
        written = admin.collections.write_documents("docs", [{"text": "still alive"}], namespace=ns)
    assert written
    assert own_stack.process.poll() is None  # type: ignore[attr-defined]
    # the audit log on the command line reads past them too
    listed = subprocess.run(
        [sys.executable, "-m", "envbranch", "events"],
        env=own_stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert "not an event envelope" in listed.stderr
    assert "Namespace.Created" in listed.stdout


def _http(stack: LiveStack) -> httpx.Client:
    return httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {stack.admin_key}"}, timeout=30
    )


def test_a_deeply_nested_request_body_answers_422_and_the_connection_stays_usable(
    own_stack: LiveStack,
) -> None:
    with _http(own_stack) as http:
        for depth in (DEEP, 600, 100_000):
            body = '{"namespace_name":"deep","description":' + "[" * depth + "]" * depth + "}"
            answer = http.post(
                "/v1/namespaces", content=body, headers={"content-type": "application/json"}
            )
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"]["type"] == "too_deeply_nested"
        # the same keep-alive connection goes on
        assert http.post("/v1/namespaces/list", json={}).status_code == 200


@pytest.mark.parametrize(
    "path,body",
    [
        ("/v1/namespaces/list", {"limit": 10, "offset": 2**63}),
        ("/v1/namespaces/list", {"limit": 2**64}),
        ("/v1/namespaces/list", {"offset": 10**30}),
        ("/v1/namespaces/list", {"offset": False}),
        ("/v1/namespaces/list", {"offset": 1.5}),
        ("/v1/namespaces/NS/clone", {"namespace_name": "x", "as_of_position": 2**63}),
        ("/v1/namespaces/NS/clone", {"namespace_name": "x", "as_of_position": 1e30}),
        ("/v1/namespaces/NS/clone", {"namespace_name": "x", "as_of_position": True}),
    ],
)
def test_integers_out_of_range_or_not_integers_answer_422_and_the_connection_stays_usable(
    own_stack: LiveStack, path: str, body: dict[str, Any]
) -> None:
    with _http(own_stack) as http:
        ns = http.post("/v1/namespaces", json={"namespace_name": f"int-{uuid.uuid4().hex[:8]}"})
        assert ns.status_code == 200, ns.text
        answer = http.post(path.replace("NS", ns.json()["namespace_id"]), json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["type"] == "validation_error"
        assert http.post("/v1/namespaces/list", json={}).status_code == 200


@pytest.mark.parametrize("number", [str(2**63), "1" + "0" * 30, "-" + str(2**63 + 1)])
def test_audit_integers_beyond_64_bits_answer_422(own_stack: LiveStack, number: str) -> None:
    with _http(own_stack) as http:
        for name in ("from_position", "to_position", "offset", "limit"):
            answer = http.get("/v1/audit", params={name: number})
            assert answer.status_code == 422, (name, answer.text)
            assert answer.json()["error"]["type"] == "validation_error"
        assert http.get("/v1/audit", params={"limit": 1}).status_code == 200


@pytest.mark.parametrize(
    "literal", ["NaN", "Infinity", "-Infinity", "1e400"], ids=["nan", "inf", "-inf", "overflow"]
)
def test_non_finite_numbers_in_free_json_answer_422_and_nothing_is_stored(
    own_stack: LiveStack, literal: str
) -> None:
    with _http(own_stack) as http:
        ns = http.post("/v1/namespaces", json={"namespace_name": f"nan-{uuid.uuid4().hex[:8]}"})
        namespace_id = ns.json()["namespace_id"]
        body = (
            '{"bucket_name":"b","bucket_schema":{"properties":{"t":{"type":"string",'
            f'"weight":{literal}}}}}}}}}'
        )
        answer = http.post(
            "/v1/buckets",
            content=body,
            headers={"content-type": "application/json", "X-Namespace": namespace_id},
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["type"] == "validation_error"
        listed = http.post("/v1/buckets/list", json={}, headers={"X-Namespace": namespace_id})
        assert listed.json()["pagination"]["total"] == 0


def test_a_body_that_is_not_utf8_or_not_json_answers_400_in_the_error_shape(
    own_stack: LiveStack,
) -> None:
    with _http(own_stack) as http:
        for body in (b"\xff\xfe{}", b'{"namespace_name": '):
            answer = http.post(
                "/v1/namespaces", content=body, headers={"content-type": "application/json"}
            )
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["type"] in ("not_utf8", "invalid_json")


def test_records_on_the_dlq_that_are_not_rejections_do_not_stop_the_api_seeing_rejections(
    own_stack: LiveStack,
) -> None:
    topics = Topics(own_stack.env["ENVBRANCH_TOPIC_PREFIX"])
    bootstrap = own_stack.env["KAFKA_BOOTSTRAP_SERVERS"]
    produce_records(
        bootstrap,
        topics.dlq,
        [
            (b"x", b"k", [("envbranch.error", b"\xff\xfe")]),
            (b"x", b"k", [("envbranch.source.partition", b"0"), ("envbranch.error", b"[]")]),
            (
                b"x",
                b"k",
                [
                    ("envbranch.source.partition", b"0"),
                    ("envbranch.source.offset", b"0"),
                    ("envbranch.error", b'{"code": "no_such_code", "message": "m"}'),
                ],
            ),
        ],
    )
    with _http(own_stack) as http:
        name = f"dup-{uuid.uuid4().hex[:8]}"
        assert http.post("/v1/namespaces", json={"namespace_name": name}).status_code == 200
        again = http.post("/v1/namespaces", json={"namespace_name": name})
        assert again.status_code == 409, again.text
        assert again.json()["error"]["type"] == "duplicate_name"


def _envelope(position: int) -> EventEnvelope:
    return EventEnvelope(
        position=position,
        event_id=str(position),
        type="Thing.Happened",
        aggregate_id="a",
        aggregate_version=position,
        namespace_id=None,
        command_id=None,
        actor=None,
        occurred_at=datetime.now(UTC),
        data={},
    )


def test_an_event_that_fails_every_time_is_passed_over_and_the_rest_of_its_batch_applies() -> None:
    applied: list[int] = []

    def apply(envelopes: list[EventEnvelope]) -> None:
        if any(e.position == 2 for e in envelopes):
            raise KeyError("a field the event does not have")
        applied.extend(e.position for e in envelopes)

    run(apply_until_done(apply, [_envelope(p) for p in (1, 2, 3)], "test model"))
    assert applied == [1, 3]


def test_an_unreachable_store_is_waited_for_and_nothing_is_passed_over() -> None:
    attempts: list[int] = []

    def apply(envelopes: list[EventEnvelope]) -> None:
        attempts.append(len(envelopes))
        if len(attempts) <= ATTEMPTS_BEFORE_PASSING_OVER + 1:
            raise sqlite3.OperationalError("database is locked")

    run(apply_until_done(apply, [_envelope(p) for p in (1, 2)], "test model"))
    # every attempt was the whole batch: a busy store never splits or drops it
    assert attempts == [2] * (ATTEMPTS_BEFORE_PASSING_OVER + 2)


def test_records_that_are_not_envelopes_are_passed_over_when_decoding_a_batch() -> None:
    good = _envelope(7)
    records = [None, b"\xff", b"[" * DEEP, good.to_bytes(), b'{"position": "x"}']
    assert decode_events(records) == [good]


def test_a_long_key_above_a_long_list_is_read_without_copying_the_key_per_item() -> None:
    # a 50 KB key over 4,000 objects: a path written out per item took 200 MB
    document = json_limits.parse(json.dumps({"k" * 50_000: [{}] * 4000}).encode())
    assert len(document["k" * 50_000]) == 4000


def test_the_dlq_reason_stays_small_whatever_the_command_held() -> None:
    huge_key = "\U0001f600" * 50_000
    rejected = CommandRejected(
        ErrorCode.VALIDATION_ERROR,
        f"body.{huge_key}: Extra inputs are not permitted",
        field=f"body.{huge_key}",
        problems=[{"field": f"body.{huge_key}", "message": "x"}] * 10,
    )
    header = error_header(rejected)
    assert len(header) <= MAX_ERROR_HEADER
    reason = json.loads(header)
    assert reason["code"] == "validation_error" and reason["details"]["truncated"]


def test_a_command_whose_reason_would_not_fit_a_message_goes_to_the_dlq_and_the_next_applies(
    processor: tuple[Settings, Topics], bootstrap: str
) -> None:
    _, topics = processor
    huge_key = "\U0001f600" * 60_000  # 720 KB once JSON-escaped, in the field path
    bad_body = command("namespaces.create", {"namespace_name": "n", huge_key: 1})
    bad_id = command("namespaces.create", {"namespace_name": "n"}, command_id="c" * 900_000)
    after = command("namespaces.create", {"namespace_name": f"after-{uuid.uuid4().hex[:8]}"})
    produce_records(
        bootstrap,
        topics.commands,
        [(encode(bad_body), None, []), (encode(bad_id), None, []), (encode(after), None, [])],
    )
    events_until(bootstrap, topics, lambda ev: after["command_id"] in receipts(ev))
    entries = wait_until(
        lambda: (d := dlq_entries(bootstrap, topics)) and len(d) >= 2 and d, what="DLQ entries"
    )
    assert [e["code"] for e in entries] == ["validation_error", "invalid_envelope"]


@pytest.mark.parametrize(
    "error,transient",
    [
        (sqlite3.OperationalError("database is locked"), True),
        (psycopg.errors.DeadlockDetected(), True),
        (psycopg.errors.AdminShutdown(), True),
        (httpx.ConnectError("refused"), True),
        (ResponseHandlingException(httpx.ReadTimeout("slow")), True),
        (UnexpectedResponse(503, "Unavailable", b"", httpx.Headers()), True),
        # a wrong or rotated key: waited for until it is fixed, never passed over
        (UnexpectedResponse(401, "Unauthorized", b"", httpx.Headers()), True),
        (UnexpectedResponse(403, "Forbidden", b"", httpx.Headers()), True),
        (UnexpectedResponse(400, "Bad Request", b"", httpx.Headers()), False),
        (KeyError("a field the event does not have"), False),
        (ValueError("a bug"), False),
    ],
)
def test_an_outage_of_a_store_is_transient_and_a_bug_is_not(
    error: Exception, transient: bool
) -> None:
    assert is_transient(error) is transient


def test_a_body_larger_than_a_command_may_be_answers_413_before_it_is_read_whole(
    own_stack: LiveStack,
) -> None:
    with _http(own_stack) as http:
        description = "x" * (2 * 1024 * 1024)
        answer = http.post(
            "/v1/namespaces", json={"namespace_name": "big", "description": description}
        )
        assert answer.status_code == 413, answer.text
        assert answer.json()["error"]["type"] == "message_too_large"


def test_a_scoped_key_naming_a_taken_name_in_its_own_namespace_is_told_which_resource(
    own_stack: LiveStack,
) -> None:
    with own_stack.client() as admin:
        ns = admin.namespaces.create({"namespace_name": f"own-{uuid.uuid4().hex[:8]}"})
        key = admin.keys.create("scoped", [ns.namespace_id]).api_key
    assert key is not None
    with httpx.Client(
        base_url=own_stack.url,
        headers={"Authorization": f"Bearer {key}", "X-Namespace": ns.namespace_id},
        timeout=30,
    ) as http:
        body = {"bucket_name": "b", "bucket_schema": {"properties": {}}}
        first = http.post("/v1/buckets", json=body)
        assert first.status_code == 200, first.text
        again = http.post("/v1/buckets", json=body)
    assert again.status_code == 409, again.text
    error = again.json()["error"]
    assert error["type"] == "duplicate_name"
    assert error["details"]["existing_id"] == first.json()["bucket_id"]
    assert "bucket" in error["message"]
