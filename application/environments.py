"""The application layer: load, decide, save, with the command's position.

A command's events, its receipt and the Kafka position it came from are
written in one transaction (the recorder's insert with a Tracking record), so
a command is applied exactly once however often it is delivered.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.projection import EventSourcedProjection
from eventsourcing.utils import get_topic, strtobool

from application import log_index
from application.group_commit import BatchDecider, Decided, Outcome, Pending
from application.unit import Unit
from contract.commands import Command
from domain.base import Aggregate, Snapshot
from domain.bucket import Bucket
from domain.collection import Collection
from domain.errors import CommandRejected
from domain.namespace import Namespace
from domain.refs import Ref
from domain.tasks import ApplyTaxonomyTask, CloneTask

log = logging.getLogger(__name__)

# Event attributes that say who caused an event and where; stored with each event.
META_FIELDS = ("command_id", "actor", "namespace_id")


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
        # Cached aggregates are shared: one command (or batch) decided and stored at a time.
        self._executing = threading.RLock()
        self._decider = BatchDecider(
            self.repository, self, self.mapper, self.max_event_bytes, _stamp_meta
        )
        if strtobool(self.env.get("CREATE_TABLE") or "yes"):
            log_index.create_indexes(self.recorder)

    def execute(self, command: Command, tracking: Tracking | None = None) -> Outcome:
        """Apply one command, retrying when another writer touched the same aggregates.
        A rejection is raised, and nothing (not even the position) is recorded."""
        with self._executing:
            for _ in range(self.max_conflict_retries):
                decided = self.decide([(command, tracking)])
                result = decided.results[0] if decided.consumed else None
                if isinstance(result, CommandRejected):
                    self.abandon(decided)
                    raise result
                try:
                    outcome = self.commit(decided)[0]
                except IntegrityError:
                    if tracking is not None and self.has_recorded(tracking):
                        raise AlreadyProcessed(tracking) from None
                    log.info("conflict applying %s, retrying", command.command_id)
                    continue
                assert isinstance(outcome, Outcome)
                return outcome
        raise RuntimeError(f"gave up on {command.command_id} after repeated conflicts")

    def decide(self, pending: Sequence[Pending]) -> Decided:
        """Decide a run of commands in memory (group commit): see application.group_commit.
        Store the result with ``commit`` or drop it with ``abandon`` before deciding again."""
        decided = Decided()
        with self._executing:
            self._decider.max_event_bytes = self.max_event_bytes  # settable per instance
            try:
                return self._decider.decide(pending, decided)
            except BaseException:
                self._forget(decided.changed())
                raise

    def commit(self, decided: Decided) -> list[Outcome | CommandRejected]:
        """Store a decided batch, its events and its last position, in one transaction.
        If that fails, what the batch changed in memory is dropped and the error raised."""
        with self._executing:
            try:
                positions: Sequence[int] = []
                if decided.stored or decided.tracking is not None:
                    stored = self.recorder.insert_events(decided.stored, tracking=decided.tracking)
                    positions = stored or []
            except BaseException:
                self._forget(decided.changed())
                raise
            self._forget(decided.tainted)
            self._take_due_snapshots(decided)
        return decided.outcomes(positions)

    def abandon(self, decided: Decided) -> None:
        """Drop a decided batch that will not be stored."""
        with self._executing:
            self._forget(decided.changed())

    def _forget(self, aggregate_ids: Iterable[str]) -> None:
        """Drop from the cache what a command that did not land has changed in memory
        (what it only read stays: it is as the store has it)."""
        cache = self.repository.cache
        if cache is not None:
            for aggregate_id in aggregate_ids:
                with contextlib.suppress(KeyError):  # not cached: nothing to drop
                    cache.get(aggregate_id, evict=True)

    def _take_due_snapshots(self, decided: Decided) -> None:
        """Snapshot the aggregates whose version passed a multiple of their interval, from
        the object in memory (just saved: exactly the recorded state). After the events'
        transaction: a snapshot lost to a crash only makes the next load longer."""
        if self.snapshots is None:
            return
        aggregates = decided.aggregates
        due = {
            event.originator_id
            for event in decided.events
            if (every := self.snapshot_every.get(type(aggregates[event.originator_id])))
            and event.originator_version % every == 0
            and event.originator_id not in decided.tainted
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

    def existing(self, aggregate_ids: set[str]) -> set[str]:
        """Which of these aggregates have stored events."""
        return log_index.existing(self.recorder, aggregate_ids)

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


def _stamp_meta(event: Any, command: Command, owner: Aggregate, unit: Unit) -> None:
    _stamp(
        event,
        command_id=command.command_id,
        actor=command.actor,
        namespace_id=getattr(owner, "namespace_id", None) or unit.namespace_id,
    )


def _stamp(event: Any, **meta: Any) -> None:
    # Domain events are frozen; these attributes are context, not decisions, and are
    # added once, before the event is stored.
    for key, value in meta.items():
        object.__setattr__(event, key, value)
