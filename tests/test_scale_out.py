"""Scale-out: three `envbranch serve command-processor` processes in one consumer group on
a 6-partition commands topic with PostgreSQL, and the relay, the projector and the API each
a process of its own (docker-compose.yml's topology, run as plain processes). One processor
is killed with SIGKILL mid-run; the other two take over its partitions. Every command is
applied exactly once, each namespace's commands in the order they were sent, and the read
model shows the end state through the API."""

from __future__ import annotations

import collections
import dataclasses
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from consumers.command_processor import tracking_name
from envbranch import Client
from envbranch.bootstrap import open_event_store
from envbranch.broker import EmbeddedBroker, free_port
from envbranch.settings import Settings
from envbranch.topics import ensure_topics, topic_plan
from tests.conftest import POSTGRES, make_settings, postgres_schema
from tests.support import (
    assigned_partitions,
    command,
    dlq_entries,
    encode,
    produce_keyed,
    run,
    settings_env,
    spawn_in,
    wait_until,
)

PARTITIONS = 6
PROCESSORS = 3
NAMESPACES = 300
# Small transactions, so that the kill lands between two of them rather than after the
# victim's whole share went in one (the default is 500 commands per transaction).
BATCH_COMMANDS = 20
RECEIPT = "CommandReceipt.Accepted"
SOURCE = {"type": "bucket", "bucket_ids": ["raw"]}
EXTRACTOR = {"feature_extractor_name": "text_extractor", "version": "v1"}
# Events a command writes, its receipt included: a create or a clone also adds the
# resource to its namespace, a rename also moves the name's claim (a namespace's, two).
EVENTS_PER_COMMAND = {
    "namespaces.create": 3,
    "namespaces.update": 4,  # a rename
    "buckets.create": 3,
    "buckets.update": 3,  # a rename
    "collections.create": 3,
    "collections.update": 3,  # a rename
    "collections.clone": 3,
}
DESCRIPTION_ONLY = 2  # an update that renames nothing: its event and the receipt


def events_expected(document: dict[str, Any]) -> int:
    renames = any(key.endswith("_name") for key in document["body"])
    if document["type"].endswith(".update") and not renames:
        return DESCRIPTION_ONLY
    return EVENTS_PER_COMMAND[document["type"]]


def before_the_kill(ns: str) -> list[dict[str, Any]]:
    """Each command needs the one before it: applied out of order, it would be rejected."""
    within = {"namespace_identifier": ns}
    return [
        command("namespaces.create", {"namespace_name": ns}),
        command(
            "buckets.create", {**within, "bucket_name": "raw", "bucket_schema": {"properties": {}}}
        ),
        command(
            "collections.create",
            {**within, "collection_name": "docs", "source": SOURCE, "feature_extractor": EXTRACTOR},
        ),
        command(
            "collections.update",
            {**within, "collection_identifier": "docs", "collection_name": "docs-v2"},
        ),
        command(
            "collections.clone",
            {**within, "collection_identifier": "docs-v2", "collection_name": "docs-v3"},
        ),
        command("buckets.update", {**within, "bucket_identifier": "raw", "bucket_name": "raw-v2"}),
    ]


def after_the_kill(ns: str) -> list[dict[str, Any]]:
    within = {"namespace_identifier": ns}
    return [
        command(
            "collections.update",
            {**within, "collection_identifier": "docs-v3", "description": "after the kill"},
        ),
        command("namespaces.update", {**within, "namespace_name": f"{ns}-renamed"}),
    ]


def keyed(ns: str, commands: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """The namespace is the key: its commands share a partition and keep their order."""
    return [(ns.encode(), encode(c)) for c in commands]


class Topology:
    """The processes of the stack, started and always stopped; logs under ``workdir``."""

    def __init__(self, settings: Settings, env: dict[str, str], workdir: Path) -> None:
        self.settings = settings
        self.env = env
        self.workdir = workdir
        self.url = f"http://127.0.0.1:{env['ENVBRANCH_API_PORT']}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.api_key = ""

    def start(self) -> None:
        created = subprocess.run(
            [sys.executable, "-m", "envbranch", "keys", "create", "tester"],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            check=True,
        )
        self.api_key = created.stdout.decode().strip().splitlines()[-1]
        names = [f"processor-{i}" for i in range(PROCESSORS)] + ["relay", "projector", "api"]
        for name in names:
            component = "command-processor" if name.startswith("processor") else name
            with open(self.log(name), "wb") as log:
                self.processes[name] = spawn_in(self.env, self.workdir, log, "serve", component)

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def check_alive(self, *names: str) -> None:
        for name in names or tuple(self.processes):
            process = self.processes[name]
            if process.poll() is not None:
                tail = self.log(name).read_text(errors="replace")[-3000:]
                raise AssertionError(f"{name} exited with {process.returncode}:\n{tail}")

    def assignments(self, names: list[str]) -> dict[str, set[int] | None]:
        self.check_alive(*names)
        return {name: assigned_partitions(self.log(name)) for name in names}

    def wait_for_group(self, names: list[str], timeout: float) -> dict[str, set[int]]:
        """Until the named processors share every partition, each holding some."""

        def shared() -> dict[str, set[int]] | None:
            found = self.assignments(names)
            parts = [p for p in found.values() if p]
            if len(parts) != len(names) or sum(map(len, parts)) != PARTITIONS:
                return None
            if set().union(*parts) != set(range(PARTITIONS)):
                return None
            return {name: p for name, p in found.items() if p}

        try:
            return wait_until(shared, timeout, f"{names} to share the partitions")
        except AssertionError as e:
            raise AssertionError(f"{e}: {self.assignments(names)}") from None

    def client(self) -> Client:
        return Client(self.url, self.api_key, timeout=60)

    def health(self) -> dict[str, Any]:
        self.check_alive("api", "projector", "relay")
        try:
            answer = httpx.get(f"{self.url}/v1/health", timeout=5)
        except httpx.HTTPError:
            return {}
        return dict(answer.json()) if answer.status_code == 200 else {}

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@pytest.fixture
def topology(broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path) -> Iterator[Topology]:
    for postgres in postgres_schema():
        read_schema = f"{postgres['POSTGRES_SCHEMA']}_read"
        settings = dataclasses.replace(
            make_settings("postgres", tmp_path, topic_prefix, postgres),
            command_partitions=PARTITIONS,
            processor_group=f"{topic_prefix}-processors",
            read_model_schema=read_schema,
        )
        env = {
            **settings_env(settings, broker.bootstrap_servers),
            "ENVBRANCH_READ_MODEL_SCHEMA": read_schema,
            "ENVBRANCH_API_PORT": str(free_port()),
            "ENVBRANCH_MAX_BATCH_COMMANDS": str(BATCH_COMMANDS),
        }
        run(ensure_topics(broker.bootstrap_servers, topic_plan(settings.topics, PARTITIONS)))
        stack = Topology(settings, env, tmp_path)
        try:
            stack.start()
            yield stack
        finally:
            stack.stop()
            drop_schemas(read_schema, f"{read_schema}_vectors")


def drop_schemas(*schemas: str) -> None:
    with psycopg.connect(
        host=POSTGRES["POSTGRES_HOST"],
        port=POSTGRES["POSTGRES_PORT"],
        dbname=POSTGRES["POSTGRES_DBNAME"],
        user=POSTGRES["POSTGRES_USER"],
        password=POSTGRES["POSTGRES_PASSWORD"] or None,
        autocommit=True,
    ) as conn:
        for schema in schemas:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class Store:
    """The test's own look at the event store."""

    def __init__(self, settings: Settings, cluster_id: str) -> None:
        self.app = open_event_store(settings)
        self.names = {
            p: tracking_name(cluster_id, settings.topics.commands, p) for p in range(PARTITIONS)
        }

    def positions(self) -> dict[int, int]:
        """The next offset to apply per partition, as stored with the last transaction."""
        return {p: self.app.last_position(name) or 0 for p, name in self.names.items()}

    def events(self) -> list[tuple[int, str, str | None]]:
        """(position, event type, command_id) of every stored event."""
        out = []
        for notification in self.app.recorder.select_notifications(1, 10**7):
            event = self.app.mapper.to_domain_event(notification)
            out.append((notification.id, type(event).__qualname__, event.command_id))
        return out

    def last(self) -> int:
        return int(self.app.recorder.max_notification_id() or 0)


def ends_of(sent: list[tuple[int, int]]) -> dict[int, int]:
    ends = dict.fromkeys(range(PARTITIONS), 0)
    for partition, offset in sent:
        ends[partition] = max(ends[partition], offset + 1)
    return ends


@pytest.mark.slow
def test_three_processors_one_killed_mid_run_apply_every_command_once_in_namespace_order(
    topology: Topology, broker: EmbeddedBroker
) -> None:
    stack, bootstrap, topic = topology, broker.bootstrap_servers, topology.settings.topics.commands
    processors = [f"processor-{i}" for i in range(PROCESSORS)]
    namespaces = [f"so-{uuid.uuid4().hex[:6]}-{i:04d}" for i in range(NAMESPACES)]
    first = {ns: before_the_kill(ns) for ns in namespaces}
    then = {ns: after_the_kill(ns) for ns in namespaces}
    store = Store(stack.settings, broker.cluster_id)
    try:
        groups = stack.wait_for_group(processors, 90)
        wait_until(stack.health, 60, "the API to answer")
        with stack.client() as api:  # the API path, in this topology, before the kill
            api.namespaces.create({"namespace_name": f"{namespaces[0]}-api"})

        sent = produce_keyed(
            bootstrap, topic, [m for ns in namespaces for m in keyed(ns, first[ns])]
        )
        victim, mine = processors[0], groups[processors[0]]
        share = sum(ends_of(sent)[p] for p in mine)

        def victim_progress() -> int:
            return sum(store.positions()[p] for p in mine)

        def going() -> bool:
            stack.check_alive(*processors)
            return victim_progress() >= share // 5

        wait_until(going, 120, f"{victim} to get going")
        stack.processes[victim].kill()
        killed = time.monotonic()
        stack.processes[victim].wait()
        at_kill = victim_progress()
        assert at_kill < share, f"{victim} applied its whole share before it could be killed"

        sent += produce_keyed(
            bootstrap, topic, [m for ns in namespaces for m in keyed(ns, then[ns])]
        )
        survivors = processors[1:]
        taken_over = stack.wait_for_group(survivors, 90)
        takeover_s = time.monotonic() - killed
        with stack.client() as api:  # and after the takeover
            api.namespaces.create({"namespace_name": f"{namespaces[1]}-api"})
            bucket = {"bucket_name": "via-api", "bucket_schema": {"properties": {}}}
            api.buckets.create(bucket, namespace=f"{namespaces[1]}-api")

        ends = ends_of(sent)  # the API's commands come on top

        def applied() -> bool:
            stack.check_alive(*survivors)
            return all(store.positions()[p] >= end for p, end in ends.items())

        try:
            wait_until(applied, 180, "every partition applied")
        except AssertionError as e:
            raise AssertionError(f"{e}: stored {store.positions()}, published {ends}") from None
        events = store.events()
        last = store.last()
        wait_until(lambda: stack.health().get("read_model_position") == last, 60, "the read model")
        check_read_model(stack, namespaces)
        stack.check_alive(*survivors, "relay", "projector", "api")
    finally:
        store.app.close()
    print(
        f"\nvictim {victim} had {sorted(mine)}, {at_kill}/{share} applied at the kill; "
        f"{takeover_s:.1f} s later the survivors held {taken_over}"
    )

    check_exactly_once_in_order(events, [first[ns] + then[ns] for ns in namespaces])
    assert dlq_entries(bootstrap, stack.settings.topics) == []


def check_exactly_once_in_order(
    events: list[tuple[int, str, str | None]], sequences: list[list[dict[str, Any]]]
) -> None:
    """One receipt per command, the events its type writes, and each namespace's receipts
    in the order its commands were sent."""
    sent = {c["command_id"]: c for sequence in sequences for c in sequence}
    receipts = collections.defaultdict(list)
    per_command: collections.Counter[str | None] = collections.Counter()
    for position, event_type, command_id in events:
        per_command[command_id] += 1
        if event_type == RECEIPT:
            receipts[command_id].append(position)
    twice = {c: p for c, p in receipts.items() if len(p) > 1}
    assert not twice, f"{len(twice)} commands have more than one receipt: {list(twice.items())[:5]}"
    missing = [c for c in sent if c not in receipts]
    assert not missing, f"{len(missing)} of {len(sent)} commands never applied: {missing[:5]}"
    wrong = [c for c, document in sent.items() if per_command[c] != events_expected(document)]
    counts = collections.Counter((d["type"], per_command[c]) for c, d in sent.items())
    assert not wrong, f"events per command (type, events): {json.dumps(sorted(counts.items()))}"
    out_of_order = []
    for sequence in sequences:
        positions = [receipts[c["command_id"]][0] for c in sequence]
        if positions != sorted(positions):
            out_of_order.append(list(zip([c["type"] for c in sequence], positions, strict=True)))
    assert not out_of_order, f"{len(out_of_order)} namespaces out of order: {out_of_order[:3]}"


def check_read_model(stack: Topology, namespaces: list[str]) -> None:
    """What the API shows: every namespace renamed, and a sample's resources as the last
    commands left them."""
    with stack.client() as api:
        names: set[str] = set()
        while len(page := api.namespaces.list(limit=1000, offset=len(names)).results):
            names |= {n.namespace_name for n in page}
        expected = {f"{ns}-renamed" for ns in namespaces} | {f"{namespaces[i]}-api" for i in (0, 1)}
        assert names == expected
        for ns in namespaces[:: NAMESPACES // 10]:
            where = f"{ns}-renamed"
            found = {
                c.collection_name: c.description
                for c in api.collections.list(namespace=where).results
            }
            assert found == {"docs-v2": "", "docs-v3": "after the kill"}
            buckets = [b.bucket_name for b in api.buckets.list(namespace=where).results]
            assert buckets == ["raw-v2"]
