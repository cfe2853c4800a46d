"""The jobs of every server process in the shared PostgreSQL (table ``jobs``, migration 0060).

Same contract as :class:`exactvc.jobs.SqliteJobStore`. Times (``created``, ``heartbeat``) come from the
database's clock, so the stale check does not depend on the machines' clocks agreeing."""

from __future__ import annotations

import json
from typing import Any

from .. import jobs as J

_NOW = "EXTRACT(EPOCH FROM clock_timestamp())"
_COLS = ", ".join('"user"' if f == "user" else f for f in J.FIELDS)


class PgJobStore:
    """``database``: the pool, or a function giving it (opened on first use: ``exact serve --processes N``
    makes the app before forking, and a pool must not cross a fork)."""

    def __init__(self, database: Any) -> None:
        self._database = database

    @property
    def db(self) -> Any:
        return self._database() if callable(self._database) else self._database

    def create(self, repo: str, user: str, plugin: str, image: str) -> dict[str, Any]:
        ident = J.new_id()
        with self.db.tx() as cur:
            cur.execute("DELETE FROM jobs WHERE repo = %s AND state <> 'running' AND id NOT IN "
                        "(SELECT id FROM jobs WHERE repo = %s ORDER BY created DESC LIMIT %s)", (repo, repo, J.KEEP))
            cur.execute(f"INSERT INTO jobs ({_COLS}) VALUES (%s, %s, %s, %s, %s, 'running', 0, 'starting', NULL, "
                        f"NULL, %s, {_NOW}, {_NOW}) RETURNING {_COLS}", (ident, repo, user, plugin, image, J.owner()))
            return J.row_to_job(cur.fetchone())

    def update(self, ident: str, progress: float | None = None, message: str | None = None,
               state: str | None = None, result: Any = None, error: Any = None) -> bool:
        J.check_update(state, progress)
        sets: list[str] = [f"heartbeat = {_NOW}"]
        args: list[Any] = []
        for col, v in (("progress", progress), ("message", message), ("state", state)):
            if v is not None:
                sets.append(f"{col} = %s")
                args.append(v)
        for col, v in (("result", result), ("error", error)):
            if v is not None:
                sets.append(f"{col} = %s")
                args.append(json.dumps(v))
        with self.db.tx() as cur:
            cur.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = %s AND state = 'running'", (*args, ident))
            cur.execute("SELECT state, cancel FROM jobs WHERE id = %s", (ident,))
            row = cur.fetchone()
        return row is None or bool(row[1]) or (state is None and row[0] != "running")

    def cancel(self, ident: str) -> None:
        with self.db.tx() as cur:
            cur.execute("UPDATE jobs SET cancel = true WHERE id = %s AND state = 'running'", (ident,))

    def _fail_stale(self, cur: Any, where: str, arg: str, stale: float) -> None:
        cur.execute(f"UPDATE jobs SET state = 'failed', message = %s, error = %s WHERE {where} = %s "
                    f"AND state = 'running' AND heartbeat < {_NOW} - %s",
                    (J.STOPPED, json.dumps(J.stopped_error()), arg, stale))

    def get(self, ident: str, stale: float | None = None) -> dict[str, Any] | None:
        with self.db.tx() as cur:
            self._fail_stale(cur, "id", ident, J.stale_after() if stale is None else stale)
            cur.execute(f"SELECT {_COLS} FROM jobs WHERE id = %s", (ident,))
            row = cur.fetchone()
        return J.row_to_job(row) if row else None

    def recent(self, repo: str, limit: int = 50) -> list[dict[str, Any]]:
        with self.db.tx() as cur:
            self._fail_stale(cur, "repo", repo, J.stale_after())
            cur.execute(f"SELECT {_COLS} FROM jobs WHERE repo = %s ORDER BY created DESC LIMIT %s", (repo, limit))
            return [J.row_to_job(r) for r in cur.fetchall()]
