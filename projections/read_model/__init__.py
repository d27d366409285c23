"""The read model of every environment, built from envbranch.events.

Each batch of events is applied in one transaction together with the last
applied position (and the Kafka offset it was read at), so a redelivered event
is a no-op and a restart resumes where it stopped. Dropping the tables and
replaying the topic from position 0 rebuilds the same state (``digest`` proves
it).

``schema`` holds the tables, ``projector`` writes one event into them (through
``resources``, ``tasks`` and ``refs``) by way of ``cursor.Projection``, which
writes a batch's new rows with one statement per table and keeps every table's
running digest; ``digests`` proves two read models equal; ``feed`` reads the
topic into a read model.

A batch of a replay costs per event: decoding its envelope, its audit row (and
whatever else it changes), the hashes of the rows it adds, and their index
entries; nothing grows with the size of the read model but the indexes. A rebuild
into an empty read model makes its secondary indexes once it has caught up
(``begin_catch_up``), from the sorted rows, instead of an entry per row and index.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping

from domain.envelopes import EventEnvelope
from domain.events import EVENT_TYPES
from domain.refs import Checkpoint
from projections.read_model.cursor import Projection
from projections.read_model.digests import (
    APPEND_ONLY,
    DIGEST_INTERVAL,
    load_sums,
    record_digests,
    recorded_digests,
    row_hash,
    save_sums,
    table_digests,
)
from projections.read_model.projector import project
from projections.read_model.schema import (
    INDEX_NAMES,
    INDEXES,
    JSON_COLUMNS,
    PROJECTED,
    RESOURCES,
    SCHEMA,
    from_row,
    to_column,
)
from projections.sql import Cursor, Database

log = logging.getLogger(__name__)

# The names of Checkpoint.Requested (a digest is recorded at each).
CHECKPOINT_TYPES = {name for name, cls in EVENT_TYPES.items() if cls is Checkpoint.Requested}
# A row while the read model is being rebuilt without its indexes (``begin_catch_up``).
CATCHING_UP = "SELECT value FROM read_model_state WHERE name = 'catching_up'"

__all__ = [
    "APPEND_ONLY",
    "DIGEST_INTERVAL",
    "JSON_COLUMNS",
    "PROJECTED",
    "RESOURCES",
    "SCHEMA",
    "Projection",
    "ReadModel",
    "from_row",
    "project",
    "record_digests",
    "recorded_digests",
    "row_hash",
    "table_digests",
    "to_column",
]


class ReadModel:
    def __init__(self, db: Database, digest_interval: int = DIGEST_INTERVAL) -> None:
        self.db = db
        self.digest_interval = digest_interval
        # Called with the new position after each committed transaction that applied
        # events, in the thread that applied them (it wakes the API's read-your-writes
        # waits). It must be quick; an exception from it is logged, never raised.
        self.on_applied: Callable[[int], None] | None = None

    def create(self) -> None:
        with self.db.transaction() as cur:
            for statement in SCHEMA:
                cur.execute(statement)
            if not cur.query(CATCHING_UP):  # a rebuild makes its indexes when caught up
                for statement in INDEXES:
                    cur.execute(statement)
            if not cur.query("SELECT value FROM read_model_state WHERE name = 'generation'"):
                # A new read model replays from the start: its generation names it.
                cur.execute(
                    "INSERT INTO read_model_state VALUES ('generation', ?)", [uuid.uuid4().hex]
                )
                cur.execute("INSERT INTO read_model_state VALUES ('position', '0')")
            load_sums(cur)  # a read model from before the running digests: from its rows

    def drop(self) -> None:
        with self.db.transaction() as cur:
            for table in [*PROJECTED, "digests", "digest_sums", "read_model_state"]:
                cur.execute(f"DROP TABLE IF EXISTS {table}")

    def prepare_writer(self) -> None:
        """Ready this thread's connection for the projector's large transactions: on
        SQLite, pages enough to keep the indexes of a replay in memory (their random keys
        touch most pages of every index in each batch) and fewer WAL checkpoints (each
        one syncs the file). Call it in the thread that applies."""
        self.db.configure("cache_size = -131072", "wal_autocheckpoint = 10000")

    def begin_catch_up(self) -> bool:
        """Whether this read model is being rebuilt: true for an empty one (nothing applied
        yet), whose indexes besides the tables' keys are then dropped until
        ``end_catch_up``, so that catching up writes only the rows (a fifth less time per
        event); and true for one that was being rebuilt when its process stopped. Only
        indexes change, never rows, positions or digests, so a rebuild that stops before
        its end goes on where it stopped, as any other, and makes the indexes when it
        has caught up. Reads meanwhile are scans of a read model that is behind anyway."""
        with self.db.transaction() as tx:
            if tx.query(CATCHING_UP):
                return True
            if self._position(tx) != 0:
                return False
            for name in INDEX_NAMES:
                tx.execute(f"DROP INDEX IF EXISTS {name}")
            tx.execute("INSERT INTO read_model_state VALUES ('catching_up', '1')")
        log.info("rebuilding the read model: its indexes are made once it has caught up")
        return True

    def end_catch_up(self) -> None:
        """Make the indexes a rebuild left out, in one transaction with the end of the
        rebuild: a crash in between leaves it rebuilding, to end again."""
        with self.db.transaction() as tx:
            for statement in INDEXES:
                tx.execute(statement)
            tx.execute("DELETE FROM read_model_state WHERE name = 'catching_up'")
        log.info(
            "the read model has caught up at position %s; its indexes are made", self.position()
        )

    def catching_up(self) -> bool:
        return bool(self.db.query(CATCHING_UP))

    def generation(self) -> str:
        return str(self._state("generation"))

    def position(self) -> int:
        return int(self._state("position") or 0)

    def resume_point(self) -> tuple[int, int | None]:
        """The last applied position, and the Kafka offset of its record (if recorded)."""
        rows = self.db.query(
            "SELECT name, value FROM read_model_state WHERE name IN ('position', 'offset')"
        )
        state = {r["name"]: int(r["value"]) for r in rows}
        return state.get("position", 0), state.get("offset")

    def _state(self, name: str) -> str | None:
        rows = self.db.query("SELECT value FROM read_model_state WHERE name = ?", [name])
        return rows[0]["value"] if rows else None

    def apply(
        self, envelopes: Iterable[EventEnvelope], offsets: Mapping[int, int] | None = None
    ) -> int:
        """Apply the events after the stored position in one transaction; returns how many
        were new. ``offsets`` (position -> the Kafka offset of its record) tells where the
        last applied event was read, stored with it so that a restart goes on from there."""
        applied, offset = 0, None
        lock = " FOR UPDATE" if self.db.dialect == "postgres" else ""  # one writer at a time
        with self.db.transaction() as tx:
            position = self._position(tx, lock)
            sums = load_sums(tx)
            before = {table: list(entry) for table, entry in sums.items()}
            cur = Projection(tx, sums)
            interval = self.digest_interval
            for envelope in envelopes:
                if envelope.position <= position:
                    continue  # a redelivery: applied already
                project(cur, envelope)
                position = envelope.position
                applied += 1
                # digest_due(envelope), without two calls per event
                if position % interval == 0 or envelope.type in CHECKPOINT_TYPES:
                    cur.settle()
                    record_digests(tx, position, sums)
            if applied:
                offset = offsets.get(position) if offsets is not None else None
                cur.settle()
                save_sums(tx, {t: entry for t, entry in sums.items() if entry != before[t]})
                self._save_state(tx, "position", position)
                self._save_state(tx, "offset", offset)
        if applied:
            self._announce(position)
        return applied

    @staticmethod
    def _position(tx: Cursor, lock: str = "") -> int:
        rows = tx.query(f"SELECT value FROM read_model_state WHERE name = 'position'{lock}")
        return int(rows[0]["value"])

    @staticmethod
    def _save_state(tx: Cursor, name: str, value: int | None) -> None:
        if value is None:
            tx.execute("DELETE FROM read_model_state WHERE name = ?", [name])
            return
        tx.execute(
            "INSERT INTO read_model_state VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            [name, str(value)],
        )

    def _announce(self, position: int) -> None:
        callback = self.on_applied
        if callback is None:
            return
        try:
            callback(position)
        except Exception:  # noqa: BLE001 - a listener must never stop the projector
            log.exception("the read model's on_applied callback failed at position %s", position)

    def digest_due(self, envelope: EventEnvelope) -> bool:
        return envelope.type in CHECKPOINT_TYPES or envelope.position % self.digest_interval == 0

    def digest(self) -> dict[str, str]:
        """A hash of every projected table, to compare two read models."""
        return {table: d for table, (d, _) in table_digests(self.db.query, scan_all=True).items()}

    def recorded_digests(self, position: int) -> dict[str, str]:
        """The digests recorded when this read model stood at ``position`` (or {})."""
        return recorded_digests(self.db, position)

    def digest_positions(self) -> list[int]:
        rows = self.db.query("SELECT DISTINCT position FROM digests ORDER BY position")
        return [int(r["position"]) for r in rows]
