"""What the EXACT-compatible REST API (server/exact_compat/) needs from the library: stable integer ids,
the per-repository read branch, EXACT's vectors as our geometries and back, and one commit per request.

EXACT names everything by an integer; we name repositories, images and labels by text and annotations by
a UUID. :class:`IdStore` hands out one stable integer per (kind, key) — kept in the server's metadata
store (an SQLite file beside the one of :mod:`exactvc.access`, so that handing out ids does not invalidate
the access store's caches), never reused, so a script that stored an
id yesterday finds the same thing today. :class:`CompatIds` is the interface; with a PostgreSQL
database ``exactvc.backends.postgres_compat.PgIdStore`` implements it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import AlreadyExists, InvalidGeometry, InvalidInput, NotFound, RefConflict
from .ids import format_id, parse_id
from .objects import ImageEntry, ImageRecord, Label, LabelSet, Snapshot
from .sqlitedb import SqliteDB

if TYPE_CHECKING:
    from .repo import Repository

KINDS = ("image_set", "image", "annotation_type", "annotation", "product", "team", "user")
DEFAULT_READ_BRANCH = "main"
DB_NAME = ".exact-compat.sqlite"
SEP = "\0"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS compat_ids (kind TEXT NOT NULL, num INTEGER NOT NULL, key TEXT NOT NULL,
    PRIMARY KEY (kind, num), UNIQUE (kind, key));
CREATE TABLE IF NOT EXISTS compat_settings (repo TEXT PRIMARY KEY, read_branch TEXT NOT NULL);
"""


def key_of(*parts: str) -> str:
    return SEP.join(parts)


def parts_of(key: str) -> list[str]:
    return key.split(SEP)


class CompatIds(Protocol):
    def ids(self, kind: str, keys: Sequence[str]) -> list[int]: ...
    def id(self, kind: str, key: str) -> int: ...
    def key(self, kind: str, num: int) -> str | None: ...
    def keys(self, kind: str, nums: Sequence[int]) -> dict[int, str]: ...
    def read_branch(self, repo: str) -> str: ...
    def set_read_branch(self, repo: str, branch: str) -> None: ...


def check_read_branch(branch: object) -> str:
    from .refs import check_short_name

    if not isinstance(branch, str):
        raise InvalidInput("read_branch must be a branch name (a string)")
    return check_short_name(branch, "read branch")


class IdStore(SqliteDB):
    """Stable integer ids (1, 2, ... per kind) for text keys, and the read branch of each repository."""

    def __init__(self, root: Path) -> None:
        super().__init__(root / DB_NAME, _SCHEMA)

    def ids(self, kind: str, keys: Sequence[str]) -> list[int]:
        """The id of each key, new ones assigned (in the order given) where a key has none yet."""
        if kind not in KINDS:
            raise ValueError(f"unknown id kind {kind!r}")
        if not keys:
            return []
        found: dict[str, int] = {}
        with self._db() as db:
            uniq = list(dict.fromkeys(keys))
            for i in range(0, len(uniq), 500):
                chunk = uniq[i:i + 500]
                q = f"SELECT key, num FROM compat_ids WHERE kind = ? AND key IN ({','.join('?' * len(chunk))})"
                found.update(db.execute(q, (kind, *chunk)).fetchall())
            missing = [k for k in uniq if k not in found]
            if missing:
                top = db.execute("SELECT COALESCE(MAX(num), 0) FROM compat_ids WHERE kind = ?", (kind,)).fetchone()[0]
                rows = [(kind, top + 1 + i, k) for i, k in enumerate(missing)]
                db.executemany("INSERT INTO compat_ids (kind, num, key) VALUES (?, ?, ?)", rows)
                found.update({k: n for _, n, k in rows})
        return [found[k] for k in keys]

    def id(self, kind: str, key: str) -> int:
        return self.ids(kind, [key])[0]

    def key(self, kind: str, num: int) -> str | None:
        """The key an id stands for (None: never handed out)."""
        with self._db() as db:
            row = db.execute("SELECT key FROM compat_ids WHERE kind = ? AND num = ?", (kind, num)).fetchone()
        return row[0] if row else None

    def keys(self, kind: str, nums: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        with self._db() as db:
            for i in range(0, len(nums), 500):
                chunk = list(nums[i:i + 500])
                q = f"SELECT num, key FROM compat_ids WHERE kind = ? AND num IN ({','.join('?' * len(chunk))})"
                out.update(db.execute(q, (kind, *chunk)).fetchall())
        return out

    # --- settings ---
    def read_branch(self, repo: str) -> str:
        with self._db() as db:
            row = db.execute("SELECT read_branch FROM compat_settings WHERE repo = ?", (repo,)).fetchone()
        return row[0] if row else DEFAULT_READ_BRANCH

    def set_read_branch(self, repo: str, branch: str) -> None:
        check_read_branch(branch)
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO compat_settings (repo, read_branch) VALUES (?, ?)", (repo, branch))


# --- which commit a caller reads and writes on ---------------------------------------------------------


def working_branch(user: str) -> str:
    return f"users/{user}/edits"


def base_commit(repo: Repository, read_branch: str, user: str | None) -> bytes | None:
    """The commit a caller sees: their working branch while it holds work the read branch lacks (their own
    edits show at once), else the read branch (HEAD if the repository has no such branch)."""
    from .graph import is_ancestor

    read = repo.refs.read("heads/" + read_branch)
    if read is None:
        read = repo.head_commit()
    if user is not None:
        mine = repo.refs.read("heads/" + working_branch(user))
        if mine is not None and (read is None or not is_ancestor(repo, mine, read)):
            return mine
    return read


# --- vectors ------------------------------------------------------------------------------------------

VECTOR_TYPES = {1: "box", 2: "point", 3: "line", 4: "line", 5: "polygon", 6: "box"}
SHAPE_VECTOR = {"box": 1, "point": 2, "multipoint": 2, "ellipse": 2, "line": 4, "polygon": 5,
                "multipolygon": 5, "any": 5}
DEFAULT_SIZE = 50  # px: EXACT's default marker size (default_width, default_height)


def shape_for_vector_type(vt: Any) -> str:
    if isinstance(vt, bool) or not isinstance(vt, int) or vt not in VECTOR_TYPES:
        raise InvalidInput(f"vector_type must be one of 1 (bounding box), 2 (point), 3 (line), 4 (multi line), "
                           f"5 (polygon), 6 (fixed-size bounding box), not {vt!r}")
    return VECTOR_TYPES[vt]


def _n(v: float) -> float | int:
    return int(v) if float(v).is_integer() else v


def to_vector(label: Label | None, kind: str, gj: dict[str, Any], plane: tuple[int, int] | None) -> dict[str, Any]:
    """Our geometry as EXACT's ``{"x1", "y1", ...}`` (plus ``frame`` = z + 1 on multi-plane images)."""
    pts: list[Sequence[float]]
    c: Any = gj["coordinates"]
    if kind == "point":
        w, h = (label.size if label is not None and label.size else (DEFAULT_SIZE, DEFAULT_SIZE))
        x, y = c[0], c[1]
        pts = [(x - w / 2, y - h / 2), (x + w / 2, y + h / 2)]
    elif kind == "multipoint":
        pts = list(c)
    elif kind in ("box", "ellipse"):
        ring = c[0]
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        pts = [(min(xs), min(ys)), (max(xs), max(ys))]
    elif kind == "line":
        pts = list(c)
    elif kind == "polygon":
        pts = list(c[0][:-1])
    else:  # multipolygon: the exterior of the first part (docs/exact-compat.md)
        pts = list(c[0][0][:-1])
    out: dict[str, Any] = {}
    for i, p in enumerate(pts, 1):
        out[f"x{i}"] = _n(p[0])
        out[f"y{i}"] = _n(p[1])
    if plane and plane[0]:
        out["frame"] = plane[0] + 1
    return out


def _points(vector: Any) -> list[tuple[float, float]]:
    if not isinstance(vector, dict):
        raise InvalidGeometry("vector must be an object {\"x1\": ..., \"y1\": ..., ...}")
    pts = []
    i = 1
    while f"x{i}" in vector or f"y{i}" in vector:
        x, y = vector.get(f"x{i}"), vector.get(f"y{i}")
        for v in (x, y):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InvalidGeometry(f"vector x{i}/y{i} must both be numbers, not {v!r}")
        pts.append((float(x), float(y)))  # type: ignore[arg-type]
        i += 1
        if i > 100000:
            raise InvalidGeometry("vector has too many points")
    extra = set(vector) - {f"{a}{j}" for j in range(1, i) for a in "xy"} - {"frame"}
    if extra:
        raise InvalidGeometry(f"vector has unexpected keys: {', '.join(sorted(map(str, extra))[:5])}")
    return pts


def from_vector(shape: str, vector: Any) -> tuple[dict[str, Any], str | None, tuple[int, int] | None]:
    """EXACT's vector for a label of ``shape`` as (GeoJSON, kind to force, plane); EXACT's check of the shape
    per annotation type (enough points for the type) before ours."""
    pts = _points(vector)
    frame = vector.get("frame")
    plane = None
    if frame is not None:
        if isinstance(frame, bool) or not isinstance(frame, int) or frame < 1:
            raise InvalidInput(f"vector frame must be a whole number from 1, not {frame!r}")
        plane = (frame - 1, 0)
    n = len(pts)
    if shape == "any":
        shape = "point" if n == 1 else "line" if n == 2 else "polygon"
    if shape in ("point", "multipoint"):
        if n == 0:
            raise InvalidGeometry("a point needs x1, y1")
        if shape == "point" or n <= 2:
            if n == 1:
                x, y = pts[0]
            elif n == 2:  # EXACT's marker box: its centre
                x, y = (pts[0][0] + pts[1][0]) / 2, (pts[0][1] + pts[1][1]) / 2
            else:
                raise InvalidGeometry(f"a point takes x1, y1 (or a marker box x1..y2), not {n} points")
            return {"type": "Point", "coordinates": [x, y]}, None, plane
        return {"type": "MultiPoint", "coordinates": [list(p) for p in pts]}, None, plane
    if shape in ("box", "ellipse"):
        if n != 2:
            raise InvalidGeometry(f"a {'bounding box' if shape == 'box' else 'ellipse'} takes x1, y1, x2, y2 "
                                  f"(2 points), not {n}")
        (x0, y0), (x1, y1) = pts
        xa, xb, ya, yb = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        ring = [[xa, ya], [xb, ya], [xb, yb], [xa, yb], [xa, ya]]
        return {"type": "Polygon", "coordinates": [ring]}, shape, plane
    if shape == "line":
        if n < 2:
            raise InvalidGeometry(f"a line takes at least 2 points, not {n}")
        return {"type": "LineString", "coordinates": [list(p) for p in pts]}, None, plane
    if n < 3:
        raise InvalidGeometry(f"a polygon takes at least 3 points, not {n}")
    return {"type": "Polygon", "coordinates": [[*[list(p) for p in pts], list(pts[0])]]}, None, plane


# --- one commit per request ---------------------------------------------------------------------------


@dataclass
class ImageEdits:
    """Changes to one image: creates/updates as ``{"id", "label", "geometry", "properties", "plane"}`` (an
    update names only what changes), deletes as ids."""

    create: list[dict[str, Any]] = field(default_factory=list)
    update: list[dict[str, Any]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)


def commit_request(repo: Repository, branch: str, base: bytes | None, author: str, message: str,
                   images: dict[str, ImageEdits] | None = None, new_labels: Sequence[Label] = (),
                   new_images: Sequence[ImageRecord] = ()) -> bytes:
    """Apply one request's changes on top of ``base`` and move ``branch`` there by compare-and-swap.

    ``branch`` may be behind or beside ``base`` only when it is an ancestor of ``base`` (the caller's
    working branch that the read branch has since taken in), so no commit of the branch is dropped;
    a concurrent writer gives RefConflict (retry). Returns the new commit id.
    """
    from .edit import Editor
    from .graph import is_ancestor
    from .history import NothingToCommit, write_commit
    from .refs import check_new_branch, check_short_name

    ref = "heads/" + check_short_name(branch)
    cur = repo.refs.read(ref)
    if cur is None:
        check_new_branch(repo.refs, branch)
    if base is None:
        raise NotFound("the repository has no commit to start from")
    if cur is not None and cur != base and not is_ancestor(repo, cur, base):
        raise RefConflict(f"branch {branch} moved meanwhile: retry")
    snap = repo.snapshot_object(repo.commit_object(base).root)
    if new_labels:
        ls = LabelSet.from_body(repo.read_body(snap.labels, "labels")) if snap.labels else LabelSet(
            product=str(repo.config().get("product", "default")))
        for lb in new_labels:
            ls = ls.with_label(lb)
        snap = Snapshot(snap.images, repo.put("labels", ls.to_body()))
    for rec in new_images:
        if rec.name in snap.images:
            raise AlreadyExists(f"an image named {rec.name!r} already exists")
        rid = repo.put("image", rec.to_body())
        snap = Snapshot({**snap.images, rec.name: ImageEntry(rid, None, 0)}, snap.labels)
    for image, ed_in in (images or {}).items():
        ed = Editor(repo, image, snapshot=snap)
        for c in ed_in.create:
            ed.add(c["label"], c["geometry"], c.get("properties"), c.get("plane"), c.get("id"), kind=c.get("kind"))
        for u in ed_in.update:
            ed.update(u["id"], label=u.get("label"), geometry=u.get("geometry"), properties=u.get("properties"),
                      plane=u.get("plane"), kind=u.get("kind"))
        for d in ed_in.delete:
            ed.delete(d)
        snap = repo.snapshot_object(ed.apply_to(snap))
    sid = repo.put("snapshot", snap.to_body())
    if sid == repo.commit_object(base).root:
        raise NothingToCommit("the request changes nothing")
    cid = write_commit(repo, sid, [base], message, author)
    repo.refs.cas(ref, cur, cid, author, "exact-compat: " + message.splitlines()[0])
    return cid


def annotation_key(repo: str, image: str, aid: bytes) -> str:
    return key_of(repo, image, format_id(aid))


def parse_unique_identifier(text: Any) -> bytes:
    if not isinstance(text, str) or not text:
        raise InvalidInput("unique_identifier must be a UUID string")
    try:
        return parse_id(text)
    except InvalidInput:
        raise InvalidInput(f"unique_identifier must be a UUID (it is the annotation's id), not {text[:60]!r}") from None
