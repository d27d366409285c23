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
from domain.refs import Ref

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

    def namespace(
        self,
        identifier: str,
        field: str = "body.namespace_identifier",
        *,
        deleted_too: bool = False,
    ) -> Namespace:
        """The namespace an ID or a name refers to, which the command then acts in. A
        deleted one is refused ("was deleted") unless ``deleted_too`` (a clone as of a
        position before the delete reads it)."""
        namespace = self._find_namespace(identifier, field)
        if namespace is None:
            raise CommandRejected(
                ErrorCode.NOT_FOUND, f"namespace {identifier!r} not found", field=field
            )
        if not deleted_too:
            namespace.refuse_if_deleted(field)
        if self.namespace_id is None:
            self.namespace_id = namespace.id
        return namespace

    def _find_namespace(self, identifier: str, field: str) -> Namespace | None:
        kind = kind_of(identifier)
        if kind is None:
            claim = self.get(NamespaceName.id_for(identifier), NamespaceName)
            if claim is None:
                return None
            if claim.claimed_by is None:
                # Released: by a rename (not found), or by a delete under this name
                last = self.get(claim.namespace_id, Namespace)
                gone = last is not None and last.deleted and last.namespace_name == identifier
                return last if gone else None
            return self.get(claim.claimed_by, Namespace)
        _expect_kind(Kind.NAMESPACE, kind, identifier, field)
        return self.get(identifier, Namespace)

    def resource(self, namespace: Namespace, kind: Kind, identifier: str, field: str) -> Resource:
        """The resource of this kind in this namespace that an ID or a name refers to.
        One deleted is refused ("was deleted"): it is no longer in the catalogue."""
        resource_id = self.resource_id(namespace, kind, identifier, field)
        resource = None if resource_id is None else self.get(resource_id, Resource)
        if resource is None:
            deleted = self._deleted_from(namespace, kind, identifier)
            if deleted is not None:
                deleted.refuse_if_deleted(field)
            raise CommandRejected(
                ErrorCode.NOT_FOUND,
                f"{kind.value} {identifier!r} not found in namespace "
                f"{namespace.namespace_name!r} ({namespace.id})",
                field=field,
            )
        resource.refuse_if_deleted(field)
        return resource

    def resource_id(
        self, namespace: Namespace, kind: Kind, identifier: str, field: str
    ) -> str | None:
        """The ID of what an ID or a name refers to in this namespace's catalogue."""
        id_kind = kind_of(identifier)
        if id_kind is None:
            return namespace.find(kind, identifier)
        _expect_kind(kind, id_kind, identifier, field)
        return identifier if namespace.holds(kind, identifier) else None

    def _deleted_from(self, namespace: Namespace, kind: Kind, identifier: str) -> Resource | None:
        """The resource an identifier named in this namespace before it was deleted."""
        if kind_of(identifier) is None:
            removed = namespace.removed_under(kind, identifier)
        else:
            removed = identifier
        found = None if removed is None else self.get(removed, Resource)
        if found is None or not found.deleted or found.namespace_id != namespace.id:
            return None
        return found

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

    # --- refs and deleted targets ------------------------------------------

    def deleted_target(self, target_kind: str, target_id: str) -> str | None:
        """What a ref's target has become if it can no longer be pointed at: it, or the
        namespace it lives in, was deleted. None while it is live (or unknown)."""
        if Kind(target_kind) is Kind.NAMESPACE:
            namespace = self.get(target_id, Namespace)
            if namespace is None or not namespace.deleted:
                return None
            return f"namespace {namespace.namespace_name!r} ({namespace.id}), which was deleted"
        resource = self.get(target_id, Resource)
        if resource is None:
            return None
        what = f"{resource.KIND.value} {resource.name!r} ({resource.id})"
        if resource.deleted:
            return f"{what}, which was deleted"
        home = self.get(resource.namespace_id, Namespace)
        if home is not None and home.deleted:
            return f"{what}, whose namespace {home.namespace_name!r} ({home.id}) was deleted"
        return None

    def ref_target(self, ref: Ref) -> str:
        """Resolves a ref: the ID it points at now, refused if that target was deleted."""
        return ref.resolve(self.deleted_target(ref.target_kind, ref.target_id))

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
