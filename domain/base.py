"""What every aggregate shares: the event clock, readable IDs, stable stored topics, and
the resource: something that lives in one namespace under a unique name.

What a resource computes (extractor, source, stages, collection references, taxonomy
config) is set when it is created or cloned and never changes; only names and
descriptions can. Guards live in plain methods; the events' ``apply`` methods are the
state changes and run again on every replay.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Self

from eventsourcing.domain import (
    BaseAggregate,
    CanInitAggregate,
    CanMutateAggregate,
    CanSnapshotAggregate,
    MetaDomainEvent,
)
from eventsourcing.utils import register_topic

from domain.errors import CommandRejected, ErrorCode
from domain.ids import Kind, new_id

_clock = threading.Lock()
_last_timestamp = datetime.min.replace(tzinfo=UTC)


def monotonic_now() -> datetime:
    """Now, but never earlier than the previous call: a command's events are stored in the
    order they happened even if the wall clock steps back while it runs."""
    global _last_timestamp
    with _clock:
        now = datetime.now(UTC)
        if now <= _last_timestamp:
            now = _last_timestamp + timedelta(microseconds=1)
        _last_timestamp = now
        return now


@dataclass(frozen=True)
class DomainEvent(metaclass=MetaDomainEvent):
    originator_id: str
    originator_version: int
    timestamp: datetime

    @staticmethod
    def create_timestamp() -> datetime:
        return monotonic_now()


@dataclass(frozen=True)
class Snapshot(CanSnapshotAggregate[str], DomainEvent):
    """An aggregate's whole state at one version: loading it starts there instead of at
    its first event. An optimisation only: the events stay the record, and a replay
    reads them alone."""

    topic: str
    state: dict[str, Any]


# A stored event names its class by a topic ("domain.aggregates:Collection.Cloned"). Every
# event store written so far holds the topics of the module these aggregates were first
# defined in, so they keep that name wherever their class lives now.
FIRST_MODULE = "domain.aggregates"


class Aggregate(BaseAggregate[str]):
    """The library's Aggregate, with readable string IDs instead of UUIDs."""

    @dataclass(frozen=True)
    class Event(DomainEvent, CanMutateAggregate[str]):
        pass

    @dataclass(frozen=True)
    class Created(CanInitAggregate[str], Event):
        originator_topic: str


def keep_first_topics(*aggregates: type[Aggregate]) -> None:
    """Store these aggregates' events under the topics of their first module. Called
    once a module has defined them (the library has made their event classes by then),
    and only for concrete aggregates, so no class inherits a topic that is not its own."""
    for cls in aggregates:
        for obj in {cls, *(v for v in vars(cls).values() if _is_event_class(v))}:
            obj.TOPIC = f"{FIRST_MODULE}:{obj.__qualname__}"  # type: ignore[attr-defined]
            register_topic(obj.TOPIC, obj)  # type: ignore[attr-defined]


def _is_event_class(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, CanMutateAggregate)


class Entity(Aggregate):
    """An aggregate whose ID carries its kind's prefix."""

    KIND: ClassVar[Kind]

    @classmethod
    def create_id(cls, **_: Any) -> str:
        return new_id(cls.KIND)


_EVENT_BASE_FIELDS = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def recorded_fields(event_class: type[Any]) -> list[str]:
    """The fields an event records beyond who and when (for a created event: what the
    aggregate is made of)."""
    return [f.name for f in dataclasses.fields(event_class) if f.name not in _EVENT_BASE_FIELDS]


class Resource(Entity):
    """Something that lives in one namespace and goes by a unique name there.

    A kind declares what it is made of (the fields of its ``Created`` event) and which of
    them is its name (``NAME_FIELD``). Its other events follow: ``Cloned`` records the
    same fields plus ``source_<kind>_id``, ``Renamed`` the name field,
    ``DescriptionChanged`` the description, and ``Deleted`` nothing. Creating, cloning,
    renaming, re-describing and deleting are the same for every kind.

    Deleting does not rewrite history: the resource's events stay, so a replay, its
    lineage and a clone "as of" a position before the delete still see it (that clone
    is how a deleted resource comes back). Its namespace drops it from its catalogue
    (``Namespace.ResourceRemoved``) so its name is free; the resource itself can no
    longer be renamed, re-described, cloned or deleted (``not_found``, "was deleted").
    Clones made from it before are resources of their own and go on as they were;
    its vectors are never removed by a delete.
    """

    NAME_FIELD: ClassVar[str]
    deleted = False  # until a Deleted event says otherwise (older snapshots lack it)
    if TYPE_CHECKING:
        # A resource's attributes are its Created event's fields (no annotations at run
        # time: the library would make the class a dataclass).
        namespace_id: str
        description: str

        def __getattr__(self, name: str) -> Any: ...

        Cloned: ClassVar[type[Aggregate.Created]]  # made for each kind by __init_subclass__

    class Created(Aggregate.Created):
        namespace_id: str
        description: str

        def apply(self, aggregate: Any) -> None:
            for name in recorded_fields(type(self)):
                setattr(aggregate, name, getattr(self, name))

    class Renamed(Aggregate.Event):
        def apply(self, aggregate: Any) -> None:
            setattr(aggregate, aggregate.NAME_FIELD, getattr(self, aggregate.NAME_FIELD))

    class DescriptionChanged(Aggregate.Event):
        description: str

        def apply(self, aggregate: Any) -> None:
            aggregate.description = self.description

    class Deleted(Aggregate.Event):
        def apply(self, aggregate: Any) -> None:
            aggregate.deleted = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Before the library makes each kind's event classes, so it makes these too.
        made_of = vars(cls).get("Created")
        if made_of is not None and "Cloned" not in vars(cls):
            source_field = f"source_{cls.KIND.value}_id"
            cls.Cloned = _event_class(cls, "Cloned", made_of, {source_field: "str"})  # type: ignore[attr-defined]
            setattr(cls, source_field, None)  # until a Cloned event says otherwise
        if made_of is not None and "Renamed" not in vars(cls):
            renamed = _event_class(cls, "Renamed", Resource.Renamed, {cls.NAME_FIELD: "str"})
            cls.Renamed = renamed  # type: ignore[misc,assignment]
        super().__init_subclass__(**kwargs)

    @property
    def name(self) -> str:
        return str(getattr(self, self.NAME_FIELD))

    @property
    def source_field(self) -> str:
        """Where a clone records what it was cloned from, e.g. ``source_collection_id``."""
        return f"source_{self.KIND.value}_id"

    @classmethod
    def create(cls, **fields: Any) -> Self:
        """A new resource of this kind, made of ``fields`` (its ``Created`` event's)."""
        return cls._create(cls.Created, id=new_id(cls.KIND), **fields)

    def clone(self, *, id: str | None = None, **overrides: Any) -> Self:  # noqa: A002
        """A new resource made as this one is, except for the ``overrides`` given (None
        keeps this one's value); ``id`` is drawn unless given."""
        self.refuse_if_deleted()
        fields = {name: getattr(self, name) for name in recorded_fields(type(self).Created)}
        fields.update({name: value for name, value in overrides.items() if value is not None})
        fields[self.source_field] = self.id
        cloned = type(self).Cloned
        return self._create(cloned, id=id or new_id(self.KIND), **fields)

    def rename(self, name: str) -> None:
        self.refuse_if_deleted()
        self.trigger_event(type(self).Renamed, **{self.NAME_FIELD: name})

    def change_description(self, description: str) -> None:
        self.refuse_if_deleted()
        self.trigger_event(type(self).DescriptionChanged, description=description)

    def delete(self) -> None:
        """Gone from its namespace (which must remove it from its catalogue too)."""
        self.refuse_if_deleted()
        self.trigger_event(type(self).Deleted)

    def refuse_if_deleted(self, field: str | None = None) -> None:
        if self.deleted:
            field = field or f"body.{self.KIND.value}_identifier"
            raise was_deleted(self.KIND.value, self.name, self.id, field)


def was_deleted(kind: str, name: str, aggregate_id: str, field: str | None) -> CommandRejected:
    """The rejection of a command about something deleted: not found, and why."""
    return CommandRejected(
        ErrorCode.NOT_FOUND,
        f"{kind} {name!r} ({aggregate_id}) was deleted",
        field=field,
        deleted_id=aggregate_id,
    )


def _event_class(owner: type, name: str, base: type, fields: dict[str, str]) -> type:
    return type(
        name,
        (base,),
        {
            "__annotations__": fields,
            "__module__": owner.__module__,
            "__qualname__": f"{owner.__qualname__}.{name}",
        },
    )
