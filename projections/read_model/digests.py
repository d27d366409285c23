"""Digests of the projected tables: what a replay must reproduce, recorded at chosen
positions and compared by ``envbranch replay --verify``."""

from __future__ import annotations

import hashlib
from typing import Any

from projections.read_model.schema import PROJECTED
from projections.sql import Cursor, Database

# Digests are recorded every this many positions, and at every Checkpoint.Requested.
DIGEST_INTERVAL = 1000

# Tables that only ever gain rows: their digests are kept up to date as rows are added,
# so recording a digest does not read them (the audit log grows with every event).
APPEND_ONLY = ("audit", "commands", "lineage", "ref_history", "evaluations")
MODULUS = 2**256


def row_hash(row: dict[str, Any]) -> int:
    """A row's contribution to its table's digest: the digest of a table is the sum of its
    rows' hashes (mod 2^256), the same whether kept as rows are added or read at once."""
    # Values are str, int or None in every table, whose repr is the same everywhere.
    canonical = repr(sorted(row.items()))
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest(), "big")


def as_digest(total: int) -> str:
    return f"{total % MODULUS:064x}"


def table_digests(query: Any, scan_all: bool = False) -> dict[str, tuple[str, int]]:
    """A digest and a row count of every projected table, through ``query(sql, params)``:
    the kept sums of the append-only tables (unless ``scan_all``), a read of the others."""
    kept = (
        {}
        if scan_all
        else {
            r["table_name"]: (r["total"], int(r["row_count"]))
            for r in query("SELECT * FROM digest_sums")
        }
    )
    out = {}
    for table in PROJECTED:
        if table in APPEND_ONLY and not scan_all:
            out[table] = kept.get(table, (as_digest(0), 0))
            continue
        rows = query(f"SELECT * FROM {table}")
        out[table] = (as_digest(sum(row_hash(r) for r in rows)), len(rows))
    return out


def recorded_digests(db: Database, position: int) -> dict[str, str]:
    rows = db.query("SELECT table_name, digest FROM digests WHERE position = ?", [position])
    return {r["table_name"]: r["digest"] for r in rows}


def record_digests(cur: Cursor, position: int) -> None:
    """Record the tables' digests as they stand at ``position`` (inside its transaction)."""
    cur.execute("DELETE FROM digests WHERE position = ?", [position])
    for table, (digest, count) in table_digests(cur.query).items():
        cur.execute("INSERT INTO digests VALUES (?, ?, ?, ?)", [position, table, digest, count])
