"""Part 2 of bench/read_path.py: M events put on a fresh events topic (store filled
directly, then the relay alone), read back three ways: a raw AIOKafkaConsumer (the
baseline), the projector's Faust worker (the read model's feed), and ReadModel.apply in
this process. Prints the projector against the baseline and the goal (>= 50,000
events/s) when it is done.

Runs on its own too (with an embedded broker of its own):

    python bench/read_path_replay.py [--events 30000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from children import check_alive, child, child_env
from machine import machine

from contract.commands import command_from_document
from domain.envelopes import EventEnvelope
from envbranch.bootstrap import open_event_store, open_read_model
from envbranch.broker import EmbeddedBroker
from envbranch.settings import Settings
from envbranch.stack import run_components
from projections.faust_app import BATCH
from projections.read_model.feed import MAX_BATCH

GOAL = 50_000  # events/s the projector should replay at

# Same as the Faust app's and the gateway's consumers (Tansu holds a fetch this long).
FETCH_MAX_WAIT_MS = 100


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


@contextlib.asynccontextmanager
async def from_start(bootstrap: str, topic: str) -> AsyncIterator[tuple[Any, TopicPartition]]:
    """A consumer of the topic's one partition, at its first offset."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=FETCH_MAX_WAIT_MS
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        yield consumer, tp
    finally:
        await consumer.stop()


async def count_records(bootstrap: str, topic: str, total: int, timeout: float) -> tuple[int, int]:
    async with from_start(bootstrap, topic) as (consumer, tp):
        seen, last = 0, 0
        deadline = time.monotonic() + timeout
        while seen < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} holds {seen} of {total} records after {timeout:.0f}s")
            for record in (await consumer.getmany(tp, timeout_ms=200)).get(tp, []):
                seen += 1
                last = int(dict(record.headers)["position"])
        return seen, last


async def raw_consume(
    bootstrap: str, topic: str, total: int, timeout: float
) -> tuple[float, list[bytes]]:
    """Seconds to read ``total`` records from offset 0, json.loads each; and the values."""
    async with from_start(bootstrap, topic) as (consumer, tp):
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


def read_position(path: Path) -> tuple[int, bool]:
    """The read model's stored position (0 while the file or the table is not there yet),
    and whether it is still a rebuild that has not made its indexes."""
    if not path.exists():
        return 0, True
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            state = dict(
                conn.execute(
                    "SELECT name, value FROM read_model_state "
                    "WHERE name IN ('position', 'catching_up')"
                ).fetchall()
            )
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0, True
    return int(state.get("position", 0)), "catching_up" in state


def projector_replay(
    bootstrap: str, prefix: str, total: int, tmp: Path, timeout: float
) -> dict[str, float]:
    """`envbranch serve projector` on a fresh read model; poll its position. Done when it
    has applied everything and made the indexes it leaves out while catching up."""
    data_dir = tmp / "data"
    env = child_env(bootstrap, data_dir, prefix)
    log = tmp / "projector.log"
    db_path = data_dir / "read_model.sqlite3"
    started = time.perf_counter()
    with child(["serve", "projector"], env, tmp, log) as process:
        deadline = time.monotonic() + timeout
        first_at, first_position, applied_at = None, 0, None
        seen_positions = set()
        while True:
            position, catching_up = read_position(db_path)
            now = time.perf_counter()
            seen_positions.add(position)
            if first_at is None and position > 0:
                first_at, first_position = now, position
            if applied_at is None and position >= total:
                applied_at = now
            if position >= total and not catching_up:
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
        "indexes_s": done_at - (applied_at or done_at),
        "total_s": done_at - started,
        "first_position": first_position,
        # Polled every ~5 ms, so a lower bound on the transactions the agent committed.
        "steps": len(seen_positions - {0}),
    }


def apply_in_process(values: list[bytes], tmp: Path, batch: int = BATCH) -> dict[str, float]:
    """ReadModel.apply on a fresh SQLite read model in batches of ``batch`` (no Kafka), as
    the feed rebuilds it: its indexes made at the end, in the time measured."""
    settings = Settings(data_dir=tmp / "data")
    read_model = open_read_model(settings)
    read_model.create()
    read_model.prepare_writer()
    t0 = time.perf_counter()
    envelopes = [EventEnvelope.from_bytes(v) for v in values]
    decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    read_model.begin_catch_up()
    for i in range(0, len(envelopes), batch):
        read_model.apply(envelopes[i : i + batch])
    read_model.end_catch_up()
    apply_s = time.perf_counter() - t0
    if read_model.position() != envelopes[-1].position:
        raise RuntimeError(f"apply ended at {read_model.position()}, not {envelopes[-1].position}")
    return {"apply_rate": len(envelopes) / apply_s, "decode_rate": len(envelopes) / decode_s}


def replay(bootstrap: str, events: int, tmp: Path) -> dict[str, Any]:
    """The whole of part 2: fill the store, relay it to a fresh topic, time the three reads;
    prints the projector against the baseline and the goal."""
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
    feed_batches = apply_in_process(values, tmp / "apply-feed", MAX_BATCH)["apply_rate"]
    result = {
        "total": total,
        "fill_s": fill_s,
        "relay_s": relay_s,
        "raw_rate": total / raw_s,
        **projector,
        **inproc,
        "apply_rate_feed_batches": feed_batches,
    }
    print_summary(result)
    return result


def print_summary(rep: dict[str, Any]) -> None:
    raw, rate = rep["raw_rate"], rep["rate"]
    print(f"\nreplay of {rep['total']} events from a fresh events topic, in one run:", flush=True)
    print(f"   {'what':<62} {'events/s':>10} {'ratio':>8}")
    baseline = "raw AIOKafkaConsumer from offset 0 + json.loads (baseline)"
    print(f"   {baseline:<62} {raw:>10.0f} {1:>7.2f}x")
    print(
        f"   {'projector: serve projector (the read model feed), fresh model':<62} "
        f"{rate:>10.0f} {rate / raw:>7.2f}x"
    )
    print(
        f"   {f'ReadModel.apply in-process, batches of {MAX_BATCH} (the feed at most)':<62} "
        f"{rep['apply_rate_feed_batches']:>10.0f} {rep['apply_rate_feed_batches'] / raw:>7.2f}x"
    )
    print(
        f"   (the projector's time includes making the indexes a rebuild leaves out: "
        f"{rep['indexes_s'] * 1000:.0f} ms, polled every 5 ms)"
    )
    verdict = "met" if rate >= GOAL else "not met"
    print(
        f"   goal: the projector replays >= {GOAL:,} events/s: {verdict} ({rate:,.0f})", flush=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000, help="events to replay")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envbranch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with EmbeddedBroker(log_path=tmp / "broker.log") as broker:
            print(f"replay benchmark, {time.strftime('%Y-%m-%d %H:%M:%S')}; machine: {machine()}")
            (tmp / "projector").mkdir()
            replay(broker.bootstrap_servers, args.events, tmp)


if __name__ == "__main__":
    main()
