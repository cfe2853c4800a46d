"""Copy a local server's own data (the SQLite files under ROOT) into PostgreSQL: part of `exact server migrate`.

Four groups, each copied in one transaction and only into a database that holds none of that group yet
(so running it again copies nothing, and data made on PostgreSQL is never mixed with a copy):
``access`` (users with their ids, tokens, passwords, sessions, teams, roles, settings), ``pulls`` (pull
requests and everything about them), ``screening`` and ``compat`` (EXACT ids, read branches). Hashes are
copied as they are: tokens, passwords and browser sessions stay valid. Counters and sequences are set
past the copied numbers. Sign-in failure counts are not copied (they expire within minutes).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from .postgres import Database

SERVER_DB = ".exact-server.sqlite"
SCREENING_DB = ".exact-screening.sqlite"
COMPAT_DB = ".exact-compat.sqlite"

# (table, columns, columns stored as boolean on PostgreSQL)
ACCESS = [("users", "id, name, active, site_admin, created", {"active", "site_admin"}),
          ("tokens", "hash, user_id, created", set()),
          ("teams", "name", set()),
          ("team_members", "team, user_id", set()),
          ("roles", "repo, kind, who, role", set()),
          ("passwords", "user_id, hash, updated", set()),
          ("sessions", "hash, user_id, csrf, created, last_seen", set()),
          ("repo_settings", "repo, anonymous_read, protected, required_approvals, mode, opinions", {"anonymous_read"})]
PULLS = [("pulls", "repo, number, title, body, author, state, source, target, base, head, created, updated, "
                   "merge_commit, review_commit, origin", set()),
         ("pull_revisions", "repo, number, seq, head, base, created", set()),
         ("pull_reviews", "id, repo, number, author, kind, body, head, created", set()),
         ("pull_comments", "id, repo, number, thread, author, body, head, anchor, resolved, created", {"resolved"}),
         ("pull_decisions", "repo, number, image, annotation, decision, version, author, created", set()),
         ("pull_checks", "repo, number, head, result", set()),
         ("pull_overrides", "repo, number, head, author, created", set())]


def _rows(path: Path, table: str, cols: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        exists = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
        return con.execute(f"SELECT {cols} FROM {table}").fetchall() if exists else []
    finally:
        con.close()


def _copy(cur: Any, path: Path, table: str, cols: str, booleans: set[str], pg_cols: str | None = None,
          convert: Any = None) -> int:
    names = [c.strip() for c in cols.split(",")]
    rows = _rows(path, table, cols)
    out = []
    for r in rows:
        v = [bool(x) if n in booleans and x is not None else x for n, x in zip(names, r, strict=True)]
        out.append(tuple(convert(v) if convert else v))
    if out:
        cur.executemany(f"INSERT INTO {table} ({pg_cols or cols}) VALUES ({', '.join(['%s'] * len(names))})", out)
    return len(out)


def _empty(cur: Any, table: str) -> bool:
    cur.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {table})")
    return bool(cur.fetchone()[0])


def import_server_data(root: Path, db: Database) -> dict[str, int]:
    """Copy ROOT's SQLite server data into ``db`` (its schema migrated); rows copied per group."""
    from ..access import AccessStore

    done: dict[str, int] = {}
    server = root / SERVER_DB
    if server.is_file():
        AccessStore(root)  # brings a file made by an older version up to the current columns
        with db.tx() as cur:
            if _empty(cur, "users") and _empty(cur, "teams") and _empty(cur, "roles"):
                done["access"] = sum(_copy(cur, server, t, c, b) for t, c, b in ACCESS)
                cur.execute("SELECT setval('users_id_seq', GREATEST((SELECT MAX(id) FROM users), 1))")
                cur.execute("UPDATE access_version SET v = v + 1")
        with db.tx() as cur:
            if _empty(cur, "pulls"):
                done["pulls"] = sum(_copy(cur, server, t, c, b) for t, c, b in PULLS)
                cur.execute("INSERT INTO pull_numbers (repo, last) SELECT repo, MAX(number) FROM pulls GROUP BY repo "
                            "ON CONFLICT (repo) DO UPDATE SET last = GREATEST(pull_numbers.last, EXCLUDED.last)")
                for seq, table in (("pull_reviews_id_seq", "pull_reviews"), ("pull_comments_id_seq", "pull_comments")):
                    cur.execute(f"SELECT setval('{seq}', GREATEST((SELECT MAX(id) FROM {table}), 1))")
    screening = root / SCREENING_DB
    if screening.is_file():
        with db.tx() as cur:
            if _empty(cur, "screening"):
                done["screening"] = _copy(cur, screening, "screening", "repo, image, user, state", set(),
                                          "repo, image, who, state")
    compat = root / COMPAT_DB
    if compat.is_file():
        with db.tx() as cur:
            if _empty(cur, "compat_ids") and _empty(cur, "compat_settings"):
                n = _copy(cur, compat, "compat_ids", "kind, num, key", set(),
                          convert=lambda v: (v[0], v[1], str(v[2]).encode()))
                n += _copy(cur, compat, "compat_settings", "repo, read_branch", set())
                cur.execute("INSERT INTO compat_counters (kind, last) SELECT kind, MAX(num) FROM compat_ids "
                            "GROUP BY kind ON CONFLICT (kind) DO UPDATE SET last = EXCLUDED.last")
                done["compat"] = n
    return done
