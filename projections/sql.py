"""One small connection layer over SQLite and PostgreSQL, with '?' placeholders for both."""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Row = dict[str, Any]


class Database:
    """Thread-local connections; each ``transaction()`` commits or rolls back as a whole."""

    def __init__(
        self,
        sqlite_path: Path | None = None,
        postgres: dict[str, str] | None = None,
        schema: str = "envbranch_read",
    ) -> None:
        if (sqlite_path is None) == (postgres is None):
            raise ValueError("give either sqlite_path or postgres settings")
        self.sqlite_path = sqlite_path
        self.postgres = postgres
        self.schema = schema
        self.dialect = "sqlite" if sqlite_path is not None else "postgres"
        self._local = threading.local()

    def _connect(self) -> Any:
        conn: Any
        if self.sqlite_path is not None:
            conn = sqlite3.connect(self.sqlite_path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.row_factory = sqlite3.Row
            return conn
        import psycopg
        from psycopg.rows import dict_row

        pg = self.postgres or {}
        conn = psycopg.connect(
            host=pg.get("POSTGRES_HOST", "127.0.0.1"),
            port=pg.get("POSTGRES_PORT", "5432"),
            dbname=pg.get("POSTGRES_DBNAME", "envbranch"),
            user=pg.get("POSTGRES_USER", "postgres"),
            password=pg.get("POSTGRES_PASSWORD") or None,
            autocommit=True,
            row_factory=dict_row,
            **libpq_tls(pg),
        )
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        conn.execute(f'SET search_path TO "{self.schema}"')
        return conn

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def configure(self, *pragmas: str) -> None:
        """Run SQLite PRAGMAs on this thread's connection (nothing on PostgreSQL)."""
        if self.dialect == "sqlite":
            conn = self._connection()
            for pragma in pragmas:
                conn.execute(f"PRAGMA {pragma}")

    def _sql(self, sql: str) -> str:
        return sql if self.dialect == "sqlite" else sql.replace("?", "%s")

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        conn = self._connection()
        try:
            if self.dialect == "sqlite":
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield Cursor(self, conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            else:
                with conn.transaction():
                    yield Cursor(self, conn)
        except Exception as e:
            self._forget_broken(e)
            raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        conn = self._connection()
        try:
            rows = conn.execute(self._sql(sql), tuple(params)).fetchall()
        except Exception as e:
            self._forget_broken(e)
            raise
        return [dict(row) for row in rows]

    def _forget_broken(self, error: Exception) -> None:
        """Drop a connection the server closed (a PostgreSQL restart): the next call
        reconnects instead of failing forever."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self.dialect == "sqlite":
            return
        if getattr(conn, "closed", False) or type(error).__name__ in TRANSIENT_ERRORS:
            try:
                conn.close()
            finally:
                self._local.conn = None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


# POSTGRES_* variables of TLS and the libpq parameters they set.
LIBPQ_TLS = {
    "POSTGRES_SSLMODE": "sslmode",
    "POSTGRES_SSLROOTCERT": "sslrootcert",
    "POSTGRES_SSLCERT": "sslcert",
    "POSTGRES_SSLKEY": "sslkey",
}


def libpq_tls(postgres: dict[str, str]) -> dict[str, Any]:
    """The TLS parameters of a PostgreSQL connection (sslmode ...) from POSTGRES_SSL*;
    none set: libpq's defaults."""
    return {param: postgres[name] for name, param in LIBPQ_TLS.items() if postgres.get(name)}


# The names both drivers (sqlite3, psycopg) give errors of a database that is away or busy.
TRANSIENT_ERRORS = ("OperationalError", "InterfaceError")


def is_transient(error: BaseException) -> bool:
    """Whether a later attempt of the same work can succeed: a database or vector store that
    was away, busy or restarting (deadlocks and serialization failures included)."""
    if isinstance(error, ConnectionError | TimeoutError | OSError | sqlite3.OperationalError):
        return True
    if type(error).__name__ in TRANSIENT_ERRORS:  # eventsourcing's own, by the DB-API names
        return True
    for name in ("psycopg", "httpx", "qdrant_client.http.exceptions"):
        module = sys.modules.get(name)  # only a driver in use can have raised its errors
        if module is None:
            continue
        if name == "psycopg" and isinstance(error, module.OperationalError | module.InterfaceError):
            return True
        if name == "httpx" and isinstance(error, module.TransportError):
            return True
        if name == "qdrant_client.http.exceptions":
            if isinstance(error, module.ResponseHandlingException):
                return True
            status = getattr(error, "status_code", None)
            # 401/403: a key that is wrong or was rotated is fixed by its operator, not by
            # passing over the event: wait for it as for a server that is away
            if isinstance(error, module.UnexpectedResponse) and (
                status is None or status >= 500 or status in (401, 403, 429)
            ):
                return True
    return False


class Cursor:
    def __init__(self, db: Database, conn: Any) -> None:
        self.db = db
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(self.db._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for many rows: SQLite steps it in C, psycopg pipelines it."""
        if self.db.dialect == "sqlite":
            self.conn.executemany(sql, rows)
        else:
            with self.conn.cursor() as cur:
                cur.executemany(self.db._sql(sql), rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [dict(r) for r in self.conn.execute(self.db._sql(sql), tuple(params)).fetchall()]
