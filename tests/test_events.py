"""The typed event contract: every consumer of envbranch.events reads an envelope back as
the aggregate's own event class, tolerating what other versions wrote."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from domain.collection import Collection, CollectionStatus, VectorMode
from domain.envelopes import EventEnvelope
from domain.events import EVENT_TYPES, event_type, typed
from domain.tasks import ReprocessTask


def _envelope(type_: str, data: dict[str, Any]) -> EventEnvelope:
    return EventEnvelope(
        position=7,
        event_id="e-7",
        type=type_,
        aggregate_id="col_" + "0" * 32,
        aggregate_version=1,
        namespace_id="ns_" + "1" * 32,
        command_id="cmd-1",
        actor="alice",
        occurred_at=datetime(2026, 1, 2, tzinfo=UTC),
        data=data,
    )


CLONED = {
    "collection_name": "docs-2",
    "description": "",
    "source": {"type": "bucket", "bucket_ids": ["b"]},
    "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v1"},
    "source_collection_id": "col_" + "2" * 32,
    "vector_mode": VectorMode.REPROCESS,
}


def test_an_envelope_reads_back_as_its_aggregates_own_event_class() -> None:
    envelope = _envelope("Collection.Cloned", CLONED)

    cloned = typed(envelope)

    assert event_type(envelope) is Collection.Cloned
    assert isinstance(cloned, Collection.Cloned)
    assert cloned.originator_id == envelope.aggregate_id
    assert cloned.namespace_id == envelope.namespace_id
    assert cloned.status == CollectionStatus.AWAITING_REPROCESS  # decided by the event


def test_a_key_from_a_newer_version_is_left_out() -> None:
    cloned = typed(_envelope("Collection.Cloned", {**CLONED, "shard_count": 3}))

    assert isinstance(cloned, Collection.Cloned)
    assert not hasattr(cloned, "shard_count")


def test_a_field_an_older_version_did_not_write_reads_as_none() -> None:
    older = {k: v for k, v in CLONED.items() if k != "vector_mode"}

    cloned = typed(_envelope("Collection.Cloned", older))

    assert isinstance(cloned, Collection.Cloned)
    assert cloned.vector_mode is None
    assert cloned.status == CollectionStatus.READY


def test_an_unknown_type_reads_as_nothing() -> None:
    envelope = _envelope("Collection.Teleported", {})

    assert event_type(envelope) is None
    assert typed(envelope) is None


def test_every_event_type_is_named_by_its_class() -> None:
    assert EVENT_TYPES["ReprocessTask.Progressed"] is ReprocessTask.Progressed
    assert all(name == cls.__qualname__ for name, cls in EVENT_TYPES.items())
