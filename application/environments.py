"""The application layer: load, decide, save, with the command's position.

A command's events, its receipt and the Kafka position it came from are
written in one transaction (eventsourcing's ProcessingEvent with Tracking), so
a command is applied exactly once however often it is delivered.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import IntegrityError, Recording, Tracking
from eventsourcing.projection import EventSourcedProjection
from eventsourcing.utils import get_topic, strtobool

from application import log_index
from application.handlers import HANDLERS
from application.unit import Unit
from contract.commands import Command
from domain.base import Aggregate, Snapshot
from domain.bucket import Bucket
from domain.collection import Collection
from domain.errors import CommandRejected, ErrorCode
from domain.namespace import Namespace
from domain.receipts import CommandReceipt
from domain.refs import Ref
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
    env: ClassVar[dict[str, str]] = {
        "ORIGINATOR_ID_TYPE": "text",
        # Aggregates stay in memory between commands, so a command's cost does not grow
        # with the history of what it touches. A cached aggregate is brought up to date
        # from the store before each use (fast-forward: only the events after its
        # version), so another processor's writes are never missed; a decision made on
        # state that moved on meanwhile fails to save (optimistic concurrency) and is
        # retried on fresh state. A command works on the cached objects themselves (not
        # copies: see Unit.get), so one that fails evicts what it touched (``_forget``).
        "AGGREGATE_CACHE_MAXSIZE": "10000",
        "AGGREGATE_CACHE_FASTFORWARD": "y",
        # A processor that has not cached an aggregate (it just started, or a rebalance
        # gave it the partition) loads it from its latest snapshot: see snapshot_every.
        "IS_SNAPSHOTTING_ENABLED": "y",
    }
    # The aggregates whose history grows for as long as they live, and every how many of
    # their versions their state is snapshotted. Others (tasks, receipts, name claims)
    # have a handful of events each. A snapshot holds an aggregate's attributes as they
    # are: a change to what one of these holds needs a class_version and an upcaster
    # (eventsourcing's, see Snapshot.mutate), or the snapshots table emptied.
    snapshot_every: ClassVar[dict[type[Aggregate], int]] = {
        Namespace: 200,
        Collection: 200,
        Bucket: 200,
        Ref: 200,
    }
    max_conflict_retries = 20
    # An event must fit one Kafka message on envbranch.events with room for its envelope
    # (the relay publishes up to 900 KiB per batch; brokers default to ~1 MiB a message).
    max_event_bytes = 800 * 1024

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        self._executing = threading.Lock()  # cached aggregates are shared: one command at a time
        if strtobool(self.env.get("CREATE_TABLE") or "yes"):
            log_index.create_indexes(self.recorder)

    def execute(self, command: Command, tracking: Tracking | None = None) -> Outcome:
        """Apply a command, retrying when another writer touched the same aggregates."""
        with self._executing:
            for _ in range(self.max_conflict_retries):
                unit = Unit(self.repository, self)
                try:
                    return self._execute_once(unit, command, tracking)
                except IntegrityError:
                    self._forget(unit)
                    if tracking is not None and self.has_recorded(tracking):
                        raise AlreadyProcessed(tracking) from None
                    log.info("conflict applying %s, retrying", command.command_id)
                except BaseException:
                    self._forget(unit)
                    raise
        raise RuntimeError(f"gave up on {command.command_id} after repeated conflicts")

    def _forget(self, unit: Unit) -> None:
        """Drop from the cache what a command that did not land has changed in memory
        (what it only read stays: it is as the store has it)."""
        cache = self.repository.cache
        if cache is not None:
            for aggregate_id in unit.changed():
                with contextlib.suppress(KeyError):  # not cached: nothing to drop
                    cache.get(aggregate_id, evict=True)

    def _execute_once(self, unit: Unit, command: Command, tracking: Tracking | None) -> Outcome:
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
        self._take_due_snapshots(aggregates, events)
        return Outcome(positions=[r.notification.id for r in recordings])

    def _take_due_snapshots(self, aggregates: dict[str, Aggregate], events: list[Any]) -> None:
        """Snapshot the aggregates whose version passed a multiple of their interval, from
        the object in memory (just saved: exactly the recorded state). After the events'
        transaction: a snapshot lost to a crash only makes the next load longer."""
        if self.snapshots is None:
            return
        due = {
            event.originator_id
            for event in events
            if (every := self.snapshot_every.get(type(aggregates[event.originator_id])))
            and event.originator_version % every == 0
        }
        for aggregate_id in sorted(due):
            try:
                self.snapshots.put([Snapshot.take(aggregates[aggregate_id])])
            except Exception:  # noqa: BLE001 - an optimisation; the command has landed
                log.warning("could not snapshot %s", aggregate_id, exc_info=True)

    def positions_of(self, aggregate_id: str, cls: type[Aggregate]) -> dict[int, int]:
        """Version -> log position of an aggregate's stored events: one read of that
        aggregate's rows through the store's (originator_id, version) key, however long
        the log is."""
        topics = set(_topics(cls))
        return {
            version: position
            for version, position, topic in log_index.versions_of(self.recorder, aggregate_id)
            if topic in topics
        }

    def data_changes_after(self, position: int, aggregate_ids: set[str]) -> dict[str, int]:
        """The latest position after ``position`` at which each of these collections' or
        buckets' documents or objects changed. Their own changes: the latest such event
        of each, read from its newest back; changes a task made in a collection (a deep
        copy, a taxonomy applied): the tasks' events after ``position``, through the
        topic index. Neither reads the log in between."""
        found: dict[str, int] = {}
        for aggregate_id in aggregate_ids:
            latest = log_index.latest_of(self.recorder, aggregate_id, OWN_DATA_TOPICS)
            if latest is not None and latest > position:
                found[aggregate_id] = latest
        works_on: dict[str, str] = {}  # task -> the collection it writes into
        for row in log_index.of_topics_after(self.recorder, TASK_DATA_TOPICS, position):
            changed = str(row.event.originator_id)
            if row.event.topic == COPY_TOPIC:  # a deep copy filling a cloned collection
                changed = str(vars(self.mapper.to_domain_event(row.event))["collection_id"])
            else:  # a taxonomy's writes land in a collection's points
                if changed not in works_on:
                    works_on[changed] = self._collection_of_task(changed)
                changed = works_on[changed]
            if changed in aggregate_ids:
                found[changed] = max(found.get(changed, 0), row.position)
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


def _topics(cls: type[Aggregate]) -> list[str]:
    return [
        get_topic(v)
        for v in vars(cls).values()
        if isinstance(v, type) and issubclass(v, Aggregate.Event)
    ]


# Events that change what a collection holds (or the objects it is made from).
# Taxonomy application writes enrichment into a collection's points as it goes.
OWN_DATA_TOPICS = [
    get_topic(event)
    for event in (
        Collection.DocumentsWritten,
        Collection.DocumentsDeleted,
        Collection.ReprocessStarted,
        Collection.Reprocessed,
        Bucket.ObjectsAdded,
    )
]
TASK_DATA_TOPICS = [
    *sorted(_topics(ApplyTaxonomyTask)),
    COPY_TOPIC := get_topic(CloneTask.CopyProgressed),
]


def _stamp(event: Any, **meta: Any) -> None:
    # Domain events are frozen; these attributes are context, not decisions, and are
    # added once, before the event is stored.
    for key, value in meta.items():
        object.__setattr__(event, key, value)
