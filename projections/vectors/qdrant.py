"""The vector store port over a Qdrant server, through qdrant-client.

One Qdrant collection per store, named like the store, with one unnamed dense vector.
qdrant-client's local mode (``QdrantStore.local``) runs the same code in-process for tests;
it accepts payload indexes but ignores them (it filters by scanning, so filters still work).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from projections.vectors.store import (
    Condition,
    Distance,
    Filter,
    HasId,
    Hit,
    IndexKind,
    IndexState,
    MatchAny,
    Range,
    Space,
    StoreNotFound,
    VectorPoint,
    VectorStore,
)

_DISTANCES: dict[Distance, models.Distance] = {
    "cosine": models.Distance.COSINE,
    "dot": models.Distance.DOT,
    "euclid": models.Distance.EUCLID,
}
_FROM_QDRANT: dict[models.Distance, Distance] = {v: k for k, v in _DISTANCES.items()}
_SCHEMAS: dict[IndexKind, models.PayloadSchemaType] = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
}


def point_id(value: str) -> str:
    """The canonical (lowercase, hyphenated) form of a UUID string; ValueError if not a UUID."""
    return str(uuid.UUID(str(value)))


def _dense(vector: Any) -> list[float] | None:
    if vector is None:
        return None
    if isinstance(vector, dict):  # named vectors: the unnamed one is ""
        vector = vector.get("")
    if not isinstance(vector, list):
        return None
    return [float(x) for x in vector]


def _condition(cond: Condition) -> models.Condition:
    if isinstance(cond, MatchAny):
        strs = [v for v in cond.values if isinstance(v, str)]
        ints = [v for v in cond.values if not isinstance(v, str)]
        if strs and ints:  # Qdrant's MatchAny takes one type: either of two conditions
            return models.Filter(
                should=[
                    models.FieldCondition(key=cond.key, match=models.MatchAny(any=strs)),
                    models.FieldCondition(key=cond.key, match=models.MatchAny(any=ints)),
                ]
            )
        values: list[str] | list[int] = strs or ints
        return models.FieldCondition(key=cond.key, match=models.MatchAny(any=values))
    if isinstance(cond, Range):
        rng = models.Range(gte=cond.gte, lte=cond.lte, gt=cond.gt, lt=cond.lt)
        return models.FieldCondition(key=cond.key, range=rng)
    if isinstance(cond, HasId):
        ids: list[models.ExtendedPointId] = [point_id(i) for i in cond.ids]
        return models.HasIdCondition(has_id=ids)
    raise TypeError(f"unsupported filter condition: {cond!r}")


@functools.lru_cache(maxsize=256)  # filters are frozen values; a clone's is reused per query
def to_qdrant_filter(flt: Filter | None) -> models.Filter | None:
    if flt is None or not (flt.must or flt.must_not):
        return None
    return models.Filter(
        must=[_condition(c) for c in flt.must] or None,
        must_not=[_condition(c) for c in flt.must_not] or None,
    )


class QdrantStore(VectorStore):
    def __init__(self, client: QdrantClient) -> None:
        self._client = client
        # Spaces seen by this instance, to check vector sizes without a round trip. A store
        # dropped and re-created with another space by another process is noticed on error.
        self._spaces: dict[str, Space] = {}

    @classmethod
    def local(cls, path: Path) -> QdrantStore:
        """qdrant-client's in-process local mode, persisted under ``path`` (one process)."""
        return cls(QdrantClient(path=str(path)))

    @classmethod
    def server(cls, url: str, api_key: str | None = None) -> QdrantStore:
        """A Qdrant server at ``url`` (https:// for TLS), sending ``api_key`` if given."""
        return cls(QdrantClient(url=url, api_key=api_key))

    @contextmanager
    def _on(self, name: str) -> Iterator[None]:
        """Turn an error about a missing collection into StoreNotFound."""
        try:
            yield
        except StoreNotFound:
            raise
        except Exception as exc:
            if not self._client.collection_exists(name):
                self._spaces.pop(name, None)
                raise StoreNotFound(name) from exc
            raise

    def create_store(self, name: str, space: Space) -> None:
        if space.size < 1:
            raise ValueError(f"vector size must be positive, not {space.size}")
        if not self._client.collection_exists(name):
            params = models.VectorParams(size=space.size, distance=_DISTANCES[space.distance])
            try:
                self._client.create_collection(name, vectors_config=params)
            except Exception:
                if not self._client.collection_exists(name):
                    raise  # not a lost race with another creator
        existing = self.space(name)
        if existing != space:
            raise ValueError(f"store {name!r} exists with {existing}, not {space}")

    def drop_store(self, name: str) -> None:
        self._spaces.pop(name, None)
        if self._client.collection_exists(name):
            self._client.delete_collection(name)

    def list_stores(self) -> list[str]:
        return sorted(c.name for c in self._client.get_collections().collections)

    def space(self, name: str) -> Space:
        with self._on(name):
            info = self._client.get_collection(name)
        params = info.config.params.vectors
        if not isinstance(params, models.VectorParams) or params.distance not in _FROM_QDRANT:
            raise ValueError(f"collection {name!r} is not one unnamed dense vector: {params}")
        space = Space(size=params.size, distance=_FROM_QDRANT[params.distance])
        self._spaces[name] = space
        return space

    def _size(self, name: str) -> int:
        space = self._spaces.get(name) or self.space(name)
        return space.size

    def _check(self, name: str, vector: Sequence[float] | None) -> list[float]:
        size = self._size(name)
        if vector is None or len(vector) != size:
            got = None if vector is None else len(vector)
            raise ValueError(f"store {name!r} takes vectors of size {size}, not {got}")
        return [float(x) for x in vector]

    def create_index(self, name: str, key: str, kind: IndexKind) -> None:
        with self._on(name):
            self._client.create_payload_index(name, key, field_schema=_SCHEMAS[kind], wait=True)

    def upsert(self, name: str, points: Sequence[VectorPoint]) -> None:
        structs = [
            models.PointStruct(
                id=point_id(p.id), vector=self._check(name, p.vector), payload=dict(p.payload)
            )
            for p in points
        ]
        if not structs:
            self._size(name)  # StoreNotFound for an unknown store, even with nothing to do
            return
        with self._on(name):
            self._client.upsert(name, points=structs, wait=True)

    def set_payload(self, name: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        wanted: list[models.ExtendedPointId] = [point_id(i) for i in ids]
        with self._on(name):
            present = [p.id for p in self._client.retrieve(name, wanted, with_payload=False)]
            if present:  # a server fails the whole operation on an unknown ID
                self._client.set_payload(name, payload=payload, points=present, wait=True)

    def delete(self, name: str, ids: Sequence[str]) -> None:
        selector = models.PointIdsList(points=[point_id(i) for i in ids])
        if not selector.points:  # Qdrant rejects an empty id list ("Empty update request")
            self._size(name)
            return
        with self._on(name):
            self._client.delete(name, points_selector=selector, wait=True)

    def retrieve(
        self, name: str, ids: Sequence[str], with_vectors: bool = False
    ) -> list[VectorPoint]:
        wanted: list[models.ExtendedPointId] = [point_id(i) for i in ids]
        with self._on(name):
            records = self._client.retrieve(
                name, ids=wanted, with_payload=True, with_vectors=with_vectors
            )
        return [_point(r) for r in records]

    def scroll(
        self,
        name: str,
        filter: Filter | None = None,
        limit: int = 256,
        after: str | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[VectorPoint], str | None]:
        if limit < 1:
            raise ValueError(f"limit must be positive, not {limit}")
        offset = None if after is None else point_id(after)
        with self._on(name):
            records, nxt = self._client.scroll(
                name,
                scroll_filter=to_qdrant_filter(filter),
                limit=limit,
                offset=offset,
                with_payload=True,
                with_vectors=with_vectors,
            )
        return [_point(r) for r in records], None if nxt is None else str(nxt)

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
        query = self._check(name, vector)
        params = models.SearchParams(hnsw_ef=ef, exact=exact) if exact or ef else None
        with self._on(name):
            found = self._client.query_points(
                name,
                query=query,
                query_filter=to_qdrant_filter(filter),
                limit=limit,
                with_payload=True,
                with_vectors=with_vectors,
                search_params=params,
            ).points
        return [
            Hit(
                id=str(p.id),
                score=p.score,
                payload=dict(p.payload or {}),
                vector=_dense(p.vector) if with_vectors else None,
            )
            for p in found
        ]

    def index_state(self, name: str) -> IndexState:
        """A server indexes by itself; what it reports (local mode indexes nothing)."""
        with self._on(name):
            info = self._client.get_collection(name)
        states = {
            models.CollectionStatus.GREEN: "indexed",
            models.CollectionStatus.YELLOW: "indexing",
            models.CollectionStatus.GREY: "pending",
        }
        state = states.get(info.status, "failed")  # red: an optimization failed
        return IndexState(info.points_count or 0, info.indexed_vectors_count or 0, state)

    def count(self, name: str, filter: Filter | None = None) -> int:
        with self._on(name):
            result = self._client.count(name, count_filter=to_qdrant_filter(filter), exact=True)
        return result.count

    def close(self) -> None:
        self._client.close()


def _point(record: models.Record) -> VectorPoint:
    return VectorPoint(
        id=str(record.id), vector=_dense(record.vector), payload=dict(record.payload or {})
    )
