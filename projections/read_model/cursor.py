"""The cursor the projectors write one batch through, and the shape of a projector."""

from __future__ import annotations

import re
from collections.abc import Callable
from json import JSONEncoder
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from domain.envelopes import EventEnvelope
from projections.read_model.digests import APPEND_ONLY, MODULUS, Sums, row_hash
from projections.read_model.schema import PROJECTED, SCHEMA
from projections.read_model.schema import to_column as _to_column
from projections.sql import Cursor

# Rows read back per query when hashing the rows a batch changed.
READ_BACK = 500


def stored_types() -> dict[str, dict[str, type]]:
    """Every projected table's columns, in order, with the Python type a value of each
    keeps through a write and a read (str in a TEXT column, int in an INTEGER one), from
    the tables' CREATE statements."""
    types = {"TEXT": str, "INTEGER": int}
    tables = {}
    for statement in SCHEMA:
        match = re.fullmatch(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*)\)", statement, re.S)
        if match and match[1] in PROJECTED:
            columns = (part.split()[:2] for part in match[2].split(","))
            tables[match[1]] = {name: types[kind] for name, kind in columns}
    return tables


STORED_TYPES = stored_types()

# What json.dumps(value, sort_keys=True) runs, made once instead of at every call: the
# same C encoder with the same settings, so the same text (no circular check: values come
# from JSON). Without the C encoder, json.dumps itself.
_ENCODE = (
    c_make_encoder(
        None, JSONEncoder().default, encode_basestring_ascii, None, ": ", ", ", True, False, True
    )
    if c_make_encoder is not None
    else None
)


def to_column(value: Any) -> Any:
    """``schema.to_column``, faster: a dict or a list as the text of a JSON column."""
    if isinstance(value, dict | list):
        return "".join(_ENCODE(value, 0)) if _ENCODE is not None else _to_column(value)
    return value


def as_stored(table: str, row: dict[str, Any]) -> dict[str, Any] | None:
    """The row ``row`` becomes in ``table``, as it reads back (every column, None where it
    gave none), if that is sure without reading it: each value None or of its column's
    type (SQLite converts others by the column's affinity, PostgreSQL casts them; an enum
    member reads back as a plain str). None when it is not sure."""
    stored = {}
    for column, kind in STORED_TYPES[table].items():
        value = row.get(column)
        if value is not None and type(value) is not kind:
            return None
        stored[column] = value
    return stored


class Projection:
    """The cursor of one applied batch: the only way the projectors write, so that every
    change reaches the tables' running digests (``digests``).

    Inserted rows wait in memory and go in with one statement per table and column set
    (``executemany``) before anything reads or updates the tables, and at the end: most
    events only add rows. A row of an append-only table is hashed as inserted. A row of
    another table is hashed as read back once the batch's writes are in (``settle``); the
    first update of a row since then first takes away the hash it had. A new row of
    another table whose values read back as they are (``as_stored``) is hashed as
    inserted, unless the batch updates it: most new rows need no read back."""

    def __init__(self, cur: Cursor, sums: Sums) -> None:
        self.cur = cur
        self.sums = sums
        self._rows: dict[tuple[str, tuple[str, ...]], list[tuple[Any, ...]]] = {}
        self._changed: dict[str, set[Any]] = {}  # table -> keys of rows to hash when settled
        # table -> key -> hash of a new row as stored, not in the sums until settled
        self._fresh: dict[str, dict[Any, int]] = {}
        self._stamped: tuple[EventEnvelope | None, str] = (None, "")

    def occurred_at(self, e: EventEnvelope) -> str:
        """When ``e`` occurred, as the tables keep it (made once per event)."""
        stamped, text = self._stamped
        if stamped is not e:
            text = e.occurred_at.isoformat()
            self._stamped = e, text
        return text

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
            return
        # A new row: it had no hash to take away (its insert fails if it did).
        key = row[PROJECTED[table]]
        stored = as_stored(table, row)
        if stored is None:
            self._changed.setdefault(table, set()).add(key)
        else:
            self._fresh.setdefault(table, {})[key] = row_hash(stored)

    def update(self, table: str, key: Any, changes: dict[str, Any]) -> None:
        """Change some columns of the row of ``table`` whose key is ``key``."""
        key_column = PROJECTED[table]
        changed = self._changed.setdefault(table, set())
        fresh = self._fresh.get(table)
        if fresh is not None and key in fresh:
            del fresh[key]  # new in this batch: hashed as read back, its hash not in the sums
            changed.add(key)
        elif key not in changed:
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

    def delete(self, table: str, key: Any) -> None:
        """Remove the row of ``table`` whose key is ``key``, if there is one."""
        fresh = self._fresh.get(table)
        changed = self._changed.setdefault(table, set())
        if fresh is not None and key in fresh:
            del fresh[key]  # new in this batch: its hash is not in the sums yet
        else:
            old = self.row(table, key)
            if old is None:
                return
            if key not in changed:  # a changed row's old hash is out of the sums already
                entry = self.sums[table]
                entry[0] = (entry[0] - row_hash(old)) % MODULUS
            changed.discard(key)
        self.write_rows(table)
        self.cur.execute(f"DELETE FROM {table} WHERE {PROJECTED[table]} = ?", [key])
        self.sums[table][1] -= 1

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
        for table, hashes in self._fresh.items():
            entry = self.sums[table]
            entry[0] = (entry[0] + sum(hashes.values())) % MODULUS
        self._fresh.clear()
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
