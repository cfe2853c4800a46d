"""ASAP XML in and out (see docs/formats.md for what maps to what).

In: ``Dot`` (a point), ``PointSet`` (a multipoint), ``Measurement`` (a 2-point line),
``Rectangle`` (a box when axis-aligned, else a polygon), ``Polygon`` and ``Spline``
(polygons; a spline keeps its control points, as ASAP stores them). Vertices are put in
``Order`` order (a gap or a repeat is an error, as ASAP would load (0, 0) points).
``PartOfGroup`` is the label (``"None"``: unclassified); a group that is not declared
is an error (ASAP itself loads nothing then). Groups nest; their colours and
attributes are kept. Comma decimal separators (``X="12711,2998"``) are read.
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any, BinaryIO
from xml.parsers import expat
from xml.sax.saxutils import quoteattr

from ..errors import InvalidInput
from .common import (
    UNCLASSIFIED,
    OutImage,
    ReadResult,
    Record,
    SourceImage,
    box_geom,
    derived_id,
    export_images,
    exterior_and_holes,
    num,
    parse_color,
    uuid_key,
    vertices,
)

FMT = "asap"
TYPES = ("Dot", "PointSet", "Measurement", "Rectangle", "Polygon", "Spline")
DEFAULT_COLOR = "#F4FA58"


def _float(v: str | None, where: str, axis: str) -> float:
    if v is None:
        raise InvalidInput(f"{where}: a Coordinate without {axis}")
    try:
        return float(v.replace(",", ".").strip())
    except ValueError:
        raise InvalidInput(f"{where}: {axis}={v!r} is not a number") from None


_XY = operator.itemgetter("X", "Y")
_ORDER = operator.itemgetter("Order")
_ORDERS: list[str] = []


def _orders(n: int) -> list[str]:
    """``["0", "1", ..., str(n - 1)]`` (grown once, sliced after)."""
    while len(_ORDERS) < n:
        _ORDERS.extend(str(i) for i in range(len(_ORDERS), max(n, 2 * len(_ORDERS), 64)))
    return _ORDERS[:n]


def _coords(cs: list[dict[str, str]], where: str) -> list[Any]:
    """Vertices from the attributes of an annotation's ``Coordinate`` elements, in ``Order`` order."""
    try:  # the usual file: Order 0..n-1 in document order, dot decimals (list operations in C)
        pts = [(float(x), float(y)) for x, y in map(_XY, cs)]
        if list(map(_ORDER, cs)) == _orders(len(cs)):
            return pts
    except (KeyError, ValueError):
        pass
    slots: dict[int, list[float]] = {}
    for c in cs:
        o = c.get("Order")
        try:
            order = int(o) if o is not None else len(slots)
        except ValueError:
            raise InvalidInput(f"{where}: Order={o!r} is not an integer") from None
        if order in slots:
            raise InvalidInput(f"{where}: Order {order} appears twice (ASAP would load a (0, 0) vertex)")
        slots[order] = [_float(c.get("X"), where, "X"), _float(c.get("Y"), where, "Y")]
    if sorted(slots) != list(range(len(slots))):
        missing = sorted(set(range(max(slots, default=0) + 1)) - set(slots))
        raise InvalidInput(f"{where}: Order has gaps (missing {missing[:5]}; ASAP would load (0, 0) vertices)")
    return [slots[i] for i in range(len(slots))]


def _geometry(t: str, pts: list[list[float]], where: str) -> dict[str, Any]:
    if not pts:
        raise InvalidInput(f"{where}: no coordinates")
    if t == "Dot":
        if len(pts) != 1:
            raise InvalidInput(f"{where}: a Dot has {len(pts)} coordinates, not 1")
        return {"type": "Point", "coordinates": pts[0]}
    if t == "PointSet":
        return {"type": "MultiPoint", "coordinates": pts}
    if t == "Measurement":
        if len(pts) != 2:
            raise InvalidInput(f"{where}: a Measurement has {len(pts)} coordinates, not 2")
        return {"type": "LineString", "coordinates": pts}
    if t == "Rectangle" and len(pts) == 4:
        xs = {p[0] for p in pts}
        ys = {p[1] for p in pts}
        if len(xs) == 2 and len(ys) == 2:
            return box_geom(min(xs), min(ys), max(xs), max(ys), kind="box")
    return {"type": "Polygon", "coordinates": [pts]}  # not closed: the geometry code closes it


def _group(g: dict[str, str], attrs: dict[str, str]) -> dict[str, Any]:
    info: dict[str, Any] = {}
    parent = g.get("PartOfGroup")
    if parent and parent != "None":
        info["parent"] = parent
    if g.get("Color"):
        info["color"] = g.get("Color")
    if attrs:
        info["attributes"] = attrs
    return info


def read(path: Path) -> ReadResult:
    """Streamed with expat's callbacks (no element objects): memory is the records, not the XML."""
    groups: dict[str, dict[str, Any]] = {}
    pending: list[tuple[Record, str, str]] = []  # record, group, where: groups are declared after annotations
    src = SourceImage(None)
    names: dict[str, int] = {}
    stack: list[str] = []
    ann: dict[str, str] | None = None
    coords: list[dict[str, str]] = []
    grp: dict[str, str] | None = None
    gattrs: dict[str, str] = {}
    root_tag: list[str] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal ann, grp, gattrs
        parent = stack[-1] if stack else None
        if parent is None:
            root_tag.append(tag)
        stack.append(tag)
        if tag == "Coordinate":
            if ann is not None and parent == "Coordinates" and len(stack) >= 3 and stack[-3] == "Annotation":
                coords.append(attrs)
        elif tag == "Annotation":
            ann = attrs
            coords.clear()
        elif tag == "Group":
            grp, gattrs = attrs, {}
        elif tag == "Attribute" and grp is not None and parent == "Attributes":
            gattrs.update(attrs)

    def end(tag: str) -> None:
        nonlocal ann, grp
        stack.pop()
        if tag == "Annotation" and ann is not None:
            n = len(pending)
            pending.append(_annotation(path, ann, coords, n))
            nm = ann.get("Name")
            if nm is not None:
                names[nm] = names.get(nm, 0) + 1
            ann = None
        elif tag == "Group" and grp is not None:
            name = grp.get("Name")
            if name is not None:
                if name in groups:
                    raise InvalidInput(f"{path}: group {name!r} is declared twice (ASAP maps groups by name)")
                groups[name] = _group(grp, gattrs)
            grp = None

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        with open(path, "rb") as f:
            parser.ParseFile(f)
    except expat.ExpatError as exc:
        raise InvalidInput(f"{path}: malformed XML: {exc}") from None
    if not root_tag or root_tag[0] != "ASAP_Annotations":
        raise InvalidInput(f"{path}: not an ASAP file (root <{root_tag[0] if root_tag else None}>, "
                           "not <ASAP_Annotations>)")
    for name, info in groups.items():
        if "parent" in info and info["parent"] not in groups:
            raise InvalidInput(f"{path}: group {name!r} is part of group {info['parent']!r}, which is not declared "
                               "in <AnnotationGroups> (ASAP would load nothing)")
    colors = {g: parse_color(info.get("color")) for g, info in groups.items()}
    for k, (rec, group, where) in enumerate(pending):
        if group != "None" and group not in groups:
            raise InvalidInput(f"{path}: {where}: group {group!r} is not declared in <AnnotationGroups> "
                               "(ASAP would load nothing)")
        if group != "None":
            chain: dict[str, Any] = {}
            gname = group
            while gname != "None" and gname in groups and gname not in chain:
                chain[gname] = groups[gname]
                gname = groups[gname].get("parent", "None")
            rec.properties[FMT]["groups"] = chain
            rec.color = colors.get(group)
        nm = rec.properties.get("name")
        if rec.id is None:
            rec.id = derived_id(FMT, "", nm if nm and names.get(nm) == 1 else f"#{k}")
        src.add(rec, where)
    return ReadResult([src])


def _annotation(path: Path, a: dict[str, str], cs: list[dict[str, str]], n: int) -> tuple[Record, str, str]:
    nm = a.get("Name")
    where = f"annotation {n}" + (f" ({nm!r})" if nm else "")
    t = a.get("Type", "")
    if t not in TYPES:
        raise InvalidInput(f"{path}: {where}: unknown Type {t!r} (one of {', '.join(TYPES)})")
    group = a.get("PartOfGroup") or "None"
    try:
        geom = _geometry(t, _coords(cs, where), where)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc.message}") from None
    own: dict[str, Any] = {"type": t}
    if a.get("Color") and a.get("Color") != DEFAULT_COLOR:
        own["color"] = a.get("Color")
    props: dict[str, Any] = {FMT: own}
    if nm:
        props["name"] = nm
    label = UNCLASSIFIED if group == "None" else group
    return Record(0, uuid_key(nm), label, None, geom, props, None), group, where


# --- export -----------------------------------------------------------------------------------------


def _coords_xml(pts: list[list[float]]) -> str:
    return "".join(f'\t\t\t\t<Coordinate Order="{i}" X="{num(x)}" Y="{num(y)}" />\n'
                   for i, (x, y) in enumerate(pts))


FLUSH = 4096  # annotations per write of the streamed export


def export(repo: Any, rev: str | None, image: str | None, out: BinaryIO) -> int:
    """One ASAP file (ASAP files name no image: give one image, or a repository with one). Streamed:
    annotations are read from the store and written as they come (the groups, which ASAP lists after
    the annotations, are collected on the way), so memory does not grow with the annotation count."""
    imgs, colors = export_images(repo, rev, image, lazy=True)
    if len(imgs) != 1:
        from ..errors import UsageError

        raise UsageError("an ASAP file holds one image's annotations: name the image with --image")
    return write(imgs[0], colors, out)


def write(img: OutImage, colors: dict[str, str], out: BinaryIO) -> int:
    """The ASAP file of one image's annotations (any iterable, consumed once) to ``out``."""
    groups: dict[str, dict[str, Any]] = {}
    parts: list[str] = []
    n = 0
    out.write(b'<?xml version="1.0"?>\n<ASAP_Annotations>\n\t<Annotations>\n')
    for o in img.annotations:
        own = o.own(FMT)
        for g, info in (own.get("groups") or {}).items():
            groups.setdefault(g, info)
        group = "None" if o.label == UNCLASSIFIED else o.label
        if group != "None":
            groups.setdefault(group, {"color": colors.get(group, DEFAULT_COLOR).upper()})
        name = o.properties.get("name") if isinstance(o.properties.get("name"), str) else o.id
        color = str(own.get("color", DEFAULT_COLOR))
        shapes: list[tuple[str, list[list[float]]]] = []
        if o.kind == "point":
            shapes = [("Dot", vertices(o.kind, o.geom))]
        elif o.kind == "multipoint":
            shapes = [("PointSet", vertices(o.kind, o.geom))]
        elif o.kind == "line":
            pts = vertices(o.kind, o.geom)
            if len(pts) != 2:
                continue  # ASAP has no polyline: dropped (docs/formats.md)
            shapes = [("Measurement", pts)]
        elif o.kind == "box":
            from .common import box_of

            x0, y0, x1, y1 = box_of(o.kind, o.geom)
            shapes = [("Rectangle", [[x0, y0], [x1, y0], [x1, y1], [x0, y1]])]
        else:
            t = "Spline" if own.get("type") == "Spline" else "Polygon"
            polys = exterior_and_holes(o.kind, o.geom)  # holes are dropped: ASAP has none
            shapes = [(t, poly[0][:-1]) for poly in polys]
        for k, (t, pts) in enumerate(shapes):
            nm = str(name) if len(shapes) == 1 else f"{name} (part {k + 1})"
            parts.append(f"\t\t<Annotation Name={quoteattr(nm)} Type=\"{t}\" PartOfGroup={quoteattr(group)} "
                         f"Color={quoteattr(color)}>\n\t\t\t<Coordinates>\n{_coords_xml(pts)}"
                         "\t\t\t</Coordinates>\n\t\t</Annotation>\n")
        n += 1
        if len(parts) >= FLUSH:
            out.write("".join(parts).encode())
            parts.clear()
    out.write("".join(parts).encode())
    out.write(b"\t</Annotations>\n\t<AnnotationGroups>\n")
    for g in sorted(groups):
        info = groups[g]
        attrs = info.get("attributes") or {}
        a = "".join(f" {k}={quoteattr(str(v))}" for k, v in sorted(attrs.items()))
        body = f"\t\t\t<Attributes>\n\t\t\t\t<Attribute{a} />\n\t\t\t</Attributes>\n" if attrs else "\t\t\t<Attributes />\n"
        out.write((f"\t\t<Group Name={quoteattr(g)} PartOfGroup={quoteattr(info.get('parent', 'None'))} "
                   f"Color={quoteattr(info.get('color', DEFAULT_COLOR))}>\n{body}\t\t</Group>\n").encode())
    out.write(b"\t</AnnotationGroups>\n</ASAP_Annotations>\n")
    return n
