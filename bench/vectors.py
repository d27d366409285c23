"""Copy-on-write vector collections against doing the work by hand, on Qdrant Edge.

In one run, on the embedded default (Qdrant Edge in-process, catalog in SQLite), all
under a temporary directory:

  1. deep copy  a collection of N random unit vectors (384-d, small payloads) copied with
                start_deep_copy + copy_batch(batch=1024) until done, against a raw loop
                through the same port (scroll the source store page by page (1024) and
                upsert each page into a fresh store) and against a raw Qdrant Edge upsert
                of the same points from memory (points built from Python lists and
                upserted, 1024 a batch). Points/s of each and the ratios.
  2. queries    a reuse clone of that collection, diverged (5% of its documents
                overwritten, 5% deleted), stores indexed the way the vector processor
                does it (maintain_index: a build beside the live store), then Q top-10
                searches with random query vectors, against the same queries on a plain
                one-layer collection holding the same final documents. p50/p99 and
                clone/plain.
  3. re-embed   M docstrings from the Python standard library (read with ast, nothing
                imported) embedded with text_extractor into a collection; a reuse clone
                of it against re-embedding all M texts into a new collection with
                text_extractor, and with minilm_extractor when it is installed.

    python bench/vectors.py [--points 100000] [--queries 300] [--documents 2000]

Part 3 is measured in bench/vectors_reembed.py; bench/timing.py holds the timing helpers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe
from machine import machine, version
from timing import Deadline, percentile, timed
from vectors_reembed import reembedding

from projections.sql import Database
from projections.vectors.edge import EdgeStore, to_edge_filter
from projections.vectors.store import Space, VectorPoint
from projections.vectors.views import CopyOnWrite

DIM = 384
SPACE = Space(DIM, "cosine")
BATCH = 1024
WARMUP_QUERIES = 10
GOAL_COPY_RATE, GOAL_COPY_RATIO, GOAL_CLONE_RATIO = 40_000, 0.8, 1.3


# --- helpers ---------------------------------------------------------------


def unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def doc_id(i: int) -> str:
    return f"doc-{i:07d}"


def payload(i: int) -> dict[str, object]:
    return {"n": i, "group": f"g{i % 100}"}


def write_rows(
    cow: CopyOnWrite, collection: str, rows: Sequence[int], vectors: np.ndarray, deadline: Deadline
) -> None:
    """Write documents ``doc_id(i)`` with ``vectors[k]`` for the k-th i of ``rows``."""
    for start in range(0, len(rows), BATCH):
        deadline.check()
        chunk = rows[start : start + BATCH]
        cow.write(
            collection,
            [
                VectorPoint(doc_id(i), vectors[start + k].tolist(), payload(i))
                for k, i in enumerate(chunk)
            ],
        )


def header(args: argparse.Namespace) -> list[str]:
    return [
        f"vector benchmark, {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"machine:  {machine()}",
        f"engine:   Qdrant Edge in-process (qdrant-edge-py {version('qdrant-edge-py')}), "
        f"catalog in SQLite; numpy {version('numpy')}, sentence-transformers "
        f"{version('sentence-transformers')}, torch {version('torch')}",
        f"runs:     --points {args.points} --queries {args.queries} --documents "
        f"{args.documents} --seed {args.seed}; {DIM}-d cosine, every store in a temp dir",
    ]


def index(vectors: EdgeStore, store: str) -> float:
    """Build the store's index as the vector processor does; seconds it took."""
    start = time.perf_counter()
    vectors.maintain_index(store)
    while vectors.index_state(store).state == "indexing":
        time.sleep(0.2)
        vectors.maintain_index(store)
    return time.perf_counter() - start


def raw_edge_upsert(base: np.ndarray, root: Path) -> float:
    """Points/s of Qdrant Edge upserting the points from memory, 1024 a batch."""
    config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine))
    shard = qe.EdgeShard.create(str(root / "raw-edge"), config)
    rows = base.tolist()
    start = time.perf_counter()
    for at in range(0, len(rows), BATCH):
        batch = [
            qe.Point(id=str(uuid.UUID(int=i + 1)), vector=rows[i], payload=payload(i))
            for i in range(at, min(len(rows), at + BATCH))
        ]
        shard.update(qe.UpdateOperation.upsert_points(batch))
    seconds = time.perf_counter() - start
    shard.close()
    return len(rows) / seconds


# --- 1. deep copy ----------------------------------------------------------


def deep_copy(
    cow: CopyOnWrite, vectors: EdgeStore, base: np.ndarray, seconds: float, root: Path
) -> dict[str, float]:
    n = len(base)
    cow.create("base", "store_base", SPACE)
    _, fill = timed(write_rows, cow, "base", range(n), base, Deadline(seconds, "filling base"))
    built = index(vectors, "store_base")
    print(f"  setup: {n} points written in {fill:.1f} s, indexed in {built:.1f} s")

    # envbranch: a resumable deep copy through the catalog
    deadline = Deadline(seconds, "deep copy")
    start = time.perf_counter()
    cow.start_deep_copy("bench-copy", "base", "copy", "store_copy")
    while not cow.copy_batch("bench-copy", batch=BATCH).done:
        deadline.check()
    copy_seconds = time.perf_counter() - start
    copied = cow.count("copy")

    # baseline: scroll the source store and upsert every page into a fresh store
    deadline = Deadline(seconds, "raw copy loop")
    start = time.perf_counter()
    vectors.create_store("store_raw", SPACE)
    cursor = None
    while True:
        deadline.check()
        page, cursor = vectors.scroll("store_base", None, BATCH, cursor, True)
        vectors.upsert("store_raw", page)
        if cursor is None:
            break
    raw_seconds = time.perf_counter() - start
    raw_copied = vectors.count("store_raw")

    copy_rate, raw_rate = copied / copy_seconds, raw_copied / raw_seconds
    edge_rate = raw_edge_upsert(base, root)
    print(
        f"  deep copy  (start_deep_copy + copy_batch): {copied:>7} points in "
        f"{copy_seconds:6.1f} s = {copy_rate:8.0f} points/s"
    )
    print(
        f"  raw loop   (scroll 1024 + upsert):          {raw_copied:>7} points in "
        f"{raw_seconds:6.1f} s = {raw_rate:8.0f} points/s"
    )
    print(f"  raw Qdrant Edge upsert of the points from memory: {edge_rate:8.0f} points/s")
    print(
        f"  ratio deep copy / raw loop: {copy_rate / raw_rate:.2f}; deep copy / raw Edge upsert: "
        f"{copy_rate / edge_rate:.2f}"
    )
    met = copy_rate >= GOAL_COPY_RATE and copy_rate >= GOAL_COPY_RATIO * edge_rate
    print(
        f"  goal >= {GOAL_COPY_RATE} points/s and >= {GOAL_COPY_RATIO}x the raw Edge upsert: "
        f"{'met' if met else 'not met'}"
    )
    return {"copy": copy_rate, "raw": raw_rate, "edge": edge_rate}


# --- 2. queries after divergence -------------------------------------------


def queries_after_divergence(
    cow: CopyOnWrite,
    vectors: EdgeStore,
    base: np.ndarray,
    rng: np.random.Generator,
    queries: int,
    seconds: float,
) -> None:
    final, rows, hidden = diverge_clone_and_write_plain(cow, vectors, base, rng, seconds)
    probes = unit_vectors(rng, queries + WARMUP_QUERIES)
    # exact top-10 of the final documents, to tell how approximate each side's answers are
    scores = probes[WARMUP_QUERIES:] @ final[rows].T
    exact = [{doc_id(rows[j]) for j in np.argpartition(-row, 10)[:10]} for row in scores]
    del scores
    for v in probes[:WARMUP_QUERIES].tolist():
        cow.search("clone", v)
        cow.search("plain", v)
    ms, found = time_clone_and_plain_searches(cow, probes[WARMUP_QUERIES:].tolist(), exact, seconds)
    print_query_latencies(ms, found, hidden, queries)


def diverge_clone_and_write_plain(
    cow: CopyOnWrite, vectors: EdgeStore, base: np.ndarray, rng: np.random.Generator, seconds: float
) -> tuple[np.ndarray, list[int], int]:
    """A reuse clone of ``base`` with 5% overwritten and 5% deleted, and ``plain``: the
    clone's final documents in one layer. Returns (final vectors, rows kept, hidden count)."""
    n = len(base)
    cow.reuse_clone("base", "clone")
    order = rng.permutation(n)
    overwritten = sorted(int(i) for i in order[: n // 20])
    deleted = sorted(int(i) for i in order[n // 20 : n // 10])
    fresh = unit_vectors(rng, len(overwritten))

    deadline = Deadline(seconds, "diverging the clone")
    start = time.perf_counter()
    write_rows(cow, "clone", overwritten, fresh, deadline)
    for s in range(0, len(deleted), BATCH):
        deadline.check()
        cow.delete("clone", [doc_id(i) for i in deleted[s : s + BATCH]])
    diverge = time.perf_counter() - start

    # the plain collection: the clone's final documents, one layer, nothing hidden
    final = base.copy()
    final[overwritten] = fresh
    gone = set(deleted)
    rows = [i for i in range(n) if i not in gone]
    cow.create("plain", "store_plain", SPACE)
    _, fill = timed(write_rows, cow, "plain", rows, final[rows], Deadline(seconds, "plain"))
    opt_base = index(vectors, "store_base")
    opt_plain = index(vectors, "store_plain")
    clone_view = cow.view("clone")
    hidden = len(cow.hidden("clone"))
    clone_count, plain_count = cow.count("clone"), cow.count("plain")
    print(
        f"  setup: clone diverged in {diverge:.1f} s ({len(overwritten)} overwritten, "
        f"{len(deleted)} deleted: {len(clone_view.layers)} layers, {hidden} hidden points, "
        f"{vectors.count('store_base')} points in its store); plain written in {fill:.1f} s; "
        f"indexed in {opt_base:.1f} s / {opt_plain:.1f} s; documents clone {clone_count}, "
        f"plain {plain_count}"
    )
    return final, rows, hidden


def time_clone_and_plain_searches(
    cow: CopyOnWrite, probes: list[Any], exact: list[set[str]], seconds: float
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Milliseconds per search by side (clone, plain) and by part of a clone search (catalog,
    translate); and how many of the exact top-10 each side found."""
    ms: dict[str, list[float]] = {"clone": [], "plain": [], "catalog": [], "translate": []}
    found = {"clone": 0, "plain": 0}
    deadline = Deadline(seconds, "queries")
    for v, truth in zip(probes, exact, strict=True):
        deadline.check()  # the two sides interleaved, so drift hits both alike
        t0 = time.perf_counter()
        on_clone = cow.search("clone", v, limit=10)
        t1 = time.perf_counter()
        on_plain = cow.search("plain", v, limit=10)
        t2 = time.perf_counter()
        _, visible = cow.visibility("clone")  # the parts of a clone search, timed apart
        t3 = time.perf_counter()
        to_edge_filter(visible)
        t4 = time.perf_counter()
        ms["clone"].append((t1 - t0) * 1000)
        ms["plain"].append((t2 - t1) * 1000)
        ms["catalog"].append((t3 - t2) * 1000)
        ms["translate"].append((t4 - t3) * 1000)
        found["clone"] += len(truth & {h.id for h in on_clone})
        found["plain"] += len(truth & {h.id for h in on_plain})
    return ms, found


def print_query_latencies(
    latency_ms: dict[str, list[float]], found: dict[str, int], hidden: int, queries: int
) -> None:
    clone_ms, plain_ms = latency_ms["clone"], latency_ms["plain"]
    catalog_ms, translate_ms = latency_ms["catalog"], latency_ms["translate"]

    def line(name: str, ms: list[float]) -> str:
        return f"p50 {percentile(ms, 50):7.2f} ms   p99 {percentile(ms, 99):7.2f} ms   {name}"

    print(f"  clone:  {line('CopyOnWrite.search on the diverged reuse clone', clone_ms)}")
    print(f"  plain:  {line('CopyOnWrite.search, one layer, nothing hidden', plain_ms)}")
    ratio = percentile(clone_ms, 50) / percentile(plain_ms, 50)
    print(
        f"  ratio clone / plain: p50 {ratio:.2f}, "
        f"p99 {percentile(clone_ms, 99) / percentile(plain_ms, 99):.2f}"
    )
    verdict = "met" if ratio <= GOAL_CLONE_RATIO else "not met"
    print(f"  goal p50 ratio <= {GOAL_CLONE_RATIO}: {verdict}")
    rest = percentile(clone_ms, 50) - percentile(catalog_ms, 50) - percentile(translate_ms, 50)
    print(
        f"  clone p50 by part: catalog read (visibility: the view's layers, not hidden by it; "
        f"{hidden} points hidden) {percentile(catalog_ms, 50):.2f} ms, filter translation to "
        f"Qdrant Edge (to_edge_filter) {percentile(translate_ms, 50):.2f} ms, the rest "
        f"(engine search) ~{rest:.2f} ms"
    )
    print(
        f"  recall@10 against exact search: clone {found['clone'] / (10 * queries):.1%}, "
        f"plain {found['plain'] / (10 * queries):.1%} (random {DIM}-d vectors: HNSW's worst case)"
    )


# --- main ------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--deadline", type=float, default=1800, help="seconds per loop")
    args = parser.parse_args()
    if args.points < 20 or args.queries < 1 or args.documents < 1:
        parser.error("need --points >= 20, --queries >= 1, --documents >= 1")
    for line in header(args):
        print(line, flush=True)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-vectors-") as tmp:
        vectors = EdgeStore(Path(tmp) / "edge")
        try:
            cow = CopyOnWrite(vectors, Database(sqlite_path=Path(tmp) / "views.sqlite3"))
            cow.create_schema()
            base = unit_vectors(rng, args.points)

            print(f"\n1. deep copy of {args.points} points, batches of {BATCH}", flush=True)
            deep_copy(cow, vectors, base, args.deadline, Path(tmp))

            print(
                f"\n2. top-10 query latency, {args.queries} random queries "
                f"(+{WARMUP_QUERIES} warm-up), diverged reuse clone vs plain collection",
                flush=True,
            )
            queries_after_divergence(cow, vectors, base, rng, args.queries, args.deadline)

            print(
                f"\n3. reuse clone vs re-embedding {args.documents} documents of real text",
                flush=True,
            )
            reembedding(cow, args.documents)
        finally:
            vectors.close()


if __name__ == "__main__":
    main()
