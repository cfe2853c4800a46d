"""Refs, HEAD and the reflog of a repository in PostgreSQL (the RefStore interface of exactvc.refs).

A compare-and-swap is one conditional statement (``UPDATE ... WHERE target = old``, ``INSERT ... ON
CONFLICT DO NOTHING`` for a new ref, ``DELETE ... WHERE target = old``) in the transaction that also
writes the reflog, so a ref and its log never disagree; ``cas_many`` moves several refs in one
transaction: all of them or none.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Sequence
from typing import Any

from ..errors import RefConflict
from ..refs import ReflogEntry, RefStore, check_ref_name
from .postgres import Database

_ZERO = "0" * 64


def _h(oid: bytes | None) -> str:
    return oid.hex() if oid else _ZERO


class PgRefs(RefStore):
    def __init__(self, db: Database, repo: str) -> None:
        self.db = db
        self.repo = repo

    def read(self, name: str) -> bytes | None:
        with self.db.tx() as cur:
            cur.execute("SELECT target FROM refs WHERE repo = %s AND name = %s", (self.repo, name))
            row = cur.fetchone()
        return bytes(row[0]) if row else None

    def _swap(self, cur: Any, name: str, old: bytes | None, new: bytes | None, who: str, message: str,
              head: str) -> None:
        check_ref_name(name)
        if old is None and new is None:
            cur.execute("SELECT 1 FROM refs WHERE repo = %s AND name = %s", (self.repo, name))
            ok = cur.fetchone() is None
        elif old is None:
            cur.execute("INSERT INTO refs (repo, name, target) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                      (self.repo, name, new))
            ok = cur.rowcount == 1
        elif new is None:
            cur.execute("DELETE FROM refs WHERE repo = %s AND name = %s AND target = %s", (self.repo, name, old))
            ok = cur.rowcount == 1
        else:
            cur.execute("UPDATE refs SET target = %s WHERE repo = %s AND name = %s AND target = %s",
                      (new, self.repo, name, old))
            ok = cur.rowcount == 1
        if not ok:
            cur.execute("SELECT target FROM refs WHERE repo = %s AND name = %s", (self.repo, name))
            row = cur.fetchone()
            cur_v = bytes(row[0]) if row else None
            raise RefConflict(f"ref {name} moved: expected {_h(old)}, found {_h(cur_v)}")
        entry = (self.repo, name, _h(old), _h(new), int(time.time()), who, message)
        cur.execute("INSERT INTO reflog (repo, name, old, new, time, who, message) "
                  "VALUES (%s, %s, %s, %s, %s, %s, %s)", entry)
        if head == f"ref: {name}":
            cur.execute("INSERT INTO reflog (repo, name, old, new, time, who, message) "
                      "VALUES (%s, 'HEAD', %s, %s, %s, %s, %s)", (self.repo, *entry[2:]))

    def _head(self, cur: Any) -> str:
        cur.execute("SELECT value FROM heads WHERE repo = %s", (self.repo,))
        row = cur.fetchone()
        return str(row[0]) if row else "ref: heads/main"

    def cas(self, name: str, old: bytes | None, new: bytes | None, who: str = "", message: str = "") -> None:
        with self.db.tx() as cur:
            self._swap(cur, name, old, new, who, message, self._head(cur))

    def cas_many(self, updates: Sequence[tuple[str, bytes | None, bytes | None]], who: str = "",
                 message: str = "") -> None:
        with self.db.tx() as cur:
            head = self._head(cur)
            for name, old, new in updates:
                self._swap(cur, name, old, new, who, message, head)

    def list(self, prefix: str = "") -> dict[str, bytes]:
        with self.db.tx() as cur:
            cur.execute("SELECT name, target FROM refs WHERE repo = %s AND starts_with(name, %s) ORDER BY name",
                        (self.repo, prefix))
            return {str(n): bytes(t) for n, t in cur.fetchall()}

    def read_head(self) -> str:
        with self.db.tx() as cur:
            return self._head(cur)

    def write_head(self, value: str, who: str = "", message: str = "") -> None:
        with self.db.tx() as cur:
            old = self._head(cur)
            cur.execute("INSERT INTO heads (repo, value) VALUES (%s, %s) ON CONFLICT (repo) DO UPDATE "
                        "SET value = EXCLUDED.value", (self.repo, value))
            o, n = self._target(cur, old), self._target(cur, value)
            cur.execute("INSERT INTO reflog (repo, name, old, new, time, who, message) "
                        "VALUES (%s, 'HEAD', %s, %s, %s, %s, %s)", (self.repo, _h(o), _h(n), int(time.time()), who,
                                                                   message))

    def _target(self, cur: Any, value: str) -> bytes | None:
        if value.startswith("ref: "):
            cur.execute("SELECT target FROM refs WHERE repo = %s AND name = %s", (self.repo, value[5:]))
            row = cur.fetchone()
            return bytes(row[0]) if row else None
        try:
            return bytes.fromhex(value)
        except ValueError:
            return None

    def reflog(self, name: str) -> builtins.list[ReflogEntry]:
        with self.db.tx() as cur:
            cur.execute("SELECT old, new, time, who, message FROM reflog WHERE repo = %s AND name = %s ORDER BY id",
                        (self.repo, name))
            return [ReflogEntry(o, n, int(t), w, m) for o, n, t, w, m in cur.fetchall()]
