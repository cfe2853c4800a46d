"""A SQLite file of the server's metadata (users and roles, pull requests, EXACT ids), shared by threads.

One connection per thread in WAL mode with synchronous=FULL; every use is one ``BEGIN IMMEDIATE``
transaction, rolled back on any exception. Stores subclass it and keep their SQL to themselves, so a
later backend (PostgreSQL) replaces a store, not this helper.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class SqliteDB:
    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self._local = threading.local()
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.executescript(schema)
            self._migrate(conn)
        finally:
            conn.close()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring a database made by an older version up to the schema (nothing by default)."""

    def _before_commit(self, conn: sqlite3.Connection) -> None:
        """Called inside each transaction that succeeded, just before it commits (nothing by default)."""

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._before_commit(conn)
        conn.execute("COMMIT")
