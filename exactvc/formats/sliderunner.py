"""SlideRunner SQLite databases in and out (see docs/formats.md for what maps to what).

In: every schema generation (columns are selected by name; the later ones are optional).
The file is opened read-only (``file:...?mode=ro``): real databases carry triggers that call
SQL functions only SlideRunner registers, so nothing here ever writes to them.
Types: 1 spot (a point), 2 rectangle (a box), 3 polygon, 4 special spot (a point),
5 circle (an ellipse: centre the corners' midpoint, radius half the x extent),
6 whole-image label (a box over the whole image, ``image_label: true``); other types are
skipped as SlideRunner skips them. Vertices in ``orderIdx`` order; ``coordinateZ`` is the
plane's z. ``agreedClass`` is the label (class 0, "unknown", is unclassified); every
rater's vote survives under ``sliderunner.labels``. Soft-deleted rows, orphan label
rows and annotations of no slide are skipped and counted.

Out: a database with the newest generation's schema (MIDOG's), opened by plain sqlite3.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from ..errors import InvalidInput
from .common import (
    UNCLASSIFIED,
    Batch,
    ReadResult,
    Record,
    SourceImage,
    box_geom,
    box_of,
    derived_id,
    export_images,
    exterior_and_holes,
    parse_color,
    uuid_key,
    vertices,
)
from .importer import CHECK_BATCH

FMT = "sliderunner"
SPOT, AREA, POLYGON, SPECIAL_SPOT, CIRCLE, IMAGE = 1, 2, 3, 4, 5, 6


def connect_ro(path: Path) -> sqlite3.Connection:
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
        con.execute("select count(*) from sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"{path}: not a readable SQLite database: {exc}") from None
    return con


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in con.execute(f"pragma table_info(`{table}`)")}


def _select(con: sqlite3.Connection, table: str, wanted: list[str], required: set[str], path: Path,
            tail: str = "") -> Iterator[tuple[Any, ...]]:
    """The rows (a cursor, read as it is consumed) of the ``wanted`` columns, NULL for those the table lacks."""
    have = _columns(con, table)
    if not have:
        if not required:
            return iter(())
        raise InvalidInput(f"{path}: not a SlideRunner database (no table {table})")
    missing = required - have
    if missing:
        raise InvalidInput(f"{path}: table {table} lacks column(s) {', '.join(sorted(missing))}")
    cols = ", ".join(f"`{c}`" if c in have else "NULL" for c in wanted)
    return con.execute(f"select {cols} from `{table}` {tail}")


def read(path: Path) -> ReadResult:
    """Streamed: annotations, coordinates and label rows are read in annotation order, side by side (three
    cursors merged on the annotation uid), and handed on as records a batch at a time; a database of several
    slides is walked once more first, to know which slides have annotations. Memory: a batch."""
    con = connect_ro(path)
    try:
        slides = {uid: (os.path.basename(str(fn or uid).replace("\\", "/")), w, h) for uid, fn, w, h in
                  _select(con, "Slides", ["uid", "filename", "width", "height"], {"uid"}, path)}
        classes = {uid: (name, color) for uid, name, color in
                   _select(con, "Classes", ["uid", "name", "color"], {"uid", "name"}, path)}
        persons = {uid: name for uid, name in _select(con, "Persons", ["uid", "name"], set(), path)}
        images = {uid: SourceImage(name, width=w, height=h, noun="annotation uid")
                  for uid, (name, w, h) in slides.items()}
        result = ReadResult(list(images.values()))
        if len(images) > 1:
            found: set[Any] = set()
            for slide, _rec, _where in _walk(con, path, images, classes, persons, ReadResult([]), False):
                found.add(slide)
        else:
            found = set(images)
        for uid, src in images.items():
            src.streamed = uid in found
    except sqlite3.DatabaseError as exc:
        con.close()
        raise InvalidInput(f"{path}: cannot read the database: {exc}") from None
    except BaseException:
        con.close()
        raise

    def stream() -> Iterator[Batch]:
        pending: dict[Any, tuple[SourceImage, list[Record], list[str]]] = {}
        try:
            for slide, rec, where in _walk(con, path, images, classes, persons, result, True):
                src = images[slide]
                assert rec is not None
                src.take(rec, rec.index)
                got = pending.get(slide)
                if got is None:
                    got = pending[slide] = (src, [], [])
                got[1].append(rec)
                got[2].append(where)
                if len(got[1]) >= CHECK_BATCH:
                    yield got
                    del pending[slide]
            yield from pending.values()
        except sqlite3.DatabaseError as exc:
            raise InvalidInput(f"{path}: cannot read the database: {exc}") from None
        finally:
            con.close()

    result.stream = stream
    return result


def _walk(con: sqlite3.Connection, path: Path, images: dict[Any, SourceImage], classes: dict[Any, tuple[Any, Any]],
          persons: dict[Any, Any], result: ReadResult, make: bool) -> Iterator[tuple[Any, Record | None, str]]:
    """(slide, record, how errors name it) of every annotation that is imported, in uid order; what is
    skipped is counted in ``result``. ``make``: build the records (else None, only the checks)."""
    anns = _select(con, "Annotations", ["uid", "slide", "type", "agreedClass", "guid", "deleted", "lastModified",
                                        "description", "clickable"], {"uid", "slide", "type"}, path, "order by uid")
    order = "order by annoId, orderIdx, uid" if "orderIdx" in _columns(con, "Annotations_coordinates") \
        else "order by annoId, uid"
    coords = _select(con, "Annotations_coordinates", ["annoId", "coordinateX", "coordinateY", "coordinateZ"],
                     {"annoId", "coordinateX", "coordinateY"}, path, order)
    votes = _select(con, "Annotations_label", ["annoId", "person", "class", "exact_id"], set(), path,
                    "order by annoId, uid")
    orphans = 0
    c_row = next(coords, None)
    v_row = next(votes, None)
    for uid, slide, t, agreed, guid, deleted, modified, description, clickable in anns:
        pts: list[tuple[Any, Any, Any]] = []
        while c_row is not None and _before(c_row[0], uid):
            c_row = next(coords, None)
        while c_row is not None and c_row[0] == uid:
            pts.append((c_row[1], c_row[2], c_row[3]))
            c_row = next(coords, None)
        vs: list[dict[str, Any]] = []
        while v_row is not None and _before(v_row[0], uid):
            orphans += 1  # a label row of no annotation
            v_row = next(votes, None)
        while v_row is not None and v_row[0] == uid:
            if make:
                _aid, person, cls, exact_id = v_row
                v: dict[str, Any] = {"person": persons.get(person, person),
                                     "class": classes[cls][0] if cls in classes else None}
                if exact_id is not None:
                    v["exact_id"] = exact_id
                vs.append(v)
            v_row = next(votes, None)
        where = f"annotation uid {uid}"
        if deleted:
            result.skip("soft-deleted annotations")
            continue
        src = images.get(slide)
        if src is None:
            result.skip("annotations of no slide")
            continue
        try:
            geom = _geometry(t, pts, where)
        except _Skip as sk:
            result.skip(str(sk))
            continue
        except InvalidInput as exc:
            raise InvalidInput(f"{path}: {exc.message}") from None
        if not make:
            yield slide, None, where
            continue
        own: dict[str, Any] = {"uid": uid, "type": t}
        if vs:
            own["labels"] = vs
        if modified is not None:
            own["lastModified"] = modified
        if clickable is not None and clickable != 1:
            own["clickable"] = clickable
        props: dict[str, Any] = {FMT: own}
        if description:
            props["description"] = description
        if t == IMAGE:
            props["image_label"] = True
        label = classes[agreed][0] if agreed in classes else UNCLASSIFIED
        if agreed not in classes and agreed not in (0, None):
            own["agreedClass"] = agreed  # a class with no row: kept, written back
        color = parse_color(classes[agreed][1]) if agreed in classes else None
        z = pts[0][2] if pts and pts[0][2] else None
        key = uuid_key(guid) or derived_id(FMT, src.name or "", uid)
        yield slide, Record(uid, key, label, color, geom, props, (int(z), 0) if z else None), where
    while v_row is not None:
        orphans += 1
        v_row = next(votes, None)
    if orphans:
        result.skip("orphan label rows", orphans)


def _before(aid: Any, uid: int) -> bool:
    """Whether a side row's annoId sorts before the annotation ``uid`` (NULLs and text: before, as unmatched)."""
    return type(aid) is not int or aid < uid


class _Skip(Exception):
    pass


def _geometry(t: Any, pts: list[tuple[Any, Any, Any]], where: str) -> dict[str, Any]:
    if t == IMAGE:
        return {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]], "whole": True}
    if t not in (SPOT, AREA, POLYGON, SPECIAL_SPOT, CIRCLE):
        raise _Skip(f"annotations of unknown type {t}")
    xy = [[x, y] for x, y, _z in pts if x is not None and y is not None]
    if not xy:
        raise _Skip("annotations without coordinates")
    if t in (SPOT, SPECIAL_SPOT):
        return {"type": "Point", "coordinates": xy[0]}
    if t == POLYGON:
        if len(xy) < 3:
            raise InvalidInput(f"{where}: a polygon with {len(xy)} vertices")
        return {"type": "Polygon", "coordinates": [[*xy, xy[0]]]}
    if len(xy) < 2:
        raise InvalidInput(f"{where}: a {'rectangle' if t == AREA else 'circle'} needs 2 corners, has {len(xy)}")
    (x1, y1), (x2, y2) = xy[0], xy[1]
    if t == AREA:
        return box_geom(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2), kind="box")
    r = abs(x2 - x1) / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return box_geom(cx - r, cy - r, cx + r, cy + r, kind="ellipse")


# --- export -----------------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE `Slides` (`uid` INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, `filename` TEXT, `width` INTEGER,
  `height` INTEGER, `directory` TEXT, `EXACTUSER` INTEGER DEFAULT 0, `uuid` TEXT, `exactImageID` TEXT);
CREATE TABLE `Classes` (`uid` INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, `name` TEXT, `color` TEXT);
CREATE TABLE `Persons` (`uid` INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, `name` TEXT, `isExactUser` INTEGER DEFAULT 0);
CREATE TABLE `Annotations` (`uid` INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, `slide` INTEGER, `type` INTEGER,
  `agreedClass` INTEGER, `guid` TEXT, `deleted` INTEGER DEFAULT 0, `lastModified` REAL DEFAULT 0,
  `description` TEXT, `clickable` INTEGER DEFAULT 1);
CREATE TABLE `Annotations_coordinates` (`uid` INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, `coordinateX` INTEGER,
  `coordinateY` INTEGER, `slide` INTEGER, `annoId` INTEGER, `orderIdx` INTEGER, `coordinateZ` INTEGER DEFAULT 0);
CREATE TABLE `Annotations_label` (`uid` INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, `person` INTEGER, `class` INTEGER,
  `annoId` INTEGER, `exact_id` INTEGER);
CREATE TABLE `Log` (`uid` INTEGER PRIMARY KEY AUTOINCREMENT, `dateTime` FLOAT, `labelId` INTEGER);
CREATE INDEX `annoId_idx` ON `Annotations_coordinates` (`annoId`);
CREATE INDEX `annoId_label_idx` ON `Annotations_label` (`annoId`);
"""


def _n(v: float) -> float | int:
    return int(v) if float(v).is_integer() else v


def _xy(p: list[float]) -> tuple[float | int, float | int]:
    """SlideRunner declares INTEGER columns, but real files hold halves (MIDOG): written as they are."""
    return _n(p[0]), _n(p[1])


def _shape(o: Any) -> tuple[int, list[tuple[float | int, float | int]]] | None:
    """(type, integer vertices) of one annotation; None when SlideRunner cannot hold it (lines)."""
    own = o.own(FMT)
    if o.properties.get("image_label") is True and o.kind == "box":
        return IMAGE, []
    if o.kind == "point":
        return (SPECIAL_SPOT if own.get("type") == SPECIAL_SPOT else SPOT), [_xy(vertices(o.kind, o.geom)[0])]
    if o.kind == "box":
        x0, y0, x1, y1 = box_of(o.kind, o.geom)
        return AREA, [_xy([x0, y0]), _xy([x1, y1])]
    if o.kind == "ellipse":
        x0, y0, x1, y1 = box_of(o.kind, o.geom)
        if x1 - x0 == y1 - y0:
            return CIRCLE, [_xy([x0, y0]), _xy([x1, y1])]
    if o.kind in ("polygon", "multipolygon", "ellipse"):
        ring = exterior_and_holes(o.kind, o.geom)[0][0]  # SlideRunner polygons have one ring
        return POLYGON, [_xy(p) for p in ring[:-1]]
    return None


def export(repo: Any, rev: str | None, image: str | None, out: BinaryIO) -> int:
    """One database holding the selected images (a slide each); lines and multipoints are dropped."""
    imgs, colors = export_images(repo, rev, image)
    fd, tmp = tempfile.mkstemp(suffix=".sqlite")
    os.close(fd)
    try:
        con = sqlite3.connect(tmp)
        try:
            n = _write(con, imgs, colors)
            con.commit()
        finally:
            con.close()
        with open(tmp, "rb") as f:
            while chunk := f.read(1 << 20):
                out.write(chunk)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return n


def _write(con: sqlite3.Connection, imgs: list[Any], colors: dict[str, str]) -> int:
    con.executescript(SCHEMA)
    labels = sorted({o.label for im in imgs for o in im.annotations if o.label != UNCLASSIFIED}
                    | {v["class"] for im in imgs for o in im.annotations
                       for v in o.own(FMT).get("labels", []) if isinstance(v, dict) and v.get("class")})
    class_id = {name: i for i, name in enumerate(labels, 1)}
    con.executemany("insert into Classes(uid, name, color) values (?, ?, ?)",
                    [(i, name, colors.get(name, "#ffcc00")) for name, i in class_id.items()])
    persons: dict[str, int] = {}

    def person(name: Any) -> int:
        key = str(name) if name is not None else "exactvc"
        if key not in persons:
            persons[key] = len(persons) + 1
            con.execute("insert into Persons(uid, name, isExactUser) values (?, ?, 0)", (persons[key], key))
        return persons[key]

    used: set[int] = {u for im in imgs for o in im.annotations
                      if isinstance(u := o.own(FMT).get("uid"), int) and not isinstance(u, bool)}
    counts: dict[int, int] = {}
    for im in imgs:
        for o in im.annotations:
            u = o.own(FMT).get("uid")
            if isinstance(u, int):
                counts[u] = counts.get(u, 0) + 1
    nxt = max(used, default=0) + 1
    n = 0
    coord_rows: list[tuple[Any, ...]] = []
    label_rows: list[tuple[int, int, int, Any]] = []
    for sid, im in enumerate(imgs, 1):
        con.execute("insert into Slides(uid, filename, width, height, directory, EXACTUSER) values (?, ?, ?, ?, '', 0)",
                    (sid, im.name, im.width, im.height))
        for o in im.annotations:
            sh = _shape(o)
            if sh is None:
                continue
            t, pts = sh
            own = o.own(FMT)
            uid = own.get("uid")
            if not isinstance(uid, int) or counts.get(uid, 0) != 1:
                uid = nxt
                nxt += 1
            agreed = class_id.get(o.label, own.get("agreedClass", 0) if o.label == UNCLASSIFIED else 0)
            con.execute("insert into Annotations(uid, slide, type, agreedClass, guid, deleted, lastModified, "
                        "description, clickable) values (?, ?, ?, ?, ?, 0, ?, ?, ?)",
                        (uid, sid, t, agreed, o.id, own.get("lastModified"),
                         o.properties.get("description") if isinstance(o.properties.get("description"), str) else None,
                         own.get("clickable", 1)))
            z = o.plane[0] if o.plane else 0
            if t == IMAGE:
                coord_rows.append((None, None, sid, uid, 1, z))
            for k, (x, y) in enumerate(pts, 1):
                coord_rows.append((x, y, sid, uid, k, z))
            votes = own.get("labels")
            if isinstance(votes, list) and votes:
                for v in votes:
                    if isinstance(v, dict):
                        label_rows.append((person(v.get("person")), class_id.get(v.get("class"), 0), uid,
                                           v.get("exact_id")))
            elif t != SPECIAL_SPOT and agreed and "type" not in own:  # one vote, for what came from elsewhere
                label_rows.append((person(None), agreed, uid, None))
            n += 1
    con.executemany("insert into Annotations_coordinates(coordinateX, coordinateY, slide, annoId, orderIdx, "
                    "coordinateZ) values (?, ?, ?, ?, ?, ?)", coord_rows)
    con.executemany("insert into Annotations_label(person, class, annoId, exact_id) values (?, ?, ?, ?)", label_rows)
    return n
