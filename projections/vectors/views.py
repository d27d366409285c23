"""Copy-on-write collections: a logical collection is a view over immutable layers.

A physical store holds the points of one vector space. Each point belongs to a
*layer* and stands for one document (payload fields ``_eb_layer``, ``_eb_doc``);
its ID is derived from both, so the same document in two layers is two points.
A *view* (one per collection) is an ordered list of layers, its own writable
layer first and frozen ancestor layers after, plus the lower points it *hides*
because it overwrote or deleted their documents. A hidden point carries the IDs of
the views that hide it in an indexed keyword field (``_eb_hidden``), so the engine
answers "this view's points" with two indexed conditions (layer in the view's layers,
not hidden by it) however many points are hidden.

- A reuse clone freezes the source's writable layer and gives source and clone a
  fresh writable layer each on top of the same frozen ones: no point is copied,
  and only the points the source hides are marked for the clone too, so it costs
  what the source diverged, not its size; storage grows only where the two
  diverge, and neither side's writes show on the other.
- A deep copy materializes the visible points of a view into a new store, in
  batches, resumable from a saved cursor.
- Compaction materializes a deep view into one fresh layer; garbage collection
  deletes layers and stores that no view references.

The catalog (views, layers, hidden points, copy cursors) lives in SQL next to
the vector processor's position. Every operation is idempotent, so replaying an
event after a crash converges to the same state.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from projections.sql import Database
from projections.vectors.store import (
    Filter,
    Hit,
    MatchAny,
    Space,
    VectorPoint,
    VectorStore,
)

LAYER = "_eb_layer"
DOC = "_eb_doc"
HIDDEN = "_eb_hidden"  # the views that hide the point
_POINTS = uuid.UUID("0b7e3f0c-6f5e-4c0e-9a53-3f1d2b9e7a11")
_POINTS_BYTES = _POINTS.bytes

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS vector_views (collection_id TEXT PRIMARY KEY,
        store TEXT, layers TEXT)""",
    """CREATE TABLE IF NOT EXISTS vector_hidden (collection_id TEXT, point_id TEXT,
        PRIMARY KEY (collection_id, point_id))""",
    """CREATE TABLE IF NOT EXISTS vector_copies (copy_id TEXT PRIMARY KEY, source TEXT,
        target TEXT, cursor TEXT, copied INTEGER, total INTEGER, done INTEGER)""",
    # Bumped by every change of views or hidden points: readers cache what it still matches.
    "CREATE TABLE IF NOT EXISTS vector_catalog (id INTEGER PRIMARY KEY, version INTEGER)",
]


def point_id(layer: str, doc_id: str) -> str:
    """``uuid5(_POINTS, "<layer>/<doc_id>")`` as a string, computed without UUID objects."""
    digest = bytearray(hashlib.sha1(_POINTS_BYTES + f"{layer}/{doc_id}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def new_layer() -> str:
    return uuid.uuid4().hex


@dataclass
class View:
    collection_id: str
    store: str
    layers: list[str]  # writable first

    @property
    def active(self) -> str:
        return self.layers[0]


@dataclass
class CopyProgress:
    copied: int
    total: int
    done: bool


class UnknownCollection(KeyError):
    pass


class CopyOnWrite:
    def __init__(self, vectors: VectorStore, db: Database) -> None:
        self.vectors = vectors
        self.db = db
        self._visible: dict[str, tuple[int, str, Filter]] = {}  # id -> (version, store, filter)

    def create_schema(self) -> None:
        with self.db.transaction() as cur:
            for statement in SCHEMA:
                cur.execute(statement)
            if not cur.query("SELECT version FROM vector_catalog WHERE id = 1"):
                cur.execute("INSERT INTO vector_catalog VALUES (1, 0)")
                cur.execute("INSERT INTO vector_catalog VALUES (2, 1)")  # marks: none yet
        self._migrate_marks()

    def _migrate_marks(self) -> None:
        """Mark the points hidden by a catalog older than the marks (once; idempotent)."""
        if self.db.query("SELECT 1 AS x FROM vector_catalog WHERE id = 2"):
            return
        for row in self.db.query("SELECT collection_id FROM vector_views"):
            view = self.view(row["collection_id"])
            self.ensure_store(view.store, self.vectors.space(view.store))  # the marks' index
            self._mark(view.store, self.hidden(view.collection_id), view.collection_id, True)
        with self.db.transaction() as cur:
            cur.execute("INSERT INTO vector_catalog VALUES (2, 1) ON CONFLICT DO NOTHING")

    def _mark(self, store: str, point_ids: Sequence[str], view_id: str, hide: bool) -> None:
        """Add ``view_id`` to (or remove it from) the hidden marks of these points."""
        for start in range(0, len(point_ids), 1024):
            chunk = point_ids[start : start + 1024]
            groups: dict[tuple[str, ...], list[str]] = {}
            for point in self.vectors.retrieve(store, chunk):
                marks = set(point.payload.get(HIDDEN) or ())
                if (view_id in marks) == hide:
                    continue
                marks = marks | {view_id} if hide else marks - {view_id}
                groups.setdefault(tuple(sorted(marks)), []).append(point.id)
            for marks_now, ids in groups.items():
                self.vectors.set_payload(store, ids, {HIDDEN: list(marks_now)})

    def _changed(self, cur: Any) -> None:
        cur.execute("UPDATE vector_catalog SET version = version + 1 WHERE id = 1")

    def _version(self) -> int:
        return int(self.db.query("SELECT version FROM vector_catalog WHERE id = 1")[0]["version"])

    # --- the catalog --------------------------------------------------------

    def view(self, collection_id: str) -> View:
        rows = self.db.query("SELECT * FROM vector_views WHERE collection_id = ?", [collection_id])
        if not rows:
            raise UnknownCollection(collection_id)
        return View(collection_id, rows[0]["store"], json.loads(rows[0]["layers"]))

    def has_view(self, collection_id: str) -> bool:
        rows = self.db.query(
            "SELECT 1 AS x FROM vector_views WHERE collection_id = ?", [collection_id]
        )
        return bool(rows)

    def hidden(self, collection_id: str) -> list[str]:
        rows = self.db.query(
            "SELECT point_id FROM vector_hidden WHERE collection_id = ? ORDER BY point_id",
            [collection_id],
        )
        return [r["point_id"] for r in rows]

    def _save_view(self, cur: Any, view: View) -> None:
        self._changed(cur)
        cur.execute("DELETE FROM vector_views WHERE collection_id = ?", [view.collection_id])
        cur.execute(
            "INSERT INTO vector_views VALUES (?, ?, ?)",
            [view.collection_id, view.store, json.dumps(view.layers)],
        )

    def ensure_store(self, store: str, space: Space) -> None:
        self.vectors.create_store(store, space)
        self.vectors.create_index(store, LAYER, "keyword")
        self.vectors.create_index(store, DOC, "keyword")
        self.vectors.create_index(store, HIDDEN, "keyword")

    def create(self, collection_id: str, store: str, space: Space) -> View:
        """A new, empty collection in the store (idempotent)."""
        self.ensure_store(store, space)
        if self.has_view(collection_id):
            return self.view(collection_id)
        view = View(collection_id, store, [new_layer()])
        with self.db.transaction() as cur:
            self._save_view(cur, view)
        return view

    # --- documents ----------------------------------------------------------

    def write(self, collection_id: str, documents: Sequence[VectorPoint]) -> None:
        """Write documents (``id`` is the document ID) into the collection's own layer."""
        view = self.view(collection_id)
        points = [
            VectorPoint(
                point_id(view.active, d.id), d.vector, {**d.payload, LAYER: view.active, DOC: d.id}
            )
            for d in documents
        ]
        # Hide the old version first: a search in between misses the document for a moment
        # rather than seeing it twice; a crash in between is repaired when the event is
        # applied again (both steps are idempotent).
        self._hide_below(view, [d.id for d in documents])
        self.vectors.upsert(view.store, points)

    def delete(self, collection_id: str, doc_ids: Sequence[str]) -> None:
        view = self.view(collection_id)
        self._hide_below(view, doc_ids)
        self.vectors.delete(view.store, [point_id(view.active, d) for d in doc_ids])

    def _hide_below(self, view: View, doc_ids: Sequence[str]) -> None:
        """Hide the visible version of each document in the frozen layers of this view."""
        lower = view.layers[1:]
        if not lower:
            return
        candidates = [point_id(layer, d) for d in doc_ids for layer in lower]
        found = {p.id for p in self.vectors.retrieve(view.store, candidates)}
        if not found:
            return
        hide = []
        for doc in doc_ids:
            for layer in lower:  # topmost first: only that version can be visible
                pid = point_id(layer, doc)
                if pid in found:
                    hide.append(pid)
                    break
        # The marks first, the catalog after: a crash in between is repaired when the
        # event is applied again, and the catalog never lists a point left unmarked.
        self._mark(view.store, hide, view.collection_id, True)
        with self.db.transaction() as cur:
            self._changed(cur)
            for pid in hide:
                cur.execute(
                    "INSERT INTO vector_hidden VALUES (?, ?) ON CONFLICT DO NOTHING",
                    [view.collection_id, pid],
                )

    # --- reading ------------------------------------------------------------

    def visibility(self, collection_id: str, extra: Filter | None = None) -> tuple[str, Filter]:
        """The store and the filter that shows exactly this collection's documents."""
        version = self._version()
        cached = self._visible.get(collection_id)
        if cached is None or cached[0] != version:
            view = self.view(collection_id)
            base = Filter(
                must=(MatchAny(LAYER, tuple(view.layers)),),
                must_not=(MatchAny(HIDDEN, (collection_id,)),),
            )
            cached = (version, view.store, base)
            self._visible[collection_id] = cached
        _, store, base = cached
        if extra is None:
            return store, base  # the same object each time: adapters reuse its translation
        return store, Filter(must=base.must + extra.must, must_not=base.must_not + extra.must_not)

    def search(
        self,
        collection_id: str,
        vector: Sequence[float],
        filter: Filter | None = None,
        limit: int = 10,
        exact: bool = False,
        ef: int | None = None,
    ) -> list[Hit]:
        store, visible = self.visibility(collection_id, filter)
        hits = self.vectors.search(store, vector, visible, limit, exact=exact, ef=ef)
        for hit in hits:
            hit.id = hit.payload.pop(DOC)
            hit.payload.pop(LAYER, None)
            hit.payload.pop(HIDDEN, None)
        return hits

    def count(self, collection_id: str) -> int:
        store, visible = self.visibility(collection_id)
        return self.vectors.count(store, visible)

    def documents(self, collection_id: str, with_vectors: bool = True) -> Iterator[VectorPoint]:
        """Every visible document (``id`` is the document ID)."""
        store, visible = self.visibility(collection_id)
        cursor = None
        while True:
            page, cursor = self.vectors.scroll(store, visible, 512, cursor, with_vectors)
            for point in page:
                doc = point.payload.pop(DOC)
                point.payload.pop(LAYER, None)
                point.payload.pop(HIDDEN, None)
                yield VectorPoint(doc, point.vector, point.payload)
            if cursor is None:
                return

    # --- cloning ------------------------------------------------------------

    def reuse_clone(self, source_id: str, clone_id: str) -> View:
        """Share the source's points: freeze its layer, a fresh layer on each side."""
        if self.has_view(clone_id):
            return self.view(clone_id)
        source = self.view(source_id)
        frozen = source.layers
        # What the source hides, the clone hides too: marked before the catalog names the
        # clone, so a crash in between leaves no clone that sees too much.
        self._mark(source.store, self.hidden(source_id), clone_id, True)
        with self.db.transaction() as cur:
            self._save_view(cur, View(source_id, source.store, [new_layer(), *frozen]))
            clone = View(clone_id, source.store, [new_layer(), *frozen])
            self._save_view(cur, clone)
            cur.execute(
                "INSERT INTO vector_hidden SELECT CAST(? AS TEXT), point_id FROM vector_hidden "
                "WHERE collection_id = ?",
                [clone_id, source_id],
            )
        return clone

    def start_deep_copy(self, copy_id: str, source_id: str, clone_id: str, store: str) -> None:
        """Register a deep copy of the source's visible points, as they are now, into a
        new store. A snapshot (a reuse clone, O(1)) pins what is copied, so writes to the
        source while the copy runs do not leak into it."""
        if self.db.query("SELECT 1 AS x FROM vector_copies WHERE copy_id = ?", [copy_id]):
            return
        snapshot = f"copy:{copy_id}"
        self.reuse_clone(source_id, snapshot)
        self.ensure_store(store, self.vectors.space(self.view(source_id).store))
        total = self.count(snapshot)
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO vector_copies VALUES (?, ?, ?, ?, ?, ?, ?)",
                [copy_id, snapshot, clone_id, None, 0, total, 0],
            )
            self._save_view(cur, View(clone_id, store, [new_layer()]))

    def copy_batch(self, copy_id: str, batch: int = 512) -> CopyProgress:
        """Copy the next batch; safe to repeat after a crash (upserts are idempotent)."""
        rows = self.db.query("SELECT * FROM vector_copies WHERE copy_id = ?", [copy_id])
        row = rows[0]
        if row["done"]:
            return CopyProgress(row["copied"], row["total"], True)
        target = self.view(row["target"])
        store, visible = self.visibility(row["source"])
        layer = target.active

        def relabel(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            payload.pop(HIDDEN, None)
            payload[LAYER] = layer
            return point_id(layer, payload[DOC]), payload

        count, cursor = self.vectors.copy_points(
            store, visible, target.store, relabel, batch, row["cursor"]
        )
        copied = row["copied"] + count
        done = cursor is None
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE vector_copies SET cursor = ?, copied = ?, done = ? WHERE copy_id = ?",
                [cursor, copied, int(done), copy_id],
            )
        if done:
            self.drop(row["source"])  # the snapshot: its layers go at garbage collection
        return CopyProgress(copied, row["total"], done)

    def progress(self, copy_id: str) -> CopyProgress | None:
        rows = self.db.query("SELECT * FROM vector_copies WHERE copy_id = ?", [copy_id])
        if not rows:
            return None
        return CopyProgress(rows[0]["copied"], rows[0]["total"], bool(rows[0]["done"]))

    # --- upkeep ---------------------------------------------------------------

    def compact(self, collection_id: str, max_depth: int = 8) -> bool:
        """Materialize a view deeper than ``max_depth`` into one layer; True if it did."""
        view = self.view(collection_id)
        if len(view.layers) <= max_depth:
            return False
        base = new_layer()
        batch: list[VectorPoint] = []
        for doc in self.documents(collection_id):
            payload = {**doc.payload, LAYER: base, DOC: doc.id}
            batch.append(VectorPoint(point_id(base, doc.id), doc.vector, payload))
            if len(batch) >= 512:
                self.vectors.upsert(view.store, batch)
                batch = []
        if batch:
            self.vectors.upsert(view.store, batch)
        with self.db.transaction() as cur:
            self._save_view(cur, View(collection_id, view.store, [new_layer(), base]))
        self._forget_hidden(view)
        return True

    def drop(self, collection_id: str) -> None:
        """Forget a collection's view; its points go at the next garbage collection. The
        view goes first, its marks after: a crash in between leaves marks of a view nobody
        reads, never a view without its marks."""
        try:
            view: View | None = self.view(collection_id)
        except UnknownCollection:
            view = None
        with self.db.transaction() as cur:
            self._changed(cur)
            cur.execute("DELETE FROM vector_views WHERE collection_id = ?", [collection_id])
        if view is not None:
            self._forget_hidden(view)
        else:  # dropped before: only its rows may be left
            with self.db.transaction() as cur:
                cur.execute("DELETE FROM vector_hidden WHERE collection_id = ?", [collection_id])

    def _forget_hidden(self, view: View) -> None:
        """Unmark what the view hid (it no longer reads those layers), then forget it."""
        self._mark(view.store, self.hidden(view.collection_id), view.collection_id, False)
        with self.db.transaction() as cur:
            self._changed(cur)
            cur.execute("DELETE FROM vector_hidden WHERE collection_id = ?", [view.collection_id])

    def collect_garbage(self) -> int:
        """Delete layers no view references, and stores left with none; returns points removed."""
        views = [
            self.view(r["collection_id"])
            for r in self.db.query("SELECT collection_id FROM vector_views")
        ]
        live: dict[str, set[str]] = {}
        for view in views:
            live.setdefault(view.store, set()).update(view.layers)
        running = self.db.query("SELECT source, target FROM vector_copies WHERE done = 0")
        for copy in running:  # a copy in progress still reads its source and writes its target
            for cid in (copy["source"], copy["target"]):
                if self.has_view(cid):
                    v = self.view(cid)
                    live.setdefault(v.store, set()).update(v.layers)
        removed = 0
        for store in self.vectors.list_stores():
            layers = live.get(store)
            if not layers:
                removed += self.vectors.count(store)
                self.vectors.drop_store(store)
                continue
            dead = Filter(must_not=(MatchAny(LAYER, tuple(layers)),))
            cursor = None
            while True:
                page, cursor = self.vectors.scroll(store, dead, 1024, cursor)
                if page:
                    self.vectors.delete(store, [p.id for p in page])
                    removed += len(page)
                if cursor is None:
                    break
        return removed
