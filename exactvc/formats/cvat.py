"""CVAT for images 1.1 XML in and out (see docs/formats.md for what maps to what).

In: ``box`` (corners; a rotated box becomes its rotated polygon, the rotation kept),
``polygon``, ``polyline`` (a line), ``points``, ``ellipse``, ``mask`` (RLE, row-major
inside its box, made the exact outline of its pixels), ``tag`` (a whole-image label:
a box over the image, ``image_label: true``). Kept under the ``cvat`` property:
the shape, ``attributes`` (strings, as CVAT writes them), ``occluded``, ``z_order``,
``group_id``, ``source``, ``rotation``. Images are keyed by name; in a project export
where one name occurs in several subsets the file's image is ``"<subset>:<name>"``.
Skeletons and cuboids are skipped and counted. Shapes have no ids in CVAT: an
annotation's id is derived from its image and content, so importing a file again
changes nothing.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, BinaryIO
from xml.sax.saxutils import escape, quoteattr

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
    num,
    vertices,
)

FMT = "cvat"
SHAPES = ("box", "polygon", "polyline", "points", "ellipse", "mask", "tag")


def _f(e: ET.Element, k: str, where: str) -> float:
    v = e.get(k)
    if v is None:
        raise InvalidInput(f"{where}: no {k}")
    try:
        return float(v)
    except ValueError:
        raise InvalidInput(f"{where}: {k}={v!r} is not a number") from None


def _points(e: ET.Element, where: str) -> list[list[float]]:
    text = e.get("points") or ""
    try:
        pts = [[float(a), float(b)] for a, b in (p.split(",") for p in text.split(";") if p.strip())]
    except ValueError:
        raise InvalidInput(f"{where}: points={text[:40]!r} are not x,y;x,y pairs") from None
    if not pts:
        raise InvalidInput(f"{where}: no points")
    return pts


def _rotate(pts: list[list[float]], cx: float, cy: float, deg: float) -> list[list[float]]:
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    return [[round(cx + (x - cx) * c - (y - cy) * s, 3), round(cy + (x - cx) * s + (y - cy) * c, 3)] for x, y in pts]


def _geometry(e: ET.Element, where: str, own: dict[str, Any]) -> dict[str, Any]:
    t = e.tag
    if t == "box":
        x0, y0, x1, y1 = (_f(e, k, where) for k in ("xtl", "ytl", "xbr", "ybr"))
        rot = float(e.get("rotation") or 0)
        if rot % 360 == 0:
            return box_geom(x0, y0, x1, y1, kind="box")
        own["rotation"] = rot
        ring = _rotate([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], (x0 + x1) / 2, (y0 + y1) / 2, rot)
        return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    if t == "polygon":
        pts = _points(e, where)
        return {"type": "Polygon", "coordinates": [[*pts, pts[0]]]}
    if t == "polyline":
        return {"type": "LineString", "coordinates": _points(e, where)}
    if t == "points":
        pts = _points(e, where)
        return {"type": "Point", "coordinates": pts[0]} if len(pts) == 1 else {"type": "MultiPoint", "coordinates": pts}
    if t == "ellipse":
        cx, cy, rx, ry = (_f(e, k, where) for k in ("cx", "cy", "rx", "ry"))
        if e.get("rotation") and float(e.get("rotation") or 0) % 360:
            own["rotation"] = float(e.get("rotation") or 0)
        return box_geom(cx - rx, cy - ry, cx + rx, cy + ry, kind="ellipse")
    if t == "mask":
        from .masks import mask_to_geojson, runs_to_mask

        left, top, w, h = (int(_f(e, k, where)) for k in ("left", "top", "width", "height"))
        own["box"] = [left, top, w, h]
        try:
            counts = [int(c) for c in (e.get("rle") or "").split(",") if c.strip()]
            return mask_to_geojson(runs_to_mask(counts, h, w, column_major=False), left, top)
        except ValueError:
            raise InvalidInput(f"{where}: rle is not a list of integers") from None
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.message}") from None
    assert t == "tag"
    return {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]], "whole": True}


def _content_id(image: str, e: ET.Element, geom: dict[str, Any], seen: dict[str, int]) -> bytes:
    """An id from the shape's image, tag, label and canonical geometry (CVAT shapes have none, and
    exactvc writes vertices in canonical order); identical shapes are numbered in file order."""
    from .. import geometry
    from ..errors import InvalidGeometry

    try:
        shape: Any = geometry.canonical(geom, geom.get("kind")) if not geom.get("whole") else "whole"
    except InvalidGeometry:
        shape = repr(sorted(e.attrib.items()))  # refused later, naming the shape
    text = repr((e.tag, e.get("label") or "", e.get("rotation") or "", shape))
    n = seen.get(text, 0)
    seen[text] = n + 1
    return derived_id(FMT, image, f"{text}\0{n}")


def read(path: Path) -> ReadResult:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InvalidInput(f"{path}: malformed XML: {exc}") from None
    if root.tag != "annotations":
        raise InvalidInput(f"{path}: not a CVAT for images file (root <{root.tag}>)")
    if root.find("track") is not None:
        raise InvalidInput(f"{path}: <track> elements: this is CVAT for video, not CVAT for images")
    colors: dict[str, str] = {}
    for lab in root.iter("label"):
        name, color = lab.findtext("name"), lab.findtext("color")
        if name and color:
            colors[name] = color
    imgs = root.findall("image")
    counts: dict[str, int] = {}
    for im in imgs:
        counts[im.get("name", "")] = counts.get(im.get("name", ""), 0) + 1
    result = ReadResult([])
    by_name: dict[str, SourceImage] = {}
    for k, im in enumerate(imgs):
        raw = im.get("name") or im.get("id") or str(k)
        name = f"{im.get('subset')}:{raw}" if counts.get(raw, 0) > 1 and im.get("subset") else raw
        src = by_name.get(name)
        if src is None:
            w, h = im.get("width"), im.get("height")
            src = by_name[name] = SourceImage(name, width=int(w) if w else None, height=int(h) if h else None)
        seen: dict[str, int] = {}
        for n, e in enumerate(im):
            where = f"image {raw!r} (id {im.get('id')}) shape {n} <{e.tag}>"
            if e.tag not in SHAPES:
                result.skip(f"{e.tag} shapes")
                continue
            own: dict[str, Any] = {"shape": e.tag}
            try:
                geom = _geometry(e, where, own)
            except InvalidInput as exc:
                raise InvalidInput(f"{path}: {exc.message}") from None
            for key in ("occluded", "z_order", "group_id"):
                v = e.get(key)
                if v is not None:
                    try:
                        own[key] = int(v)
                    except ValueError:
                        raise InvalidInput(f"{path}: {where}: {key}={v!r} is not an integer") from None
            if not own.get("occluded"):
                own.pop("occluded", None)  # the default, which every export writes
            if e.get("source") and e.get("source") != "manual":
                own["source"] = e.get("source")
            attrs = {a.get("name") or "": a.text or "" for a in e.findall("attribute")}
            if attrs:
                own["attributes"] = attrs
            props: dict[str, Any] = {FMT: own}
            if e.tag == "tag":
                props["image_label"] = True
            label = e.get("label") or UNCLASSIFIED
            from .common import parse_color

            src.add(Record(0, _content_id(name, e, geom, seen), label, parse_color(colors.get(label)), geom, props, None),
                    where)
    result.images = list(by_name.values())
    return result


# --- export -----------------------------------------------------------------------------------------


def _pts(pts: list[list[float]]) -> str:
    return ";".join(f"{num(x)},{num(y)}" for x, y in pts)


def _common(o: Any, own: dict[str, Any], label: str) -> str:
    a = f"label={quoteattr(label)} source={quoteattr(str(own.get('source', 'manual')))} occluded=\"{own.get('occluded', 0)}\""
    if "z_order" in own:
        a += f" z_order=\"{own['z_order']}\""
    if "group_id" in own:
        a += f" group_id=\"{own['group_id']}\""
    return a


def _shapes(o: Any, w: int, h: int) -> list[tuple[str, str]]:
    """(tag, geometry attributes) of one annotation; holes of polygons are dropped (CVAT polygons have none)."""
    own = o.own(FMT)
    if o.properties.get("image_label") is True and o.kind == "box" and own.get("shape", "tag") == "tag":
        return [("tag", "")]
    if o.kind in ("point", "multipoint"):
        return [("points", f"points=\"{_pts(vertices(o.kind, o.geom))}\"")]
    if o.kind == "line":
        return [("polyline", f"points=\"{_pts(vertices(o.kind, o.geom))}\"")]
    if o.kind == "box":
        x0, y0, x1, y1 = box_of(o.kind, o.geom)
        return [("box", f'xtl="{num(x0)}" ytl="{num(y0)}" xbr="{num(x1)}" ybr="{num(y1)}"')]
    if o.kind == "ellipse":
        x0, y0, x1, y1 = box_of(o.kind, o.geom)
        rot = f' rotation="{num(own["rotation"])}"' if "rotation" in own else ""
        return [("ellipse", f'cx="{num((x0 + x1) / 2)}" cy="{num((y0 + y1) / 2)}" rx="{num((x1 - x0) / 2)}" '
                            f'ry="{num((y1 - y0) / 2)}"{rot}')]
    polys = exterior_and_holes(o.kind, o.geom)
    if own.get("shape") == "mask":
        from .. import geometry
        from .masks import geojson_to_mask, mask_runs

        b = box_of(o.kind, o.geom)
        x0, y0, x1, y1 = math.floor(b[0]), math.floor(b[1]), math.ceil(b[2]), math.ceil(b[3])
        kept = own.get("box")
        if isinstance(kept, list) and len(kept) == 4 and kept[0] <= x0 and kept[1] <= y0 and \
                kept[0] + kept[2] >= x1 and kept[1] + kept[3] >= y1:
            x0, y0, x1, y1 = kept[0], kept[1], kept[0] + kept[2], kept[1] + kept[3]  # the box the file had
        m = geojson_to_mask(geometry.to_geojson(o.kind, o.geom), x0, y0, x1 - x0, y1 - y0)
        rle = ", ".join(str(r) for r in mask_runs(m, column_major=False))
        return [("mask", f'rle="{rle}" left="{x0}" top="{y0}" width="{x1 - x0}" height="{y1 - y0}"')]
    if own.get("shape") == "box" and "rotation" in own and o.kind == "polygon" and len(polys[0][0]) == 5:
        ring = polys[0][0][:-1]
        cx = sum(p[0] for p in ring) / 4
        cy = sum(p[1] for p in ring) / 4
        un = _rotate(ring, cx, cy, -own["rotation"])
        xs = [round(p[0], 2) for p in un]
        ys = [round(p[1], 2) for p in un]
        return [("box", f'xtl="{num(min(xs))}" ytl="{num(min(ys))}" xbr="{num(max(xs))}" ybr="{num(max(ys))}" '
                        f'rotation="{num(own["rotation"])}"')]
    return [("polygon", f"points=\"{_pts(poly[0][:-1])}\"") for poly in polys]


def export(repo: Any, rev: str | None, image: str | None, out: BinaryIO) -> int:
    imgs, colors = export_images(repo, rev, image)
    labels = sorted({o.label for im in imgs for o in im.annotations if o.label != UNCLASSIFIED})
    attrs: dict[str, set[str]] = {}
    for im in imgs:
        for o in im.annotations:
            for k in o.own(FMT).get("attributes", {}):
                attrs.setdefault(o.label, set()).add(k)
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", "  <version>1.1</version>", "  <meta>",
             "    <task>", "      <labels>"]
    for lb in labels:
        lines.append(f"        <label>\n          <name>{escape(lb)}</name>\n          <color>{colors.get(lb, '#ffcc00')}"
                     "</color>\n          <type>any</type>")
        if attrs.get(lb):
            lines.append("          <attributes>")
            for a in sorted(attrs[lb]):
                lines.append(f"            <attribute>\n              <name>{escape(a)}</name>\n"
                             "              <input_type>text</input_type>\n            </attribute>")
            lines.append("          </attributes>")
        lines.append("        </label>")
    lines += ["      </labels>", "    </task>", "  </meta>"]
    n = 0
    for i, im in enumerate(imgs):
        lines.append(f'  <image id="{i}" name={quoteattr(im.name)} width="{im.width}" height="{im.height}">')
        for o in im.annotations:
            own = o.own(FMT)
            label = "" if o.label == UNCLASSIFIED else o.label
            at = own.get("attributes", {})
            for tag, geo in _shapes(o, im.width, im.height):
                body = "".join(f"\n      <attribute name={quoteattr(k)}>{escape(str(v))}</attribute>"
                               for k, v in sorted(at.items()))
                sp = " " if geo else ""
                lines.append(f"    <{tag} {_common(o, own, label)}{sp}{geo}>{body}\n    </{tag}>" if body else
                             f"    <{tag} {_common(o, own, label)}{sp}{geo}/>")
            n += 1
        lines.append("  </image>")
    lines.append("</annotations>\n")
    out.write("\n".join(lines).encode())
    return n
