"""/metrics under load: lag rises and falls back to 0, and the counters match what was
sent. A stack of its own, so that its counters count this test's commands only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from domain.envelopes import Topics
from envbranch.broker import EmbeddedBroker, free_port
from envbranch.publisher import Publisher
from tests.conftest import LiveStack, start_live_stack
from tests.support import spawn_in, wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def stack(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from start_live_stack(tmp_path_factory.mktemp("metrics"), broker.bootstrap_servers)


def scrape(url: str, key: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answer = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    answer.raise_for_status()
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def lags(samples: Samples) -> dict[str, float]:
    """Each component's lag, summed over its partitions."""
    found: dict[str, float] = {}
    for (name, labels), v in samples.items():
        if name == "envbranch_consumer_lag":
            component = dict(labels)["component"]
            found[component] = found.get(component, 0.0) + v
    return found


def test_lag_rises_under_load_and_returns_to_zero_and_counters_match(stack: LiveStack) -> None:
    http = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {stack.admin_key}"})
    name = f"m-{uuid.uuid4().hex[:8]}"
    http.post("/v1/namespaces", json={"namespace_name": name}).raise_for_status()
    before = scrape(stack.url, stack.admin_key)
    # for admin keys only: it names every namespace's tasks
    assert httpx.get(f"{stack.url}/metrics").status_code == 401
    scoped = http.post("/v1/keys", json={"principal": "p", "namespaces": [name]}).json()
    answer = httpx.get(
        f"{stack.url}/metrics", headers={"Authorization": f"Bearer {scoped['api_key']}"}
    )
    assert answer.status_code == 403
    assert set(lags(before)) == {"command-processor", "relay", "projector", "vectors"}

    # rejected: three writes into a collection that does not exist
    topics = Topics(stack.env["ENVBRANCH_TOPIC_PREFIX"])
    publisher = Publisher(stack.env["KAFKA_BOOTSTRAP_SERVERS"], topics)
    body = {"namespace_identifier": name, "collection_identifier": "nope", "documents": []}
    body["documents"] = [{"document_id": "d", "text": "t"}]
    for _ in range(3):
        outcome = publisher.publish("collections.documents.write", body, actor="load")
        assert outcome.status == "rejected"

    # the load: many updates of one namespace, produced as fast as librdkafka can
    sent = 6000
    producer = Producer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"]})
    for i in range(sent):
        command = {
            "command_id": str(uuid.uuid4()),
            "type": "namespaces.update",
            "actor": "load",
            "body": {"namespace_identifier": name, "description": f"update {i}"},
        }
        producer.produce(topics.commands, json.dumps(command).encode(), key=name.encode())
        producer.poll(0)
    assert producer.flush(30) == 0

    seen: dict[str, float] = {}

    def busy() -> bool:
        for component, lag in lags(scrape(stack.url, stack.admin_key)).items():
            seen[component] = max(seen.get(component, 0.0), lag)
        return bool(seen) and max(seen.values()) > 0

    wait_until(busy, 60, "a component to lag behind the load")

    def caught_up() -> Samples | None:
        samples = scrape(stack.url, stack.admin_key)
        applied = value(
            samples,
            "envbranch_commands_total",
            command_type="namespaces.update",
            outcome="applied",
            code="",
        )
        done = applied == sent and all(lag == 0 for lag in lags(samples).values())
        return samples if done else None

    after = wait_until(caught_up, 120, "every component to catch up")
    rejected = value(
        after,
        "envbranch_commands_total",
        command_type="collections.documents.write",
        outcome="rejected",
        code="not_found",
    )
    assert rejected == 3
    assert value(after, "envbranch_dlq_entries") >= 3
    # every command stored was timed, and the events reached the read model and vectors
    assert value(after, "envbranch_command_stored_seconds_count") >= sent + 3
    assert value(after, "envbranch_event_relayed_seconds_count") > 0
    for component in ("projector", "vectors"):
        assert value(after, "envbranch_event_applied_seconds_count", component=component) > 0
    position = value(
        after, "envbranch_position", component="projector", topic=topics.events, partition="0"
    )
    assert position >= sent
    assert max(seen.values()) > 0  # seen under load: what busy() waited for


def test_status_prints_the_stack_as_a_table(stack: LiveStack) -> None:
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "envbranch",
            "status",
            "--url",
            stack.url,
            "--api-key",
            stack.admin_key,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"stack at {stack.url}: ok"
    for component in ("command-processor", "relay", "projector", "vectors", "api"):
        assert any(line.startswith(component) for line in lines), component
    assert any(line.startswith("dead-letter queue: ") for line in lines)
    assert any(line.startswith("tasks: ") for line in lines)
    gone = subprocess.run(
        [
            sys.executable,
            "-m",
            "envbranch",
            "status",
            "--url",
            "http://127.0.0.1:9",
            "--api-key",
            "k",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gone.returncode == 1 and "cannot read http://127.0.0.1:9/metrics" in gone.stdout


def test_a_serve_process_without_the_api_serves_metrics_on_its_own_port(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ENVBRANCH_", "KAFKA_"))},
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "ENVBRANCH_DATA_DIR": str(tmp_path / "data"),
        "ENVBRANCH_TOPIC_PREFIX": f"m{uuid.uuid4().hex[:8]}",
        "ENVBRANCH_METRICS_PORT": str(port),
    }
    with open(tmp_path / "serve.log", "wb") as log:
        process = spawn_in(env, tmp_path, log, "serve", "command-processor", "relay")
    try:

        def components() -> set[str]:
            if process.poll() is not None:
                raise AssertionError((tmp_path / "serve.log").read_text())
            try:
                return set(lags(scrape(f"http://127.0.0.1:{port}")))
            except httpx.HTTPError:
                return set()

        found = wait_until(
            lambda: components() >= {"command-processor", "relay"} and components(),
            60,
            "the serve process's /metrics",
        )
        assert found == {"command-processor", "relay"}
    finally:
        process.terminate()
        process.wait(30)


def test_a_metrics_port_in_use_is_one_clear_line_at_start(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ENVBRANCH_", "KAFKA_"))},
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "ENVBRANCH_DATA_DIR": str(tmp_path / "data"),
            "ENVBRANCH_METRICS_PORT": str(taken.getsockname()[1]),
        }
        done = subprocess.run(
            [sys.executable, "-m", "envbranch", "serve", "relay"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert "cannot serve /metrics on 127.0.0.1:" in done.stderr
    assert "ENVBRANCH_METRICS_PORT" in done.stderr and "Traceback" not in done.stderr
