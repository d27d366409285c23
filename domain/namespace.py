"""The namespace: an environment, the resources it holds and the names they go by; and
the system-wide claim on a namespace's name.

Deleting a namespace is one event (``Deleted``), however many resources it holds: they
are not touched, only no longer reachable (the namespace refuses to resolve, "was
deleted"), and its name's claim is released for a new namespace. Its catalogue is kept
as it was, so a clone "as of" a position before the delete still reads it. Deleting one
resource removes it from the catalogue (``ResourceRemoved``): its name is free again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from eventsourcing.domain import event

from domain.base import Aggregate, Entity, keep_first_topics, was_deleted
from domain.errors import CommandRejected, ErrorCode
from domain.ids import Kind

RESOURCE_KINDS = (Kind.BUCKET, Kind.COLLECTION, Kind.RETRIEVER, Kind.TAXONOMY)
_KIND_VALUES = tuple(kind.value for kind in RESOURCE_KINDS)  # an enum's .value is slow


class Namespace(Entity, created_event_name="Created"):
    """An environment: the resources it holds and the names they go by."""

    KIND = Kind.NAMESPACE
    # 2: ``removed`` (the resources deleted under each name) joined the state
    class_version = 2
    deleted = False  # until a Deleted event says otherwise (older snapshots lack it)
    if TYPE_CHECKING:  # made by the @event methods below
        Renamed: ClassVar[type[Aggregate.Event]]
        DescriptionChanged: ClassVar[type[Aggregate.Event]]
        Deleted: ClassVar[type[Aggregate.Event]]
        ResourceRemoved: ClassVar[type[Aggregate.Event]]

    class Created(Aggregate.Created):
        namespace_name: str
        description: str

    class Cloned(Created):
        source_namespace_id: str
        clone_task_id: str

        def apply(self, aggregate: Namespace) -> None:
            aggregate.source_namespace_id = self.source_namespace_id
            aggregate.clone_task_id = self.clone_task_id

    def __init__(self, namespace_name: str, description: str) -> None:
        self.namespace_name = namespace_name
        self.description = description
        self.source_namespace_id: str | None = None
        self.clone_task_id: str | None = None
        # kind -> resource id -> name, and the other way round (a lookup by name does not
        # walk the catalogue: a namespace may hold thousands of resources)
        self.resources: dict[str, dict[str, str]] = {kind: {} for kind in _KIND_VALUES}
        self.names: dict[str, dict[str, str]] = {kind: {} for kind in _KIND_VALUES}
        # kind -> name -> the resource last deleted under that name, until a resource
        # takes the name again: only to say "was deleted" instead of "not found"
        self.removed: dict[str, dict[str, str]] = {}

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A snapshot taken before deletes existed: nothing was removed yet."""
        state["removed"] = {}

    @property
    def namespace_id(self) -> str:
        return self.id

    def clone(
        self,
        *,
        id: str,
        namespace_name: str,
        description: str,
        clone_task_id: str,  # noqa: A002
    ) -> Namespace:
        self.refuse_if_deleted()
        return Namespace._create(
            Namespace.Cloned,
            id=id,
            namespace_name=namespace_name,
            description=description,
            source_namespace_id=self.id,
            clone_task_id=clone_task_id,
        )

    def rename(self, namespace_name: str) -> None:
        self.refuse_if_deleted()
        self._renamed(namespace_name=namespace_name)

    def change_description(self, description: str) -> None:
        self.refuse_if_deleted()
        self._description_changed(description=description)

    def delete(self) -> None:
        """The environment is gone: one event, its resources untouched (see the module)."""
        self.refuse_if_deleted()
        self._deleted()

    def refuse_if_deleted(self, field: str | None = "body.namespace_identifier") -> None:
        if self.deleted:
            raise was_deleted("namespace", self.namespace_name, self.id, field)

    @event("Renamed")
    def _renamed(self, namespace_name: str) -> None:
        self.namespace_name = namespace_name

    @event("DescriptionChanged")
    def _description_changed(self, description: str) -> None:
        self.description = description

    @event("Deleted")
    def _deleted(self) -> None:
        self.deleted = True

    def find(self, kind: Kind, name: str) -> str | None:
        """The ID of the resource of this kind that goes by this name here."""
        return self.names.get(kind.value, {}).get(name)

    def holds(self, kind: Kind, resource_id: str) -> bool:
        return resource_id in self.resources.get(kind.value, {})

    def removed_under(self, kind: Kind, name: str) -> str | None:
        """The ID of the resource of this kind deleted while it went by this name, if no
        resource has taken the name since."""
        return self.removed.get(kind.value, {}).get(name)

    def add_resource(self, kind: Kind, resource_id: str, name: str) -> None:
        self._refuse_taken_name(kind, name)
        self._resource_added(kind=kind.value, resource_id=resource_id, name=name)

    def rename_resource(self, kind: Kind, resource_id: str, name: str) -> None:
        if self.resources.get(kind.value, {}).get(resource_id) == name:
            return
        self._refuse_taken_name(kind, name)
        self._resource_renamed(kind=kind.value, resource_id=resource_id, name=name)

    def remove_resource(self, kind: Kind, resource_id: str) -> None:
        """A deleted resource leaves the catalogue; its name is free again."""
        self._resource_removed(kind=kind.value, resource_id=resource_id)

    def _refuse_taken_name(self, kind: Kind, name: str) -> None:
        taken_by = self.find(kind, name)
        if taken_by is not None:
            raise CommandRejected(
                ErrorCode.DUPLICATE_NAME,
                f"a {kind.value} named {name!r} already exists in namespace "
                f"{self.namespace_name!r} ({taken_by})",
                field=f"body.{kind.value}_name",
                existing_id=taken_by,
            )

    @event("ResourceAdded")
    def _resource_added(self, kind: str, resource_id: str, name: str) -> None:
        # Kinds beyond RESOURCE_KINDS (evaluation sets) are catalogued on first use.
        self.resources.setdefault(kind, {})[resource_id] = name
        self.names.setdefault(kind, {})[name] = resource_id
        self.removed.get(kind, {}).pop(name, None)

    @event("ResourceRenamed")
    def _resource_renamed(self, kind: str, resource_id: str, name: str) -> None:
        del self.names[kind][self.resources[kind][resource_id]]
        self.resources[kind][resource_id] = name
        self.names[kind][name] = resource_id
        self.removed.get(kind, {}).pop(name, None)

    @event("ResourceRemoved")
    def _resource_removed(self, kind: str, resource_id: str) -> None:
        name = self.resources[kind].pop(resource_id)
        del self.names[kind][name]
        self.removed.setdefault(kind, {})[name] = resource_id


class NamespaceName(Aggregate):
    """Claims a namespace name across the whole system, so it stays unique."""

    class Created(Aggregate.Created):
        namespace_name: str
        namespace_id: str

    def __init__(self, namespace_name: str, namespace_id: str) -> None:
        self.namespace_name = namespace_name
        self.claimed_by: str | None = namespace_id
        self.namespace_id = namespace_id  # the latest claimant, kept after a release

    @staticmethod
    def id_for(namespace_name: str) -> str:
        return f"nsname:{namespace_name}"

    @classmethod
    def claim(cls, namespace_name: str, namespace_id: str) -> NamespaceName:
        return cls._create(
            cls.Created,
            id=cls.id_for(namespace_name),
            namespace_name=namespace_name,
            namespace_id=namespace_id,
        )

    def reclaim(self, namespace_id: str) -> None:
        if self.claimed_by is not None:
            raise CommandRejected(
                ErrorCode.DUPLICATE_NAME,
                f"a namespace named {self.namespace_name!r} already exists ({self.claimed_by})",
                field="body.namespace_name",
                existing_id=self.claimed_by,
            )
        self._claimed(namespace_id=namespace_id)

    @event("Claimed")
    def _claimed(self, namespace_id: str) -> None:
        self.claimed_by = namespace_id
        self.namespace_id = namespace_id

    @event("Released")
    def release(self) -> None:
        self.claimed_by = None


keep_first_topics(Namespace, NamespaceName)
