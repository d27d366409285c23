"""The bucket: raw objects and the schema they follow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from eventsourcing.domain import event

from domain.base import Aggregate, Resource, keep_first_topics
from domain.ids import Kind, new_id


class Bucket(Resource, created_event_name="Created"):
    """Raw objects and the schema they follow."""

    KIND = Kind.BUCKET
    NAME_FIELD = "bucket_name"
    if TYPE_CHECKING:  # made by the @event method below
        ObjectsAdded: ClassVar[type[Aggregate.Event]]

    class Created(Resource.Created):
        bucket_name: str
        bucket_schema: dict[str, Any]

    def __init__(self) -> None:
        self.object_keys: dict[str, str] = {}  # key -> object ID

    def add_objects(self, objects: list[dict[str, Any]]) -> list[str]:
        """Add raw objects; an object whose key the bucket holds replaces that object.
        Returns their object IDs."""
        added = []
        for obj in objects:
            key = obj.get("key")
            known = self.object_keys.get(key) if key is not None else None
            added.append({**obj, "object_id": known or new_id(Kind.OBJECT)})
        self._objects_added(objects=added)
        return [obj["object_id"] for obj in added]

    @event("ObjectsAdded")
    def _objects_added(self, objects: list[dict[str, Any]]) -> None:
        for obj in objects:
            if obj.get("key") is not None:
                self.object_keys[obj["key"]] = obj["object_id"]


keep_first_topics(Bucket)
