"""Pull requests, revisions, reviews, comments, decisions and cached checks of a server.

:class:`Pulls` is the interface: plain methods taking and returning dicts, in the style of
:mod:`exactvc.access`. :class:`PullStore` implements it in SQLite (the database file of the access
store), ``exactvc.backends.postgres_pulls.PgPullStore`` in PostgreSQL. Every write is one transaction.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import orjson

from ..access import DB_NAME
from ..errors import InvalidInput, NotFound
from ..sqlitedb import SqliteDB

STATES = ("draft", "open", "closed", "merged")
REVIEW_KINDS = ("comment", "approve", "request_changes")
DECISIONS = ("accept", "reject")
MAX_TITLE = 300
MAX_BODY = 64 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pulls (repo TEXT NOT NULL, number INTEGER NOT NULL, title TEXT NOT NULL,
    body TEXT NOT NULL, author TEXT NOT NULL, state TEXT NOT NULL, source TEXT NOT NULL, target TEXT NOT NULL,
    base TEXT NOT NULL, head TEXT NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL,
    merge_commit TEXT, review_commit TEXT, origin TEXT, PRIMARY KEY (repo, number));
CREATE TABLE IF NOT EXISTS pull_revisions (repo TEXT NOT NULL, number INTEGER NOT NULL, seq INTEGER NOT NULL,
    head TEXT NOT NULL, base TEXT NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (repo, number, seq));
CREATE TABLE IF NOT EXISTS pull_reviews (id INTEGER PRIMARY KEY AUTOINCREMENT, repo TEXT NOT NULL,
    number INTEGER NOT NULL, author TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL, head TEXT NOT NULL,
    created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pull_comments (id INTEGER PRIMARY KEY AUTOINCREMENT, repo TEXT NOT NULL,
    number INTEGER NOT NULL, thread INTEGER, author TEXT NOT NULL, body TEXT NOT NULL, head TEXT NOT NULL,
    anchor TEXT, resolved INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pull_decisions (repo TEXT NOT NULL, number INTEGER NOT NULL, image TEXT NOT NULL,
    annotation TEXT NOT NULL, decision TEXT NOT NULL, version TEXT NOT NULL, author TEXT NOT NULL,
    created INTEGER NOT NULL, PRIMARY KEY (repo, number, image, annotation));
CREATE TABLE IF NOT EXISTS pull_checks (repo TEXT NOT NULL, number INTEGER NOT NULL, head TEXT NOT NULL,
    result TEXT NOT NULL, PRIMARY KEY (repo, number, head));
CREATE TABLE IF NOT EXISTS pull_overrides (repo TEXT NOT NULL, number INTEGER NOT NULL, head TEXT NOT NULL,
    author TEXT NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (repo, number, head));
"""

_PULL_COLS = ("number", "title", "body", "author", "state", "source", "target", "base", "head", "created",
              "updated", "merge_commit", "review_commit", "origin")


def check_text(value: Any, what: str, limit: int, required: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    if required and not value.strip():
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > limit:
        raise InvalidInput(f"{what} is too long (at most {limit} characters)")
    return value


class Pulls(Protocol):
    def create(self, repo: str, title: str, body: str, author: str, state: str, source: str, target: str,
               base: str, head: str, origin: str | None = None) -> dict[str, Any]: ...
    def get(self, repo: str, number: int) -> dict[str, Any]: ...
    def list_pulls(self, repo: str, state: str | None = None) -> list[dict[str, Any]]: ...
    def update(self, repo: str, number: int, **fields: Any) -> dict[str, Any]: ...
    def add_revision(self, repo: str, number: int, head: str, base: str) -> None: ...
    def revisions(self, repo: str, number: int) -> list[dict[str, Any]]: ...
    def add_review(self, repo: str, number: int, author: str, kind: str, body: str, head: str) -> dict[str, Any]: ...
    def reviews(self, repo: str, number: int) -> list[dict[str, Any]]: ...
    def add_comment(self, repo: str, number: int, author: str, body: str, head: str,
                    anchor: dict[str, Any] | None, thread: int | None) -> dict[str, Any]: ...
    def comment(self, repo: str, number: int, cid: int) -> dict[str, Any]: ...
    def comments(self, repo: str, number: int) -> list[dict[str, Any]]: ...
    def resolve_thread(self, repo: str, number: int, thread: int, resolved: bool) -> None: ...
    def set_decisions(self, repo: str, number: int, items: list[tuple[str, str, str]], decision: str | None,
                      author: str) -> None: ...
    def decisions(self, repo: str, number: int) -> dict[tuple[str, str], dict[str, Any]]: ...
    def checks(self, repo: str, number: int, head: str) -> dict[str, Any] | None: ...
    def set_checks(self, repo: str, number: int, head: str, result: dict[str, Any]) -> None: ...
    def override(self, repo: str, number: int, head: str, author: str) -> None: ...
    def overridden(self, repo: str, number: int, head: str) -> str | None: ...


def check_update(fields: dict[str, Any]) -> None:
    bad = set(fields) - UPDATABLE
    if bad:
        raise InvalidInput(f"cannot change {sorted(bad)[0]}")
    if "state" in fields and fields["state"] not in STATES:
        raise InvalidInput(f"state must be one of {', '.join(STATES)}")


UPDATABLE = frozenset({"title", "body", "state", "base", "head", "merge_commit", "review_commit"})


class CommentLookup:
    """What both pull-request stores derive from their ``comments``: one comment by id."""

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    def comment(self, repo: str, number: int, cid: int) -> dict[str, Any]:
        for c in self.comments(repo, number):
            if c["id"] == cid:
                return c
        raise NotFound(f"no comment {cid} on pull request #{number}")


class PullStore(CommentLookup, SqliteDB):
    """The pull requests of every repository of a server ROOT."""

    def __init__(self, root: Path) -> None:
        super().__init__(root / DB_NAME, _SCHEMA)

    # --- pull requests ---
    def create(self, repo: str, title: str, body: str, author: str, state: str, source: str, target: str,
               base: str, head: str, origin: str | None = None) -> dict[str, Any]:
        if state not in ("draft", "open"):
            raise InvalidInput("a new pull request is draft or open")
        now = int(time.time())
        with self._db() as db:
            row = db.execute("SELECT COALESCE(MAX(number), 0) FROM pulls WHERE repo = ?", (repo,)).fetchone()
            n = int(row[0]) + 1
            db.execute("INSERT INTO pulls (repo, number, title, body, author, state, source, target, base, head, "
                       "created, updated, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (repo, n, title, body, author, state, source, target, base, head, now, now, origin))
            db.execute("INSERT INTO pull_revisions (repo, number, seq, head, base, created) VALUES (?, ?, 1, ?, ?, ?)",
                       (repo, n, head, base, now))
        return self.get(repo, n)

    def get(self, repo: str, number: int) -> dict[str, Any]:
        with self._db() as db:
            row = db.execute(f"SELECT {', '.join(_PULL_COLS)} FROM pulls WHERE repo = ? AND number = ?",
                             (repo, number)).fetchone()
        if row is None:
            raise NotFound(f"no pull request #{number} in {repo}")
        return dict(zip(_PULL_COLS, row, strict=True))

    def list_pulls(self, repo: str, state: str | None = None) -> list[dict[str, Any]]:
        q = f"SELECT {', '.join(_PULL_COLS)} FROM pulls WHERE repo = ?"
        args: list[Any] = [repo]
        if state is not None:
            q += " AND state = ?"
            args.append(state)
        with self._db() as db:
            rows = db.execute(q + " ORDER BY number DESC", args).fetchall()
        return [dict(zip(_PULL_COLS, r, strict=True)) for r in rows]

    def update(self, repo: str, number: int, **fields: Any) -> dict[str, Any]:
        check_update(fields)
        if not fields:
            return self.get(repo, number)
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._db() as db:
            cur = db.execute(f"UPDATE pulls SET {sets}, updated = ? WHERE repo = ? AND number = ?",
                             (*fields.values(), int(time.time()), repo, number))
            if cur.rowcount == 0:
                raise NotFound(f"no pull request #{number} in {repo}")
        return self.get(repo, number)

    # --- revisions: one per position of the source branch ---
    def add_revision(self, repo: str, number: int, head: str, base: str) -> None:
        """Record that the source branch moved to ``head`` (merge base ``base``); the pull request's head
        and base follow (only if it still was at an older head: concurrent readers record it once)."""
        now = int(time.time())
        with self._db() as db:
            row = db.execute("SELECT head FROM pulls WHERE repo = ? AND number = ?", (repo, number)).fetchone()
            if row is None or row[0] == head:
                return
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM pull_revisions WHERE repo = ? AND number = ?",
                             (repo, number)).fetchone()[0] + 1
            db.execute("INSERT INTO pull_revisions (repo, number, seq, head, base, created) VALUES (?, ?, ?, ?, ?, ?)",
                       (repo, number, seq, head, base, now))
            db.execute("UPDATE pulls SET head = ?, base = ?, updated = ? WHERE repo = ? AND number = ?",
                       (head, base, now, repo, number))

    def revisions(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT seq, head, base, created FROM pull_revisions WHERE repo = ? AND number = ? "
                              "ORDER BY seq", (repo, number)).fetchall()
        return [{"seq": s, "head": h, "base": b, "created": c} for s, h, b, c in rows]

    # --- reviews ---
    def add_review(self, repo: str, number: int, author: str, kind: str, body: str, head: str) -> dict[str, Any]:
        if kind not in REVIEW_KINDS:
            raise InvalidInput(f"a review is one of {', '.join(REVIEW_KINDS)}, not {kind!r}")
        now = int(time.time())
        with self._db() as db:
            cur = db.execute("INSERT INTO pull_reviews (repo, number, author, kind, body, head, created) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", (repo, number, author, kind, body, head, now))
            rid = cur.lastrowid
        return {"id": rid, "author": author, "kind": kind, "body": body, "head": head, "created": now}

    def reviews(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT id, author, kind, body, head, created FROM pull_reviews WHERE repo = ? AND "
                              "number = ? ORDER BY id", (repo, number)).fetchall()
        return [dict(zip(("id", "author", "kind", "body", "head", "created"), r, strict=True)) for r in rows]

    # --- comments ---
    def add_comment(self, repo: str, number: int, author: str, body: str, head: str,
                    anchor: dict[str, Any] | None, thread: int | None) -> dict[str, Any]:
        now = int(time.time())
        with self._db() as db:
            if thread is not None:
                row = db.execute("SELECT thread, anchor FROM pull_comments WHERE repo = ? AND number = ? AND id = ?",
                                 (repo, number, thread)).fetchone()
                if row is None:
                    raise NotFound(f"no comment {thread} on pull request #{number}")
                thread = row[0] or thread
                if anchor is None and row[1]:
                    anchor = orjson.loads(row[1])
            cur = db.execute("INSERT INTO pull_comments (repo, number, thread, author, body, head, anchor, created) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (repo, number, thread, author, body, head,
                              orjson.dumps(anchor).decode() if anchor else None, now))
            cid = int(cur.lastrowid or 0)
            if thread is None:
                db.execute("UPDATE pull_comments SET thread = ? WHERE id = ?", (cid, cid))
        return self.comment(repo, number, cid)

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT id, thread, author, body, head, anchor, resolved, created FROM pull_comments "
                              "WHERE repo = ? AND number = ? ORDER BY id", (repo, number)).fetchall()
        return [{"id": i, "thread": t, "author": a, "body": b, "head": h,
                 "anchor": orjson.loads(an) if an else None, "resolved": bool(r), "created": c}
                for i, t, a, b, h, an, r, c in rows]

    def resolve_thread(self, repo: str, number: int, thread: int, resolved: bool) -> None:
        with self._db() as db:
            cur = db.execute("UPDATE pull_comments SET resolved = ? WHERE repo = ? AND number = ? AND thread = ?",
                             (int(resolved), repo, number, thread))
            if cur.rowcount == 0:
                raise NotFound(f"no comment thread {thread} on pull request #{number}")

    # --- decisions: per annotation, tied to the version of the change decided on ---
    def set_decisions(self, repo: str, number: int, items: list[tuple[str, str, str]], decision: str | None,
                      author: str) -> None:
        """``items``: (image, annotation id, version); ``decision`` accept, reject, or None (forget)."""
        if decision is not None and decision not in DECISIONS:
            raise InvalidInput(f"a decision is accept or reject, not {decision!r}")
        now = int(time.time())
        with self._db() as db:
            for image, aid, version in items:
                if decision is None:
                    db.execute("DELETE FROM pull_decisions WHERE repo = ? AND number = ? AND image = ? AND "
                               "annotation = ?", (repo, number, image, aid))
                else:
                    db.execute("INSERT OR REPLACE INTO pull_decisions (repo, number, image, annotation, decision, "
                               "version, author, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               (repo, number, image, aid, decision, version, author, now))

    def decisions(self, repo: str, number: int) -> dict[tuple[str, str], dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT image, annotation, decision, version, author, created FROM pull_decisions "
                              "WHERE repo = ? AND number = ?", (repo, number)).fetchall()
        return {(i, a): {"decision": d, "version": v, "author": au, "created": c} for i, a, d, v, au, c in rows}

    # --- checks (cached per head) and maintainers' overrides ---
    def checks(self, repo: str, number: int, head: str) -> dict[str, Any] | None:
        with self._db() as db:
            row = db.execute("SELECT result FROM pull_checks WHERE repo = ? AND number = ? AND head = ?",
                             (repo, number, head)).fetchone()
        return orjson.loads(row[0]) if row else None

    def set_checks(self, repo: str, number: int, head: str, result: dict[str, Any]) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO pull_checks (repo, number, head, result) VALUES (?, ?, ?, ?)",
                       (repo, number, head, orjson.dumps(result).decode()))

    def override(self, repo: str, number: int, head: str, author: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO pull_overrides (repo, number, head, author, created) "
                       "VALUES (?, ?, ?, ?, ?)", (repo, number, head, author, int(time.time())))

    def overridden(self, repo: str, number: int, head: str) -> str | None:
        with self._db() as db:
            row = db.execute("SELECT author FROM pull_overrides WHERE repo = ? AND number = ? AND head = ?",
                             (repo, number, head)).fetchone()
        return str(row[0]) if row else None
