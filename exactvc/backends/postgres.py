"""PostgreSQL connection pool, schema migrations, and one translation of "the database is gone".

Migrations are versioned SQL files (``migrations/NNNN_name.sql``) applied in order, each in its own
transaction, and recorded in ``schema_migrations``; an advisory lock keeps two processes from migrating at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from typing import Any

from ..errors import BackendUnavailable

try:
    import psycopg
    from psycopg_pool import ConnectionPool
except ImportError:  # pragma: no cover - the scale-out backends are optional at import time
    psycopg = None  # type: ignore[assignment]
    ConnectionPool = None  # type: ignore[assignment,misc]

_MIGRATE_LOCK = 0x45584143  # "EXAC"


class PgDatabase:
    """A pool of connections to one PostgreSQL database."""

    def __init__(self, url: str, min_size: int = 1, max_size: int = 8, timeout: float = 5.0) -> None:
        if psycopg is None:
            raise BackendUnavailable("psycopg is not installed (pip install 'psycopg[binary]' psycopg-pool)")
        self.url = url
        self.timeout = timeout
        self.pool = ConnectionPool(url, min_size=min_size, max_size=max_size, timeout=timeout, open=False,
                                   kwargs={"connect_timeout": max(1, int(timeout)), "autocommit": False},
                                   check=ConnectionPool.check_connection)
        self.pool.open(wait=False)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor inside one transaction: committed on success, rolled back on any error."""
        try:
            with self.pool.connection() as conn, conn.cursor() as cur:
                yield cur
        except (psycopg.OperationalError, psycopg.InterfaceError) as e:
            raise BackendUnavailable(f"the metadata database is unavailable: {str(e).strip().splitlines()[0]}") \
                from None
        except Exception as e:
            if type(e).__name__ == "PoolTimeout":
                raise BackendUnavailable("the metadata database is unavailable (no connection)") from None
            raise

    def close(self) -> None:
        self.pool.close()


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every shipped migration, in order."""
    out = []
    for f in resources.files(__package__).joinpath("migrations").iterdir():
        if f.name.endswith(".sql"):
            out.append((int(f.name.split("_", 1)[0]), f.name, f.read_text()))
    return sorted(out)


def migrate(db: PgDatabase) -> list[str]:
    """Apply the migrations not yet applied; the names of those applied now."""
    done: list[str] = []
    with db.transaction() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
        cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())")
        cur.execute("SELECT version FROM schema_migrations")
        have = {r[0] for r in cur.fetchall()}
        for version, name, sql in migration_files():
            if version not in have:
                cur.execute(sql)
                cur.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
                done.append(name)
    return done
