"""EXACT's text export and import (label upload) in and out (see docs/formats.md).

In: lines ``image|type|vector|flags|uuid`` (what EXACT's label upload reads) and the
11-field export template ``image|type|vector|first editor|first time|last editor|last
time|uuid|deleted|width|height``; ``[image|user|time|action]`` view-log lines and blank
lines are skipped. The vector is EXACT's JSON ``{"x1": .., "y1": .., ..., "frame": k}``
(keys 1-based, values cast to int as EXACT does, quoted numbers and a trailing ``,}``
accepted); ``frame`` (1-based) is the plane. One vertex is a point, two a box (EXACT's
bounding box; a line when the two share an x or a y), more a polygon. ``not in image``
vectors and deleted rows are skipped and counted. The type name is the label.

Out: ``image|type|vector|flags|uuid`` lines, which EXACT's label upload reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import InvalidInput
from .common import (
    UNCLASSIFIED,
    ReadResult,
    Record,
    SourceImage,
    box_geom,
    box_of,
    derived_id,
    export_images,
    exterior_and_holes,
    unclipped,
    uuid_key,
    vertices,
)

FMT = "exact"


def _vector(text: str, where: str) -> tuple[list[list[int]], int | None] | None:
    t = text.strip()
    if t in ("", "{}", "not in image", "null", "None"):
        return None
    t = t.replace(",}", "}").replace(", }", "}")
    try:
        v = json.loads(t)
    except json.JSONDecodeError:
        raise InvalidInput(f"{where}: the vector {text[:60]!r} is not JSON") from None
    if not isinstance(v, dict):
        raise InvalidInput(f"{where}: the vector is not a JSON object")
    if not v:
        return None
    try:
        vals = {k: int(float(x)) for k, x in v.items()}
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: the vector has a value that is not a number") from None
    frame = vals.pop("frame", None)
    n = len(vals) // 2
    pts: list[list[int]] = []
    for i in range(1, n + 1):
        if f"x{i}" not in vals or f"y{i}" not in vals:
            raise InvalidInput(f"{where}: the vector lacks x{i} or y{i} (keys are x1, y1, x2, y2, ...)")
        pts.append([vals[f"x{i}"], vals[f"y{i}"]])
    if len(vals) != 2 * n or n == 0:
        raise InvalidInput(f"{where}: the vector has keys other than x1, y1, ... and frame")
    return pts, frame


def _geometry(pts: list[list[int]]) -> dict[str, Any]:
    """The shape of a vector; ``vector`` lets a label of line shape take it as a line (common.clip_boxes)."""
    if len(pts) == 1:
        return {"type": "Point", "coordinates": pts[0]}
    if len(pts) == 2:
        (x1, y1), (x2, y2) = pts
        if x1 != x2 and y1 != y2:  # may overhang the image
            return {**box_geom(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)), "clip": FMT, "vector": pts}
        return {"type": "LineString", "coordinates": pts}
    return {"type": "Polygon", "coordinates": [[*pts, pts[0]]], "vector": pts}


def read(path: Path) -> ReadResult:
    result = ReadResult([])
    images: dict[str, SourceImage] = {}
    seen: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not UTF-8 text: {exc}") from None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"line {lineno}"
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            result.skip("view-log lines")
            continue
        fields = line.split("|")
        if len(fields) not in (3, 4, 5, 11):
            raise InvalidInput(f"{path}: {where}: {len(fields)} '|'-separated fields; expected "
                               "image|type|vector|flags|uuid or EXACT's 11-field export")
        image, label, vec = fields[0], fields[1], fields[2]
        own: dict[str, Any] = {}
        uuid = ""
        if len(fields) == 11:
            _i, _t, _v, fe, ft, le, lt, uuid, deleted, w, h = fields
            if deleted.strip() == "True":
                result.skip("deleted annotations")
                continue
            for k, v in (("first_editor", fe), ("first_time", ft), ("last_editor", le), ("last_time", lt)):
                if v:
                    own[k] = v
            src = images.get(image)
            if src is None:
                try:
                    src = images[image] = SourceImage(image, width=int(w), height=int(h))
                except ValueError:
                    src = images[image] = SourceImage(image)
        else:
            if len(fields) >= 4 and fields[3]:
                bad = set(fields[3]) - set("bc")
                if bad:
                    raise InvalidInput(f"{path}: {where}: flags {fields[3]!r} (only b, blurred, and c, concealed)")
                own["flags"] = fields[3]
            uuid = fields[4] if len(fields) == 5 else ""
            src = images.setdefault(image, SourceImage(image))
        try:
            got = _vector(vec, where)
        except InvalidInput as exc:
            raise InvalidInput(f"{path}: {exc.message}") from None
        if got is None:
            result.skip("not-in-image rows")
            continue
        pts, frame = got
        if frame is not None and frame < 1:
            raise InvalidInput(f"{path}: {where}: frame {frame} (frames count from 1)")
        key = uuid_key(uuid.strip())
        if key is None:
            content = f"{label}\0{pts}\0{frame}"
            nth = seen.get(image + "\0" + content, 0)
            seen[image + "\0" + content] = nth + 1
            key = derived_id(FMT, image, f"{content}\0{nth}")
        props: dict[str, Any] = {FMT: own} if own else {}
        src.add(Record(0, key, label or UNCLASSIFIED, None, _geometry(pts), props,
                       (frame - 1, 0) if frame and frame > 1 else None), f"{where} ({label!r})")
    result.images = list(images.values())
    return result


# --- export -----------------------------------------------------------------------------------------


def _vec(pts: list[list[float]], frame: int | None) -> str:
    d: dict[str, int] = {}
    for i, (x, y) in enumerate(pts, 1):
        d[f"x{i}"] = round(x)
        d[f"y{i}"] = round(y)
    if frame is not None:
        d["frame"] = frame
    return json.dumps(d)


def export(repo: Any, rev: str | None, image: str | None, out: BinaryIO) -> int:
    imgs, _colors = export_images(repo, rev, image)
    lines: list[str] = []
    n = 0
    for im in imgs:
        for o in im.annotations:
            frame = o.plane[0] + 1 if o.plane else None
            flags = str(o.own(FMT).get("flags", ""))
            label = "" if o.label == UNCLASSIFIED else o.label
            vecs: list[str]
            if o.kind == "point":
                vecs = [_vec(vertices(o.kind, o.geom), frame)]
            elif o.kind == "multipoint":
                vecs = [_vec([p], frame) for p in vertices(o.kind, o.geom)]
            elif o.kind in ("box", "ellipse"):
                x0, y0, x1, y1 = box_of(o.kind, o.geom)
                if o.kind == "box":
                    x0, y0, x1, y1 = unclipped(o.own(FMT), (x0, y0, x1, y1), im.width, im.height)
                vecs = [_vec([[x0, y0], [x1, y1]], None)]  # EXACT refuses a bounding box with a frame
            elif o.kind == "line":
                vecs = [_vec(vertices(o.kind, o.geom), frame)]
            else:
                vecs = [_vec(poly[0][:-1], frame) for poly in exterior_and_holes(o.kind, o.geom)]
            for k, v in enumerate(vecs):
                lines.append(f"{im.name}|{label}|{v}|{flags}|{o.id if k == 0 else ''}")
            n += 1
    out.write(("\n".join(lines) + ("\n" if lines else "")).encode())
    return n
