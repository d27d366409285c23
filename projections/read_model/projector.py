"""One event into the tables: its audit row, then what its class changes.

Projectors are looked up by the aggregate's own event class, so renaming an event
fails here at import instead of leaving its rows unwritten.
"""

from __future__ import annotations

from typing import Any

from domain import packed_vectors
from domain.base import Aggregate
from domain.collection import Collection
from domain.envelopes import EventEnvelope
from domain.events import EVENT_TYPES
from domain.receipts import CommandReceipt
from projections.read_model.cursor import Projection, Projector, to_column
from projections.read_model.refs import PROJECTORS as REFS
from projections.read_model.resources import PROJECTORS as RESOURCES
from projections.read_model.tasks import PROJECTORS as TASKS


def project(cur: Projection, e: EventEnvelope) -> None:
    """Write one event into the tables."""
    cur.insert(
        "audit",
        {
            "position": e.position,
            "event_id": e.event_id,
            "type": e.type,
            "aggregate_id": e.aggregate_id,
            "namespace_id": e.namespace_id,
            "command_id": e.command_id,
            "actor": e.actor,
            "occurred_at": cur.occurred_at(e),
            "data": to_column(_AUDITED.get(e.type, _as_is)(e.data)),
        },
    )
    projector = _BY_NAME.get(e.type)  # None for a type this version does not know: audited only
    if projector is not None:
        projector(cur, e)


def _as_is(data: dict[str, Any]) -> dict[str, Any]:
    return data


def _documents_audited(data: dict[str, Any]) -> dict[str, Any]:
    """A written document as the audit log keeps it: its vector's size and digest, not
    its vector (the event log and the vector store keep that; replay reads the log)."""
    documents = []
    for d in data.get("documents") or []:
        vector = d.get("vector") if isinstance(d, dict) else None
        if vector is None:
            documents.append(d)
            continue
        kept = {k: v for k, v in d.items() if k != "vector"}
        try:
            kept["vector_digest"] = packed_vectors.digest(vector)  # checks a packed one
            kept["vector_size"] = packed_vectors.size_of(vector)
        except (ValueError, TypeError, OverflowError):  # not a vector: the record says so
            kept["vector_size"] = None
        documents.append(kept)
    return {**data, "documents": documents}


_AUDITED = {Collection.DocumentsWritten.__qualname__: _documents_audited}


def on_command_accepted(cur: Projection, e: EventEnvelope) -> None:
    cur.insert(
        "commands",
        {
            "command_id": e.command_id,
            "position": e.position,
            "command_type": e.data.get("command_type"),
            "actor": e.actor,
            "namespace_id": e.namespace_id,
            "body_digest": e.data.get("body_digest"),
        },
    )


PROJECTORS: dict[type[Aggregate.Event], Projector] = {
    **RESOURCES,
    **TASKS,
    **REFS,
    CommandReceipt.Accepted: on_command_accepted,
}
# The same, by the names events travel under (one lookup per event instead of two).
_BY_NAME = {name: PROJECTORS[cls] for name, cls in EVENT_TYPES.items() if cls in PROJECTORS}
