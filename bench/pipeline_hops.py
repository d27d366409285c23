"""Where a write's time goes under load, from the clocks the records carry: a command's
record on envbranch.commands (the API's producer), its receipt's occurred_at (the
processor's decision) and the receipt's record on envbranch.events (the relay)."""

from __future__ import annotations

import json
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from timing import percentile

from domain.envelopes import EventEnvelope, Topics


async def pipeline_hops(bootstrap: str, topics: Topics, since: float) -> list[list[float]]:
    """Each command's time, in ms, from its record on envbranch.commands to its decision
    (its receipt's occurred_at) and from there to its receipt's record on envbranch.events
    (the processor's store commit and the relay), for the commands sent after ``since``
    (wall clock). One machine, one clock; Kafka timestamps are whole milliseconds."""
    produced = {}
    for record in await _read_topic(bootstrap, topics.commands):
        if record.timestamp / 1000 >= since:
            produced[json.loads(record.value)["command_id"]] = record.timestamp / 1000
    hops: list[list[float]] = [[], []]
    for record in await _read_topic(bootstrap, topics.events):
        envelope = EventEnvelope.from_bytes(record.value)
        if envelope.type == "CommandReceipt.Accepted" and envelope.command_id in produced:
            decided = envelope.occurred_at.timestamp()
            hops[0].append((decided - produced[envelope.command_id]) * 1000)
            hops[1].append((record.timestamp / 1000 - decided) * 1000)
    return hops


async def _read_topic(bootstrap: str, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        while batches := await consumer.getmany(*tps, timeout_ms=1000):
            for batch in batches.values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


def print_hops(hops: list[list[float]], write_ms: list[float]) -> None:
    """Where a write's time goes under load: the two pipeline hops the records' clocks
    show, and the rest (API and produce, events topic -> read model -> answer)."""
    decide, relay = (percentile(h, 50) for h in hops)
    rest = percentile(write_ms, 50) - decide - relay
    print(
        f"   where a write's time goes (p50 ms, {len(hops[0])} commands): commands topic -> ",
        end="",
    )
    print(
        f"decided {decide:.1f} | -> stored, on events topic {relay:.1f} | the rest (API, ", end=""
    )
    print(f"produce, events topic -> read model -> answer) {rest:.1f}")
    print()
