"""Screening mode (EXACT's persistent screening): an image divided into fields of view with 15 % overlap,
stepped through in row order; each user's progress and position per image kept on the server.

:func:`fields` is the grid; :class:`ScreeningStore` is the interface of the store and
:class:`SqliteScreeningStore` its SQLite implementation (another backend implements the same three methods).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Protocol

from .errors import InvalidInput
from .sqlitedb import SqliteDB

OVERLAP = 0.15
MAX_FIELDS = 1_000_000


def fields(width: int, height: int, fw: int, fh: int, overlap: float = OVERLAP) -> list[tuple[int, int, int, int]]:
    """Fields of view (x, y, w, h) covering the image, neighbours overlapping by ``overlap``, row by row."""
    if fw <= 0 or fh <= 0:
        raise InvalidInput("a field of view needs a positive width and height")
    fw, fh = min(fw, width), min(fh, height)

    def starts(size: int, f: int) -> list[int]:
        step = max(1, int(f * (1 - overlap)))
        n = 1 + max(0, math.ceil((size - f) / step))
        return [min(i * step, size - f) for i in range(n)]

    xs, ys = starts(width, fw), starts(height, fh)
    if len(xs) * len(ys) > MAX_FIELDS:
        raise InvalidInput(f"{len(xs) * len(ys)} fields of view: choose a lower zoom (larger fields)")
    return [(x, y, fw, fh) for y in ys for x in xs]


class ScreeningStore(Protocol):
    def get(self, repo: str, image: str, user: str) -> dict[str, Any] | None: ...

    def put(self, repo: str, image: str, user: str, state: dict[str, Any]) -> None: ...

    def reset(self, repo: str, image: str, user: str) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS screening (
    repo TEXT NOT NULL, image TEXT NOT NULL, user TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (repo, image, user));
"""


class SqliteScreeningStore(SqliteDB):
    def __init__(self, root: Path) -> None:
        super().__init__(root / ".exact-screening.sqlite", _SCHEMA)

    def get(self, repo: str, image: str, user: str) -> dict[str, Any] | None:
        with self._db() as c:
            row = c.execute("SELECT state FROM screening WHERE repo=? AND image=? AND user=?",
                            (repo, image, user)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, repo: str, image: str, user: str, state: dict[str, Any]) -> None:
        with self._db() as c:
            c.execute("INSERT INTO screening VALUES (?, ?, ?, ?) ON CONFLICT (repo, image, user) "
                      "DO UPDATE SET state = excluded.state", (repo, image, user, json.dumps(state)))

    def reset(self, repo: str, image: str, user: str) -> None:
        with self._db() as c:
            c.execute("DELETE FROM screening WHERE repo=? AND image=? AND user=?", (repo, image, user))


def checked_state(body: Any, width: int, height: int) -> dict[str, Any]:
    """A screening state from a client: ``field`` [w, h] (level-0 px), ``current`` index, ``screened`` indices,
    ``zoom`` (the viewer's, informative); with its grid's count, columns and rows."""
    if not isinstance(body, dict) or set(body) - {"field", "current", "screened", "zoom"}:
        raise InvalidInput("a screening state is {field: [w, h], current, screened: [...], zoom}")
    f = body.get("field")
    if not (isinstance(f, list) and len(f) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in f)):
        raise InvalidInput("field must be [w, h] in whole pixels")
    grid = fields(width, height, f[0], f[1])
    n = len(grid)
    cur = body.get("current", 0)
    scr = body.get("screened", [])
    if isinstance(cur, bool) or not isinstance(cur, int) or not 0 <= cur < n:
        raise InvalidInput(f"current must be a field index from 0 to {n - 1}")
    if not isinstance(scr, list) or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n
                                            for i in scr):
        raise InvalidInput(f"screened must be a list of field indices from 0 to {n - 1}")
    zoom = body.get("zoom")
    if zoom is not None and (isinstance(zoom, bool) or not isinstance(zoom, (int, float))):
        raise InvalidInput("zoom must be a number")
    cols = len({x for x, _, _, _ in grid})
    return {"field": [grid[0][2], grid[0][3]], "current": cur, "screened": sorted(set(scr)), "zoom": zoom,
            "count": n, "columns": cols, "rows": n // cols}
