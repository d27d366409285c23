"""The vector store port: what envbranch needs from a vector engine, and nothing more.

Two adapters implement it and pass one contract suite (tests/test_vector_store_contract.py):
Qdrant Edge in-process (the embedded default) and a Qdrant server through qdrant-client
(its local mode stands in for the server in tests).

A *store* is one physical collection for one vector space (size, distance). Point IDs
are UUID strings. Filters are this module's small model, translated by each adapter.
Index every field you filter on with ``create_index`` first: a Qdrant server and Qdrant
Edge use the index to filter fast (qdrant-edge 0.9 also filters unindexed fields, by
scanning); qdrant-client's local mode ignores indexes and always scans.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Distance = Literal["cosine", "dot", "euclid"]
IndexKind = Literal["keyword", "integer", "float"]


@dataclass(frozen=True)
class Space:
    size: int
    distance: Distance = "cosine"


@dataclass
class VectorPoint:
    id: str  # a UUID string
    vector: list[float] | None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hit:
    id: str
    score: float
    payload: dict[str, Any]
    vector: list[float] | None = None


@dataclass(frozen=True)
class MatchAny:
    """The payload field equals one of the values."""

    key: str
    values: tuple[str | int, ...]


@dataclass(frozen=True)
class Range:
    key: str
    gte: float | None = None
    lte: float | None = None
    gt: float | None = None
    lt: float | None = None


@dataclass(frozen=True)
class HasId:
    ids: tuple[str, ...]


Condition = MatchAny | Range | HasId


@dataclass(frozen=True)
class Filter:
    """All of ``must`` and none of ``must_not``."""

    must: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class IndexState:
    """How far a store's HNSW index is: ``indexed`` (what is not in it is few enough to
    search exactly), ``indexing`` (a build runs; searches go on meanwhile), ``pending``
    (enough unindexed points for a build, which has not started yet, or is tried again
    after one failed) or ``failed`` (a server's optimizer failed)."""

    points: int
    indexed_points: int
    state: str


Relabel = Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]  # payload -> (id, payload)


class StoreNotFound(KeyError):
    pass


class VectorStore(ABC):
    """Synchronous; callers in an event loop run it in a thread."""

    @abstractmethod
    def create_store(self, name: str, space: Space) -> None:
        """Create the store; no-op if it exists with the same space (ValueError if not)."""

    @abstractmethod
    def drop_store(self, name: str) -> None:
        """Remove the store and its points; no-op if absent."""

    @abstractmethod
    def list_stores(self) -> list[str]: ...

    @abstractmethod
    def space(self, name: str) -> Space:
        """The store's space; StoreNotFound if absent."""

    @abstractmethod
    def create_index(self, name: str, key: str, kind: IndexKind) -> None:
        """Index a payload field so filters on it work (idempotent)."""

    @abstractmethod
    def upsert(self, name: str, points: Sequence[VectorPoint]) -> None:
        """Insert or replace points (whole point: vector and payload)."""

    @abstractmethod
    def set_payload(self, name: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        """Set these payload fields on the points (others kept); unknown IDs are ignored."""

    @abstractmethod
    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Delete points by ID; unknown IDs are ignored."""

    @abstractmethod
    def retrieve(
        self, name: str, ids: Sequence[str], with_vectors: bool = False
    ) -> list[VectorPoint]:
        """The points that exist among ``ids`` (any order)."""

    @abstractmethod
    def scroll(
        self,
        name: str,
        filter: Filter | None = None,
        limit: int = 256,
        after: str | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[VectorPoint], str | None]:
        """A page of points in ID order, and the cursor for the next page (None at the end).
        ``after`` is a cursor this method returned: the page starts at that point (Qdrant's
        ``offset`` semantics), so a scroll resumed from a saved cursor has no gap."""

    def copy_points(
        self,
        source: str,
        filter: Filter | None,
        target: str,
        relabel: Relabel,
        limit: int = 1024,
        after: str | None = None,
    ) -> tuple[int, str | None]:
        """Copy a page of ``source``'s points matching the filter into ``target``, each
        under the ID and payload ``relabel`` makes of its payload; returns how many, and the
        cursor of the next page (None at the end; ``scroll``'s semantics)."""
        page, cursor = self.scroll(source, filter, limit, after, True)
        moved = []
        for point in page:
            new_id, payload = relabel(point.payload)
            moved.append(VectorPoint(new_id, point.vector, payload))
        self.upsert(target, moved)
        return len(moved), cursor

    @abstractmethod
    def search(
        self,
        name: str,
        vector: Sequence[float],
        filter: Filter | None = None,
        limit: int = 10,
        with_vectors: bool = False,
        exact: bool = False,
        ef: int | None = None,
    ) -> list[Hit]:
        """Nearest points, best first. ``exact`` searches without the index (slow, exact);
        ``ef`` is the HNSW beam width (higher: better recall, slower; None: the default)."""

    @abstractmethod
    def count(self, name: str, filter: Filter | None = None) -> int:
        """Exact number of points matching the filter."""

    def optimize(self, name: str) -> None:  # noqa: B027 - a server optimizes by itself
        """Build the store's indexes now; Qdrant Edge never does it on its own."""

    @abstractmethod
    def index_state(self, name: str) -> IndexState: ...

    def maintain_index(self, name: str) -> IndexState:
        """Keep the store's index built (a server does it by itself); never blocks."""
        return self.index_state(name)

    def close(self) -> None:  # noqa: B027 - most adapters have something to release
        """Release files and connections."""
