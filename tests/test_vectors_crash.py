"""Kill -9 the vector processor halfway through a 100,000-point namespace clone."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from envbranch import Client
from envbranch.broker import EmbeddedBroker, free_port
from projections.sql import Database
from projections.vectors.edge import EdgeStore
from projections.vectors.views import CopyOnWrite
from tests.support import wait_until

POINTS = 100_000
EXTRACTOR = {"feature_extractor_name": "text_extractor", "version": "v1", "params": {"dim": 64}}


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "envbranch", "up"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def checksum(cow: CopyOnWrite, collection_id: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    documents = sorted(cow.documents(collection_id), key=lambda d: d.id)
    for d in documents:
        vector = [round(x, 5) for x in d.vector or []]
        digest.update(json.dumps([d.id, vector, d.payload], sort_keys=True).encode())
    return len(documents), digest.hexdigest()


@pytest.mark.slow
def test_a_deep_copy_killed_halfway_completes_after_restart_with_every_point_once(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVBRANCH_", "KAFKA_"))}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
        ENVBRANCH_DATA_DIR=str(tmp_path / "data"),
        ENVBRANCH_TOPIC_PREFIX=f"crash{uuid.uuid4().hex[:8]}",
        ENVBRANCH_API_PORT=str(port),
        ENVBRANCH_COMMAND_TIMEOUT="120",
    )
    url, log = f"http://127.0.0.1:{port}", tmp_path / "up.log"
    stack = start(env, log)
    try:
        key = wait_until(
            lambda: next(
                (
                    x.rsplit(" ", 1)[-1]
                    for x in log.read_text().splitlines()
                    if "admin API key" in x
                ),
                None,
            ),
            60,
            "the admin key",
        )
        wait_until(lambda: healthy(url), 60, "the API")
        client = Client(url, key, namespace="big", timeout=180)
        client.namespaces.create({"namespace_name": "big"})
        client.buckets.create({"bucket_name": "b", "bucket_schema": {"properties": {}}})
        client.collections.create(
            {
                "collection_name": "docs",
                "source": {"type": "bucket", "bucket_ids": ["b"]},
                "feature_extractor": EXTRACTOR,
            }
        )
        for start_at in range(0, POINTS, 1000):
            objects: list[dict[str, Any]] = [
                {"text": f"document {i} on topic {i % 97}", "metadata": {"n": i}}
                for i in range(start_at, start_at + 1000)
            ]
            client.buckets.add_objects("b", objects)
        source = client.collections.get("docs")

        started = client.namespaces.clone("big", {"namespace_name": "big-copy"})

        def copied() -> int:
            progress = client.tasks.get(started.task_id).progress or {}
            return int(progress.get("points_copied", 0))

        at_kill = wait_until(
            lambda: (n := copied()) >= 20_000 and n, 120, "the copy to be well under way"
        )
        stack.send_signal(signal.SIGKILL)  # the API dies with it: at_kill is the last reading
        stack.wait()
        assert at_kill < POINTS, "the copy finished before it could be killed"

        stack = start(env, log)
        wait_until(lambda: healthy(url), 60, "the API after the restart")
        task = client.tasks.wait(started.task_id, timeout=300)
        assert task.status == "COMPLETED"
        clone_id = task.result.mapping["collections"][source.collection_id]  # type: ignore[union-attr]
        assert task.result.points == {clone_id: POINTS}  # type: ignore[union-attr]
        client.close()
    finally:
        stack.terminate()
        stack.wait(60)

    # The stack is down: read the vectors straight from the store it left.
    vectors = EdgeStore(tmp_path / "data" / "vectors")
    cow = CopyOnWrite(vectors, Database(sqlite_path=tmp_path / "data" / "vector_state.sqlite3"))
    try:
        assert checksum(cow, clone_id) == checksum(cow, source.collection_id)
        assert checksum(cow, clone_id)[0] == POINTS
    finally:
        vectors.close()
