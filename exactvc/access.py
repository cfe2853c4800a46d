"""Users, tokens, teams and per-repository roles of a server, in SQLite under the server ROOT.

Roles, each including the ones before it:

* ``read``      clone, fetch, read the API;
* ``annotate``  push to their own branches ``users/NAME/*`` (force allowed there) and to
                branches that are not protected (fast-forward only);
* ``maintain``  push to protected branches (``main`` by default), force-push, delete branches;
* ``admin``     grant roles and change the repository's settings.

Tokens are random, shown once, and stored as their blake3 hash. Passwords (for signing in from a
browser) are stored as argon2id hashes; browser sessions, like tokens, as the blake3 hash of their
random secret, with an idle and an absolute lifetime. A removed user's password and sessions go with
their tokens.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import blake3

from .errors import Conflict, InvalidInput, NotFound
from .sqlitedb import SqliteDB

ROLES = ("read", "annotate", "maintain", "admin")
RANK = {r: i + 1 for i, r in enumerate(ROLES)}
DB_NAME = ".exact-server.sqlite"
DEFAULT_PROTECTED = ("main",)
MODES = ("cooperative", "blind", "second-opinion")  # annotation modes (docs/collaboration.md)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, active INTEGER NOT NULL,
    site_admin INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS teams (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS team_members (team TEXT NOT NULL, user_id INTEGER NOT NULL, PRIMARY KEY (team, user_id));
CREATE TABLE IF NOT EXISTS roles (repo TEXT NOT NULL, kind TEXT NOT NULL, who TEXT NOT NULL, role TEXT NOT NULL,
    PRIMARY KEY (repo, kind, who));
CREATE TABLE IF NOT EXISTS passwords (user_id INTEGER PRIMARY KEY, hash TEXT NOT NULL, updated INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL, csrf TEXT NOT NULL,
    created INTEGER NOT NULL, last_seen INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);
CREATE TABLE IF NOT EXISTS login_failures (key TEXT PRIMARY KEY, count INTEGER NOT NULL, first INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS repo_settings (repo TEXT PRIMARY KEY, anonymous_read INTEGER NOT NULL DEFAULT 0,
    protected TEXT NOT NULL DEFAULT 'main', required_approvals INTEGER NOT NULL DEFAULT 0,
    mode TEXT NOT NULL DEFAULT 'cooperative', opinions INTEGER NOT NULL DEFAULT 1);
"""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    site_admin: bool = False


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    expires: int  # unix seconds: the earlier of the idle and the absolute limit


MIN_PASSWORD = 8
MAX_PASSWORD = 1024
TOUCH_EVERY = 60  # seconds: a session's last use is written at most this often (writes invalidate caches)


def hash_token(token: str) -> str:
    return blake3.blake3(b"exactvc:token\0" + token.encode()).hexdigest()


def hash_session(secret: str) -> str:
    return blake3.blake3(b"exactvc:session\0" + secret.encode()).hexdigest()


def _hasher() -> Any:
    from argon2 import PasswordHasher  # imported when needed: the CLI's start-up stays fast

    return PasswordHasher()


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    """A hash to verify against for unknown users, so that they take as long as known ones."""
    if not _DUMMY:
        _DUMMY.append(_hasher().hash(secrets.token_urlsafe(16)))
    return _DUMMY[0]


def check_password_text(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password too short (at least {MIN_PASSWORD} characters)")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"password too long (at most {MAX_PASSWORD} characters)")
    return password


def check_name(name: str, what: str = "name") -> str:
    ok = name and len(name) <= 64 and all(c.isalnum() or c in "-_." for c in name) and not name.startswith(".")
    if not ok:
        raise InvalidInput(f"invalid {what} {name!r} (letters, digits, - _ . ; at most 64)")
    return name


class Access(Protocol):
    """The interface of a server's access store: :class:`AccessStore` (SQLite under ROOT) and
    ``exactvc.backends.postgres_access.PgAccessStore`` (PostgreSQL) implement it with the same semantics.
    ``version()`` changes whenever users, tokens, passwords, teams, roles or settings change (in any process):
    callers cache answers derived from them (tokens, roles) under it."""

    def add_user(self, name: str, site_admin: bool = False) -> str: ...
    def new_token(self, name: str) -> str: ...
    def remove_user(self, name: str) -> None: ...
    def users(self) -> list[dict[str, object]]: ...
    def version(self) -> int: ...
    def authenticate(self, token: str) -> User | None: ...
    def set_password(self, name: str, password: str) -> None: ...
    def check_password(self, name: str, password: str) -> User | None: ...
    def has_password(self, name: str) -> bool: ...
    def create_session(self, user: User, idle: int, absolute: int) -> tuple[str, Session]: ...
    def session(self, secret: str, idle: int, absolute: int) -> Session | None: ...
    def end_session(self, secret: str) -> None: ...
    def login_blocked(self, keys: dict[str, int], window: int) -> int: ...
    def login_failed(self, keys: list[str], window: int) -> None: ...
    def login_succeeded(self, key: str) -> None: ...
    def add_team(self, team: str) -> None: ...
    def team_add(self, team: str, user: str) -> None: ...
    def team_remove(self, team: str, user: str) -> None: ...
    def grant(self, repo: str, who: str, role: str, team: bool = False) -> None: ...
    def role(self, repo: str, user: User | None) -> str | None: ...
    def roles(self, repo: str) -> list[dict[str, str]]: ...
    def settings(self, repo: str) -> dict[str, Any]: ...
    def set_settings(self, repo: str, anonymous_read: bool | None = None, protected: list[str] | None = None,
                     required_approvals: int | None = None, mode: str | None = None,
                     opinions: int | None = None) -> None: ...


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def check_grant(who: object, role: object, team: object) -> str:
    """The kind (user, team) of a valid grant; InvalidInput otherwise."""
    if not isinstance(who, str) or not who:
        raise InvalidInput("who must be a user or team name")
    if not isinstance(team, bool):
        raise InvalidInput(f"team must be true or false, not {team!r}")
    if not isinstance(role, str) or role not in ROLES and role != "none":
        raise InvalidInput(f"unknown role {role!r} (one of {', '.join(ROLES)}, or none)")
    return "team" if team else "user"


DEFAULT_SETTINGS: dict[str, Any] = {"anonymous_read": False, "protected": list(DEFAULT_PROTECTED),
                                    "required_approvals": 0, "mode": "cooperative", "opinions": 1}


def merged_settings(cur: dict[str, Any], anonymous_read: bool | None, protected: list[str] | None,
                    required_approvals: int | None, mode: str | None, opinions: int | None) -> dict[str, Any]:
    """``cur`` with the given changes, each checked; values of the wrong type, or branch names that are not
    plain branch names, are refused (InvalidInput) before anything is written."""
    from .refs import check_short_name

    if required_approvals is not None and (not isinstance(required_approvals, int) or
                                           isinstance(required_approvals, bool) or
                                           not 0 <= required_approvals <= 100):
        raise InvalidInput(f"required_approvals must be a whole number from 0 to 100, not {required_approvals!r}")
    if mode is not None and mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if opinions is not None and (not isinstance(opinions, int) or isinstance(opinions, bool) or
                                 not 1 <= opinions <= 20):
        raise InvalidInput(f"opinions must be a whole number from 1 to 20, not {opinions!r}")
    if anonymous_read is not None and not isinstance(anonymous_read, bool):
        raise InvalidInput(f"anonymous_read must be true or false, not {anonymous_read!r}")
    if protected is not None:
        if not isinstance(protected, list) or not all(isinstance(p, str) for p in protected):
            raise InvalidInput("protected must be a list of branch names")
        for p in protected:
            check_short_name(p, "protected branch")
            if "," in p:
                raise InvalidInput(f"invalid protected branch name {p!r}")
        protected = list(dict.fromkeys(protected))
    return {"anonymous_read": cur["anonymous_read"] if anonymous_read is None else anonymous_read,
            "protected": cur["protected"] if protected is None else protected,
            "required_approvals": cur["required_approvals"] if required_approvals is None else required_approvals,
            "mode": cur["mode"] if mode is None else mode,
            "opinions": cur["opinions"] if opinions is None else opinions}


def settings_row(row: tuple[Any, ...] | None) -> dict[str, Any]:
    """Settings from a row (anonymous_read, protected, required_approvals, mode, opinions); defaults for None."""
    if row is None:
        return {**DEFAULT_SETTINGS, "protected": list(DEFAULT_PROTECTED)}
    return {"anonymous_read": bool(row[0]), "protected": [p for p in row[1].split(",") if p],
            "required_approvals": int(row[2]), "mode": str(row[3]), "opinions": int(row[4])}


def verify_password(stored: str | None, password: str) -> tuple[bool, str | None]:
    """(password matches, a new hash to store or None). ``stored`` None (unknown user, no password) costs
    the same verification against a dummy hash and never matches (no user-name enumeration by timing)."""
    from argon2.exceptions import InvalidHashError, VerificationError

    ph = _hasher()
    try:
        ph.verify(stored if stored is not None else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False, None
    if stored is None:
        return False, None
    return True, ph.hash(password) if ph.check_needs_rehash(stored) else None


def expiry(now: int, created: int, last_seen: int, idle: int, absolute: int) -> tuple[bool, bool]:
    """(the session has ended, its last use should be recorded now)."""
    if now >= created + absolute or now >= last_seen + idle:
        return True, False
    return False, now - last_seen >= min(TOUCH_EVERY, max(1, idle // 10))


class AccessStore(SqliteDB):
    def __init__(self, root: Path) -> None:
        super().__init__(root / DB_NAME, _SCHEMA)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        cols = {r[1] for r in conn.execute("PRAGMA table_info(repo_settings)")}
        if "required_approvals" not in cols:  # databases made before pull requests
            try:
                conn.execute("ALTER TABLE repo_settings ADD COLUMN required_approvals INTEGER NOT NULL DEFAULT 0")
            except sqlite3.OperationalError:  # another process added it meanwhile
                pass
        for col, decl in (("mode", "TEXT NOT NULL DEFAULT 'cooperative'"), ("opinions", "INTEGER NOT NULL DEFAULT 1")):
            if col not in cols:  # databases made before annotation modes
                try:
                    conn.execute(f"ALTER TABLE repo_settings ADD COLUMN {col} {decl}")
                except sqlite3.OperationalError:
                    pass

    def _before_commit(self, conn: sqlite3.Connection) -> None:
        if conn.total_changes != getattr(self._local, "changes", 0):
            self._local.changes = conn.total_changes
            self._own_writes = getattr(self, "_own_writes", 0) + 1  # data_version ignores our own commits

    # --- users ---
    def add_user(self, name: str, site_admin: bool = False) -> str:
        check_name(name, "user name")
        token = new_secret("exv_")
        with self._db() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"user {name!r} already exists")
            cur = db.execute("INSERT INTO users (name, active, site_admin, created) VALUES (?, 1, ?, ?)",
                             (name, int(site_admin), int(time.time())))
            db.execute("INSERT INTO tokens (hash, user_id, created) VALUES (?, ?, ?)",
                       (hash_token(token), cur.lastrowid, int(time.time())))
        return token

    def new_token(self, name: str) -> str:
        token = "exv_" + secrets.token_urlsafe(32)
        with self._db() as db:
            row = db.execute("SELECT id FROM users WHERE name = ? AND active = 1", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no active user {name!r}")
            db.execute("INSERT INTO tokens (hash, user_id, created) VALUES (?, ?, ?)",
                       (hash_token(token), row[0], int(time.time())))
        return token

    def remove_user(self, name: str) -> None:
        """Deactivate and anonymise: tokens and roles go, the commits they made stay."""
        with self._db() as db:
            row = db.execute("SELECT id FROM users WHERE name = ? AND active = 1", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no active user {name!r}")
            uid = row[0]
            db.execute("DELETE FROM tokens WHERE user_id = ?", (uid,))
            db.execute("DELETE FROM passwords WHERE user_id = ?", (uid,))
            db.execute("DELETE FROM sessions WHERE user_id = ?", (uid,))
            db.execute("DELETE FROM roles WHERE kind = 'user' AND who = ?", (name,))
            db.execute("DELETE FROM team_members WHERE user_id = ?", (uid,))
            db.execute("UPDATE users SET active = 0, site_admin = 0, name = ? WHERE id = ?", (f"deleted-{uid}", uid))

    def users(self) -> list[dict[str, object]]:
        with self._db() as db:
            rows = db.execute("SELECT name, active, site_admin FROM users ORDER BY name").fetchall()
        return [{"name": n, "active": bool(a), "site_admin": bool(s)} for n, a, s in rows]

    def version(self) -> int:
        """Changes whenever another connection commits: cached answers stay right across processes."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with self._db():
                pass
            conn = self._local.conn
        v: int = conn.execute("PRAGMA data_version").fetchone()[0] + getattr(self, "_own_writes", 0)
        return v

    def authenticate(self, token: str) -> User | None:
        key = hash_token(token)
        # per thread: data_version values belong to one connection and are not comparable across them
        cache: dict[str, tuple[int, User | None]] = self._local.__dict__.setdefault("auth_cache", {})
        ver = self.version()
        hit = cache.get(key)
        if hit is not None and hit[0] == ver:
            return hit[1]
        user = self._authenticate(key)
        if len(cache) > 10000:
            cache.clear()
        cache[key] = (ver, user)
        return user

    def _authenticate(self, key: str) -> User | None:
        with self._db() as db:
            row = db.execute(
                "SELECT u.id, u.name, u.site_admin FROM tokens t JOIN users u ON u.id = t.user_id "
                "WHERE t.hash = ? AND u.active = 1", (key,)).fetchone()
        return User(row[0], row[1], bool(row[2])) if row else None

    # --- passwords ---
    def set_password(self, name: str, password: str) -> None:
        """Set (or replace) ``name``'s password; the user's existing browser sessions end."""
        check_password_text(password)
        hashed = _hasher().hash(password)
        with self._db() as db:
            row = db.execute("SELECT id FROM users WHERE name = ? AND active = 1", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no active user {name!r}")
            db.execute("INSERT OR REPLACE INTO passwords (user_id, hash, updated) VALUES (?, ?, ?)",
                       (row[0], hashed, int(time.time())))
            db.execute("DELETE FROM sessions WHERE user_id = ?", (row[0],))

    def check_password(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None. Unknown users, users without a password and
        wrong passwords cost the same hash verification (no user-name enumeration by timing)."""
        with self._db() as db:
            row = db.execute(
                "SELECT u.id, u.name, u.site_admin, p.hash FROM users u JOIN passwords p ON p.user_id = u.id "
                "WHERE u.name = ? AND u.active = 1", (name,)).fetchone()
        good, rehashed = verify_password(row[3] if row else None, password)
        if not good or row is None:
            return None
        if rehashed is not None:
            with self._db() as db:
                db.execute("UPDATE passwords SET hash = ? WHERE user_id = ?", (rehashed, row[0]))
        return User(row[0], row[1], bool(row[2]))

    def has_password(self, name: str) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM passwords p JOIN users u ON u.id = p.user_id "
                              "WHERE u.name = ? AND u.active = 1", (name,)).fetchone() is not None

    # --- browser sessions ---
    def create_session(self, user: User, idle: int, absolute: int) -> tuple[str, Session]:
        """A new session for ``user``: its secret (for the cookie; stored only as a hash) and its state."""
        secret = "exs_" + secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = int(time.time())
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE created <= ? OR last_seen <= ?", (now - absolute, now - idle))
            db.execute("INSERT INTO sessions (hash, user_id, csrf, created, last_seen) VALUES (?, ?, ?, ?, ?)",
                       (hash_session(secret), user.id, csrf, now, now))
        return secret, Session(user, csrf, min(now + idle, now + absolute))

    def session(self, secret: str, idle: int, absolute: int) -> Session | None:
        """The live session of this secret (its last use recorded), or None (unknown, ended or expired)."""
        key = hash_session(secret)
        now = int(time.time())
        with self._db() as db:
            row = db.execute(
                "SELECT u.id, u.name, u.site_admin, s.csrf, s.created, s.last_seen FROM sessions s "
                "JOIN users u ON u.id = s.user_id WHERE s.hash = ? AND u.active = 1", (key,)).fetchone()
        if row is None:
            return None
        uid, name, admin, csrf, created, last_seen = row
        ended, touch = expiry(now, created, last_seen, idle, absolute)
        if ended:
            self.end_session(secret)
            return None
        if touch:
            with self._db() as db:
                db.execute("UPDATE sessions SET last_seen = ? WHERE hash = ?", (now, key))
            last_seen = now
        return Session(User(uid, name, bool(admin)), csrf, min(last_seen + idle, created + absolute))

    def end_session(self, secret: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE hash = ?", (hash_session(secret),))

    # --- sign-in rate limits ---
    def login_blocked(self, keys: dict[str, int], window: int) -> int:
        """Seconds until another attempt is allowed (0: now) for the most limited of ``keys`` (key -> the
        number of failures allowed per ``window`` seconds)."""
        now = int(time.time())
        wait = 0
        with self._db() as db:
            for key, limit in keys.items():
                row = db.execute("SELECT count, first FROM login_failures WHERE key = ?", (key,)).fetchone()
                if row and row[1] + window > now and row[0] >= limit:
                    wait = max(wait, row[1] + window - now)
        return wait

    def login_failed(self, keys: list[str], window: int) -> None:
        now = int(time.time())
        with self._db() as db:
            db.execute("DELETE FROM login_failures WHERE first <= ?", (now - window,))
            for key in keys:
                db.execute("INSERT INTO login_failures (key, count, first) VALUES (?, 1, ?) "
                           "ON CONFLICT (key) DO UPDATE SET count = count + 1", (key, now))

    def login_succeeded(self, key: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM login_failures WHERE key = ?", (key,))

    # --- teams ---
    def add_team(self, team: str) -> None:
        check_name(team, "team name")
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO teams (name) VALUES (?)", (team,))

    def team_add(self, team: str, user: str) -> None:
        with self._db() as db:
            if not db.execute("SELECT 1 FROM teams WHERE name = ?", (team,)).fetchone():
                raise NotFound(f"no team {team!r}")
            row = db.execute("SELECT id FROM users WHERE name = ? AND active = 1", (user,)).fetchone()
            if row is None:
                raise NotFound(f"no active user {user!r}")
            db.execute("INSERT OR IGNORE INTO team_members (team, user_id) VALUES (?, ?)", (team, row[0]))

    def team_remove(self, team: str, user: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM team_members WHERE team = ? AND user_id = "
                       "(SELECT id FROM users WHERE name = ?)", (team, user))

    # --- roles ---
    def grant(self, repo: str, who: str, role: str, team: bool = False) -> None:
        kind = check_grant(who, role, team)
        with self._db() as db:
            table = "teams" if team else "users"
            col = "name"
            extra = "" if team else " AND active = 1"
            if not db.execute(f"SELECT 1 FROM {table} WHERE {col} = ?{extra}", (who,)).fetchone():
                raise NotFound(f"no {kind} {who!r}")
            if role == "none":
                db.execute("DELETE FROM roles WHERE repo = ? AND kind = ? AND who = ?", (repo, kind, who))
            else:
                db.execute("INSERT OR REPLACE INTO roles (repo, kind, who, role) VALUES (?, ?, ?, ?)",
                           (repo, kind, who, role))

    def role(self, repo: str, user: User | None) -> str | None:
        """The strongest role ``user`` has on ``repo`` (None: no access; anonymous read if enabled)."""
        best: str | None = None
        with self._db() as db:
            if user is not None:
                rows = db.execute(
                    "SELECT role FROM roles WHERE repo = ? AND ((kind = 'user' AND who = ?) OR (kind = 'team' AND "
                    "who IN (SELECT team FROM team_members WHERE user_id = ?)))", (repo, user.name, user.id)
                ).fetchall()
                for (r,) in rows:
                    if best is None or RANK[r] > RANK[best]:
                        best = r
                if user.site_admin:
                    best = "admin"
            if best is None:
                row = db.execute("SELECT anonymous_read FROM repo_settings WHERE repo = ?", (repo,)).fetchone()
                if row and row[0]:
                    best = "read"
        return best

    def roles(self, repo: str) -> list[dict[str, str]]:
        with self._db() as db:
            rows = db.execute("SELECT kind, who, role FROM roles WHERE repo = ? ORDER BY kind, who", (repo,)).fetchall()
        return [{"kind": k, "who": w, "role": r} for k, w, r in rows]

    # --- settings ---
    def settings(self, repo: str) -> dict[str, Any]:
        with self._db() as db:
            row = db.execute("SELECT anonymous_read, protected, required_approvals, mode, opinions FROM repo_settings "
                             "WHERE repo = ?", (repo,)).fetchone()
        return settings_row(row)

    def set_settings(self, repo: str, anonymous_read: bool | None = None, protected: list[str] | None = None,
                     required_approvals: int | None = None, mode: str | None = None,
                     opinions: int | None = None) -> None:
        """Change a repository's settings; values of the wrong type, or branch names that are not plain
        branch names (``heads/main``, ``refs/heads/main``), are refused and nothing changes.
        ``required_approvals``: approvals a pull request into a protected branch needs (0-100)."""
        new = merged_settings(self.settings(repo), anonymous_read, protected, required_approvals, mode, opinions)
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO repo_settings (repo, anonymous_read, protected, required_approvals, "
                       "mode, opinions) VALUES (?, ?, ?, ?, ?, ?)",
                       (repo, int(bool(new["anonymous_read"])), ",".join(new["protected"]), new["required_approvals"],
                        new["mode"], new["opinions"]))


def may_push(role: str | None, user: User | None, branch_ref: str, protected: list[str], force: bool,
             delete: bool) -> str | None:
    """None if allowed, else the reason it is refused."""
    if role is None or user is None:
        return "authentication required to push"
    if branch_ref.startswith(("runs/", "runtags/", "artefacts/")):  # experiments: annotators record them
        if RANK[role] >= RANK["maintain"]:
            return None
        if RANK[role] < RANK["annotate"]:
            return f"role {role!r} cannot push"
        return "only maintainers may delete runs, aliases or artefacts" if delete else None
    if not branch_ref.startswith("heads/") and not branch_ref.startswith("tags/"):
        return f"cannot push to {branch_ref}"
    name = branch_ref.split("/", 1)[1]
    own = branch_ref.startswith(f"heads/users/{user.name}/")
    if RANK[role] >= RANK["maintain"]:
        return None
    if RANK[role] < RANK["annotate"]:
        return f"role {role!r} cannot push"
    if own:
        return None
    if branch_ref.startswith("heads/users/"):
        return f"branch {name} belongs to another user"
    if branch_ref.startswith("tags/"):
        return "annotators cannot push tags"
    if name in protected:
        return f"branch {name} is protected: maintainers only"
    if force or delete:
        return "only maintainers may force-push or delete shared branches"
    return None


def ref_visible(mode: str, role: str | None, user: User | None, ref: str, protected: list[str]) -> bool:
    """The one ref-visibility rule: may this caller see ``ref`` (``heads/...``, ``tags/...``)?

    In blind mode, callers below ``maintain`` see only their own branches ``users/NAME/*``, the protected
    (shared) branches and tags; every other ref, and so every object only it reaches, is hidden.
    """
    if mode != "blind" or (role is not None and RANK[role] >= RANK["maintain"]):
        return True
    if ref.startswith("tags/"):
        return True
    if not ref.startswith("heads/"):
        return False
    name = ref[len("heads/"):]
    if user is not None and name.startswith(f"users/{user.name}/"):
        return True
    return not name.startswith("users/") and name in protected
