"""Ingesting documents that bring their own 384-d vectors, through the API.

`envbranch up` as a child (embedded defaults: SQLite, Qdrant Edge) on the embedded broker;
C clients (threads, one HTTP connection each) POST /v1/collections/docs/documents with
B documents a request, each with a random 384-d vector and a small payload, until D
documents are in. Prints documents/s for each fifth of the run (flat, or slowing as the
collection grows), request p50/p99, errors, the stack's CPU seconds per 1,000 documents,
and the bytes on disk per document of the event store, the read model and the vector
store (SQLite's write-ahead logs included). Each form a client may send vectors in (JSON
lists of numbers, or packed: base64 of float32) runs on a stack of its own.

    python bench/ingest.py [--documents 20000] [--clients 4] [--batch 150] [--forms lists,packed]
"""

from __future__ import annotations

import argparse
import base64
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from children import check_alive, child, child_env, cpu_seconds, up_and_serving
from machine import machine
from timing import percentile

from envbranch.broker import EmbeddedBroker, free_port

DIM = 384
GOAL = 3_000


def size_of(path: Path) -> int:
    """Bytes a file or a folder's files take on disk: their allocated blocks (Qdrant Edge
    sizes some files far beyond what they hold, and leaves the rest unwritten)."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_blocks * 512 for p in files)


def machine_busy() -> float:
    """CPU seconds the whole machine has spent not idle (from /proc/stat)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def setup(http: httpx.Client) -> None:
    http.post("/v1/namespaces", json={"namespace_name": "ingest"}).raise_for_status()
    extractor = {
        "feature_extractor_name": "text_extractor",
        "version": "v1",
        "params": {"dim": DIM},
    }
    bucket = {"bucket_name": "b", "bucket_schema": {"properties": {}}}
    http.post("/v1/buckets", json=bucket, headers={"X-Namespace": "ingest"}).raise_for_status()
    collection = {
        "collection_name": "docs",
        "source": {"type": "bucket", "bucket_ids": ["b"]},
        "feature_extractor": extractor,
    }
    answer = http.post("/v1/collections", json=collection, headers={"X-Namespace": "ingest"})
    answer.raise_for_status()


def client_loop(
    url: str,
    key: str,
    batches: list[int],
    batch: int,
    packed: bool,
    out: list[tuple[float, float, int]],
) -> None:
    """POST the batches numbered ``batches``; records (end time, seconds, HTTP status)."""
    rng = np.random.default_rng(batches[0] if batches else 0)
    headers = {"Authorization": f"Bearer {key}", "X-Namespace": "ingest"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        for number in batches:
            values = rng.standard_normal((batch, DIM)).astype("<f4")
            if packed:  # base64 of little-endian float32, as envbranch's commands carry it
                vectors: list[Any] = [base64.b64encode(v.tobytes()).decode() for v in values]
            else:  # a JSON list of numbers, as Mixpeek's clients send it
                vectors = values.tolist()
            documents = [
                {"document_id": f"d{number}-{i}", "vector": v, "payload": {"n": i}}
                for i, v in enumerate(vectors)
            ]
            start = time.perf_counter()
            try:
                status = http.post(
                    "/v1/collections/docs/documents", json={"documents": documents}
                ).status_code
            except httpx.HTTPError:
                status = 0
            out.append((time.perf_counter(), time.perf_counter() - start, status))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=150)
    parser.add_argument(
        "--forms", default="lists,packed", help="how clients send vectors: lists, packed or both"
    )
    args = parser.parse_args()
    print(f"ingestion through the API, {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"machine: {machine()}")
    print(
        f"run:     {args.documents} documents with their own {DIM}-d vectors, {args.clients} "
        f"clients, {args.batch} a request; `envbranch up` (SQLite, Qdrant Edge) as a child, "
        "a new one for each form"
    )
    for form in args.forms.split(","):
        print(f"\nvectors sent as {form}:")
        run(args, packed=form == "packed")


def run(args: argparse.Namespace, packed: bool) -> None:
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root, port = Path(tmp), free_port()
        data = root / "data"
        env = child_env(
            broker.bootstrap_servers,
            data,
            f"ingest{uuid.uuid4().hex[:8]}",
            ENVBRANCH_API_PORT=str(port),
            ENVBRANCH_COMMAND_TIMEOUT="120",
        )
        url, log = f"http://127.0.0.1:{port}", root / "up.log"
        with child(["up"], env, root, log) as process:
            key = up_and_serving(process, log, url)
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as h:
                setup(h)
            batches = list(range(args.documents // args.batch))
            results: list[tuple[float, float, int]] = []
            threads = [
                threading.Thread(
                    target=client_loop,
                    args=(url, key, batches[c :: args.clients], args.batch, packed, results),
                )
                for c in range(args.clients)
            ]
            cpu, start = cpu_seconds(process.pid), time.perf_counter()
            mine, busy = time.process_time(), machine_busy()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall, cpu = time.perf_counter() - start, cpu_seconds(process.pid) - cpu
            mine, busy = time.process_time() - mine, machine_busy() - busy
            check_alive(process, log)
        report(results, start, wall, cpu, args.batch, data)
        print(
            f"the machine's CPUs were {busy / wall / (os.cpu_count() or 1):.0%} busy: "
            f"`envbranch up` {cpu / wall:.2f} cores, the clients {mine / wall:.2f}, the rest "
            f"(the broker, the system) {(busy - cpu - mine) / wall:.2f}"
        )


def report(
    results: list[tuple[float, float, int]],
    start: float,
    wall: float,
    cpu: float,
    batch: int,
    data: Path,
) -> None:
    ok = [r for r in results if r[2] == 200]
    documents = len(ok) * batch
    errors = sorted({r[2] for r in results if r[2] != 200})
    rate = documents / wall
    print(f"documents/s {rate:8.0f} over {wall:.1f} s; errors {len(results) - len(ok)} {errors}")
    fifths = []
    for k in range(5):
        lo, hi = start + wall * k / 5, start + wall * (k + 1) / 5
        done = sum(batch for end, _, status in ok if lo <= end < hi)
        fifths.append(f"{done / (wall / 5):.0f}")
    print(f"documents/s by fifth of the run: {' | '.join(fifths)}")
    ms = [seconds * 1000 for _, seconds, _ in ok] or [0.0]
    print(f"request p50 {percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms")
    print(f"envbranch up: {cpu / max(documents, 1) * 1000:.2f} CPU s per 1,000 documents")
    parts = {
        "event store": sum(size_of(p) for p in data.glob("events.sqlite3*")),
        "read model": sum(size_of(p) for p in data.glob("read_model.sqlite3*")),
        "vector store": size_of(data / "vectors"),
    }
    per = {k: v / max(documents, 1) for k, v in parts.items()}
    shown = ", ".join(f"{k} {v:.0f}" for k, v in per.items())
    print(f"bytes on disk per document: {sum(per.values()):.0f} ({shown})")
    verdict = "met" if rate >= GOAL and not errors else "not met"
    print(f"goal >= {GOAL} documents/s, flat, no errors: {verdict}")


if __name__ == "__main__":
    main()
