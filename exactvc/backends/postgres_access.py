"""Users, tokens, passwords, sessions, sign-in limits, teams, roles and repository settings in PostgreSQL.

The :class:`exactvc.access.Access` interface with the semantics of the SQLite store (same hashes, same
checks, same expiry rules, from the helpers of :mod:`exactvc.access`), shared by every server process:
a session made by one process is valid in all. Each method is one transaction; uniqueness is the
database's (``ON CONFLICT``), and every change that cached answers depend on bumps ``access_version``
in its transaction, so ``version()`` tells every process when to forget them.
"""

from __future__ import annotations

import time
from typing import Any

from ..access import (
    RANK,
    Session,
    User,
    check_grant,
    check_name,
    check_password_text,
    expiry,
    hash_session,
    hash_token,
    merged_settings,
    new_secret,
    settings_row,
    verify_password,
)
from ..errors import Conflict, NotFound
from .postgres import Database

_BUMP = "UPDATE access_version SET v = v + 1"


class PgAccessStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _active_id(self, cur: Any, name: str) -> int:
        cur.execute("SELECT id FROM users WHERE name = %s AND active", (name,))
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"no active user {name!r}")
        return int(row[0])

    # --- users ---
    def add_user(self, name: str, site_admin: bool = False) -> str:
        check_name(name, "user name")
        token = new_secret("exv_")
        now = int(time.time())
        with self.db.tx() as cur:
            cur.execute("INSERT INTO users (name, active, site_admin, created) VALUES (%s, true, %s, %s) "
                        "ON CONFLICT (name) DO NOTHING RETURNING id", (name, site_admin, now))
            row = cur.fetchone()
            if row is None:
                raise Conflict(f"user {name!r} already exists")
            cur.execute("INSERT INTO tokens (hash, user_id, created) VALUES (%s, %s, %s)",
                        (hash_token(token), row[0], now))
            cur.execute(_BUMP)
        return token

    def new_token(self, name: str) -> str:
        token = new_secret("exv_")
        with self.db.tx() as cur:
            uid = self._active_id(cur, name)
            cur.execute("INSERT INTO tokens (hash, user_id, created) VALUES (%s, %s, %s)",
                        (hash_token(token), uid, int(time.time())))
            cur.execute(_BUMP)
        return token

    def remove_user(self, name: str) -> None:
        """Deactivate and anonymise: tokens, password, sessions, roles and memberships go; commits stay."""
        with self.db.tx() as cur:
            cur.execute("SELECT id FROM users WHERE name = %s AND active FOR UPDATE", (name,))
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"no active user {name!r}")
            uid = row[0]
            for q in ("DELETE FROM tokens WHERE user_id = %s", "DELETE FROM passwords WHERE user_id = %s",
                      "DELETE FROM sessions WHERE user_id = %s", "DELETE FROM team_members WHERE user_id = %s"):
                cur.execute(q, (uid,))
            cur.execute("DELETE FROM roles WHERE kind = 'user' AND who = %s", (name,))
            cur.execute("UPDATE users SET active = false, site_admin = false, name = %s WHERE id = %s",
                        (f"deleted-{uid}", uid))
            cur.execute(_BUMP)

    def users(self) -> list[dict[str, object]]:
        with self.db.tx() as cur:
            cur.execute("SELECT name, active, site_admin FROM users ORDER BY name")
            rows = cur.fetchall()
        return [{"name": n, "active": bool(a), "site_admin": bool(s)} for n, a, s in rows]

    def version(self) -> int:
        with self.db.tx() as cur:
            cur.execute("SELECT v FROM access_version")
            return int(cur.fetchone()[0])

    def authenticate(self, token: str) -> User | None:
        with self.db.tx() as cur:
            cur.execute("SELECT u.id, u.name, u.site_admin FROM tokens t JOIN users u ON u.id = t.user_id "
                        "WHERE t.hash = %s AND u.active", (hash_token(token),))
            row = cur.fetchone()
        return User(int(row[0]), row[1], bool(row[2])) if row else None

    # --- passwords ---
    def set_password(self, name: str, password: str) -> None:
        """Set (or replace) ``name``'s password; the user's existing browser sessions end."""
        check_password_text(password)
        from ..access import _hasher

        hashed = _hasher().hash(password)
        with self.db.tx() as cur:
            uid = self._active_id(cur, name)
            cur.execute("INSERT INTO passwords (user_id, hash, updated) VALUES (%s, %s, %s) ON CONFLICT (user_id) "
                        "DO UPDATE SET hash = EXCLUDED.hash, updated = EXCLUDED.updated", (uid, hashed, int(time.time())))
            cur.execute("DELETE FROM sessions WHERE user_id = %s", (uid,))
            cur.execute(_BUMP)

    def check_password(self, name: str, password: str) -> User | None:
        with self.db.tx() as cur:
            cur.execute("SELECT u.id, u.name, u.site_admin, p.hash FROM users u JOIN passwords p ON p.user_id = u.id "
                        "WHERE u.name = %s AND u.active", (name,))
            row = cur.fetchone()
        good, rehashed = verify_password(row[3] if row else None, password)
        if not good or row is None:
            return None
        if rehashed is not None:
            with self.db.tx() as cur:  # only if it is still the hash verified (a new password wins)
                cur.execute("UPDATE passwords SET hash = %s WHERE user_id = %s AND hash = %s", (rehashed, row[0], row[3]))
        return User(int(row[0]), row[1], bool(row[2]))

    def has_password(self, name: str) -> bool:
        with self.db.tx() as cur:
            cur.execute("SELECT 1 FROM passwords p JOIN users u ON u.id = p.user_id WHERE u.name = %s AND u.active",
                        (name,))
            return cur.fetchone() is not None

    # --- browser sessions ---
    def create_session(self, user: User, idle: int, absolute: int) -> tuple[str, Session]:
        secret = new_secret("exs_")
        csrf = new_secret("")
        now = int(time.time())
        with self.db.tx() as cur:
            cur.execute("DELETE FROM sessions WHERE created <= %s OR last_seen <= %s", (now - absolute, now - idle))
            cur.execute("INSERT INTO sessions (hash, user_id, csrf, created, last_seen) VALUES (%s, %s, %s, %s, %s)",
                        (hash_session(secret), user.id, csrf, now, now))
        return secret, Session(user, csrf, min(now + idle, now + absolute))

    def session(self, secret: str, idle: int, absolute: int) -> Session | None:
        key = hash_session(secret)
        now = int(time.time())
        with self.db.tx() as cur:
            cur.execute("SELECT u.id, u.name, u.site_admin, s.csrf, s.created, s.last_seen FROM sessions s "
                        "JOIN users u ON u.id = s.user_id WHERE s.hash = %s AND u.active", (key,))
            row = cur.fetchone()
            if row is None:
                return None
            uid, name, admin, csrf, created, last_seen = row
            ended, touch = expiry(now, created, last_seen, idle, absolute)
            if ended:
                cur.execute("DELETE FROM sessions WHERE hash = %s", (key,))
                return None
            if touch:  # never backwards: another process may have recorded a later use
                cur.execute("UPDATE sessions SET last_seen = GREATEST(last_seen, %s) WHERE hash = %s", (now, key))
                last_seen = now
        return Session(User(int(uid), name, bool(admin)), csrf, min(last_seen + idle, created + absolute))

    def end_session(self, secret: str) -> None:
        with self.db.tx() as cur:
            cur.execute("DELETE FROM sessions WHERE hash = %s", (hash_session(secret),))

    # --- sign-in rate limits ---
    def login_blocked(self, keys: dict[str, int], window: int) -> int:
        now = int(time.time())
        wait = 0
        with self.db.tx() as cur:
            cur.execute("SELECT key, count, first FROM login_failures WHERE key = ANY(%s)",
                        ([k.encode() for k in keys],))
            for key, count, first in cur.fetchall():
                if first + window > now and count >= keys[bytes(key).decode()]:
                    wait = max(wait, first + window - now)
        return wait

    def login_failed(self, keys: list[str], window: int) -> None:
        now = int(time.time())
        with self.db.tx() as cur:
            cur.execute("DELETE FROM login_failures WHERE first <= %s", (now - window,))
            for key in sorted(keys):  # one order in every process: no deadlock between two failures
                cur.execute("INSERT INTO login_failures (key, count, first) VALUES (%s, 1, %s) "
                            "ON CONFLICT (key) DO UPDATE SET count = login_failures.count + 1", (key.encode(), now))

    def login_succeeded(self, key: str) -> None:
        with self.db.tx() as cur:
            cur.execute("DELETE FROM login_failures WHERE key = %s", (key.encode(),))

    # --- teams ---
    def add_team(self, team: str) -> None:
        check_name(team, "team name")
        with self.db.tx() as cur:
            cur.execute("INSERT INTO teams (name) VALUES (%s) ON CONFLICT DO NOTHING", (team,))
            cur.execute(_BUMP)

    def team_add(self, team: str, user: str) -> None:
        with self.db.tx() as cur:
            cur.execute("SELECT 1 FROM teams WHERE name = %s", (team,))
            if cur.fetchone() is None:
                raise NotFound(f"no team {team!r}")
            uid = self._active_id(cur, user)
            cur.execute("INSERT INTO team_members (team, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING", (team, uid))
            cur.execute(_BUMP)

    def team_remove(self, team: str, user: str) -> None:
        with self.db.tx() as cur:
            cur.execute("DELETE FROM team_members WHERE team = %s AND user_id = (SELECT id FROM users WHERE name = %s)",
                        (team, user))
            cur.execute(_BUMP)

    # --- roles ---
    def grant(self, repo: str, who: str, role: str, team: bool = False) -> None:
        kind = check_grant(who, role, team)
        with self.db.tx() as cur:
            if team:
                cur.execute("SELECT 1 FROM teams WHERE name = %s", (who,))
            else:
                cur.execute("SELECT 1 FROM users WHERE name = %s AND active", (who,))
            if cur.fetchone() is None:
                raise NotFound(f"no {kind} {who!r}")
            if role == "none":
                cur.execute("DELETE FROM roles WHERE repo = %s AND kind = %s AND who = %s", (repo, kind, who))
            else:
                cur.execute("INSERT INTO roles (repo, kind, who, role) VALUES (%s, %s, %s, %s) ON CONFLICT "
                            "(repo, kind, who) DO UPDATE SET role = EXCLUDED.role", (repo, kind, who, role))
            cur.execute(_BUMP)

    def role(self, repo: str, user: User | None) -> str | None:
        best: str | None = None
        with self.db.tx() as cur:
            if user is not None:
                cur.execute("SELECT role FROM roles WHERE repo = %s AND ((kind = 'user' AND who = %s) OR "
                            "(kind = 'team' AND who IN (SELECT team FROM team_members WHERE user_id = %s)))",
                            (repo, user.name, user.id))
                for (r,) in cur.fetchall():
                    if best is None or RANK[r] > RANK[best]:
                        best = r
                if user.site_admin:
                    best = "admin"
            if best is None:
                cur.execute("SELECT anonymous_read FROM repo_settings WHERE repo = %s", (repo,))
                row = cur.fetchone()
                if row and row[0]:
                    best = "read"
        return best

    def roles(self, repo: str) -> list[dict[str, str]]:
        with self.db.tx() as cur:
            cur.execute("SELECT kind, who, role FROM roles WHERE repo = %s ORDER BY kind, who", (repo,))
            rows = cur.fetchall()
        return [{"kind": k, "who": w, "role": r} for k, w, r in rows]

    # --- settings ---
    def settings(self, repo: str) -> dict[str, Any]:
        with self.db.tx() as cur:
            return settings_row(self._settings_row(cur, repo))

    def _settings_row(self, cur: Any, repo: str, lock: bool = False) -> tuple[Any, ...] | None:
        cur.execute("SELECT anonymous_read, protected, required_approvals, mode, opinions FROM repo_settings "
                    "WHERE repo = %s" + (" FOR UPDATE" if lock else ""), (repo,))
        row: tuple[Any, ...] | None = cur.fetchone()
        return row

    def set_settings(self, repo: str, anonymous_read: bool | None = None, protected: list[str] | None = None,
                     required_approvals: int | None = None, mode: str | None = None,
                     opinions: int | None = None) -> None:
        """As the SQLite store's; the read and the write are one transaction (the row locked), so two
        administrators changing different settings at once both keep their change."""
        merged_settings(settings_row(None), anonymous_read, protected, required_approvals, mode, opinions)  # checks
        with self.db.tx() as cur:
            cur.execute("INSERT INTO repo_settings (repo) VALUES (%s) ON CONFLICT DO NOTHING", (repo,))
            new = merged_settings(settings_row(self._settings_row(cur, repo, lock=True)), anonymous_read, protected,
                                  required_approvals, mode, opinions)
            cur.execute("UPDATE repo_settings SET anonymous_read = %s, protected = %s, required_approvals = %s, "
                        "mode = %s, opinions = %s WHERE repo = %s",
                        (bool(new["anonymous_read"]), ",".join(new["protected"]), new["required_approvals"],
                         new["mode"], new["opinions"], repo))
            cur.execute(_BUMP)
