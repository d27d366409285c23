"""API keys: stored hashed, each scoped to some namespaces or to all of them.

A key reads ``eb_<key_id>_<secret>``; only a SHA-256 of the secret is kept
(the secret is 256 random bits, so a slow hash adds nothing).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from projections.sql import Database

SCHEMA = """CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, secret_hash TEXT,
    principal TEXT, namespaces TEXT, created_at TEXT)"""


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    namespaces: frozenset[str] | None  # namespace IDs; None: all

    def may_see(self, namespace_id: str | None) -> bool:
        return self.namespaces is None or namespace_id in self.namespaces

    @property
    def is_admin(self) -> bool:
        return self.namespaces is None


class ApiKeys:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create_table(self) -> None:
        with self.db.transaction() as cur:
            cur.execute(SCHEMA)

    def any(self) -> bool:
        return bool(self.db.query("SELECT key_id FROM api_keys LIMIT 1"))

    def create(self, principal: str, namespaces: list[str] | None) -> tuple[str, str]:
        """Returns (key_id, the key). The key is shown once and never stored."""
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?)",
                [
                    key_id,
                    _hash(secret),
                    principal,
                    None if namespaces is None else json.dumps(sorted(set(namespaces))),
                    datetime.now(UTC).isoformat(),
                ],
            )
        return key_id, f"eb_{key_id}_{secret}"

    def authenticate(self, api_key: str) -> Principal | None:
        parts = api_key.split("_", 2)
        if len(parts) != 3 or parts[0] != "eb":
            return None
        rows = self.db.query("SELECT * FROM api_keys WHERE key_id = ?", [parts[1]])
        if not rows or not hmac.compare_digest(rows[0]["secret_hash"], _hash(parts[2])):
            return None
        return _principal(rows[0])

    def grant(self, key_id: str, namespace_id: str) -> None:
        """Add a namespace to a scoped key (one it just created or cloned)."""
        with self.db.transaction() as cur:
            rows = cur.query("SELECT namespaces FROM api_keys WHERE key_id = ?", [key_id])
            if rows and rows[0]["namespaces"] is not None:
                scope = set(json.loads(rows[0]["namespaces"])) | {namespace_id}
                cur.execute(
                    "UPDATE api_keys SET namespaces = ? WHERE key_id = ?",
                    [json.dumps(sorted(scope)), key_id],
                )

    def get(self, key_id: str) -> Principal | None:
        rows = self.db.query("SELECT * FROM api_keys WHERE key_id = ?", [key_id])
        return _principal(rows[0]) if rows else None


def _principal(row: dict) -> Principal:
    namespaces = None if row["namespaces"] is None else frozenset(json.loads(row["namespaces"]))
    return Principal(row["key_id"], row["principal"], namespaces)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
