"""The retriever: a pipeline of stages over collections."""

from __future__ import annotations

from typing import Any

from domain.base import Resource, keep_first_topics
from domain.ids import Kind


class Retriever(Resource, created_event_name="Created"):
    """A pipeline of stages over collections."""

    KIND = Kind.RETRIEVER
    NAME_FIELD = "retriever_name"

    class Created(Resource.Created):
        retriever_name: str
        collection_ids: list[str]
        stages: list[dict[str, Any]]
        input_schema: dict[str, Any]


keep_first_topics(Retriever)
