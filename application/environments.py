"""The application layer: load, decide, save, with the command's position.

A command's events, its receipt and the Kafka position it came from are
written in one transaction (eventsourcing's ProcessingEvent with Tracking), so
a command is applied exactly once however often it is delivered.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import IntegrityError, Recording, Tracking
from eventsourcing.projection import EventSourcedProjection
from eventsourcing.utils import get_topic

from application.handlers import HANDLERS
from application.unit import Unit
from contract.commands import Command
from domain.base import Aggregate
from domain.bucket import Bucket
from domain.collection import Collection
from domain.errors import CommandRejected, ErrorCode
from domain.receipts import CommandReceipt
from domain.tasks import ApplyTaxonomyTask, CloneTask

log = logging.getLogger(__name__)

# Event attributes that say who caused an event and where; stored with each event.
META_FIELDS = ("command_id", "actor", "namespace_id")


@dataclass(frozen=True)
class Outcome:
    """What executing a command did."""

    positions: list[int]  # the positions of its new events; empty for a duplicate
    duplicate: bool = False


class AlreadyProcessed(Exception):
    """This position was recorded before: a redelivery after a crash or rebalance."""


class Environments(EventSourcedProjection[str]):
    """The write side of every environment."""

    name = "envbranch"
    env: ClassVar[dict[str, str]] = {"ORIGINATOR_ID_TYPE": "text"}
    max_conflict_retries = 20
    # An event must fit one Kafka message on envbranch.events with room for its envelope
    # (the relay publishes up to 900 KiB per batch; brokers default to ~1 MiB a message).
    max_event_bytes = 800 * 1024

    def execute(self, command: Command, tracking: Tracking | None = None) -> Outcome:
        """Apply a command, retrying when another writer touched the same aggregates."""
        for _ in range(self.max_conflict_retries):
            try:
                return self._execute_once(command, tracking)
            except IntegrityError:
                if tracking is not None and self.has_recorded(tracking):
                    raise AlreadyProcessed(tracking) from None
                log.info("conflict applying %s, retrying", command.command_id)
        raise RuntimeError(f"gave up on {command.command_id} after repeated conflicts")

    def _execute_once(self, command: Command, tracking: Tracking | None) -> Outcome:
        unit = Unit(self.repository, self)
        receipt = unit.get(CommandReceipt.id_for(command.command_id), CommandReceipt)
        if receipt is not None:
            if receipt.body_digest != command.digest:
                raise CommandRejected(
                    ErrorCode.COMMAND_ID_REUSED,
                    f"command_id {command.command_id!r} was already used for another command "
                    f"({receipt.command_type}, or by another actor); use a new command_id",
                    field="command_id",
                )
            if tracking is not None:
                self.record_position(tracking)
            return Outcome(positions=[], duplicate=True)

        HANDLERS[type(command.body)](unit, command.body)
        processing: ProcessingEvent[str] = ProcessingEvent(tracking=tracking)
        events = sorted(
            (event for aggregate in unit.aggregates for event in aggregate.collect_events()),
            key=lambda event: event.timestamp,
        )
        # The receipt goes last: once it is visible, so is everything the command did.
        receipt = CommandReceipt.accept(command.command_id, command.type, command.digest)
        events.extend(receipt.collect_events())
        aggregates = {aggregate.id: aggregate for aggregate in [*unit.aggregates, receipt]}
        for event in events:
            owner = aggregates[event.originator_id]
            _stamp(
                event,
                command_id=command.command_id,
                actor=command.actor,
                namespace_id=getattr(owner, "namespace_id", None) or unit.namespace_id,
            )
        for event in events:
            size = len(self.mapper.to_stored_event(event).state)
            if size > self.max_event_bytes:
                raise CommandRejected(
                    ErrorCode.MESSAGE_TOO_LARGE,
                    f"the command would record a {type(event).__qualname__} event of {size} "
                    f"bytes; the limit is {self.max_event_bytes}: send it in smaller commands",
                    size=size,
                    limit=self.max_event_bytes,
                )
        processing.collect_events(*events)
        recordings: list[Recording[str]] = self._record(processing)
        return Outcome(positions=[r.notification.id for r in recordings])

    def positions_of(self, aggregate_id: str, cls: type[Aggregate]) -> dict[int, int]:
        """Version -> log position of an aggregate's stored events. Reads only events of
        ``cls``'s types (meant for refs and namespaces, whose events are few)."""
        positions: dict[int, int] = {}
        start = 1
        while batch := self.recorder.select_notifications(start, 1000, topics=_topics(cls)):
            for n in batch:
                if n.originator_id == aggregate_id:
                    positions[n.originator_version] = n.id
            start = batch[-1].id + 1
        return positions

    def data_changes_after(self, position: int, aggregate_ids: set[str]) -> dict[str, int]:
        """The first position after ``position`` at which each of these collections' or
        buckets' documents or objects changed; reads only events after ``position``."""
        found: dict[str, int] = {}
        works_on: dict[str, str] = {}  # task -> the collection it writes into
        start = position + 1
        while batch := self.recorder.select_notifications(start, 1000, topics=DATA_TOPICS):
            for n in batch:
                changed = str(n.originator_id)
                if n.topic == COPY_TOPIC:  # a deep copy filling a cloned collection
                    changed = str(vars(self.mapper.to_domain_event(n))["collection_id"])
                elif n.topic in TASK_TOPICS:  # its writes land in a collection's points
                    if changed not in works_on:
                        works_on[changed] = self._collection_of_task(changed)
                    changed = works_on[changed]
                if changed in aggregate_ids:
                    found[changed] = n.id  # the latest change wins
            start = batch[-1].id + 1
        return found

    def _collection_of_task(self, task_id: str) -> str:
        task: Aggregate = self.repository.get(task_id)
        return str(getattr(task, "collection_id", ""))

    def record_position(self, tracking: Tracking) -> None:
        """Record a position that wrote no events (a rejected or duplicate command)."""
        with contextlib.suppress(IntegrityError):  # recorded already: nothing more to do
            self.recorder.insert_tracking(tracking)

    def has_recorded(self, tracking: Tracking) -> bool:
        last = self.recorder.max_tracking_id(tracking.application_name)
        return last is not None and last >= tracking.notification_id

    def last_position(self, application_name: str) -> int | None:
        return self.recorder.max_tracking_id(application_name)


def _topic_of(cls: type[Aggregate], name: str) -> str:
    return get_topic(getattr(cls, name))


def _topics(cls: type[Aggregate]) -> list[str]:
    return [
        get_topic(v)
        for v in vars(cls).values()
        if isinstance(v, type) and issubclass(v, Aggregate.Event)
    ]


# Events that change what a collection holds (or the objects it is made from).
# Taxonomy application writes enrichment into a collection's points as it goes.
TASK_TOPICS = frozenset(_topics(ApplyTaxonomyTask))
DATA_TOPICS = [
    *(
        get_topic(getattr(cls, name))
        for cls, name in (
            (Collection, "DocumentsWritten"),
            (Collection, "DocumentsDeleted"),
            (Collection, "ReprocessStarted"),
            (Collection, "Reprocessed"),
            (Bucket, "ObjectsAdded"),
        )
    ),
    *sorted(TASK_TOPICS),
    COPY_TOPIC := _topic_of(CloneTask, "CopyProgressed"),
]


def _stamp(event: Any, **meta: Any) -> None:
    # Domain events are frozen; these attributes are context, not decisions, and are
    # added once, before the event is stored.
    for key, value in meta.items():
        object.__setattr__(event, key, value)
