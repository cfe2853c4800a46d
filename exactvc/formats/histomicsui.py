"""HistomicsUI / DSA (girder large_image) annotation JSON in and out (see docs/formats.md).

In: a bare annotation document, a list of them, or a server dump (entries wrap the
document under ``"annotation"``; a dump cut short by server paging is refused).
Elements: ``point`` (a point), ``rectangle`` (a box; rotated: its polygon, the rotation in
radians kept), ``ellipse`` and ``circle`` (ellipses), ``polyline`` (``closed``: a polygon
with its ``holes``; open: a line; a closed one with fewer than 3 distinct vertices: a line),
``arrow`` (a line). Coordinates ``[x, y, z]``; a non-zero z is the plane. ``group`` is the
label; ``id``, ``label``, colours, ``lineWidth``, ``user`` and the document's ``name``,
``description`` and ``attributes`` are kept under the ``histomicsui`` property. Other
element types (grids, heatmaps, images, pixelmaps) are skipped and counted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ..errors import InvalidInput
from .common import (
    NAMESPACES,
    UNCLASSIFIED,
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

FMT = "histomicsui"
_KEPT = ("id", "label", "lineColor", "lineWidth", "fillColor", "rotation", "normal")


def _xy(p: Any, where: str) -> list[float]:
    if not (isinstance(p, list) and len(p) in (2, 3) and all(isinstance(v, (int, float)) for v in p)):
        raise InvalidInput(f"{where}: coordinate {p!r} is not [x, y, z]")
    return [p[0], p[1]]


def _rotated(cx: float, cy: float, w: float, h: float, rot: float) -> list[list[float]]:
    c, s = math.cos(rot), math.sin(rot)
    pts = [[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]]
    ring = [[round(cx + x * c - y * s, 3), round(cy + x * s + y * c, 3)] for x, y in pts]
    return [*ring, ring[0]]


def _geometry(el: dict[str, Any], where: str, own: dict[str, Any]) -> dict[str, Any]:
    t = el.get("type")
    if t == "point":
        return {"type": "Point", "coordinates": _xy(el.get("center"), where)}
    if t in ("rectangle", "ellipse"):
        cx, cy = _xy(el.get("center"), where)
        w, h = el.get("width"), el.get("height")
        if not isinstance(w, (int, float)) or not isinstance(h, (int, float)):
            raise InvalidInput(f"{where}: a {t} needs a numeric width and height")
        rot = el.get("rotation") or 0
        if not isinstance(rot, (int, float)):
            raise InvalidInput(f"{where}: rotation {rot!r} is not a number")
        if rot and t == "rectangle":
            return {"type": "Polygon", "coordinates": [_rotated(cx, cy, w, h, rot)]}
        return box_geom(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, kind="box" if t == "rectangle" else "ellipse")
    if t == "circle":
        cx, cy = _xy(el.get("center"), where)
        r = el.get("radius")
        if not isinstance(r, (int, float)):
            raise InvalidInput(f"{where}: a circle needs a numeric radius")
        return box_geom(cx - r, cy - r, cx + r, cy + r, kind="ellipse")
    if t in ("polyline", "arrow"):
        pts = el.get("points") if t == "polyline" else [el.get("points", [None, None])[0], el.get("points", [None, None])[-1]]
        if not isinstance(pts, list) or not pts:
            raise InvalidInput(f"{where}: no points")
        ring = [_xy(p, where) for p in pts]
        if t == "polyline" and el.get("closed") is True:
            distinct = {tuple(p) for p in ring}
            if len(distinct) >= 3:
                holes = el.get("holes") or []
                if not isinstance(holes, list):
                    raise InvalidInput(f"{where}: holes must be a list of rings")
                rings = [ring] + [[_xy(p, where) for p in h] for h in holes]
                return {"type": "Polygon", "coordinates": [[*r, r[0]] for r in rings]}
            own["closed"] = True  # degenerate (HistomicsTK writes 2-point "closed" lines): kept as a line
        return {"type": "LineString", "coordinates": ring}
    raise _Skip(f"{t} elements")


class _Skip(Exception):
    pass


def _documents(doc: Any, path: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(annotation document, what wraps it in a server dump)."""
    items = doc if isinstance(doc, list) else [doc]
    out = []
    for n, it in enumerate(items):
        if not isinstance(it, dict):
            raise InvalidInput(f"{path}: entry {n} is not a JSON object")
        if "annotation" in it and isinstance(it["annotation"], dict):
            q = it.get("_elementQuery")
            if isinstance(q, dict) and isinstance(q.get("count"), int) and isinstance(q.get("returned"), int) \
                    and q["returned"] < q["count"]:
                raise InvalidInput(f"{path}: entry {n} holds {q['returned']} of {q['count']} elements (cut by the "
                                   "server's paging); download it without a limit")
            wrap = {k: it[k] for k in ("_id", "itemId") if k in it}
            out.append((it["annotation"], wrap))
        elif "elements" in it:
            out.append((it, {}))
        else:
            raise InvalidInput(f"{path}: entry {n} is not a HistomicsUI annotation (no elements)")
    return out


def read(path: Path) -> ReadResult:
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: malformed JSON: {exc}") from None
    src = SourceImage(None)
    result = ReadResult([src])
    for d, (ann, wrap) in enumerate(_documents(doc, path)):
        elements = ann.get("elements")
        if not isinstance(elements, list):
            raise InvalidInput(f"{path}: annotation {d}: elements must be a list")
        docinfo = {k: ann[k] for k in ("name", "description", "attributes", "display") if ann.get(k)}
        docinfo.update(wrap)
        for n, el in enumerate(elements):
            where = f"annotation {d} element {n}" + (f" (id {el.get('id')})" if isinstance(el, dict) and el.get("id") else "")
            if not isinstance(el, dict):
                raise InvalidInput(f"{path}: {where}: not a JSON object")
            own: dict[str, Any] = {"type": el.get("type")}
            try:
                geom = _geometry(el, where, own)
            except _Skip as s:
                result.skip(str(s))
                continue
            except InvalidInput as exc:
                raise InvalidInput(f"{path}: {exc.message}") from None
            for k in _KEPT:
                if k in el and el[k] not in (None, 0) or (k in el and k == "label"):
                    own[k] = el[k]
            user = el.get("user")
            props: dict[str, Any] = {}
            exact_id = None
            if isinstance(user, dict):
                exact_id = user.get("exact_id")
                extra = user.get("exact_properties")
                if isinstance(extra, dict):
                    props.update(extra)
                rest = {k: v for k, v in user.items() if k not in ("exact_id", "exact_properties")}
                if rest:
                    own["user"] = rest
            if docinfo:
                own["annotation"] = docinfo
            props[FMT] = own
            coords = el.get("center") or ((el.get("points") or [[0, 0, 0]])[0] if el.get("points") else None)
            z = coords[2] if isinstance(coords, list) and len(coords) == 3 and isinstance(coords[2], (int, float)) else 0
            group = el.get("group")
            label = group if isinstance(group, str) and group else UNCLASSIFIED
            key = uuid_key(exact_id) or derived_id(FMT, "", el["id"] if isinstance(el.get("id"), str) else f"{d}/{n}")
            color = parse_color(el.get("lineColor"))
            src.add(Record(0, key, label, color, geom, props, (int(z), 0) if z else None), where)
    return result


# --- export -----------------------------------------------------------------------------------------


def _c(p: list[float], z: int) -> list[float]:
    return [p[0], p[1], z]


def _element(o: Any, colors: dict[str, str]) -> dict[str, Any] | None:
    own = o.own(FMT)
    z = o.plane[0] if o.plane else 0
    el: dict[str, Any]
    if o.kind == "point":
        el = {"type": "point", "center": _c(vertices(o.kind, o.geom)[0], z)}
    elif o.kind == "multipoint":
        return None  # HistomicsUI has no point sets: written one point each by the caller
    elif o.kind in ("box", "ellipse"):
        x0, y0, x1, y1 = box_of(o.kind, o.geom)
        t = "rectangle" if o.kind == "box" else ("circle" if own.get("type") == "circle" else "ellipse")
        el = {"type": t, "center": [(x0 + x1) / 2, (y0 + y1) / 2, z]}
        if t == "circle":
            el["radius"] = (x1 - x0) / 2
        else:
            el.update({"width": x1 - x0, "height": y1 - y0, "rotation": own.get("rotation", 0) if t == "ellipse" else 0})
    elif o.kind == "line":
        pts = vertices(o.kind, o.geom)
        el = {"type": "polyline", "points": [_c(p, z) for p in pts], "closed": bool(own.get("closed"))}
        if own.get("type") == "arrow" and len(pts) == 2:
            el = {"type": "arrow", "points": [_c(p, z) for p in pts]}
    elif o.kind == "polygon" and own.get("type") == "rectangle" and own.get("rotation"):
        ring = exterior_and_holes(o.kind, o.geom)[0][0][:-1]
        cx = sum(p[0] for p in ring) / 4
        cy = sum(p[1] for p in ring) / 4
        rot = own["rotation"]
        c, s = math.cos(-rot), math.sin(-rot)
        un = [[(x - cx) * c - (y - cy) * s, (x - cx) * s + (y - cy) * c] for x, y in ring]
        w = round(max(p[0] for p in un) - min(p[0] for p in un), 2)
        h = round(max(p[1] for p in un) - min(p[1] for p in un), 2)
        el = {"type": "rectangle", "center": [round(cx, 3), round(cy, 3), z], "width": w, "height": h, "rotation": rot}
    else:
        polys = exterior_and_holes(o.kind, o.geom)
        if len(polys) > 1:
            return None  # several parts: written one element each by the caller
        el = {"type": "polyline", "points": [_c(p, z) for p in polys[0][0][:-1]], "closed": True}
        if len(polys[0]) > 1:
            el["holes"] = [[_c(p, z) for p in r[:-1]] for r in polys[0][1:]]
    return _decorate(el, o, own, colors)


def _decorate(el: dict[str, Any], o: Any, own: dict[str, Any], colors: dict[str, str]) -> dict[str, Any]:
    if o.label != UNCLASSIFIED:
        el["group"] = o.label
    for k in ("id", "label", "lineWidth", "fillColor", "normal"):
        if k in own:
            el[k] = own[k]
    if "lineColor" in own:
        el["lineColor"] = own["lineColor"]
    elif "type" not in own:  # from another format: the label's colour
        el["lineColor"] = colors.get(o.label, "#000000")
    user = dict(own.get("user") or {})
    user["exact_id"] = o.id
    generic = {k: v for k, v in o.properties.items() if k not in NAMESPACES}
    if generic:
        user["exact_properties"] = generic
    el["user"] = user
    return el


def _part(el: dict[str, Any]) -> dict[str, Any]:
    """One part of a point set or multi-part polygon: its own element (and, imported again, annotation)."""
    el["user"]["exact_part_of"] = el["user"].pop("exact_id")
    el.pop("id", None)
    return el


def export(repo: Any, rev: str | None, image: str | None, out: BinaryIO) -> int:
    """The image's annotations as HistomicsUI documents, one per document name they came from
    (a bare document when there is one); point sets and multi-part polygons become one element a part."""
    imgs, colors = export_images(repo, rev, image)
    if len(imgs) != 1:
        from ..errors import UsageError

        raise UsageError("a HistomicsUI file holds one image's annotations: name the image with --image")
    docs: dict[str, dict[str, Any]] = {}
    wraps: dict[str, dict[str, Any]] = {}
    n = 0
    for o in imgs[0].annotations:
        own = o.own(FMT)
        info = own.get("annotation") or {}
        name = info.get("name") if isinstance(info.get("name"), str) else "exactvc"
        dkey = orjson.dumps([name, info.get("_id"), info.get("itemId")]).decode()
        doc = docs.setdefault(dkey, {"name": name, **{k: info[k] for k in ("description", "attributes", "display")
                                                        if k in info}, "elements": []})
        if "_id" in info:
            wraps[dkey] = {k: info[k] for k in ("_id", "itemId") if k in info}
        el = _element(o, colors)
        if el is not None:
            doc["elements"].append(el)
        elif o.kind == "multipoint":
            for p in vertices(o.kind, o.geom):
                doc["elements"].append(_part(_decorate({"type": "point", "center": _c(p, o.plane[0] if o.plane else 0)},
                                                       o, own, colors)))
        else:
            for poly in exterior_and_holes(o.kind, o.geom):
                e = {"type": "polyline", "points": [_c(p, 0) for p in poly[0][:-1]], "closed": True}
                if len(poly) > 1:
                    e["holes"] = [[_c(p, 0) for p in r[:-1]] for r in poly[1:]]
                doc["elements"].append(_part(_decorate(e, o, own, colors)))
        n += 1
    body: Any = [{**wraps[k], "annotation": d} if k in wraps else d for k, d in docs.items()]
    if len(body) == 1 and not wraps:
        body = body[0]
    out.write(orjson.dumps(body))
    out.write(b"\n")
    return n
