"""The dead-letter queue read back: each rejected command with its reason, filtered.

The command processor puts every command it rejects on ``<prefix>.commands.dlq``: the
original bytes, the reason in headers, and where the command was read. This reads the
topic from its start to its end (it holds rejections only, far fewer than commands), and
tells which entries were applied since (a redrive, or the sender trying again with the
same command_id): the read model's ``commands`` table has every applied command_id.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from domain import json_limits
from domain.envelopes import Topics, read_rejection
from domain.errors import CommandRejected
from projections import queries
from projections.sql import Database

# What an entry shows of a command that is not JSON: its first characters.
RAW_SHOWN = 2000
# The entries read back: the newest this many (older ones stay on the topic, for Kafka's
# own tools; a DLQ this long wants its causes fixed more than browsing).
MAX_SCANNED = 10_000


@dataclass(frozen=True)
class DeadLetter:
    dlq_offset: int
    rejected_at: datetime
    code: str
    message: str
    field: str | None
    details: dict[str, Any]
    command_id: str | None
    command_type: str | None
    command: dict[str, Any] | None  # the original command, when it is a JSON object
    value: bytes  # the original bytes, as the processor read them
    key: bytes | None
    source_partition: int | None
    source_offset: int | None
    truncated: bool  # the DLQ keeps only the start of a command too large to keep whole

    def as_dict(self, applied: bool) -> dict[str, Any]:
        raw = None
        if self.command is None and self.value:
            raw = self.value[:RAW_SHOWN].decode("utf-8", errors="replace")
        return {
            "dlq_offset": self.dlq_offset,
            "rejected_at": self.rejected_at.isoformat(),
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "details": self.details,
            "command_id": self.command_id,
            "command_type": self.command_type,
            "command": self.command,
            "raw": raw,
            "source_partition": self.source_partition,
            "source_offset": self.source_offset,
            "truncated": self.truncated,
            "applied": applied,
        }


@dataclass(frozen=True)
class Filters:
    code: str | None = None
    command_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def keep(self, entry: DeadLetter) -> bool:
        return (
            (self.code is None or entry.code == self.code)
            and (self.command_type is None or entry.command_type == self.command_type)
            and (self.since is None or entry.rejected_at >= self.since)
            and (self.until is None or entry.rejected_at <= self.until)
        )


def dead_letter(offset: int, timestamp_ms: int, value: bytes | None, key: bytes | None,
                headers: Sequence[tuple[str, bytes]]) -> DeadLetter:  # fmt: skip
    """One DLQ record read back; a record the processor did not write still shows, with
    code ``unknown`` (anyone with access may write to the topic)."""
    named = {name: v for name, v in headers}
    rejection = read_rejection(headers)
    reason: dict[str, Any] = rejection.reason if rejection is not None else {}
    command = _command_of(value or b"")
    command_id = rejection.command_id if rejection is not None else None
    if command_id is None and command is not None and isinstance(command.get("command_id"), str):
        command_id = command["command_id"]
    details = reason.get("details")
    return DeadLetter(
        dlq_offset=offset,
        rejected_at=datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC),
        code=str(reason.get("code", "unknown")),
        message=str(reason.get("message", "not a rejection written by the command processor")),
        field=reason.get("field") if isinstance(reason.get("field"), str) else None,
        details=details if isinstance(details, dict) else {},
        command_id=command_id,
        command_type=_type_of(command),
        command=command,
        value=value or b"",
        key=key,
        source_partition=rejection.partition if rejection is not None else None,
        source_offset=rejection.offset if rejection is not None else None,
        truncated="envbranch.truncated_from" in named,
    )


def _command_of(value: bytes) -> dict[str, Any] | None:
    try:
        document = json_limits.parse(value)
    except CommandRejected:
        return None
    return document if isinstance(document, dict) else None


def _type_of(command: dict[str, Any] | None) -> str | None:
    type_ = command.get("type") if command is not None else None
    return type_ if isinstance(type_, str) else None


async def read_dead_letters(
    bootstrap_servers: str, topics: Topics, client_options: dict[str, Any] | None = None
) -> list[DeadLetter]:
    """The newest ``MAX_SCANNED`` entries on the DLQ now, oldest first (read from Kafka in
    the event loop, made readable in a thread: a command may be a megabyte of JSON)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,  # Tansu holds a fetch this long
        **(client_options or {}),
    )
    await consumer.start()
    try:
        tp = TopicPartition(topics.dlq, 0)
        consumer.assign([tp])
        start = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, max(start, end - MAX_SCANNED))
        records = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=500)
            records += batch.get(tp, [])
    finally:
        await consumer.stop()

    def readable() -> list[DeadLetter]:
        return [dead_letter(r.offset, r.timestamp, r.value, r.key, r.headers) for r in records]

    return await asyncio.to_thread(readable)


def applied_ids(db: Database, entries: Sequence[DeadLetter]) -> set[str]:
    """The command_ids among ``entries`` that the read model has applied."""
    ids = [e.command_id for e in entries if e.command_id is not None]
    return set(queries.command_receipts(db, ids))


def listed(
    entries: Sequence[DeadLetter], filters: Filters, limit: int, offset: int
) -> tuple[list[DeadLetter], int]:
    """A page of the entries ``filters`` keeps, newest first, and how many it keeps."""
    kept = [e for e in reversed(entries) if filters.keep(e)]
    return kept[offset : offset + limit], len(kept)


def chosen(entries: Sequence[DeadLetter], offsets: Sequence[int]) -> dict[int, DeadLetter]:
    by_offset = {e.dlq_offset: e for e in entries}
    return {o: by_offset[o] for o in offsets if o in by_offset}


def redrive_outcome(
    entry: DeadLetter | None, offset: int, outcome: str, message: str | None = None
) -> dict[str, Any]:
    return {
        "dlq_offset": offset,
        "command_id": entry.command_id if entry is not None else None,
        "outcome": outcome,
        "message": message,
    }


def describe(entry: DeadLetter) -> str:
    """One line for a table: the command's type and ID, or what the bytes were."""
    if entry.command is not None:
        return json.dumps(entry.command)[:200]
    return f"({len(entry.value)} bytes, not a JSON object)"
