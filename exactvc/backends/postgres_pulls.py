"""Pull requests and everything about them (revisions, reviews, comments, decisions, checks, overrides) in
PostgreSQL: the :class:`exactvc.pulls.store.Pulls` interface with the SQLite store's semantics.

Numbers are handed out by one counter row per repository (``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING``), revisions under a lock on their pull request's row, so concurrent server processes never
give two pull requests, or two revisions, the same number.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ..errors import InvalidInput, NotFound
from ..pulls.store import _PULL_COLS, DECISIONS, REVIEW_KINDS, CommentLookup, check_update
from .postgres import Database

_COLS = ", ".join(_PULL_COLS)


class PgPullStore(CommentLookup):
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- pull requests ---
    def create(self, repo: str, title: str, body: str, author: str, state: str, source: str, target: str,
               base: str, head: str, origin: str | None = None) -> dict[str, Any]:
        if state not in ("draft", "open"):
            raise InvalidInput("a new pull request is draft or open")
        now = int(time.time())
        with self.db.tx() as cur:
            cur.execute("INSERT INTO pull_numbers (repo, last) VALUES (%s, 1) ON CONFLICT (repo) "
                        "DO UPDATE SET last = pull_numbers.last + 1 RETURNING last", (repo,))
            n = int(cur.fetchone()[0])
            cur.execute("INSERT INTO pulls (repo, number, title, body, author, state, source, target, base, head, "
                        "created, updated, origin) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (repo, n, title, body, author, state, source, target, base, head, now, now, origin))
            cur.execute("INSERT INTO pull_revisions (repo, number, seq, head, base, created) "
                        "VALUES (%s, %s, 1, %s, %s, %s)", (repo, n, head, base, now))
        return self.get(repo, n)

    def get(self, repo: str, number: int) -> dict[str, Any]:
        with self.db.tx() as cur:
            cur.execute(f"SELECT {_COLS} FROM pulls WHERE repo = %s AND number = %s", (repo, number))
            row = cur.fetchone()
        if row is None:
            raise NotFound(f"no pull request #{number} in {repo}")
        return dict(zip(_PULL_COLS, row, strict=True))

    def list_pulls(self, repo: str, state: str | None = None) -> list[dict[str, Any]]:
        q = f"SELECT {_COLS} FROM pulls WHERE repo = %s"
        args: list[Any] = [repo]
        if state is not None:
            q += " AND state = %s"
            args.append(state)
        with self.db.tx() as cur:
            cur.execute(q + " ORDER BY number DESC", args)
            rows = cur.fetchall()
        return [dict(zip(_PULL_COLS, r, strict=True)) for r in rows]

    def update(self, repo: str, number: int, **fields: Any) -> dict[str, Any]:
        check_update(fields)
        if not fields:
            return self.get(repo, number)
        sets = ", ".join(f"{k} = %s" for k in fields)  # names checked against UPDATABLE
        with self.db.tx() as cur:
            cur.execute(f"UPDATE pulls SET {sets}, updated = %s WHERE repo = %s AND number = %s",
                        (*fields.values(), int(time.time()), repo, number))
            if cur.rowcount == 0:
                raise NotFound(f"no pull request #{number} in {repo}")
        return self.get(repo, number)

    # --- revisions ---
    def add_revision(self, repo: str, number: int, head: str, base: str) -> None:
        now = int(time.time())
        with self.db.tx() as cur:
            cur.execute("SELECT head FROM pulls WHERE repo = %s AND number = %s FOR UPDATE", (repo, number))
            row = cur.fetchone()
            if row is None or row[0] == head:
                return
            cur.execute("SELECT COALESCE(MAX(seq), 0) FROM pull_revisions WHERE repo = %s AND number = %s",
                        (repo, number))
            seq = int(cur.fetchone()[0]) + 1
            cur.execute("INSERT INTO pull_revisions (repo, number, seq, head, base, created) "
                        "VALUES (%s, %s, %s, %s, %s, %s)", (repo, number, seq, head, base, now))
            cur.execute("UPDATE pulls SET head = %s, base = %s, updated = %s WHERE repo = %s AND number = %s",
                        (head, base, now, repo, number))

    def revisions(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self.db.tx() as cur:
            cur.execute("SELECT seq, head, base, created FROM pull_revisions WHERE repo = %s AND number = %s "
                        "ORDER BY seq", (repo, number))
            rows = cur.fetchall()
        return [{"seq": s, "head": h, "base": b, "created": c} for s, h, b, c in rows]

    # --- reviews ---
    def add_review(self, repo: str, number: int, author: str, kind: str, body: str, head: str) -> dict[str, Any]:
        if kind not in REVIEW_KINDS:
            raise InvalidInput(f"a review is one of {', '.join(REVIEW_KINDS)}, not {kind!r}")
        now = int(time.time())
        with self.db.tx() as cur:
            cur.execute("INSERT INTO pull_reviews (repo, number, author, kind, body, head, created) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id", (repo, number, author, kind, body, head, now))
            rid = int(cur.fetchone()[0])
        return {"id": rid, "author": author, "kind": kind, "body": body, "head": head, "created": now}

    def reviews(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self.db.tx() as cur:
            cur.execute("SELECT id, author, kind, body, head, created FROM pull_reviews WHERE repo = %s AND "
                        "number = %s ORDER BY id", (repo, number))
            rows = cur.fetchall()
        return [dict(zip(("id", "author", "kind", "body", "head", "created"), r, strict=True)) for r in rows]

    # --- comments ---
    def add_comment(self, repo: str, number: int, author: str, body: str, head: str,
                    anchor: dict[str, Any] | None, thread: int | None) -> dict[str, Any]:
        now = int(time.time())
        with self.db.tx() as cur:
            if thread is not None:
                cur.execute("SELECT thread, anchor FROM pull_comments WHERE repo = %s AND number = %s AND id = %s",
                            (repo, number, thread))
                row = cur.fetchone()
                if row is None:
                    raise NotFound(f"no comment {thread} on pull request #{number}")
                thread = row[0] or thread
                if anchor is None and row[1]:
                    anchor = orjson.loads(row[1])
            cur.execute("INSERT INTO pull_comments (repo, number, thread, author, body, head, anchor, created) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                        (repo, number, thread, author, body, head, orjson.dumps(anchor).decode() if anchor else None,
                         now))
            cid = int(cur.fetchone()[0])
            if thread is None:
                cur.execute("UPDATE pull_comments SET thread = %s WHERE id = %s", (cid, cid))
        return self.comment(repo, number, cid)

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self.db.tx() as cur:
            cur.execute("SELECT id, thread, author, body, head, anchor, resolved, created FROM pull_comments "
                        "WHERE repo = %s AND number = %s ORDER BY id", (repo, number))
            rows = cur.fetchall()
        return [{"id": int(i), "thread": int(t) if t is not None else None, "author": a, "body": b, "head": h,
                 "anchor": orjson.loads(an) if an else None, "resolved": bool(r), "created": c}
                for i, t, a, b, h, an, r, c in rows]

    def resolve_thread(self, repo: str, number: int, thread: int, resolved: bool) -> None:
        with self.db.tx() as cur:
            cur.execute("UPDATE pull_comments SET resolved = %s WHERE repo = %s AND number = %s AND thread = %s",
                        (bool(resolved), repo, number, thread))
            if cur.rowcount == 0:
                raise NotFound(f"no comment thread {thread} on pull request #{number}")

    # --- decisions ---
    def set_decisions(self, repo: str, number: int, items: list[tuple[str, str, str]], decision: str | None,
                      author: str) -> None:
        if decision is not None and decision not in DECISIONS:
            raise InvalidInput(f"a decision is accept or reject, not {decision!r}")
        now = int(time.time())
        with self.db.tx() as cur:
            for image, aid, version in items:
                if decision is None:
                    cur.execute("DELETE FROM pull_decisions WHERE repo = %s AND number = %s AND image = %s AND "
                                "annotation = %s", (repo, number, image, aid))
                else:
                    cur.execute("INSERT INTO pull_decisions (repo, number, image, annotation, decision, version, "
                                "author, created) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT "
                                "(repo, number, image, annotation) DO UPDATE SET decision = EXCLUDED.decision, "
                                "version = EXCLUDED.version, author = EXCLUDED.author, created = EXCLUDED.created",
                                (repo, number, image, aid, decision, version, author, now))

    def decisions(self, repo: str, number: int) -> dict[tuple[str, str], dict[str, Any]]:
        with self.db.tx() as cur:
            cur.execute("SELECT image, annotation, decision, version, author, created FROM pull_decisions "
                        "WHERE repo = %s AND number = %s", (repo, number))
            rows = cur.fetchall()
        return {(i, a): {"decision": d, "version": v, "author": au, "created": c} for i, a, d, v, au, c in rows}

    # --- checks and overrides ---
    def checks(self, repo: str, number: int, head: str) -> dict[str, Any] | None:
        with self.db.tx() as cur:
            cur.execute("SELECT result FROM pull_checks WHERE repo = %s AND number = %s AND head = %s",
                        (repo, number, head))
            row = cur.fetchone()
        return orjson.loads(row[0]) if row else None

    def set_checks(self, repo: str, number: int, head: str, result: dict[str, Any]) -> None:
        with self.db.tx() as cur:
            cur.execute("INSERT INTO pull_checks (repo, number, head, result) VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT (repo, number, head) DO UPDATE SET result = EXCLUDED.result",
                        (repo, number, head, orjson.dumps(result).decode()))

    def override(self, repo: str, number: int, head: str, author: str) -> None:
        with self.db.tx() as cur:
            cur.execute("INSERT INTO pull_overrides (repo, number, head, author, created) VALUES (%s, %s, %s, %s, %s) "
                        "ON CONFLICT (repo, number, head) DO UPDATE SET author = EXCLUDED.author, "
                        "created = EXCLUDED.created", (repo, number, head, author, int(time.time())))

    def overridden(self, repo: str, number: int, head: str) -> str | None:
        with self.db.tx() as cur:
            cur.execute("SELECT author FROM pull_overrides WHERE repo = %s AND number = %s AND head = %s",
                        (repo, number, head))
            row = cur.fetchone()
        return str(row[0]) if row else None
