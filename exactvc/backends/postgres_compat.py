"""The EXACT-compatible API's stable integer ids and read branches in PostgreSQL: exactvc.exact_compat.CompatIds.

Ids are handed out per kind from a counter row; a caller with keys that have no id yet takes that row's
lock and looks again before assigning, so two server processes never give one key two ids, nor two
keys one id. Keys that have ids are read without any lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..exact_compat import DEFAULT_READ_BRANCH, KINDS, check_read_branch
from .postgres import Database


class PgIdStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _found(cur: Any, kind: str, keys: list[str]) -> dict[str, int]:
        cur.execute("SELECT key, num FROM compat_ids WHERE kind = %s AND key = ANY(%s)",
                    (kind, [k.encode() for k in keys]))
        return {bytes(k).decode(): int(n) for k, n in cur.fetchall()}

    def ids(self, kind: str, keys: Sequence[str]) -> list[int]:
        if kind not in KINDS:
            raise ValueError(f"unknown id kind {kind!r}")
        if not keys:
            return []
        uniq = list(dict.fromkeys(keys))
        with self.db.tx() as cur:
            found = self._found(cur, kind, uniq)
            if len(found) < len(uniq):
                cur.execute("INSERT INTO compat_counters (kind, last) VALUES (%s, 0) ON CONFLICT (kind) "
                            "DO UPDATE SET last = compat_counters.last RETURNING last", (kind,))  # locks the row
                top = int(cur.fetchone()[0])
                found = self._found(cur, kind, uniq)  # a new snapshot: what the lock's last holder added
                missing = [k for k in uniq if k not in found]
                new = {k: top + 1 + i for i, k in enumerate(missing)}
                cur.executemany("INSERT INTO compat_ids (kind, num, key) VALUES (%s, %s, %s)",
                                [(kind, n, k.encode()) for k, n in new.items()])
                cur.execute("UPDATE compat_counters SET last = %s WHERE kind = %s", (top + len(missing), kind))
                found.update(new)
        return [found[k] for k in keys]

    def id(self, kind: str, key: str) -> int:
        return self.ids(kind, [key])[0]

    def key(self, kind: str, num: int) -> str | None:
        with self.db.tx() as cur:
            cur.execute("SELECT key FROM compat_ids WHERE kind = %s AND num = %s", (kind, num))
            row = cur.fetchone()
        return bytes(row[0]).decode() if row else None

    def keys(self, kind: str, nums: Sequence[int]) -> dict[int, str]:
        with self.db.tx() as cur:
            cur.execute("SELECT num, key FROM compat_ids WHERE kind = %s AND num = ANY(%s)", (kind, list(nums)))
            return {int(n): bytes(k).decode() for n, k in cur.fetchall()}

    def read_branch(self, repo: str) -> str:
        with self.db.tx() as cur:
            cur.execute("SELECT read_branch FROM compat_settings WHERE repo = %s", (repo,))
            row = cur.fetchone()
        return str(row[0]) if row else DEFAULT_READ_BRANCH

    def set_read_branch(self, repo: str, branch: str) -> None:
        check_read_branch(branch)
        with self.db.tx() as cur:
            cur.execute("INSERT INTO compat_settings (repo, read_branch) VALUES (%s, %s) ON CONFLICT (repo) "
                        "DO UPDATE SET read_branch = EXCLUDED.read_branch", (repo, branch))
