"""Which backends a server uses: one setting each, from the command line or ``ROOT/backends.json``.

``objects``: None (each repository's own ``.exact/objects``) or ``s3://BUCKET/PREFIX``;
``db``: None (files and SQLite under ROOT) or ``postgresql://...``; ``cache_bytes``: the local cache of
immutable packs and indexes of each repository on S3 (under ``ROOT/.cache/objects/NAME``, default 1 GiB).
Command-line values win over the file. S3 endpoint and credentials come only from the standard
environment variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``): never from
here, never in a message.

``Backends.open_repository`` is the one place a server repository is opened: every server request, the
``exact server ...`` administration commands and ``exact server migrate`` go through it.

The server's stores are chosen here and nowhere else: with a database, the refs of every repository and
all of the server's own data (users, tokens, sessions, teams, roles, settings, pull requests, screening
progress, EXACT ids) live in it and nothing of it is written under ROOT; without one, SQLite files under
ROOT hold it (the embedded default).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput
from ..refs import RefStore
from ..repo import EXACT_DIR, Repository

if TYPE_CHECKING:
    from ..access import Access
    from ..exact_compat import CompatIds
    from ..pulls.store import Pulls
    from ..screening import ScreeningStore

CONFIG_FILE = "backends.json"
CACHE_DIR = ".cache/objects"  # under ROOT; not a repository name (names never start with ".")
DEFAULT_CACHE = 1 << 30
_KEYS = {"objects", "db", "cache_bytes"}


@dataclass
class Backends:
    objects: str | None = None
    db: str | None = None
    cache_bytes: int = DEFAULT_CACHE
    lock_timeout: float = 30.0  # seconds a repository lock on the database is waited for
    _db: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, root: str | Path, objects: str | None = None, db: str | None = None) -> Backends:
        """The backends of server ROOT: the given values over ROOT/backends.json. Without given values, one
        instance per ROOT and process (:func:`of_server_root`): one database pool, however often asked."""
        if objects is None and db is None:
            shared = of_server_root(Path(root))
            if shared is not None:
                return shared
        return cls._read(root, objects, db)

    @classmethod
    def _read(cls, root: str | Path, objects: str | None = None, db: str | None = None) -> Backends:
        f = Path(root) / CONFIG_FILE
        conf: dict[str, Any] = {}
        if f.is_file():
            try:
                conf = json.loads(f.read_text())
            except ValueError as e:
                raise InvalidInput(f"{CONFIG_FILE}: not JSON ({e})") from None
            if not isinstance(conf, dict):
                raise InvalidInput(f"{CONFIG_FILE}: must be a JSON object")
            extra = sorted(set(conf) - _KEYS)
            if extra:
                raise InvalidInput(f"{CONFIG_FILE}: unknown setting {extra[0]!r} (known: {', '.join(sorted(_KEYS))})")
        cache = conf.get("cache_bytes", DEFAULT_CACHE)
        if not isinstance(cache, int) or isinstance(cache, bool) or cache < 0:
            raise InvalidInput(f"{CONFIG_FILE}: cache_bytes must be a whole number of bytes")
        b = cls(objects or conf.get("objects") or None, db or conf.get("db") or None, cache)
        if b.objects is not None and (not isinstance(b.objects, str) or not b.objects.startswith("s3://")
                                      or len(b.objects) <= 5 or b.objects[5] == "/"):
            raise InvalidInput(f"--objects must be s3://BUCKET/PREFIX, not {str(b.objects)[:80]!r}")
        if b.db is not None and (not isinstance(b.db, str) or not b.db.startswith(("postgresql://", "postgres://"))):
            from .postgres import redact

            raise InvalidInput(f"--db must be a postgresql:// URL, not {redact(str(b.db))[:80]!r}")
        return b

    @property
    def embedded(self) -> bool:
        """Both backends local (files and SQLite under ROOT): the default."""
        return self.objects is None and self.db is None

    def describe(self) -> str:
        """Where objects and refs live, for logs (no password, no credentials)."""
        from .postgres import redact

        objs = self.objects or "each repository's folder"
        db = redact(self.db).split("@")[-1] if self.db else "files under ROOT"
        return f"objects: {objs}; refs: {db}"

    def database(self) -> Any:
        """The shared PostgreSQL pool (opened on first use; one per process)."""
        from .postgres import Database

        with self._lock:
            if self._db is None:
                self._db = Database(str(self.db))
            return self._db

    def close(self) -> None:
        """Close the database pool if one was opened (a server shutting down, a test ending)."""
        with self._lock:
            db, self._db = self._db, None
        if db is not None:
            db.close()

    def refs_for(self, repo: str) -> RefStore | None:
        """The refs of repository ``repo`` in the shared database, or None for the repository's own files."""
        if self.db is None:
            return None
        from .postgres_refs import PgRefs

        return PgRefs(self.database(), repo)

    def job_store(self, root: Path) -> Any:
        """Where the server's background jobs live: ``ROOT/.exact-jobs.sqlite``, or the shared database."""
        if self.db is None:
            from ..jobs import SqliteJobStore

            return SqliteJobStore(Path(root))
        from .postgres_jobs import PgJobStore

        return PgJobStore(self.database)  # the pool opens on first use (after a fork, not before)

    def object_store(self, root: Path, repo: str) -> Any:
        """The object store of ``repo`` on S3 (its cache under ``ROOT/.cache/objects/REPO``), or None."""
        if self.objects is None:
            return None
        from .s3 import open_s3_store

        return open_s3_store(self.objects, repo, Path(root) / CACHE_DIR / repo, self.cache_bytes)

    def open_repository(self, root: Path, name: str) -> Repository:
        """Server repository ``ROOT/NAME`` on these backends: its folder (settings, hooks, caches) under
        ROOT, its objects on S3 when ``objects`` is set, its refs in PostgreSQL when ``db`` is set."""
        path = Path(root) / name
        if self.embedded:
            return Repository.open(path, search_parents=False)
        repo = Repository.open(path, search_parents=False) if self.objects is None else None
        if repo is None:
            if not (path / EXACT_DIR / "HEAD").is_file():
                from ..errors import NotARepository

                raise NotARepository(f"no repository {name!r} under the server root")
            from ..refs import DiskRefs

            repo = Repository(self.object_store(root, name), DiskRefs(path / EXACT_DIR), path)
        shared = self.refs_for(name)
        if shared is not None:
            repo.refs = shared  # the refs live in the shared database (several server processes)
            db = self.database()
            # gc and the server's own commits exclude each other on every machine, not only on this one
            repo.lock_factory = lambda: db.lock(f"exact-repo:{name}", self.lock_timeout)
        return repo

    # --- the list of repositories (in the database when there is one) -----------------------------
    def register(self, root: Path, name: str) -> bool:
        """Record repository ``ROOT/NAME`` (just created) in the database, with its settings, so that every
        machine serves it; False when the database had it already (or there is no database)."""
        if self.db is None:
            return False
        import orjson

        config = Repository.open(Path(root) / name, search_parents=False).config()
        with self.database().tx() as cur:
            cur.execute("INSERT INTO repositories (name, config) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                        (name, orjson.dumps(config).decode()))
            return bool(cur.rowcount == 1)

    def registered(self) -> list[str]:
        """The repositories the database knows (none without a database)."""
        if self.db is None:
            return []
        with self.database().tx() as cur:
            cur.execute("SELECT name FROM repositories ORDER BY name")
            return [str(r[0]) for r in cur.fetchall()]

    def materialize(self, root: Path, name: str) -> bool:
        """Make the folder of repository NAME under this machine's ROOT if the database knows it and the folder
        is missing (a machine that did not create it); True if the folder exists afterwards."""
        path = Path(root) / name
        if (path / EXACT_DIR / "HEAD").is_file():
            return True
        if self.db is None:
            return False
        with self.database().tx() as cur:
            cur.execute("SELECT config FROM repositories WHERE name = %s", (name,))
            row = cur.fetchone()
        if row is None:
            return False
        from ..errors import UsageError
        from ..fsutil import atomic_write

        try:
            Repository.init(path)
        except UsageError:  # another process made it meanwhile
            return True
        import orjson

        config = row[0] if isinstance(row[0], dict) else orjson.loads(row[0])
        atomic_write(path / EXACT_DIR / "config.json", orjson.dumps(config, option=orjson.OPT_SORT_KEYS))
        return True

    def migrate(self) -> list[int]:
        """The schema versions applied now (none without a database)."""
        return list(self.database().migrate()) if self.db else []

    def check_schema(self) -> None:
        """Refuse (InvalidInput) a database whose schema lacks migrations of this version of exactvc."""
        if self.db is None:
            return
        missing = self.database().pending()
        if missing:
            raise InvalidInput(f"the database lacks schema migration(s) {', '.join(map(str, missing))}: "
                               "run `exact server migrate --db ...` first")

    # --- the server's own data: one store each, SQLite under ROOT or the shared database ---
    def access_store(self, root: str | Path) -> Access:
        if self.db is None:
            from ..access import AccessStore

            return AccessStore(Path(root))
        from .postgres_access import PgAccessStore

        return PgAccessStore(self.database())

    def pull_store(self, root: str | Path) -> Pulls:
        if self.db is None:
            from ..pulls.store import PullStore

            return PullStore(Path(root))
        from .postgres_pulls import PgPullStore

        return PgPullStore(self.database())

    def screening_store(self, root: str | Path) -> ScreeningStore:
        if self.db is None:
            from ..screening import SqliteScreeningStore

            return SqliteScreeningStore(Path(root))
        from .postgres_screening import PgScreeningStore

        return PgScreeningStore(self.database())

    def id_store(self, root: str | Path) -> CompatIds:
        if self.db is None:
            from ..exact_compat import IdStore

            return IdStore(Path(root))
        from .postgres_compat import PgIdStore

        return PgIdStore(self.database())


_SHARED: dict[tuple[Path, float, int], Backends] = {}
_SHARED_LOCK = threading.Lock()


def of_server_root(root: Path) -> Backends | None:
    """The backends of ``root`` if it is a server ROOT with a ``backends.json`` (None otherwise), one
    instance per ROOT, configuration file version and process. A repository folder of such a ROOT opened
    directly (``exact -C ROOT/NAME fsck``, the server itself) reads its refs from there, not from files."""
    f = root / CONFIG_FILE
    try:
        key = (f.resolve(), f.stat().st_mtime, os.getpid())  # a forked worker opens its own pool
    except OSError:
        return None
    with _SHARED_LOCK:
        b = _SHARED.get(key)
        if b is None:
            b = _SHARED[key] = Backends._read(root)
        return b


def is_shared(b: Backends) -> bool:
    """Is ``b`` the shared instance of its ROOT (closed by :func:`close_shared`, not by one of its users)?"""
    with _SHARED_LOCK:
        return any(v is b for v in _SHARED.values())


def close_shared() -> None:
    """Close the pools of every shared instance (tests; a process that is done with its servers)."""
    with _SHARED_LOCK:
        items = list(_SHARED.values())
        _SHARED.clear()
    for b in items:
        b.close()
