"""Group commit: a run of commands decided in memory, then stored in one transaction.

The commands of a batch are decided one after another on the same aggregates in
memory (an overlay over the aggregate cache), so each sees what the ones before it
did; their events and receipts, and the Kafka position of the last of them as the
tracking record, are then written in one transaction. A batch is therefore applied
whole or not at all, and exactly once.

A rejected command does not poison its batch. One rejected before it changed
anything (a missing resource, an invalid body: nearly all) is left out and the rest
go on. One rejected after it changed an aggregate in memory ends the batch there:
what the commands before it did is stored, what it half-did is dropped from memory
(the aggregates it changed are evicted and reloaded from the store next time).

A command that reads the stored log (a rollback to a position, a promotion's as-of
read) needs the commands before it stored first, so the batch ends before it and it
opens the next one. So does a command that fails for an unexpected reason: it is
retried alone, where the processor's single-command handling applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.application import Repository
from eventsourcing.persistence import Mapper, StoredEvent, Tracking

from application.handlers import HANDLERS
from application.unit import EventLog, Unit
from contract.commands import Command
from domain.base import Aggregate
from domain.errors import CommandRejected, ErrorCode
from domain.ids import kind_of
from domain.namespace import NamespaceName
from domain.receipts import CommandReceipt


@dataclass(frozen=True)
class Outcome:
    """What executing a command did."""

    positions: list[int]  # the positions of its new events; empty for a duplicate
    duplicate: bool = False


# A command to decide with its position, or the reason it could not even be read.
Pending = tuple[Command | CommandRejected, Tracking | None]


class NeedsStoredLog(Exception):
    """A command asked the stored log about positions while earlier commands of its
    batch were not stored yet: store them first."""


@dataclass
class Decided:
    """A run of commands decided in memory, ready to be stored in one transaction."""

    consumed: int = 0  # how many of the pending commands this covers, from the first
    tracking: Tracking | None = None  # the position of the last one consumed
    results: list[Outcome | CommandRejected | None] = field(default_factory=list)
    stored: list[StoredEvent] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)  # events per consumed command
    aggregates: dict[str, Aggregate] = field(default_factory=dict)  # as they now are
    loaded_at: dict[str, int] = field(default_factory=dict)  # versions when first read
    tainted: set[str] = field(default_factory=set)  # changed by a command that failed
    stopped_by: BaseException | None = None  # the unexpected error that ended the batch

    def changed(self) -> set[str]:
        """Every aggregate this batch changed in memory, stored or not."""
        changed = {i for i, v in self.loaded_at.items() if self.aggregates[i].version != v}
        return changed | self.tainted

    def outcomes(self, positions: Sequence[int]) -> list[Outcome | CommandRejected]:
        """Each consumed command's result, given the positions its events were stored at."""
        out: list[Outcome | CommandRejected] = []
        start = 0
        for result, count in zip(self.results, self.counts, strict=True):
            if result is None:
                out.append(Outcome(positions=list(positions[start : start + count])))
            else:
                out.append(result)
            start += count
        return out


class _StoredLogOnly:
    """The log, for a command deciding inside a batch: only while nothing of the batch
    waits to be stored (positions of unstored events do not exist yet)."""

    def __init__(self, log: EventLog, decided: Decided) -> None:
        self._log = log
        self._decided = decided

    def _check(self) -> None:
        if self._decided.events:
            raise NeedsStoredLog

    def positions_of(self, aggregate_id: str, cls: type[Aggregate]) -> dict[int, int]:
        self._check()
        return self._log.positions_of(aggregate_id, cls)

    def data_changes_after(self, position: int, aggregate_ids: set[str]) -> dict[str, int]:
        self._check()
        return self._log.data_changes_after(position, aggregate_ids)

    def existing(self, aggregate_ids: set[str]) -> set[str]:
        return self._log.existing(aggregate_ids)


class BatchDecider:
    """Decides commands on shared in-memory aggregates, collecting what to store."""

    def __init__(
        self,
        repository: Repository,
        log: EventLog,
        mapper: Mapper[str],
        max_event_bytes: int,
        stamp: Callable[[Any, Command, Aggregate, Unit], None],
    ) -> None:
        self.repository = repository
        self.log = log
        self.mapper = mapper
        self.max_event_bytes = max_event_bytes
        self.stamp = stamp

    def decide(self, pending: Sequence[Pending], decided: Decided) -> Decided:
        """Decide from the first pending command on, into ``decided``, until the batch
        ends; what it changed in memory is in ``decided`` even if this raises."""
        log = _StoredLogOnly(self.log, decided)
        # Most commands look up aggregates that do not exist yet (their receipt, the name
        # a new namespace claims): one read for the whole batch says which.
        wanted = {i for command, _ in pending for i in _looked_up(command)}
        absent = wanted - self.log.existing(wanted)
        for command, tracking in pending:
            if isinstance(command, CommandRejected):  # unreadable: nothing to decide
                self._consume(decided, command, tracking)
                continue
            unit = Unit(self.repository, log, overlay=decided.aggregates, absent=absent)
            try:
                self._decide_one(decided, unit, command, tracking)
            except CommandRejected as rejected:
                dirty = self._drop(decided, unit)
                self._consume(decided, rejected, tracking)
                if dirty:
                    break
            except NeedsStoredLog:
                self._drop(decided, unit)
                break
            except Exception as e:
                self._drop(decided, unit)
                if decided.consumed == 0:
                    raise
                decided.stopped_by = e
                break
        return decided

    def _decide_one(
        self, decided: Decided, unit: Unit, command: Command, tracking: Tracking | None
    ) -> None:
        receipt = unit.get(CommandReceipt.id_for(command.command_id), CommandReceipt)
        if receipt is not None:
            if receipt.body_digest != command.digest:
                raise CommandRejected(
                    ErrorCode.COMMAND_ID_REUSED,
                    f"command_id {command.command_id!r} was already used for another command "
                    f"({receipt.command_type}, or by another actor); use a new command_id",
                    field="command_id",
                )
            self._consume(decided, Outcome(positions=[], duplicate=True), tracking)
            return
        HANDLERS[type(command.body)](unit, command.body)
        events = sorted(
            (event for aggregate in unit.aggregates for event in aggregate.collect_events()),
            key=lambda event: event.timestamp,
        )
        # The receipt goes last: once it is visible, so is everything the command did.
        receipt = CommandReceipt.accept(command.command_id, command.type, command.digest)
        events.extend(receipt.collect_events())
        unit.add(receipt)
        owners = {aggregate.id: aggregate for aggregate in unit.aggregates}
        stored = []
        for event in events:
            self.stamp(event, command, owners[event.originator_id], unit)
            stored_event = self.mapper.to_stored_event(event)
            if len(stored_event.state) > self.max_event_bytes:
                raise CommandRejected(
                    ErrorCode.MESSAGE_TOO_LARGE,
                    f"the command would record a {type(event).__qualname__} event of "
                    f"{len(stored_event.state)} bytes; the limit is {self.max_event_bytes}: "
                    "send it in smaller commands",
                    size=len(stored_event.state),
                    limit=self.max_event_bytes,
                )
            stored.append(stored_event)
        for aggregate_id, version in unit.loaded_versions().items():
            decided.loaded_at.setdefault(aggregate_id, version)
        decided.aggregates.update(owners)
        decided.events.extend(events)
        decided.stored.extend(stored)
        self._consume(decided, None, tracking, len(events))

    @staticmethod
    def _consume(
        decided: Decided,
        result: Outcome | CommandRejected | None,
        tracking: Tracking | None,
        events: int = 0,
    ) -> None:
        decided.results.append(result)
        decided.counts.append(events)
        decided.consumed += 1
        decided.tracking = tracking

    @staticmethod
    def _drop(decided: Decided, unit: Unit) -> bool:
        """Forget a command that did not land: its pending events go, and what it changed
        in memory is tainted (evicted once the batch is stored). True if it changed any
        aggregate the batch or the cache holds."""
        for aggregate in unit.aggregates:
            aggregate.collect_events()
        changed = set(unit.changed())
        decided.tainted |= changed
        return bool(changed)


def _looked_up(command: Command | CommandRejected) -> list[str]:
    """IDs deciding this command will look up: its receipt, and a namespace's name claim
    when the command names one."""
    if isinstance(command, CommandRejected):
        return []
    ids = [CommandReceipt.id_for(command.command_id)]
    for name in ("namespace_name", "namespace_identifier"):
        value = getattr(command.body, name, None)
        if isinstance(value, str) and kind_of(value) is None:
            ids.append(NamespaceName.id_for(value))
    return ids
