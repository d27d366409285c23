"""HNSW indexes for Qdrant Edge stores, built beside the live shard.

Qdrant Edge builds a shard's HNSW index in ``optimize``, which holds the whole process
(Python's GIL included) until it is done: about a minute for 100,000 384-d vectors. So
a store is indexed in a copy of itself:

1. under the store's lock (for as long as copying its files takes: 0.1 s at 10,000
   384-d points, 2-4 s at 1,000,000): flush the live shard, copy its files to
   ``.build-<name>-<id>`` and start a child process that optimizes the copy;
2. meanwhile the live shard takes every write and query; the IDs written since the
   copy are noted;
3. when the child is done, the noted points are brought over from the live shard into
   the copy, in rounds while writes go on, the last (small) round under the store's
   lock; then the copy replaces the live shard (two renames; the old files go last).

A crash at any step leaves a whole shard in place (``recover`` tidies up at open time);
a build the crash interrupted starts again when the store next needs one. This module
is also the child: ``python -m projections.vectors.edge_index <directory> <parent pid>``.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from projections.vectors.store import Distance, IndexKind, IndexState, Relabel, Space

log = logging.getLogger(__name__)

META = "store.json"
BUILD = ".build-"
OLD = ".old-"
# HNSW parameters: recall >= 0.95 at the default per-query ef on clustered vectors and
# on MiniLM embeddings (bench/vector_index.py measures it).
HNSW_M = 16
HNSW_EF_CONSTRUCT = 128
FULL_SCAN_KB = 10_000  # segments smaller than this are searched exactly (Qdrant's default)
# A store is (re)indexed once this many of its points are not in an HNSW index.
INDEX_THRESHOLD = 10_000

_DISTANCES: dict[Distance, qe.Distance] = {
    "cosine": qe.Distance.Cosine,
    "dot": qe.Distance.Dot,
    "euclid": qe.Distance.Euclid,
}


def shard_config(space: Space) -> qe.EdgeConfig:
    params = qe.EdgeVectorParams(size=space.size, distance=_DISTANCES[space.distance])
    hnsw = qe.HnswIndexConfig(
        m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=FULL_SCAN_KB
    )
    return qe.EdgeConfig(vectors=params, hnsw_config=hnsw)


def read_meta(directory: Path) -> tuple[Space, dict[str, IndexKind]]:
    """The space and payload indexes a store's ``store.json`` records."""
    meta = json.loads((directory / META).read_text())
    return Space(size=int(meta["size"]), distance=meta["distance"]), dict(meta.get("indexes", {}))


def points_of(records: list[qe.Record], relabel: Relabel | None = None) -> list[qe.Point]:
    """New points of scrolled or retrieved records (read with vectors), as they are or under
    the ID and payload ``relabel`` makes of each payload; vectors pass through unconverted."""
    points = []
    for record in records:
        payload = dict(record.payload or {})
        new_id, payload = relabel(payload) if relabel else (record.id, payload)
        vector = record.vector
        assert vector is not None  # read with vectors
        points.append(qe.Point(id=new_id, vector=vector, payload=payload))
    return points


@dataclass
class Build:
    """An index build under way: the child, its copy, and the IDs written since the copy."""

    process: subprocess.Popen[bytes]
    directory: Path
    touched: set[str] = field(default_factory=set)

    @property
    def log(self) -> Path:
        return self.directory.parent / f"{self.directory.name}.log"


@dataclass
class Store:
    """An open Edge store: its shard, and the state of its index builds."""

    shard: qe.EdgeShard
    space: Space
    indexes: dict[str, IndexKind] = field(default_factory=dict)
    # Every use of the shard holds it: an index build swaps the shard under it.
    lock: threading.RLock = field(default_factory=threading.RLock)
    build: Build | None = None
    built_at: int = -1  # points when the last index build started
    retry_at: float = 0.0  # after a failed build, when the next may start

    def touched(self, ids: Sequence[Any]) -> None:
        if self.build is not None:
            self.build.touched.update(str(i) for i in ids)

    def load(self, path: Path) -> qe.EdgeShard:
        return qe.EdgeShard.load(str(path), shard_config(self.space))


@dataclass
class Policy:
    threshold: int = INDEX_THRESHOLD  # unindexed points that start a build
    retry_seconds: float = 60.0  # after a failed build


def due(store: Store, info: Any, policy: Policy) -> bool:
    """Enough points unindexed for a build. What a build leaves unindexed (segments too
    small for HNSW, searched exactly) does not start another until the store grows."""
    unindexed = info.points_count - info.indexed_vectors_count
    grown = info.points_count - store.built_at
    return bool(unindexed >= policy.threshold and grown >= policy.threshold)


def state(store: Store, policy: Policy) -> IndexState:
    with store.lock:
        info = store.shard.info()
        if store.build is not None:
            now = "indexing"
        else:
            now = "pending" if due(store, info, policy) else "indexed"
        return IndexState(info.points_count, info.indexed_vectors_count, now)


def maintain(store: Store, live: Path, policy: Policy) -> None:
    """Start a build when one is due, swap a finished one in; never waits for a build."""
    with store.lock:
        build = store.build
        if build is None:
            info = store.shard.info()
            if due(store, info, policy) and time.monotonic() >= store.retry_at:
                store.shard.flush()
                store.build = start(live)
                store.built_at = info.points_count
    if build is not None and build.process.poll() is not None:
        if build.process.returncode != 0:
            _failed(store, build, live.name, failure(build), policy)
        else:
            _finish(store, build, live, policy)


def _finish(store: Store, build: Build, live: Path, policy: Policy) -> None:
    def retrieve(ids: list[Any]) -> list[qe.Record]:
        with store.lock:
            return store.shard.retrieve(ids, True, True)

    old = None
    try:
        built = store.load(build.directory)
        try:
            # Catch up while writes go on; the last round (small, or the last allowed)
            # under the lock, so nothing is written between it and the swap.
            for rounds in itertools.count(1):
                with store.lock:
                    if store.build is not build:
                        return  # abandoned meanwhile (a new payload index, a drop)
                    ids, build.touched = build.touched, set()
                    if len(ids) <= CATCH_UP_LOCKED or rounds >= CATCH_UP_ROUNDS:
                        bring_over(ids, retrieve, built)
                        built.flush()
                        built.close()
                        store.shard.flush()  # may fail: the live shard is still in place
                        store.shard.close()
                        store.shard = None  # type: ignore[assignment]
                        old = swap(build, live)
                        store.shard = store.load(live)
                        store.build = None
                        break
                bring_over(ids, retrieve, built)
        finally:
            with contextlib.suppress(Exception):  # closed already if the swap began
                built.close()
    except Exception as exc:
        log.exception("swapping in the index of store %s failed", live.name)
        with store.lock:
            if store.shard is None:  # the live shard was closed: reopen what is on disk
                recover_store(live.parent, live.name)
                store.shard = store.load(live)
            _failed(store, build, live.name, repr(exc), policy)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)  # outside the lock: its size does not matter


def _failed(store: Store, build: Build, name: str, why: str, policy: Policy) -> None:
    log.warning("index build of store %s failed (exit %s): %s", name, build.process.returncode, why)
    with store.lock:
        if store.build is build:
            store.build = None
            store.built_at = -1  # still due ...
            store.retry_at = time.monotonic() + policy.retry_seconds  # ... after a pause
    abandon(build)


def start(live: Path) -> Build:
    """Copy the (flushed) shard in ``live`` and start optimizing the copy in a child."""
    directory = live.parent / f"{BUILD}{live.name}-{uuid.uuid4().hex[:8]}"
    shutil.copytree(live, directory)
    build_log = directory.parent / f"{directory.name}.log"
    with open(build_log, "wb") as out:
        module = "projections.vectors.edge_index"
        process = subprocess.Popen(
            [sys.executable, "-m", module, str(directory), str(os.getpid())],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Build(process, directory)


def _die_with_parent(parent: int) -> None:
    """No orphan keeps building after its parent died (a crash): the kernel kills this
    process when the parent goes; a parent gone before that is noticed here."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        sys.exit(f"the process that started this build ({parent}) is gone")


Retrieve = Callable[[list[Any]], list[qe.Record]]  # point IDs -> records
CATCH_UP_LOCKED = 2_000  # points written since the copy that are brought over under the lock
CATCH_UP_ROUNDS = 5  # rounds outside the lock at most (a steady stream of writes)


def bring_over(ids: set[str], retrieve: Retrieve, built: qe.EdgeShard) -> None:
    """Make these points in the copy what they are in the live shard (absent: deleted)."""
    touched = sorted(ids)
    for start_at in range(0, len(touched), 1024):
        chunk: list[qe.PointId] = list(touched[start_at : start_at + 1024])
        records = retrieve(chunk)
        present = points_of(records)
        if present:
            built.update(qe.UpdateOperation.upsert_points(present))
        kept = {str(r.id) for r in records}
        gone: list[qe.PointId] = [i for i in chunk if str(i) not in kept]
        if gone:
            built.update(qe.UpdateOperation.delete_points(gone))


def swap(build: Build, live: Path) -> Path:
    """Put the caught-up (closed) copy in the (closed) live shard's place; returns the old
    files' directory, for the caller to delete outside the store's lock."""
    old = live.parent / f"{OLD}{live.name}"
    os.rename(live, old)
    os.rename(build.directory, live)
    build.log.unlink(missing_ok=True)
    return old


def abandon(build: Build) -> None:
    """Stop a build and remove its copy (a dropped or closed store)."""
    if build.process.poll() is None:
        build.process.kill()
        build.process.wait()
    shutil.rmtree(build.directory, ignore_errors=True)
    build.log.unlink(missing_ok=True)


def failure(build: Build) -> str:
    try:
        return build.log.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def recover(root: Path) -> None:
    """Tidy up what a crash left under ``root``: unfinished copies, and the old files of a
    swap (put back if the copy had not taken their place yet). At open, before any build."""
    if not root.is_dir():
        return
    for path in root.iterdir():
        if path.name.startswith(BUILD):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        elif path.name.startswith(OLD):
            recover_store(root, path.name[len(OLD) :])


def recover_store(root: Path, name: str) -> None:
    """The old files of one store's swap: put back if the copy had not taken their place,
    deleted if it had."""
    old, live = root / f"{OLD}{name}", root / name
    if not old.exists():
        return
    if (live / META).is_file():
        shutil.rmtree(old)
    else:
        os.rename(old, live)


def main(directory: str, parent: str) -> None:
    _die_with_parent(int(parent))
    path = Path(directory)
    shard = qe.EdgeShard.load(str(path), shard_config(read_meta(path)[0]))
    try:
        shard.optimize()
        shard.flush()
    finally:
        shard.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
