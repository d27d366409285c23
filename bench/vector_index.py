"""HNSW index lifecycle on Qdrant Edge: built beside the live store, and what it gives.

In one run, for each kind of vectors (N × 384-d, cosine), on an EdgeStore in a temp dir:

  build    N points written, then ``maintain_index`` called every 0.2 s, as the vector
           processor's timer does, until the index is swapped in: wall seconds of the
           build, and the searches the store answered meanwhile (p50, max; each search
           is one call between two upkeep calls)
  search   Q top-10 queries drawn from the same distribution: p50 and recall@10 against
           exact numpy search, before the build (brute force), after it at the default
           ef, with hnsw_ef=256, and with exact=True

Kinds: ``clustered`` (a mixture of 1,000 Gaussians, the shape real embeddings have),
``random`` (uniform on the sphere: HNSW's worst case, no structure to exploit) and
``minilm`` (real embeddings: all-MiniLM-L6-v2 of --minilm-docs docstrings of the standard
library, queried with the embeddings of docstrings held out; Python 3.11's stdlib has about
7,000 distinct ones, more are topped up with generated sentences).

    python bench/vector_index.py [--points 100000] [--queries 200]
        [--kinds clustered,random,minilm] [--minilm-docs 6900]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from machine import machine, version
from timing import percentile
from vectors_reembed import stdlib_docstrings

from projections.vectors.edge import EdgeStore
from projections.vectors.edge_index import HNSW_EF_CONSTRUCT, HNSW_M, INDEX_THRESHOLD
from projections.vectors.extractors import get_extractor
from projections.vectors.store import Space, VectorPoint

DIM = 384
GOAL_RECALL = 0.95


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def sample(kind: str, rng: np.random.Generator, n: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    if kind == "minilm":
        texts, what = stdlib_docstrings(n + q)
        model = get_extractor({"feature_extractor_name": "minilm_extractor"})
        start = time.perf_counter()
        vectors = [v for at in range(0, len(texts), 256) for v in model.embed(texts[at : at + 256])]
        print(f"   {len(texts)} {what} embedded in {time.perf_counter() - start:.0f} s")
        embedded = unit(np.array(vectors, dtype=np.float32))
        return embedded[:n], embedded[n:]
    if kind == "random":
        return unit(rng.standard_normal((n, DIM))), unit(rng.standard_normal((q, DIM)))
    centers = unit(rng.standard_normal((1000, DIM)))

    def draw(count: int) -> np.ndarray:
        noise = 0.05 * rng.standard_normal((count, DIM))  # |noise| ~ |center|: clusters overlap
        return unit(centers[rng.integers(0, 1000, count)] + noise)

    return draw(n), draw(q)


def searches(
    store: EdgeStore, queries: np.ndarray, truth: list[set[int]], **params: object
) -> tuple[float, float]:
    """p50 ms and recall@10 of the queries (after the first 20 once, unmeasured: the pages
    of a freshly swapped-in index are not in memory yet)."""
    for vector in queries[:20].tolist():
        store.search("s", vector, limit=10, **params)  # type: ignore[arg-type]
    ms, found = [], 0
    for vector, exact in zip(queries.tolist(), truth, strict=True):
        start = time.perf_counter()
        hits = store.search("s", vector, limit=10, **params)  # type: ignore[arg-type]
        ms.append((time.perf_counter() - start) * 1000)
        found += len(exact & {int(h.payload["n"]) for h in hits})
    return percentile(ms, 50), found / (10 * len(truth))


def peak_kb(build: object) -> int:
    """The peak resident memory (VmHWM) of a running build's child; 0 once it is gone."""
    try:
        status = Path(f"/proc/{build.process.pid}/status").read_text()  # type: ignore[attr-defined]
    except (OSError, AttributeError):
        return 0
    return next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM")), 0)


def run(kind: str, n: int, q: int, root: Path) -> None:
    rng = np.random.default_rng(11)
    points, queries = sample(kind, rng, n, q)
    n = len(points)
    truth = [set(np.argpartition(-(points @ v), 10)[:10].tolist()) for v in queries]
    # a smaller store than the build threshold is built anyway: the index is what is measured
    store = EdgeStore(root / kind, index_threshold=min(INDEX_THRESHOLD, n // 2))
    store.create_store("s", Space(DIM, "cosine"))
    start = time.perf_counter()
    for at in range(0, n, 2048):
        chunk = points[at : at + 2048].tolist()
        store.upsert(
            "s",
            [
                VectorPoint(str(uuid.UUID(int=at + i + 1)), v, {"n": at + i})
                for i, v in enumerate(chunk)
            ],
        )
    fill = time.perf_counter() - start
    print(f"-- {kind}: {n} points written in {fill:.1f} s", flush=True)
    brute = searches(store, queries, truth)

    start, during, probe = time.perf_counter(), [], queries[0].tolist()
    store.maintain_index("s")  # flushes and copies the store's files while it waits
    copy = time.perf_counter() - start
    child_peak = 0
    while store.index_state("s").state == "indexing":
        child_peak = max(child_peak, peak_kb(store._open["s"].build))
        t0 = time.perf_counter()
        store.search("s", probe, limit=10)
        during.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.2)
        store.maintain_index("s")
    build = time.perf_counter() - start
    state = store.index_state("s")
    print(
        f"   index built beside the live store in {build:.1f} s ({state.indexed_points} of "
        f"{state.points} points indexed); the store waited {copy:.2f} s for the copy of its "
        f"files; {len(during)} searches answered meanwhile: p50 {percentile(during, 50):.2f} ms, "
        f"max {max(during, default=0):.2f} ms"
    )
    rows = [
        ("before the build (brute force)", brute),
        ("indexed, default ef", searches(store, queries, truth)),
        ("indexed, hnsw_ef=64", searches(store, queries, truth, ef=64)),
        ("indexed, hnsw_ef=128", searches(store, queries, truth, ef=128)),
        ("indexed, hnsw_ef=256", searches(store, queries, truth, ef=256)),
        ("exact=True", searches(store, queries, truth, exact=True)),
    ]
    for what, (p50, recall) in rows:
        print(f"   {what:<34} p50 {p50:7.2f} ms   recall@10 {recall:6.3f}")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    print(
        f"   peak memory: this process (the store, and the points and queries in numpy) "
        f"{own:.0f} MB, the build's child {child_peak / 1024:.0f} MB"
    )
    verdict = "met" if rows[1][1][1] >= GOAL_RECALL else "not met"
    print(f"   goal recall@10 >= {GOAL_RECALL} at default settings ({kind}): {verdict}")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--kinds", default="clustered,random,minilm")
    parser.add_argument("--minilm-docs", type=int, default=6_900)  # the stdlib has ~7,000
    args = parser.parse_args()
    print(f"vector index benchmark, {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"machine: {machine()}")
    print(
        f"engine:  Qdrant Edge (qdrant-edge-py {version('qdrant-edge-py')}); HNSW m={HNSW_M}, "
        f"ef_construct={HNSW_EF_CONSTRUCT}; a build starts at {INDEX_THRESHOLD} unindexed points"
    )
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        for kind in args.kinds.split(","):
            points = args.minilm_docs if kind == "minilm" else args.points
            run(kind, points, args.queries, Path(tmp))


if __name__ == "__main__":
    main()
