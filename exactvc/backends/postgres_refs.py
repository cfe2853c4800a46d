"""Refs of one repository in PostgreSQL: compare-and-swap as one ``UPDATE ... WHERE target = old``.

A multi-ref update is one transaction (rows locked in name order), so a push moves all its refs or none,
across any number of server processes sharing the database.
"""

from __future__ import annotations

import builtins
import time
from typing import Any

from ..errors import RefConflict
from ..refs import ReflogEntry, RefStore, _h, check_ref_name
from .postgres import PgDatabase


class PgRefs(RefStore):
    def __init__(self, db: PgDatabase, repo: str) -> None:
        self.db = db
        self.repo = repo

    def read(self, name: str) -> bytes | None:
        with self.db.transaction() as cur:
            cur.execute("SELECT target FROM refs WHERE repo = %s AND name = %s", (self.repo, name))
            row = cur.fetchone()
        return bytes(row[0]) if row else None

    def _swap(self, cur: Any, name: str, old: bytes | None, new: bytes | None) -> None:
        check_ref_name(name)
        if old is None and new is not None:
            cur.execute("INSERT INTO refs (repo, name, target) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                        (self.repo, name, new))
        elif old is None:
            cur.execute("SELECT 1 FROM refs WHERE repo = %s AND name = %s", (self.repo, name))
            if cur.fetchone() is None:
                return
            cur.execute("SELECT 1 WHERE false")
        elif new is None:
            cur.execute("DELETE FROM refs WHERE repo = %s AND name = %s AND target = %s", (self.repo, name, old))
        else:
            cur.execute("UPDATE refs SET target = %s WHERE repo = %s AND name = %s AND target = %s",
                        (new, self.repo, name, old))
        if cur.rowcount != 1:
            cur.execute("SELECT target FROM refs WHERE repo = %s AND name = %s", (self.repo, name))
            row = cur.fetchone()
            found = bytes(row[0]) if row else None
            raise RefConflict(f"ref {name} moved: expected {_h(old)[:12]}, found {_h(found)[:12]}")

    def _log(self, cur: Any, name: str, old: bytes | None, new: bytes | None, who: str, message: str) -> None:
        cur.execute("INSERT INTO reflog (repo, name, old, new, time, who, message) VALUES (%s,%s,%s,%s,%s,%s,%s)",
                    (self.repo, name, _h(old), _h(new), int(time.time()), who, message))

    def cas(self, name: str, old: bytes | None, new: bytes | None, who: str = "", message: str = "") -> None:
        self.update_many([(name, old, new)], who, message)

    def update_many(self, updates: builtins.list[tuple[str, bytes | None, bytes | None]], who: str = "",
                    message: str = "") -> None:
        with self.db.transaction() as cur:
            head = self._read_head(cur)
            for name, old, new in sorted(updates, key=lambda u: u[0]):
                self._swap(cur, name, old, new)
            for name, old, new in updates:
                self._log(cur, name, old, new, who, message)
                if head == f"ref: {name}":
                    self._log(cur, "HEAD", old, new, who, message)

    def list(self, prefix: str = "") -> dict[str, bytes]:
        with self.db.transaction() as cur:
            cur.execute("SELECT name, target FROM refs WHERE repo = %s AND starts_with(name, %s) ORDER BY name",
                        (self.repo, prefix))
            return {r[0]: bytes(r[1]) for r in cur.fetchall()}

    def _read_head(self, cur: Any) -> str:
        cur.execute("SELECT value FROM heads WHERE repo = %s", (self.repo,))
        row = cur.fetchone()
        return str(row[0]) if row else "ref: heads/main"

    def read_head(self) -> str:
        with self.db.transaction() as cur:
            return self._read_head(cur)

    def write_head(self, value: str, who: str = "", message: str = "") -> None:
        old = self._head_target(self.read_head())
        new = self._head_target(value)
        with self.db.transaction() as cur:
            cur.execute("INSERT INTO heads (repo, value) VALUES (%s, %s) ON CONFLICT (repo) DO UPDATE SET value ="
                        " EXCLUDED.value", (self.repo, value))
            self._log(cur, "HEAD", old, new, who, message)

    def reflog(self, name: str) -> builtins.list[ReflogEntry]:
        if name != "HEAD":
            check_ref_name(name)
        with self.db.transaction() as cur:
            cur.execute("SELECT old, new, time, who, message FROM reflog WHERE repo = %s AND name = %s ORDER BY id",
                        (self.repo, name))
            return [ReflogEntry(r[0], r[1], int(r[2]), r[3], r[4]) for r in cur.fetchall()]
