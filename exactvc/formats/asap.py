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

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from xml.sax.saxutils import quoteattr

import numpy as np

from ..errors import InvalidInput
from .asapxml import _CLOSE, _OPEN, _SPACE, Coord, _block, _Irregular, _items, _run_items
from .common import (
    UNCLASSIFIED,
    Batch,
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
from .importer import CHECK_BATCH

FMT = "asap"
TYPES = ("Dot", "PointSet", "Measurement", "Rectangle", "Polygon", "Spline")
DEFAULT_COLOR = "#F4FA58"


def _text(v: str | bytes) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def _float(v: str | bytes | None, where: str, axis: str) -> float:
    if v is None:
        raise InvalidInput(f"{where}: a Coordinate without {axis}")
    try:
        return float(_text(v).replace(",", ".").strip())
    except ValueError:
        raise InvalidInput(f"{where}: {axis}={_text(v)!r} is not a number") from None


_ORDERS: list[str] = []
_BORDERS: list[bytes] = []


def _orders(n: int, raw: bool) -> list[Any]:
    """``["0", "1", ..., str(n - 1)]`` (bytes when ``raw``; grown once, sliced after)."""
    while len(_ORDERS) < n:
        _ORDERS.extend(str(i) for i in range(len(_ORDERS), max(n, 2 * len(_ORDERS), 64)))
        _BORDERS[:] = [o.encode() for o in _ORDERS]
    return _BORDERS[:n] if raw else _ORDERS[:n]


def _coords(cs: list[Coord], where: str) -> list[Any]:
    """Vertices from an annotation's ``Coordinate`` elements, in ``Order`` order."""
    try:  # the usual file: Order 0..n-1 in document order, dot decimals (list operations in C)
        pts = [(float(x), float(y)) for _o, x, y in cs]
        if cs and [c[0] for c in cs] == _orders(len(cs), isinstance(cs[0][0], bytes)):
            return pts
    except (TypeError, ValueError):
        pass
    slots: dict[int, list[float]] = {}
    for o, x, y in cs:
        try:
            order = int(o) if o is not None else len(slots)
        except ValueError:
            raise InvalidInput(f"{where}: Order={_text(o)!r} is not an integer") from None
        if order in slots:
            raise InvalidInput(f"{where}: Order {order} appears twice (ASAP would load a (0, 0) vertex)")
        slots[order] = [_float(x, where, "X"), _float(y, where, "Y")]
    if sorted(slots) != list(range(len(slots))):
        missing = sorted(set(range(max(slots, default=0) + 1)) - set(slots))
        raise InvalidInput(f"{where}: Order has gaps (missing {missing[:5]}; ASAP would load (0, 0) vertices)")
    return [slots[i] for i in range(len(slots))]


def _geometry(t: str, pts: list[Any], where: str) -> dict[str, Any]:
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


# --- reading: two passes over the file (asapxml), records streamed ---------------------------------
#
# Pass 1 collects the groups (ASAP writes them after the annotations) and which annotation names are
# unique (a unique name gives the id); pass 2 makes the records, a batch at a time, as the importer
# consumes them.

RUN = 1 << 20  # bytes of annotation blocks a part (of the fast scan's files)


def read(path: Path, batch: int = CHECK_BATCH) -> ReadResult:
    """The groups and which names are unique first (pass 1), then the records streamed (pass 2):
    runs of about ``RUN`` bytes of annotations cut from the file (``ReadResult.parts``, made into records
    by ``part_records``, in worker processes for large files) or, for files the fast scan does not read,
    batches from expat (``ReadResult.stream``). Memory: the records in flight, the groups, 9 bytes an
    annotation; not the file."""
    groups: dict[str, dict[str, Any]] = {}
    hashes = bytearray()  # 8 bytes of each annotation's name
    layout: list[int] = []

    def group(g: dict[str, str], attrs: dict[str, str]) -> None:
        name = g.get("Name")
        if name is not None:
            if name in groups:
                raise InvalidInput(f"{path}: group {name!r} is declared twice (ASAP maps groups by name)")
            groups[name] = _group(g, attrs)

    fast = True
    try:
        for _n, a, _cs in _items(path, True, False, group, layout):
            nm = a.get("Name")
            hashes += hashlib.blake2b(nm.encode(), digest_size=8).digest() if nm else b"\0" * 8
    except _Irregular:
        fast = False
        groups.clear()
        hashes.clear()
        for _n, a, _cs in _items(path, False, False, group):
            nm = a.get("Name")
            hashes += hashlib.blake2b(nm.encode(), digest_size=8).digest() if nm else b"\0" * 8
    for name, info in groups.items():
        if "parent" in info and info["parent"] not in groups:
            raise InvalidInput(f"{path}: group {name!r} is part of group {info['parent']!r}, which is not declared "
                               "in <AnnotationGroups> (ASAP would load nothing)")
    h = np.frombuffer(bytes(hashes), dtype=np.uint64)
    del hashes
    _u, inverse, counts = np.unique(h, return_inverse=True, return_counts=True)
    unique_name = counts[inverse.reshape(-1)] == 1  # a byte an annotation (a hash collision: an id from "#n")
    del h, inverse, counts
    colors = {g: parse_color(info.get("color")) for g, info in groups.items()}
    chains: dict[str, dict[str, Any]] = {}
    for g in groups:
        chain: dict[str, Any] = {}
        gname = g
        while gname != "None" and gname in groups and gname not in chain:
            chain[gname] = groups[gname]
            gname = groups[gname].get("parent", "None")
        chains[g] = chain
    total = len(unique_name)
    src = SourceImage(None, streamed=total > 0)

    def record(n: int, a: dict[str, str], cs: list[Coord]) -> tuple[Record, str]:
        rec, grp, where = _annotation(path, a, cs, n)
        if grp != "None":
            if grp not in groups:
                raise InvalidInput(f"{path}: {where}: group {grp!r} is not declared in <AnnotationGroups> "
                                   "(ASAP would load nothing)")
            rec.properties[FMT]["groups"] = chains[grp]
            rec.color = colors.get(grp)
        if rec.id is None:
            nm = rec.properties.get("name")
            rec.id = derived_id(FMT, "", nm if nm and unique_name[n] else f"#{n}")
        rec.index = n  # one image: the record number is the annotation's place in the file
        return rec, where

    def stream() -> Iterator[Batch]:  # files the fast scan does not read
        recs: list[Record] = []
        wheres: list[str] = []
        seen = 0
        for n, a, cs in _items(path, False, True, lambda _g, _a: None):
            if n >= total:
                break
            rec, where = record(n, a, cs or [])
            recs.append(rec)
            wheres.append(where)
            seen = n + 1
            if len(recs) >= batch:
                yield src, recs, wheres
                recs, wheres = [], []
        if recs:
            yield src, recs, wheres
        if seen != total:
            raise InvalidInput(f"{path}: the file changed while it was read")

    def parts() -> Iterator[tuple[bytes, int]]:  # (run of whole annotation blocks, number of its first)
        first, stop = layout
        n = 0
        with open(path, "rb") as f:
            f.seek(first)
            left = stop - first
            buf = b""
            want = 2 * RUN
            while True:
                while left > 0 and len(buf) < want:
                    more = f.read(min(RUN, left))
                    if not more:
                        raise InvalidInput(f"{path}: the file changed while it was read")
                    left -= len(more)
                    buf += more
                if not buf:
                    break
                cut = _OPEN.search(buf, RUN) if len(buf) > RUN else None
                if cut is None and left > 0:
                    want = len(buf) + RUN  # one annotation longer than a run
                    continue
                want = 2 * RUN
                run, buf = (buf[:cut.start()], buf[cut.start():]) if cut is not None else (buf, b"")
                yield run, n
                n += run.count(_CLOSE)
        if n != total:
            raise InvalidInput(f"{path}: the file changed while it was read")

    def part_records(part: tuple[bytes, int]) -> tuple[list[Record], list[str]]:
        run, n = part
        recs: list[Record] = []
        wheres: list[str] = []
        fast = _run_items(run)
        if fast is not None:
            if n + len(fast) > total:
                raise InvalidInput(f"{path}: the file changed while it was read")
            for k, (a, cs) in enumerate(fast):
                rec, where = record(n + k, a, cs)
                recs.append(rec)
                wheres.append(where)
            return recs, wheres
        pos = 0
        try:
            while pos < len(run):
                end = run.find(_CLOSE, pos)
                if end < 0 or n >= total:
                    raise _Irregular
                end += len(_CLOSE)
                a, got = _block(run[pos:end], True)
                rec, where = record(n, a, got or [])
                recs.append(rec)
                wheres.append(where)
                n += 1
                pos = _SPACE.match(run, end).end()  # type: ignore[union-attr]
                if pos < len(run) and _OPEN.match(run, pos) is None:
                    raise _Irregular
        except _Irregular:
            raise InvalidInput(f"{path}: the file changed while it was read") from None
        return recs, wheres

    if fast and total:
        return ReadResult([src], parts=parts, part_records=part_records)
    return ReadResult([src], stream=stream)


def _annotation(path: Path, a: dict[str, str], cs: list[Coord], n: int) -> tuple[Record, str, str]:
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
