"""Digests of the projected tables: what a replay must reproduce, recorded at chosen
positions and compared by ``envbranch replay --verify``.

The digest of a table is the sum of its rows' hashes (mod 2^256), so it can be kept up
to date as rows change instead of read from every row: the projection adds the hash of
each row it inserts and, for a row it updates, takes away the hash the row had and adds
the one it has now (``cursor.Projection``). ``digest_sums`` holds these running sums; a
digest recorded at a position reads them, not the tables, so recording one costs the
same whatever the size of the read model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import partial
from operator import itemgetter
from typing import Any

from projections.read_model.schema import PROJECTED
from projections.sql import Cursor, Database

# Digests are recorded every this many positions, and at every Checkpoint.Requested.
DIGEST_INTERVAL = 1000

# Tables that only ever gain rows: a row's hash is taken from the row as inserted. The
# other tables' rows are hashed as read back, after the inserts and updates of a batch.
APPEND_ONLY = ("audit", "commands", "lineage", "ref_history", "evaluations")
MODULUS = 2**256

# table -> [sum of its rows' hashes, row count]
Sums = dict[str, list[int]]


def row_hash(row: dict[str, Any]) -> int:
    """A row's contribution to its table's digest: the digest of a table is the sum of its
    rows' hashes (mod 2^256), the same whether kept as rows are added or read at once.

    The hash is that of ``repr(sorted(row.items()))``; that text is made by a format
    string kept per set of columns, which writes the same characters without sorting
    and making a tuple per column (half the cost; ``canonical_row`` is the definition)."""
    # Values are str, int or None in every table, whose repr is the same everywhere.
    layout = _LAYOUTS.get(tuple(row))
    if layout is None:
        layout = _layout(tuple(row))
    text, values = layout
    return int.from_bytes(_sha256((text % values(row)).encode()).digest(), "big")


def canonical_row(row: dict[str, Any]) -> str:
    """The text a row's hash is taken of (what ``row_hash`` writes faster)."""
    return repr(sorted(row.items()))


_sha256 = hashlib.sha256
# columns in a row's order -> (format writing canonical_row, the row's values sorted by key)
_LAYOUTS: dict[tuple[str, ...], tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]]] = {}


def _layout(columns: tuple[str, ...]) -> tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]]:
    ordered = sorted(columns)
    # repr of a list of (key, value) pairs: "[('a', %r), ('b', %r)]", any "%" of a key doubled.
    text = "[" + ", ".join("(" + repr(key).replace("%", "%%") + ", %r)" for key in ordered) + "]"
    # itemgetter of one key gives the value itself, not a tuple
    values: Callable[[dict[str, Any]], tuple[Any, ...]] = (
        itemgetter(*ordered) if len(ordered) > 1 else partial(_values, ordered)
    )
    _LAYOUTS[columns] = text, values
    return text, values


def _values(ordered: list[str], row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[key] for key in ordered)


def as_digest(total: int) -> str:
    return f"{total % MODULUS:064x}"


def scan(query: Any, table: str) -> tuple[str, int]:
    """A table's digest and row count, read from every row."""
    rows = query(f"SELECT * FROM {table}")
    return as_digest(sum(row_hash(r) for r in rows)), len(rows)


def table_digests(query: Any, scan_all: bool = False) -> dict[str, tuple[str, int]]:
    """A digest and a row count of every projected table, through ``query(sql, params)``:
    the running sums (unless ``scan_all``), a read of the rows of a table that has none."""
    kept = (
        {}
        if scan_all
        else {
            r["table_name"]: (r["total"], int(r["row_count"]))
            for r in query("SELECT * FROM digest_sums")
        }
    )
    return {table: kept[table] if table in kept else scan(query, table) for table in PROJECTED}


def load_sums(cur: Cursor) -> Sums:
    """The running sums of every projected table; a table without one (a read model of an
    earlier version) gets it from its rows, stored at once."""
    sums = {
        r["table_name"]: [int(r["total"], 16), int(r["row_count"])]
        for r in cur.query("SELECT * FROM digest_sums")
    }
    for table in PROJECTED:
        if table not in sums:
            digest, count = scan(cur.query, table)
            sums[table] = [int(digest, 16), count]
            save_sums(cur, {table: sums[table]})
    return sums


def save_sums(cur: Cursor, sums: Sums) -> None:
    for table, (total, count) in sums.items():
        cur.execute("DELETE FROM digest_sums WHERE table_name = ?", [table])
        cur.execute("INSERT INTO digest_sums VALUES (?, ?, ?)", [table, as_digest(total), count])


def recorded_digests(db: Database, position: int) -> dict[str, str]:
    rows = db.query("SELECT table_name, digest FROM digests WHERE position = ?", [position])
    return {r["table_name"]: r["digest"] for r in rows}


def record_digests(cur: Cursor, position: int, sums: Sums | None = None) -> None:
    """Record the tables' digests as they stand at ``position`` (inside its transaction):
    from ``sums`` if given (they must be up to date), else from those stored."""
    if sums is None:
        digests = table_digests(cur.query)
    else:
        digests = {table: (as_digest(total), count) for table, (total, count) in sums.items()}
    cur.execute("DELETE FROM digests WHERE position = ?", [position])
    cur.executemany(
        "INSERT INTO digests VALUES (?, ?, ?, ?)",
        [[position, table, digest, count] for table, (digest, count) in digests.items()],
    )
