"""The read model of every environment, built from envbranch.events.

Each batch of events is applied in one transaction together with the last
applied position, so a redelivered event is a no-op and a restart resumes
where it stopped. Dropping the tables and replaying the topic from position 0
rebuilds the same state (``digest`` proves it).

``schema`` holds the tables, ``projector`` writes one event into them (through
``resources``, ``tasks`` and ``refs``), ``digests`` proves two of them equal.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from domain.envelopes import EventEnvelope
from domain.events import event_type
from domain.refs import Checkpoint
from projections.read_model.cursor import Projection
from projections.read_model.digests import (
    APPEND_ONLY,
    DIGEST_INTERVAL,
    record_digests,
    recorded_digests,
    row_hash,
    table_digests,
)
from projections.read_model.projector import project
from projections.read_model.schema import (
    JSON_COLUMNS,
    PROJECTED,
    RESOURCES,
    SCHEMA,
    from_row,
    to_column,
)
from projections.sql import Database

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

    def create(self) -> None:
        with self.db.transaction() as cur:
            for statement in SCHEMA:
                cur.execute(statement)
            if not cur.query("SELECT value FROM read_model_state WHERE name = 'generation'"):
                # A new read model replays from the start: its generation names its group.
                cur.execute(
                    "INSERT INTO read_model_state VALUES ('generation', ?)", [uuid.uuid4().hex]
                )
                cur.execute("INSERT INTO read_model_state VALUES ('position', '0')")
            # A read model from before the running digests: start them from its rows.
            if not cur.query("SELECT table_name FROM digest_sums"):
                scanned = table_digests(cur.query, scan_all=True)
                for table in APPEND_ONLY:
                    digest, count = scanned[table]
                    if count:
                        cur.execute(
                            "INSERT INTO digest_sums VALUES (?, ?, ?)", [table, digest, count]
                        )

    def drop(self) -> None:
        with self.db.transaction() as cur:
            for table in [*PROJECTED, "digests", "digest_sums", "read_model_state"]:
                cur.execute(f"DROP TABLE IF EXISTS {table}")

    def generation(self) -> str:
        return str(self._state("generation"))

    def position(self) -> int:
        return int(self._state("position") or 0)

    def _state(self, name: str) -> str | None:
        rows = self.db.query("SELECT value FROM read_model_state WHERE name = ?", [name])
        return rows[0]["value"] if rows else None

    def apply(self, envelopes: Iterable[EventEnvelope]) -> int:
        """Apply the events after the stored position; returns how many were new."""
        applied = 0
        with self.db.transaction() as tx:
            position = int(
                tx.query("SELECT value FROM read_model_state WHERE name = 'position'")[0]["value"]
            )
            cur = Projection(tx)
            for envelope in envelopes:
                if envelope.position <= position:
                    continue  # a redelivery: applied already
                project(cur, envelope)
                position = envelope.position
                applied += 1
                if self.digest_due(envelope):
                    cur.save_sums()
                    record_digests(tx, position)
            if applied:
                cur.save_sums()
                tx.execute(
                    "UPDATE read_model_state SET value = ? WHERE name = 'position'", [str(position)]
                )
        return applied

    def digest_due(self, envelope: EventEnvelope) -> bool:
        return (
            event_type(envelope) is Checkpoint.Requested
            or envelope.position % self.digest_interval == 0
        )

    def digest(self) -> dict[str, str]:
        """A hash of every projected table, to compare two read models."""
        return {table: d for table, (d, _) in table_digests(self.db.query, scan_all=True).items()}

    def recorded_digests(self, position: int) -> dict[str, str]:
        """The digests recorded when this read model stood at ``position`` (or {})."""
        return recorded_digests(self.db, position)

    def digest_positions(self) -> list[int]:
        rows = self.db.query("SELECT DISTINCT position FROM digests ORDER BY position")
        return [int(r["position"]) for r in rows]
