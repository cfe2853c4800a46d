"""PostgreSQL metadata: a connection pool, versioned schema migrations, and outages as BackendUnavailable.

Migrations are plain SQL files in ``migrations/`` named ``NNNN_what.sql``, applied in order, each in
its own transaction with its version recorded in ``schema_migrations``; a transaction-level advisory
lock makes concurrent migrators (several servers starting at once) wait for each other. Plain files
rather than Alembic: the schema is small, owned by this package, and needs no ORM models to diff.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable, InvalidInput

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK = 0x6578_6163  # "exac": the advisory lock of migrations
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def _driver() -> Any:
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:  # pragma: no cover - psycopg is an install requirement
        raise InvalidInput("the PostgreSQL backend needs psycopg 3 and psycopg_pool") from exc
    return psycopg, psycopg_pool


def redact(url: str) -> str:
    """The URL without its password (never logged)."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", url)


def _files() -> list[tuple[int, Path]]:
    return sorted((int(m.group(1)), p) for p in MIGRATIONS.iterdir() if (m := _FILE.match(p.name)))


class Database:
    """A pool of connections to one PostgreSQL database; ``tx()`` is one transaction."""

    def __init__(self, url: str, min_size: int = 1, max_size: int = 8, timeout: float = 10.0) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise InvalidInput(f"a PostgreSQL URL starts with postgresql://, not {redact(url)!r}")
        psycopg, pool = _driver()
        self._psycopg = psycopg
        self.url = url
        self.pool = pool.ConnectionPool(url, min_size=min_size, max_size=max_size, timeout=timeout, open=False,
                                        kwargs={"autocommit": False, "connect_timeout": 5},
                                        check=pool.ConnectionPool.check_connection)
        try:
            self.pool.open(wait=False)
        except psycopg.Error as exc:  # pragma: no cover - open(wait=False) does not connect
            raise self._down(exc) from exc

    def _down(self, exc: Exception) -> BackendUnavailable:
        return BackendUnavailable(f"PostgreSQL at {redact(self.url).split('@')[-1]} is unavailable: "
                                  f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")

    @contextlib.contextmanager
    def tx(self) -> Iterator[Any]:
        """A cursor inside one transaction: committed when the block ends, rolled back on an error."""
        psycopg = self._psycopg
        try:
            with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield cur
        except (psycopg.OperationalError, psycopg.errors.AdminShutdown) as exc:
            raise self._down(exc) from exc
        except Exception as exc:
            if type(exc).__name__ == "PoolTimeout":
                raise self._down(exc) from exc
            raise

    @contextlib.contextmanager
    def lock(self, key: str, timeout: float = 30.0) -> Iterator[None]:
        """An exclusive advisory lock on ``key`` for the block, across every process and machine on this
        database (a session lock on a connection of its own; the server drops it if the connection dies)."""
        import time

        from ..errors import LockError

        psycopg = self._psycopg
        deadline = time.monotonic() + timeout
        try:
            with self.pool.connection() as conn:
                conn.autocommit = True
                try:
                    while True:
                        row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()
                        if row and row[0]:
                            break
                        if time.monotonic() > deadline:
                            raise LockError(f"repository is busy: {key} is locked elsewhere (waited {timeout:.0f} s)")
                        time.sleep(0.05)
                    try:
                        yield
                    finally:
                        conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
                finally:
                    conn.autocommit = False
        except (psycopg.OperationalError, psycopg.errors.AdminShutdown) as exc:
            raise self._down(exc) from exc

    def pending(self) -> list[int]:
        """The migrations this version of exactvc has and the database has not applied (all of them on a
        database never migrated)."""
        with self.tx() as cur:
            cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
            have: set[int] = set()
            if cur.fetchone()[0]:
                cur.execute("SELECT version FROM schema_migrations")
                have = {int(r[0]) for r in cur.fetchall()}
        return [v for v, _ in _files() if v not in have]

    def migrate(self) -> list[int]:
        """Apply the migrations not applied yet; the versions applied now."""
        files = _files()
        done: list[int] = []
        with self.tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                        "applied timestamptz NOT NULL DEFAULT now())")
            cur.execute("SELECT version FROM schema_migrations")
            have = {r[0] for r in cur.fetchall()}
            for version, path in files:
                if version in have:
                    continue
                cur.execute(path.read_text(encoding="utf-8"))
                cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                done.append(version)
        return done

    def close(self) -> None:
        self.pool.close()
