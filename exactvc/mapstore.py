"""Where open annotation maps are known to every server process: each map id's repository, commit and spec
(a few hundred bytes of JSON), and who opened it (the blind-mode rule of server/maps.py).

A map is fully determined by (repository, commit, spec): any process that finds the record rebuilds the
same layout (exactvc/annomap.py ``build_layout``) and checks that it gets the same id. ``MapStore`` is the
interface; :class:`SqliteMapStore` keeps it in ``ROOT/.exact-maps.sqlite`` (the embedded server),
``exactvc.backends.postgres_maps.PgMapStore`` in the shared PostgreSQL; ``Backends.map_store`` chooses.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .annomap import MapSpec
from .errors import InvalidInput
from .sqlitedb import SqliteDB


@dataclass(frozen=True)
class MapRecord:
    map_id: str
    repo: str
    commit: str  # hex
    spec: MapSpec


def spec_of(key: dict[str, Any]) -> MapSpec:
    """The spec whose ``MapSpec.key()`` is ``key`` (as stored)."""
    try:
        prop = key.get("prop")
        return MapSpec(str(key["label"]), tuple(str(i) for i in key["images"]), int(key["patch"]),
                       int(key["per_row"]), int(key["scale"]), str(key["order"]),
                       (str(prop[0]), str(prop[1])) if prop else None)
    except (KeyError, TypeError, ValueError, IndexError):
        raise InvalidInput("a stored map spec is malformed") from None


def spec_json(spec: MapSpec) -> str:
    return json.dumps(spec.key(), sort_keys=True, separators=(",", ":"))


class MapStore(Protocol):
    def put(self, rec: MapRecord, opener: str | None) -> None:
        """Record the map (once; the same id always names the same record) and that ``opener`` opened it."""

    def get(self, map_id: str) -> MapRecord | None: ...

    def opened_by(self, map_id: str, user: str | None) -> bool: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS maps (
    id TEXT PRIMARY KEY, repo TEXT NOT NULL, "commit" TEXT NOT NULL, spec TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS map_openers (id TEXT NOT NULL, who TEXT NOT NULL, PRIMARY KEY (id, who));
"""


def _who(user: str | None) -> str:
    return "" if user is None else "u:" + user  # "" is the anonymous caller (a public repository)


class SqliteMapStore(SqliteDB):
    def __init__(self, root: Path) -> None:
        super().__init__(root / ".exact-maps.sqlite", _SCHEMA)

    def put(self, rec: MapRecord, opener: str | None) -> None:
        with self._db() as c:
            c.execute('INSERT INTO maps (id, repo, "commit", spec, created) VALUES (?, ?, ?, ?, ?) '
                      "ON CONFLICT (id) DO NOTHING",
                      (rec.map_id, rec.repo, rec.commit, spec_json(rec.spec), time.time()))
            c.execute("INSERT INTO map_openers VALUES (?, ?) ON CONFLICT DO NOTHING", (rec.map_id, _who(opener)))

    def get(self, map_id: str) -> MapRecord | None:
        with self._db() as c:
            row = c.execute('SELECT repo, "commit", spec FROM maps WHERE id = ?', (map_id,)).fetchone()
        return None if row is None else MapRecord(map_id, row[0], row[1], spec_of(json.loads(row[2])))

    def opened_by(self, map_id: str, user: str | None) -> bool:
        with self._db() as c:
            row = c.execute("SELECT 1 FROM map_openers WHERE id = ? AND who = ?", (map_id, _who(user))).fetchone()
        return row is not None
