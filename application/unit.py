"""The aggregates one command touches: loaded once, resolved by ID or name, saved together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from eventsourcing.application import AggregateNotFoundError, Repository

from domain.base import Aggregate, Resource
from domain.errors import CommandRejected, ErrorCode
from domain.ids import Kind, kind_of
from domain.namespace import Namespace, NamespaceName
from domain.references import MapRef

A = TypeVar("A", bound=Aggregate)
R = TypeVar("R", bound=Resource)


class EventLog(Protocol):
    """What a unit may ask of the log about positions (the application answers)."""

    def positions_of(self, aggregate_id: str, cls: type[Aggregate]) -> dict[int, int]: ...

    def data_changes_after(self, position: int, aggregate_ids: set[str]) -> dict[str, int]: ...

    def existing(self, aggregate_ids: set[str]) -> set[str]: ...


class Unit:
    def __init__(
        self,
        repository: Repository,
        log: EventLog | None = None,
        overlay: dict[str, Aggregate] | None = None,
        absent: set[str] | None = None,
    ) -> None:
        self._repository = repository
        # Aggregates earlier commands of the same batch have decided on, not stored yet,
        # and IDs the batch found no events of when it started (not looked up again).
        self._overlay = overlay if overlay is not None else {}
        self._absent = absent or set()
        self._touched: dict[str, Aggregate] = {}
        self._loaded_at: dict[str, int] = {}  # the version each loaded aggregate had
        self.namespace_id: str | None = None  # the namespace the command acts in
        self._log = log

    @property
    def log(self) -> EventLog:
        if self._log is None:
            raise RuntimeError("this unit was opened without access to log positions")
        return self._log

    def positions_of(self, aggregate_id: str, cls: type[Aggregate]) -> dict[int, int]:
        """The log position each stored version of an aggregate was recorded at."""
        return self.log.positions_of(aggregate_id, cls)

    def as_of(self, aggregate_id: str, cls: type[A], position: int) -> A | None:
        """The aggregate as it stood at a log position (None if it did not exist yet).
        Read-only: nothing done to it is saved."""
        versions = [v for v, p in self.positions_of(aggregate_id, cls).items() if p <= position]
        if not versions:
            return None
        found: Aggregate = self._repository.get(aggregate_id, version=max(versions))
        return found if isinstance(found, cls) else None

    @property
    def aggregates(self) -> list[Aggregate]:
        return list(self._touched.values())

    def changed(self) -> list[str]:
        """The loaded aggregates this command has changed (in memory, saved or not)."""
        return [i for i, v in self._loaded_at.items() if self._touched[i].version != v]

    def loaded_versions(self) -> dict[str, int]:
        """The version each aggregate this command loaded had when it was loaded."""
        return dict(self._loaded_at)

    def add(self, *aggregates: Aggregate) -> None:
        for aggregate in aggregates:
            self._touched[aggregate.id] = aggregate

    def add_to(self, namespace: Namespace, resource: Resource) -> None:
        """A new resource, catalogued under its name in its namespace."""
        namespace.add_resource(resource.KIND, resource.id, resource.name)
        self.add(resource)

    def get(self, aggregate_id: str, cls: type[A]) -> A | None:
        if aggregate_id not in self._touched:
            aggregate: Aggregate | None = self._overlay.get(aggregate_id)
            try:
                # The cached object itself, not a copy: copying a large aggregate would
                # cost what the cache saves. A failed command evicts what it touched.
                if aggregate is None:
                    if aggregate_id in self._absent:
                        return None
                    aggregate = self._repository.get(aggregate_id, deepcopy_from_cache=False)
            except AggregateNotFoundError:
                return None
            self._touched[aggregate_id] = aggregate
            self._loaded_at[aggregate_id] = aggregate.version
        found = self._touched[aggregate_id]
        return found if isinstance(found, cls) else None

    # --- resolving identifiers -------------------------------------------

    def namespace(self, identifier: str, field: str = "body.namespace_identifier") -> Namespace:
        """The namespace an ID or a name refers to, which the command then acts in."""
        namespace = self._find_namespace(identifier, field)
        if namespace is None:
            raise CommandRejected(
                ErrorCode.NOT_FOUND, f"namespace {identifier!r} not found", field=field
            )
        if self.namespace_id is None:
            self.namespace_id = namespace.id
        return namespace

    def _find_namespace(self, identifier: str, field: str) -> Namespace | None:
        kind = kind_of(identifier)
        if kind is None:
            claim = self.get(NamespaceName.id_for(identifier), NamespaceName)
            if claim is None or claim.claimed_by is None:
                return None
            return self.get(claim.claimed_by, Namespace)
        _expect_kind(Kind.NAMESPACE, kind, identifier, field)
        return self.get(identifier, Namespace)

    def resource(self, namespace: Namespace, kind: Kind, identifier: str, field: str) -> Resource:
        """The resource of this kind in this namespace that an ID or a name refers to."""
        id_kind = kind_of(identifier)
        if id_kind is None:
            resource_id = namespace.find(kind, identifier)
        else:
            _expect_kind(kind, id_kind, identifier, field)
            resource_id = identifier if namespace.holds(kind, identifier) else None
        resource = None if resource_id is None else self.get(resource_id, Resource)
        if resource is None:
            raise CommandRejected(
                ErrorCode.NOT_FOUND,
                f"{kind.value} {identifier!r} not found in namespace "
                f"{namespace.namespace_name!r} ({namespace.id})",
                field=field,
            )
        return resource

    def resource_of(self, namespace: Namespace, cls: type[R], identifier: str) -> R:
        """The resource of ``cls``'s kind that the command's ``<kind>_identifier`` names."""
        kind = cls.KIND
        resource = self.resource(namespace, kind, identifier, f"body.{kind.value}_identifier")
        assert isinstance(resource, cls)
        return resource

    def resolve_ref(self, namespace: Namespace) -> MapRef:
        """Turns identifiers given in a command into IDs of this namespace's resources."""

        def ref(kind: Kind, identifier: str, field: str) -> str:
            return self.resource(namespace, kind, identifier, field).id

        return ref

    # --- namespace names ---------------------------------------------------

    def claim_namespace_name(self, namespace_name: str, namespace_id: str) -> None:
        claim = self.get(NamespaceName.id_for(namespace_name), NamespaceName)
        if claim is None:
            self.add(NamespaceName.claim(namespace_name, namespace_id))
        else:
            claim.reclaim(namespace_id)

    def release_namespace_name(self, namespace_name: str) -> None:
        claim = self.get(NamespaceName.id_for(namespace_name), NamespaceName)
        if claim is not None and claim.claimed_by is not None:
            claim.release()


# What handles each command: its body's class -> a function of the unit and the body.
Handlers = dict[type[Any], Callable[["Unit", Any], None]]


def _expect_kind(expected: Kind, actual: Kind, identifier: str, field: str) -> None:
    if actual is not expected:
        raise CommandRejected(
            ErrorCode.WRONG_KIND,
            f"{identifier!r} is a {actual.value} ID; {field} takes a {expected.value} "
            f"({expected.prefix}_...) ID or name",
            field=field,
        )
