"""The events on ``envbranch.events``, typed: every consumer reads them through here.

An envelope's ``type`` (``"Collection.Cloned"``) names one of the aggregates' own event
classes; ``typed`` turns the envelope back into an instance of that class, so a
consumer dispatches on the class (a table keyed by ``Collection.Cloned``, which breaks
at import if the event is renamed) and reads the fields the aggregate recorded,
including what downstream needs to know (a clone's ``vector_mode`` and ``status``).
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from eventsourcing.utils import get_topic

from domain.base import Aggregate, Resource
from domain.bucket import Bucket
from domain.collection import Collection
from domain.envelopes import EventEnvelope
from domain.ids import Kind
from domain.namespace import Namespace, NamespaceName
from domain.quality import Evaluation, EvaluationSet
from domain.receipts import CommandReceipt
from domain.refs import Checkpoint, Ref
from domain.retriever import Retriever
from domain.tasks import ApplyTaxonomyTask, CloneTask, ReprocessTask
from domain.taxonomy import Taxonomy

AGGREGATES: tuple[type[Aggregate], ...] = (
    Namespace,
    NamespaceName,
    Bucket,
    Collection,
    Retriever,
    Taxonomy,
    CloneTask,
    ReprocessTask,
    ApplyTaxonomyTask,
    Ref,
    Checkpoint,
    EvaluationSet,
    Evaluation,
    CommandReceipt,
)

# The aggregate of each kind of resource a namespace holds.
RESOURCES: dict[Kind, type[Resource]] = {
    cls.KIND: cls for cls in (Bucket, Collection, Retriever, Taxonomy, EvaluationSet)
}

# What the envelope carries beside ``data`` (see domain.envelopes); an event class
# that declares one of these as a field gets it back from there.
_FROM_ENVELOPE = ("namespace_id", "command_id", "actor")


def _event_classes() -> dict[str, type[Aggregate.Event]]:
    found: dict[str, type[Aggregate.Event]] = {}
    for aggregate in AGGREGATES:
        for value in vars(aggregate).values():
            if (
                isinstance(value, type)
                and issubclass(value, Aggregate.Event)
                and value.__name__ != "Event"
            ):
                found[value.__qualname__] = value
    return found


EVENT_TYPES: dict[str, type[Aggregate.Event]] = _event_classes()


def _fields(cls: type[Aggregate.Event]) -> dict[str, bool]:
    """An event class's fields, each with whether it has a default of its own."""
    return {
        f.name: f.default is not MISSING or f.default_factory is not MISSING
        for f in fields(cls)  # type: ignore[arg-type]  # the library makes it a dataclass
    }


_FIELDS = {name: _fields(cls) for name, cls in EVENT_TYPES.items()}


def event_type(envelope: EventEnvelope) -> type[Aggregate.Event] | None:
    """The event class an envelope names, or None for a type this version does not know."""
    return EVENT_TYPES.get(envelope.type)


def typed(envelope: EventEnvelope) -> Any:
    """The envelope as an instance of its event class, or None if it names no known type
    or its data cannot make one.

    A tolerant reader: a key the class does not have (written by a newer version) is
    left out, and a field the data lacks (an event written before the field existed)
    takes its default, or None."""
    cls = EVENT_TYPES.get(envelope.type)
    if cls is None:
        return None
    names = _FIELDS[envelope.type]
    values: dict[str, Any] = {
        name: envelope.data.get(name)
        for name, defaulted in names.items()
        if name in envelope.data or not defaulted  # one left out: its default, else None
    }
    for name in _FROM_ENVELOPE:
        if name in names:
            values[name] = getattr(envelope, name)
    values.update(
        originator_id=envelope.aggregate_id,
        originator_version=envelope.aggregate_version,
        timestamp=envelope.occurred_at,
    )
    if "originator_topic" in names:
        values["originator_topic"] = get_topic(_aggregate_of(cls))
    try:
        return cls(**values)
    except (TypeError, ValueError):
        return None


def _aggregate_of(cls: type[Aggregate.Event]) -> type[Aggregate]:
    owner = cls.__qualname__.partition(".")[0]
    return next(a for a in AGGREGATES if a.__name__ == owner)
