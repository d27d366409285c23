"""The cursor the projectors write one batch through, and the shape of a projector."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from domain.envelopes import EventEnvelope
from projections.read_model.digests import MODULUS, as_digest, row_hash
from projections.sql import Cursor


class Projection:
    """The cursor of one applied batch; adds rows to append-only tables with their hashes."""

    def __init__(self, cur: Cursor) -> None:
        self.cur = cur
        self.sums: dict[str, list[int]] | None = None  # table -> [total, rows], loaded lazily

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.cur.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.cur.query(sql, params)

    def insert(self, table: str, row: dict[str, Any]) -> None:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.cur.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))

    def append(self, table: str, row: dict[str, Any]) -> None:
        """Insert a row into an append-only table, adding its hash to the table's digest."""
        self.insert(table, row)
        if self.sums is None:
            self.sums = {
                r["table_name"]: [int(r["total"], 16), int(r["row_count"])]
                for r in self.cur.query("SELECT * FROM digest_sums")
            }
        entry = self.sums.setdefault(table, [0, 0])
        entry[0] = (entry[0] + row_hash(row)) % MODULUS
        entry[1] += 1

    def save_sums(self) -> None:
        for table, (total, count) in (self.sums or {}).items():
            self.cur.execute("DELETE FROM digest_sums WHERE table_name = ?", [table])
            self.cur.execute(
                "INSERT INTO digest_sums VALUES (?, ?, ?)", [table, as_digest(total), count]
            )


# Writes one event (of the class it is registered for) into the tables.
Projector = Callable[[Projection, EventEnvelope], None]
