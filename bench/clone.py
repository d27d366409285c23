"""Reuse clone cost against collection size: it should not depend on it.

Fills two collections on the embedded default (Qdrant Edge) with 2,000 and
200,000 points of 384 dimensions, then times reuse clones of each (median of
repeated clones) and counts the store's points before and after: a reuse clone
copies none. Prints both times and their ratio (large / small).

    python bench/clone.py [--small 2000] [--large 200000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from projections.sql import Database
from projections.vectors.edge import EdgeStore
from projections.vectors.store import Space, VectorPoint
from projections.vectors.views import CopyOnWrite

DIM = 384


def fill(cow: CopyOnWrite, collection: str, count: int, rng: np.random.Generator) -> float:
    cow.create(collection, f"store_{collection}", Space(DIM, "cosine"))
    start = time.perf_counter()
    for offset in range(0, count, 2000):
        n = min(2000, count - offset)
        vectors = rng.standard_normal((n, DIM)).astype(np.float32)
        points = [
            VectorPoint(str(offset + i), vectors[i].tolist(), {"n": offset + i}) for i in range(n)
        ]
        cow.write(collection, points)
    return time.perf_counter() - start


def clone_times(cow: CopyOnWrite, source: str, repeat: int) -> list[float]:
    times = []
    for i in range(repeat):
        start = time.perf_counter()
        cow.reuse_clone(source, f"{source}-clone-{i}")
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        vectors = EdgeStore(Path(tmp) / "edge")
        cow = CopyOnWrite(vectors, Database(sqlite_path=Path(tmp) / "views.sqlite3"))
        cow.create_schema()
        print(f"reuse clone, Qdrant Edge, {DIM}-d, median of {args.repeat} clones")
        results = {}
        for name, size in (("small", args.small), ("large", args.large)):
            fill_seconds = fill(cow, name, size, rng)
            before = vectors.count(f"store_{name}")
            times = clone_times(cow, name, args.repeat)
            after = vectors.count(f"store_{name}")
            results[name] = statistics.median(times)
            print(
                f"{name:>6}: {size:>7} points (filled in {fill_seconds:.1f} s), "
                f"clone {results[name] * 1000:.2f} ms median, "
                f"points copied: {after - before}, clone sees {cow.count(f'{name}-clone-0')}"
            )
        ratio = results["large"] / results["small"]
        print(f"ratio large/small: {ratio:.2f} (1.00: the same time at any size)")
        vectors.close()


if __name__ == "__main__":
    main()
