"""The vector store port over Qdrant Edge, in-process: one ``EdgeShard`` per store.

Layout under ``root``: ``root/<name>/`` is the shard's directory, and ``root/<name>/store.json``
(written last, atomically, so a directory without it is an unfinished create) records the
store's space and payload indexes. Shards open lazily; a shard's files are locked to one open
instance, so ``close()`` must run before another ``EdgeStore`` opens the same root.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from projections.vectors import edge_index
from projections.vectors.edge_index import META, shard_config
from projections.vectors.edge_index import Store as _Store
from projections.vectors.store import (
    Condition,
    Filter,
    HasId,
    Hit,
    IndexKind,
    IndexState,
    MatchAny,
    Range,
    Relabel,
    Space,
    StoreNotFound,
    VectorPoint,
    VectorStore,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SCHEMAS: dict[IndexKind, qe.PayloadSchemaType] = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
}


_CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def _point_id(value: str) -> str:
    if type(value) is str and _CANONICAL.match(value):
        return value  # already the canonical form (the common case): no parsing
    return str(uuid.UUID(str(value)))


def _dense(vector: Any) -> list[float] | None:
    if isinstance(vector, dict):  # named vectors: the unnamed one is ""
        vector = vector.get("")
    if not isinstance(vector, list):
        return None
    return vector  # the binding's floats: no copy


def _condition(cond: Condition) -> Any:
    if isinstance(cond, MatchAny):
        strs = [v for v in cond.values if isinstance(v, str)]
        ints = [v for v in cond.values if not isinstance(v, str)]
        if strs and ints:  # MatchAny takes one type: either of two conditions
            return qe.Filter(
                should=[
                    qe.FieldCondition(key=cond.key, match=qe.MatchAny(any=strs)),
                    qe.FieldCondition(key=cond.key, match=qe.MatchAny(any=ints)),
                ]
            )
        values: list[str] | list[int] = strs or ints
        return qe.FieldCondition(key=cond.key, match=qe.MatchAny(any=values))
    if isinstance(cond, Range):
        rng = qe.RangeFloat(gte=cond.gte, gt=cond.gt, lte=cond.lte, lt=cond.lt)
        return qe.FieldCondition(key=cond.key, range=rng)
    if isinstance(cond, HasId):
        return qe.HasIdCondition(point_ids={_point_id(i) for i in cond.ids})
    raise TypeError(f"unsupported filter condition: {cond!r}")


@functools.lru_cache(maxsize=256)  # filters are frozen values; a clone's is reused per query
def to_edge_filter(flt: Filter | None) -> qe.Filter | None:
    if flt is None or not (flt.must or flt.must_not):
        return None
    return qe.Filter(
        must=[_condition(c) for c in flt.must] or None,
        must_not=[_condition(c) for c in flt.must_not] or None,
    )


class EdgeStore(VectorStore):
    def __init__(self, root: Path, index_threshold: int = edge_index.INDEX_THRESHOLD) -> None:
        self._root = Path(root)
        self._open: dict[str, _Store] = {}
        self._lock = threading.RLock()  # guards opening, creating, dropping and closing
        self.policy = edge_index.Policy(index_threshold)
        edge_index.recover(self._root)

    def _dir(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(f"invalid store name {name!r}: letters, digits, '_', '.', '-'")
        return self._root / name

    def _write_meta(self, name: str, store: _Store) -> None:
        meta = {
            "size": store.space.size,
            "distance": store.space.distance,
            "indexes": store.indexes,
        }
        path = self._dir(name) / META
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(tmp, path)

    def _store(self, name: str) -> _Store:
        with self._lock:
            if name in self._open:
                return self._open[name]
            if not (self._dir(name) / META).is_file():
                raise StoreNotFound(name)
            space, indexes = edge_index.read_meta(self._dir(name))
            shard = qe.EdgeShard.load(str(self._dir(name)), shard_config(space))
            store = _Store(shard, space, indexes)
            try:  # re-create indexes the metadata records but the shard lacks
                present = {k: v.data_type for k, v in shard.info().payload_schema.items()}
                for key, kind in store.indexes.items():
                    if present.get(key) != _SCHEMAS[kind]:
                        shard.update(qe.UpdateOperation.create_field_index(key, _SCHEMAS[kind]))
            except Exception:
                shard.close()  # do not keep the files locked by a shard nobody holds
                raise
            self._open[name] = store
            return store

    def create_store(self, name: str, space: Space) -> None:
        if space.size < 1:
            raise ValueError(f"vector size must be positive, not {space.size}")
        with self._lock:
            path = self._dir(name)
            if (path / META).is_file():
                existing = self._store(name).space
                if existing != space:
                    raise ValueError(f"store {name!r} exists with {existing}, not {space}")
                return
            if path.exists():  # an unfinished create: nothing was ever stored in it
                shutil.rmtree(path)
            shard = qe.EdgeShard.create(str(path), shard_config(space))
            store = _Store(shard, space)
            self._write_meta(name, store)
            self._open[name] = store

    def drop_store(self, name: str) -> None:
        with self._lock:
            store = self._open.pop(name, None)
            if store is not None:
                with store.lock:
                    if store.build is not None:
                        edge_index.abandon(store.build)
                        store.build = None
                    store.shard.close()
            path = self._dir(name)
            if path.exists():
                shutil.rmtree(path)

    def list_stores(self) -> list[str]:
        if not self._root.is_dir():
            return []
        return sorted(
            p.name
            for p in self._root.iterdir()
            if _NAME.match(p.name) and (p / META).is_file()  # not an index build's copy
        )

    def space(self, name: str) -> Space:
        return self._store(name).space

    def indexes(self, name: str) -> dict[str, IndexKind]:
        """The payload indexes the shard has (not part of the port; for checks and tooling)."""
        kinds = {schema: kind for kind, schema in _SCHEMAS.items()}
        store = self._store(name)
        with store.lock:
            schema = store.shard.info().payload_schema
        return {k: kinds[v.data_type] for k, v in schema.items() if v.data_type in kinds}

    def create_index(self, name: str, key: str, kind: IndexKind) -> None:
        with self._lock:
            store = self._store(name)
            if store.indexes.get(key) == kind:
                return
            with store.lock:
                if store.build is not None:  # its copy lacks the new index: start over
                    edge_index.abandon(store.build)
                    store.build, store.built_at = None, -1
                store.shard.update(qe.UpdateOperation.create_field_index(key, _SCHEMAS[kind]))
            store.indexes[key] = kind
            self._write_meta(name, store)

    def _check(self, store: _Store, name: str, vector: Sequence[float] | None) -> list[float]:
        size = store.space.size
        if vector is None or len(vector) != size:
            got = None if vector is None else len(vector)
            raise ValueError(f"store {name!r} takes vectors of size {size}, not {got}")
        if type(vector) is list:  # the binding takes the numbers as they are (no copy)
            return vector
        return [float(x) for x in vector]

    def upsert(self, name: str, points: Sequence[VectorPoint]) -> None:
        store = self._store(name)
        batch = [
            qe.Point(
                id=_point_id(p.id), vector=self._check(store, name, p.vector), payload=p.payload
            )
            for p in points
        ]
        if batch:
            with store.lock:
                store.shard.update(qe.UpdateOperation.upsert_points(batch))
                store.touched([p.id for p in batch])

    def set_payload(self, name: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        store = self._store(name)
        wanted: list[qe.PointId] = [_point_id(i) for i in ids]
        with store.lock:
            present = [p.id for p in store.shard.retrieve(wanted, False, False)] if wanted else []
            if present:  # Edge fails the whole operation on an unknown ID
                store.shard.update(qe.UpdateOperation.set_payload(present, payload))
                store.touched(present)

    def delete(self, name: str, ids: Sequence[str]) -> None:
        store = self._store(name)
        wanted: list[qe.PointId] = [_point_id(i) for i in ids]
        if wanted:
            with store.lock:
                store.shard.update(qe.UpdateOperation.delete_points(wanted))
                store.touched(wanted)

    def retrieve(
        self, name: str, ids: Sequence[str], with_vectors: bool = False
    ) -> list[VectorPoint]:
        store = self._store(name)
        wanted: list[qe.PointId] = [_point_id(i) for i in ids]
        if not wanted:
            return []
        # The binding needs with_payload and with_vector although the stub marks them optional.
        with store.lock:
            records = store.shard.retrieve(wanted, True, with_vectors)
        return [_point(r) for r in records]

    def scroll(
        self,
        name: str,
        filter: Filter | None = None,
        limit: int = 256,
        after: str | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[VectorPoint], str | None]:
        if limit < 1:  # Edge answers limit=0 with no points but a cursor
            raise ValueError(f"limit must be positive, not {limit}")
        store = self._store(name)
        request = _scroll_request(filter, limit, after, with_vectors)
        with store.lock:
            records, nxt = store.shard.scroll(request)
        return [_point(r) for r in records], None if nxt is None else str(nxt)

    def copy_points(
        self,
        source: str,
        filter: Filter | None,
        target: str,
        relabel: Relabel,
        limit: int = 1024,
        after: str | None = None,
    ) -> tuple[int, str | None]:
        """The port's copy at the engine's pace: records go straight into new points (no
        conversion of vectors or IDs on the way; the binding's ``vector`` is the cost)."""
        if limit < 1:
            raise ValueError(f"limit must be positive, not {limit}")
        src, dst = self._store(source), self._store(target)
        if src.space != dst.space:
            raise ValueError(f"store {target!r} has {dst.space}, not {src.space} as {source!r}")
        request = _scroll_request(filter, limit, after, True)
        with src.lock:
            records, nxt = src.shard.scroll(request)
        points = edge_index.points_of(records, relabel)
        if points:
            with dst.lock:
                dst.shard.update(qe.UpdateOperation.upsert_points(points))
                dst.touched([p.id for p in points])
        return len(points), None if nxt is None else str(nxt)

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
        store = self._store(name)
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(self._check(store, name, vector)),
            filter=to_edge_filter(filter),
            with_payload=True,
            with_vector=with_vectors,
            params=qe.SearchParams(hnsw_ef=ef, exact=exact) if exact or ef else None,
        )
        with store.lock:
            found = store.shard.query(request)
        return [
            Hit(
                id=str(p.id),
                score=p.score,
                payload=dict(p.payload or {}),
                vector=_dense(p.vector) if with_vectors else None,
            )
            for p in found
        ]

    def count(self, name: str, filter: Filter | None = None) -> int:
        store = self._store(name)
        with store.lock:
            return store.shard.count(qe.CountRequest(exact=True, filter=to_edge_filter(filter)))

    def optimize(self, name: str) -> None:
        """Index the store now, in this process (blocks it: see ``maintain_index``)."""
        store = self._store(name)
        with store.lock:
            store.shard.optimize()

    # --- the index lifecycle (edge_index) ------------------------------------

    def index_state(self, name: str) -> IndexState:
        return edge_index.state(self._store(name), self.policy)

    def maintain_index(self, name: str) -> IndexState:
        """Start an index build when enough points are unindexed, swap a finished one in;
        never waits for a build. One caller at a time (the vector processor's timer)."""
        store = self._store(name)
        edge_index.maintain(store, self._dir(name), self.policy)
        return edge_index.state(store, self.policy)

    def close(self) -> None:
        with self._lock:
            stores, self._open = list(self._open.values()), {}
            failure: Exception | None = None
            for store in stores:  # close every shard even if one fails, then report it
                with store.lock:
                    if store.build is not None:
                        edge_index.abandon(store.build)
                        store.build = None
                    try:
                        store.shard.flush()
                    except Exception as exc:
                        failure = failure or exc
                    store.shard.close()
            if failure is not None:
                raise failure


def _scroll_request(
    filter: Filter | None, limit: int, after: str | None, with_vectors: bool
) -> qe.ScrollRequest:
    return qe.ScrollRequest(
        offset=None if after is None else _point_id(after),
        limit=limit,
        filter=to_edge_filter(filter),
        with_payload=True,
        with_vector=with_vectors,
    )


def _point(record: qe.Record) -> VectorPoint:
    return VectorPoint(
        id=str(record.id), vector=_dense(record.vector), payload=dict(record.payload or {})
    )
