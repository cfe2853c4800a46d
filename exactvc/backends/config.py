"""Which backends a server uses: one setting each, from the command line or ``ROOT/backends.json``.

``objects``: None (each repository's own ``.exact/objects``) or ``s3://BUCKET/PREFIX``;
``db``: None (files and SQLite under ROOT) or ``postgresql://...``. Command-line values win over the file.

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

if TYPE_CHECKING:
    from ..access import Access
    from ..exact_compat import CompatIds
    from ..pulls.store import Pulls
    from ..screening import ScreeningStore

CONFIG_FILE = "backends.json"


@dataclass
class Backends:
    objects: str | None = None
    db: str | None = None
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
        b = cls(objects or conf.get("objects") or None, db or conf.get("db") or None)
        if b.objects is not None and not b.objects.startswith("s3://"):
            raise InvalidInput(f"--objects must be s3://BUCKET/PREFIX, not {b.objects!r}")
        if b.db is not None and not b.db.startswith(("postgresql://", "postgres://")):
            raise InvalidInput(f"--db must be a postgresql:// URL, not {b.db!r}")
        return b

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
