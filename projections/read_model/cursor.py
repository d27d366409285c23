"""The cursor the projectors write one batch through, and the shape of a projector."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from domain.envelopes import EventEnvelope
from projections.read_model.digests import APPEND_ONLY, MODULUS, Sums, row_hash
from projections.read_model.schema import PROJECTED
from projections.sql import Cursor

# Rows read back per query when hashing the rows a batch changed.
READ_BACK = 500


class Projection:
    """The cursor of one applied batch: the only way the projectors write, so that every
    change reaches the tables' running digests (``digests``).

    Inserted rows wait in memory and go in with one statement per table and column set
    (``executemany``) before anything reads or updates the tables, and at the end: most
    events only add rows. A row of an append-only table is hashed as inserted. A row of
    another table is hashed as read back once the batch's writes are in (``settle``); the
    first update of a row since then first takes away the hash it had."""

    def __init__(self, cur: Cursor, sums: Sums) -> None:
        self.cur = cur
        self.sums = sums
        self._rows: dict[tuple[str, tuple[str, ...]], list[tuple[Any, ...]]] = {}
        self._changed: dict[str, set[Any]] = {}  # table -> keys of rows to hash when settled

    def row(self, table: str, key: Any) -> dict[str, Any] | None:
        """The row of ``table`` whose key is ``key``, as the batch has left it so far."""
        self.write_rows(table)
        rows = self.cur.query(f"SELECT * FROM {table} WHERE {PROJECTED[table]} = ?", [key])
        return rows[0] if rows else None

    def insert(self, table: str, row: dict[str, Any]) -> None:
        self._rows.setdefault((table, tuple(row)), []).append(tuple(row.values()))
        entry = self.sums[table]
        entry[1] += 1
        if table in APPEND_ONLY:
            entry[0] = (entry[0] + row_hash(row)) % MODULUS
        else:  # a new row: it had no hash to take away (its insert fails if it did)
            self._changed.setdefault(table, set()).add(row[PROJECTED[table]])

    def update(self, table: str, key: Any, changes: dict[str, Any]) -> None:
        """Change some columns of the row of ``table`` whose key is ``key``."""
        key_column = PROJECTED[table]
        changed = self._changed.setdefault(table, set())
        if key not in changed:
            old = self.row(table, key)
            if old is not None:
                entry = self.sums[table]
                entry[0] = (entry[0] - row_hash(old)) % MODULUS
            changed.add(key)
        self.write_rows(table)
        assignments = ", ".join(f"{column} = ?" for column in changes)
        self.cur.execute(
            f"UPDATE {table} SET {assignments} WHERE {key_column} = ?", [*changes.values(), key]
        )

    def write_rows(self, only: str | None = None) -> None:
        """Insert the rows waiting in memory (those of the table ``only``, if given)."""
        for (table, columns), rows in list(self._rows.items()):
            if only is not None and table != only:
                continue
            marks = ", ".join("?" for _ in columns)
            self.cur.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
            )
            del self._rows[table, columns]

    def settle(self) -> None:
        """Write what waits, and add the hashes of the changed rows as they are now: the
        running sums then match the tables."""
        self.write_rows()
        for table, keys in self._changed.items():
            key_column = PROJECTED[table]
            entry = self.sums[table]
            ordered = list(keys)
            for start in range(0, len(ordered), READ_BACK):
                chunk = ordered[start : start + READ_BACK]
                marks = ", ".join("?" for _ in chunk)
                rows = self.cur.query(
                    f"SELECT * FROM {table} WHERE {key_column} IN ({marks})", chunk
                )
                entry[0] = (entry[0] + sum(row_hash(r) for r in rows)) % MODULUS
        self._changed.clear()


# Writes one event (of the class it is registered for) into the tables.
Projector = Callable[[Projection, EventEnvelope], None]
