"""What the command processor and the relay count and time, for /metrics.

Counted once a command's outcome is stored (a redelivered command that was stored
before is not counted again). The latencies add up to a command's way to the read model:
published -> stored (here), stored -> on the events topic (the relay), stored ->
applied by a projector (projections.metrics).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord
from prometheus_client import Counter, Histogram

from contract.commands import BODIES
from domain import json_limits
from domain.errors import CommandRejected

# Seconds: from a few milliseconds (group commit on a quiet broker) to a backlog of minutes.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

COMMANDS = Counter(
    "envbranch_commands",
    "Commands the command processor stored an outcome for, by type, outcome "
    "(applied, duplicate: applied before under its command_id, rejected) and error code",
    ["command_type", "outcome", "code"],
)
STORED_SECONDS = Histogram(
    "envbranch_command_stored_seconds",
    "From a command's publication (its record's timestamp) until its outcome was stored",
    buckets=BUCKETS,
)
RELAYED_SECONDS = Histogram(
    "envbranch_event_relayed_seconds",
    "From an event's storing until the relay had it on the events topic",
    buckets=BUCKETS,
)


def type_of(record: ConsumerRecord) -> str:
    """A record's command type, when it names a known one (for the labels only)."""
    try:
        document = json_limits.parse(record.value or b"")
    except CommandRejected:
        return "unknown"
    type_ = document.get("type") if isinstance(document, dict) else None
    return type_ if type_ in BODIES else "unknown"  # a label never takes what anyone sends


def stored(records: Sequence[ConsumerRecord], types: Sequence[str], results: Sequence[Any]) -> None:
    """Count and time the commands of a stored batch (``results``: a CommandRejected, an
    outcome with ``duplicate``, or None for an applied one, per command consumed)."""
    now = time.time()
    for record, type_, result in zip(records, types, results, strict=False):
        if isinstance(result, CommandRejected):
            COMMANDS.labels(type_, "rejected", str(result.code)).inc()
        elif getattr(result, "duplicate", False):
            COMMANDS.labels(type_, "duplicate", "").inc()
        else:
            COMMANDS.labels(type_, "applied", "").inc()
        STORED_SECONDS.observe(max(0.0, now - record.timestamp / 1000))


def relayed(stored_at: Sequence[float]) -> None:
    """Time the events of a page the relay has on the topic (their storing times, epoch s)."""
    now = time.time()
    for moment in stored_at:
        RELAYED_SECONDS.observe(max(0.0, now - moment))
