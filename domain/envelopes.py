"""The topics' contract: one JSON envelope per stored event, the DLQ's reason headers,
and how a reader tells them from anything else someone wrote to the topic."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from domain.errors import ErrorCode


@dataclass(frozen=True)
class Topics:
    """The three topics; a prefix other than ``envbranch`` lets stacks share a cluster."""

    prefix: str = "envbranch"

    @property
    def commands(self) -> str:
        return f"{self.prefix}.commands"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.commands.dlq"


POSITION_HEADER = "position"

_EVENT_ID_NAMESPACE = uuid.UUID("6f1c3b8e-5d2a-4c47-9e0b-2a7d9f4e1c55")
# The attributes of a stored event that are the envelope's own fields, not its data.
NOT_DATA = {
    "originator_id",
    "originator_version",
    "originator_topic",
    "timestamp",
    "command_id",
    "actor",
    "namespace_id",
}


class EventEnvelope(BaseModel):
    position: int
    event_id: str
    type: str
    aggregate_id: str
    aggregate_version: int
    namespace_id: str | None
    command_id: str | None
    actor: str | None
    occurred_at: datetime
    data: dict[str, Any]

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> EventEnvelope:
        return cls.model_validate_json(raw)


def event_id_of(aggregate_id: str, aggregate_version: int) -> str:
    """The same event always gets the same ID, also when it is published again."""
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{aggregate_id}/{aggregate_version}"))


def envelope_of(position: int, event: Any) -> EventEnvelope:
    state = vars(event)
    event_type = type(event).__qualname__
    data = {key: value for key, value in state.items() if key not in NOT_DATA}
    return EventEnvelope(
        position=position,
        event_id=event_id_of(event.originator_id, event.originator_version),
        type=event_type,
        aggregate_id=event.originator_id,
        aggregate_version=event.originator_version,
        namespace_id=state.get("namespace_id"),
        command_id=state.get("command_id"),
        actor=state.get("actor"),
        occurred_at=event.timestamp,
        data=json.loads(json.dumps(data, default=str)),
    )


def read_event(value: Any) -> EventEnvelope | None:
    """The event envelope a record of the events topic holds, or None: anyone with access
    may write anything there (None, bytes that are not JSON, not UTF-8 ...)."""
    try:
        return EventEnvelope.from_bytes(value)
    except Exception:  # noqa: BLE001 - any value at all
        return None


@dataclass(frozen=True)
class Rejection:
    """A DLQ entry's reason, with where the rejected command was read."""

    partition: int
    offset: int
    command_id: str | None
    reason: dict[str, Any]  # {code, message, field?, details?}


def read_rejection(headers: Sequence[tuple[str, bytes]]) -> Rejection | None:
    """The reason in a DLQ record's headers, or None if the record is not a rejection
    written by the command processor (see the README's DLQ table)."""
    try:
        named = {name: value.decode() for name, value in headers}
        reason = json.loads(named["envbranch.error"])
        ErrorCode(reason["code"])
        details = reason.get("details") or {}
        if not isinstance(reason.get("message"), str) or not isinstance(details, dict):
            return None
        if {"code", "message", "field"} & set(details):
            return None
        return Rejection(
            int(named["envbranch.source.partition"]),
            int(named["envbranch.source.offset"]),
            named.get("envbranch.command_id"),
            reason,
        )
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError):
        return None
