"""The taxonomy: classification through a retriever against reference collections."""

from __future__ import annotations

from typing import Any

from domain.base import Resource, keep_first_topics
from domain.ids import Kind


class Taxonomy(Resource, created_event_name="Created"):
    """Classification through a retriever against reference collections."""

    KIND = Kind.TAXONOMY
    NAME_FIELD = "taxonomy_name"

    class Created(Resource.Created):
        taxonomy_name: str
        config: dict[str, Any]


keep_first_topics(Taxonomy)
