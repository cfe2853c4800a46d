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
