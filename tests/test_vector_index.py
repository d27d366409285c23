"""Qdrant Edge stores get their HNSW index built beside the live shard.

A real Qdrant Edge store under a temporary directory: a build runs in a child process
while the store keeps answering writes and queries; what was written meanwhile is in
the store after the swap; a build that fails, a crash during a build (kill -9) and a
crash in the middle of the swap all leave every point as it was written.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from projections.vectors import edge_index
from projections.vectors.edge import EdgeStore
from projections.vectors.store import Filter, MatchAny, Space, VectorPoint

DIM = 384
SPACE = Space(DIM, "cosine")
# Above what Qdrant indexes at all (10,000 KB of vectors), small enough to build in seconds.
POINTS = 8_000


def pid(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def points(start: int, stop: int, tag: str = "a") -> list[VectorPoint]:
    rng = np.random.default_rng(start)
    vectors = rng.standard_normal((stop - start, DIM)).astype(np.float32)
    return [
        VectorPoint(pid(i), vectors[i - start].tolist(), {"tag": tag, "n": i})
        for i in range(start, stop)
    ]


def checksum(store: EdgeStore, name: str) -> tuple[int, str]:
    """Count and digest of every (id, vector, payload) in the store."""
    digest, count, cursor = hashlib.sha256(), 0, None
    while True:
        page, cursor = store.scroll(name, None, 1000, cursor, with_vectors=True)
        for p in page:
            vector = [round(x, 5) for x in p.vector or []]
            digest.update(json.dumps([p.id, vector, p.payload], sort_keys=True).encode())
            count += 1
        if cursor is None:
            return count, digest.hexdigest()


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)
    return value


def filled(root: Path) -> EdgeStore:
    store = EdgeStore(root, index_threshold=1_000)
    store.create_store("s", SPACE)
    store.create_index("s", "tag", "keyword")
    for start in range(0, POINTS, 2000):
        store.upsert("s", points(start, start + 2000))
    return store


def built_then_written(root: Path) -> tuple[EdgeStore, tuple[int, str]]:
    """A store whose build finished (not yet swapped in), with points written since; and
    the checksum of what it holds."""
    store = filled(root)
    store.maintain_index("s")
    wait_for(lambda: store._open["s"].build.process.poll() is not None, 120, "the build")
    store.upsert("s", points(POINTS, POINTS + 10, tag="b"))
    return store, checksum(store, "s")


def test_a_build_runs_beside_the_live_store_and_keeps_what_was_written_meanwhile(
    tmp_path: Path,
) -> None:
    store = filled(tmp_path / "edge")
    assert store.index_state("s").state == "pending"
    assert store.maintain_index("s").state == "indexing"

    # While the child builds: writes, deletes, payload changes and queries all go on.
    written = points(POINTS, POINTS + 5000, tag="b")  # more than one round of catch-up
    store.upsert("s", written)
    store.delete("s", [pid(i) for i in range(100)])
    store.set_payload("s", [pid(i) for i in range(100, 200)], {"tag": "c"})
    queries = 0
    probe = written[1].vector
    assert probe is not None
    while store.index_state("s").state == "indexing":
        assert store.search("s", probe, limit=1)[0].id == pid(POINTS + 1)
        queries += 1
        store.maintain_index("s")
    assert queries > 0
    expected = checksum(store, "s")

    reference = EdgeStore(tmp_path / "reference")  # the same writes, never indexed
    reference.create_store("s", SPACE)
    for start in range(0, POINTS, 2000):
        reference.upsert("s", points(start, start + 2000))
    reference.upsert("s", points(POINTS, POINTS + 5000, tag="b"))
    reference.delete("s", [pid(i) for i in range(100)])
    reference.set_payload("s", [pid(i) for i in range(100, 200)], {"tag": "c"})
    assert expected == checksum(reference, "s")

    state = store.index_state("s")
    assert state.indexed_points >= POINTS - 100 and state.points == POINTS + 4900
    assert store.indexes("s") == {"tag": "keyword"}
    assert store.count("s", Filter(must=(MatchAny("tag", ("c",)),))) == 100
    store.close()
    reopened = EdgeStore(tmp_path / "edge")
    assert checksum(reopened, "s") == expected
    assert reopened.index_state("s").indexed_points == state.indexed_points
    assert sorted(p.name for p in (tmp_path / "edge").iterdir()) == ["s"]
    reopened.close()
    reference.close()


def test_a_failed_build_leaves_the_store_as_it_was_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = filled(tmp_path / "edge")
    before = checksum(store, "s")
    start = edge_index.start

    def failing(live: Path) -> edge_index.Build:
        build = start(live)
        build.process.kill()  # as if the child crashed
        build.process.wait()
        return build

    monkeypatch.setattr(edge_index, "start", failing)
    store.maintain_index("s")
    state = store.maintain_index("s")
    assert state.state == "pending" and state.indexed_points == 0  # due, after a pause
    assert "index build of store s failed (exit -9)" in caplog.text
    assert checksum(store, "s") == before
    assert sorted(p.name for p in (tmp_path / "edge").iterdir()) == ["s"]
    assert store.maintain_index("s").state == "pending"  # not again at once ...
    monkeypatch.setattr(edge_index, "start", start)
    store._open["s"].retry_at = 0.0  # ... but after the pause
    assert store.maintain_index("s").state == "indexing"
    wait_for(lambda: store.maintain_index("s").state == "indexed", 120, "the build")
    assert checksum(store, "s") == before
    store.close()


@pytest.mark.parametrize("where", ["bring_over", "swap"])
def test_a_failure_in_the_last_round_leaves_a_working_store_and_tries_again_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    store, expected = built_then_written(tmp_path / "edge")

    def fail(*_: Any) -> None:
        raise OSError("no space left on device")

    # bring_over: the live shard is still open; swap: it was closed, nothing renamed yet
    monkeypatch.setattr(edge_index, where, fail)
    assert store.maintain_index("s").state == "pending"
    monkeypatch.undo()
    assert checksum(store, "s") == expected
    store.upsert("s", points(POINTS + 10, POINTS + 20, tag="b"))  # it still takes writes
    assert store.count("s") == POINTS + 20
    assert sorted(p.name for p in (tmp_path / "edge").iterdir()) == ["s"]
    store.close()


def test_a_payload_index_created_during_a_build_is_kept(tmp_path: Path) -> None:
    store = filled(tmp_path / "edge")
    store.maintain_index("s")
    store.create_index("s", "n", "integer")  # the copy lacks it: that build is dropped
    assert store.index_state("s").state == "pending"
    store.maintain_index("s")
    wait_for(lambda: store.maintain_index("s").state == "indexed", 120, "the build")
    assert store.indexes("s") == {"tag": "keyword", "n": "integer"}
    store.close()
    reopened = EdgeStore(tmp_path / "edge")
    assert reopened.indexes("s") == {"tag": "keyword", "n": "integer"}
    reopened.close()


def test_a_crash_between_the_swaps_two_renames_is_repaired_at_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, expected = built_then_written(tmp_path / "edge")
    renames = []

    def crash_on_second(src: Any, dst: Any) -> None:
        renames.append(dst)
        if len(renames) == 2:
            raise OSError("the process died here")
        os.replace(src, dst)

    monkeypatch.setattr(edge_index.os, "rename", crash_on_second)
    store.maintain_index("s")  # logs the failure and reopens what recover put back
    monkeypatch.undo()
    # live -> .old-s, then the copy -> s fails; recover puts .old-s back
    assert [Path(p).name for p in renames] == [".old-s", "s", "s"]
    assert checksum(store, "s") == expected
    store.close()
    reopened = EdgeStore(tmp_path / "edge")
    assert checksum(reopened, "s") == expected
    assert sorted(p.name for p in (tmp_path / "edge").iterdir()) == ["s"]
    reopened.close()


WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path[:0] = [{tests!r}]
    from test_vector_index import POINTS, filled, pid, points
    store = filled({root!r})
    store.maintain_index("s")
    store.upsert("s", points(POINTS, POINTS + 300, tag="b"))
    store.delete("s", [pid(i) for i in range(50)])
    print("building", flush=True)
    time.sleep(600)  # killed here, with the build under way
    """
)


def test_a_kill_9_during_a_build_loses_nothing_and_the_next_build_completes(
    tmp_path: Path,
) -> None:
    root = tmp_path / "edge"
    script = WRITER.format(tests=str(Path(__file__).parent), root=str(root))
    writer = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "building"
        assert any(p.name.startswith(edge_index.BUILD) for p in root.iterdir())
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()

    reference = filled(tmp_path / "reference")  # the same writes, never indexed
    reference.upsert("s", points(POINTS, POINTS + 300, tag="b"))
    reference.delete("s", [pid(i) for i in range(50)])
    expected = checksum(reference, "s")
    reference.close()

    store = EdgeStore(root, index_threshold=1_000)
    count, _ = checksum(store, "s")
    assert count == POINTS + 300 - 50
    assert checksum(store, "s") == expected
    assert sorted(p.name for p in root.iterdir()) == ["s"]  # the copy is gone
    store.maintain_index("s")
    wait_for(lambda: store.maintain_index("s").state != "indexing", 120, "the build")
    assert store.index_state("s").indexed_points >= POINTS
    assert checksum(store, "s") == expected
    store.close()
