"""Canonical annotation geometry.

A geometry is stored as ``(kind, [d, payload])``. Coordinates are level-0
pixel positions quantised to 1/1000 px; ``d`` (0..3) is the smallest number
of decimals that represents every coordinate of the shape exactly, and every
coordinate is stored as the integer ``round(c * 10**d)``. Rings and lines are
delta-coded (``[x0, y0, x1-x0, y1-y0, ...]``), which keeps them small.

Canonical form, so that equal shapes encode (and hash) equally:

* ``point``        payload ``[x, y]``
* ``multipoint``   payload ``[x0, y0, x1, y1, ...]`` sorted by (x, y)
* ``box``          payload ``[x0, y0, x1, y1]`` with x0 < x1, y0 < y1
* ``ellipse``      payload ``[x0, y0, x1, y1]`` (axis-aligned bounding box)
* ``line``         payload one delta-coded vertex list (direction kept)
* ``polygon``      payload ``[exterior, hole, ...]``; each ring delta-coded, not
                   closed, starting at its smallest (x, y) vertex; exterior with
                   positive shoelace area, holes negative; holes sorted by start
* ``multipolygon`` payload ``[polygon, ...]`` sorted by exterior start vertex
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import InvalidGeometry

KINDS = ("point", "multipoint", "box", "ellipse", "line", "polygon", "multipolygon")
QUANTUM = 1000  # coordinates are kept to 1/1000 px
ELLIPSE_VERTICES = 96

Coord = tuple[int, int]  # in 1/1000 px


def _q(c: Any) -> int:
    if isinstance(c, bool) or not isinstance(c, (int, float)):
        raise InvalidGeometry(f"coordinate {c!r} is not a number")
    if isinstance(c, float) and not math.isfinite(c):
        raise InvalidGeometry(f"coordinate {c!r} is not finite")
    return round(c * QUANTUM)


def _pt(p: Any) -> Coord:
    if not isinstance(p, (list, tuple)) or len(p) < 2:
        raise InvalidGeometry(f"position {p!r} is not an [x, y] pair")
    return _q(p[0]), _q(p[1])


def _ring(coords: Any, closed: bool) -> list[Coord]:
    if not isinstance(coords, (list, tuple)):
        raise InvalidGeometry("ring is not a list of positions")
    try:  # fast path: well-formed numeric positions
        pts = [(round(p[0] * QUANTUM), round(p[1] * QUANTUM)) for p in coords]
    except (TypeError, ValueError, OverflowError, IndexError, KeyError):
        pts = [_pt(p) for p in coords]  # names the offending position
    if closed:
        if len(pts) >= 2 and pts[0] == pts[-1]:
            pts.pop()
        # consecutive duplicates carry no shape
        if any(a == b for a, b in zip(pts, pts[1:], strict=False)):
            pts = [p for i, p in enumerate(pts) if i == 0 or p != pts[i - 1]]
            if len(pts) > 1 and pts[0] == pts[-1]:
                pts.pop()
        if len(pts) < 3:
            raise InvalidGeometry("polygon ring has fewer than 3 distinct vertices")
        return pts
    if len(pts) < 2:
        raise InvalidGeometry("line has fewer than 2 vertices")
    return pts


def _area2(ring: Sequence[Coord]) -> int:
    xs = [p[0] for p in ring]
    ys = [p[1] for p in ring]
    return sum(map(int.__mul__, xs, ys[1:] + ys[:1])) - sum(map(int.__mul__, xs[1:] + xs[:1], ys))


def _orient(ring: list[Coord], positive: bool) -> list[Coord]:
    a = _area2(ring)
    if a == 0:
        raise InvalidGeometry("polygon ring has zero area")
    if (a > 0) != positive:
        ring = ring[::-1]
    i = ring.index(min(ring))
    return ring[i:] + ring[:i] if i else ring


def _poly(rings: Any) -> list[list[Coord]]:
    if not isinstance(rings, (list, tuple)) or not rings:
        raise InvalidGeometry("polygon has no rings")
    ext = _orient(_ring(rings[0], True), True)
    holes = sorted(_orient(_ring(r, True), False) for r in rings[1:])
    return [ext, *holes]


def _decimals(values: Iterable[int]) -> int:
    """Smallest number of decimals (0..3) that represents every value exactly."""
    d = 0
    for v in values:
        while d < 3 and v % _DIVS[d]:
            d += 1
        if d == 3:
            break
    return d


_DIVS = (1000, 100, 10, 1)


def _all_values(rings: Iterable[Sequence[Coord]]) -> Iterable[int]:
    for r in rings:
        for x, y in r:
            yield x
            yield y


def _flat(ring: Sequence[Coord], div: int) -> list[int]:
    if div != 1:
        ring = [(x // div, y // div) for x, y in ring]
    x0, y0 = ring[0]
    out = [x0, y0]
    for (ax, ay), (bx, by) in zip(ring, ring[1:], strict=False):
        out.append(bx - ax)
        out.append(by - ay)
    return out


def _flat_abs(points: Sequence[Coord], div: int) -> list[int]:
    out: list[int] = []
    for x, y in points:
        out.append(x // div)
        out.append(y // div)
    return out


def _bbox_of(points: Iterable[Coord]) -> list[Coord]:
    xs, ys = zip(*points, strict=True)
    return [(min(xs), min(ys)), (max(xs), max(ys))]


def canonical(geometry: Any, kind: str | None = None) -> tuple[str, list[Any]]:
    """Turn a GeoJSON geometry mapping (or a shapely geometry) into ``(kind, encoded)``.

    ``kind`` forces an interpretation: ``box`` takes an axis-aligned rectangle
    (or any shape's bounding box when given a 2-point line), ``ellipse`` takes
    the bounding box of the given ring (QuPath writes ellipses as polygons).
    """
    if not isinstance(geometry, dict):
        if hasattr(geometry, "__geo_interface__"):
            geometry = geometry.__geo_interface__
        else:
            raise InvalidGeometry(f"geometry must be a GeoJSON mapping, got {type(geometry).__name__}")
    gtype = geometry.get("type")
    coords = geometry.get("coordinates")
    if coords is None:
        raise InvalidGeometry(f"geometry of type {gtype!r} has no coordinates")
    if kind is not None and kind not in KINDS:
        raise InvalidGeometry(f"unknown shape kind {kind!r} (one of {', '.join(KINDS)})")
    if geometry.get("isEllipse") and kind is None:
        kind = "ellipse"

    if kind in ("box", "ellipse"):
        if gtype == "Polygon":
            pts = _ring(coords[0] if coords else [], True)
            if kind == "box" and not _is_axis_rect(pts):
                raise InvalidGeometry("a box must be an axis-aligned rectangle")
        elif gtype in ("LineString", "MultiPoint"):
            pts = [_pt(p) for p in coords]
        else:
            raise InvalidGeometry(f"a {kind} cannot be made from a {gtype}")
        if not pts:
            raise InvalidGeometry(f"{kind} has no vertices")
        (x0, y0), (x1, y1) = _bbox_of(pts)
        if x0 == x1 or y0 == y1:
            raise InvalidGeometry(f"{kind} has zero width or height")
        corners = [(x0, y0), (x1, y1)]
        div = 10 ** (3 - _decimals(_all_values([corners])))
        return kind, [3 - _log10(div), _flat_abs(corners, div)]

    if gtype == "Point":
        p = _pt(coords)
        if kind not in (None, "point", "multipoint"):
            raise InvalidGeometry(f"a Point cannot be a {kind}")
        pts = [p]
        out_kind = "point" if kind in (None, "point") else "multipoint"
    elif gtype == "MultiPoint":
        if not coords:
            raise InvalidGeometry("MultiPoint has no points")
        pts = sorted(_pt(p) for p in coords)
        out_kind = "multipoint"
        if kind == "point" and len(pts) == 1:
            out_kind = "point"
    elif gtype == "LineString":
        if kind not in (None, "line"):
            raise InvalidGeometry(f"a LineString cannot be a {kind}")
        line = _ring(coords, False)
        div = 10 ** (3 - _decimals(_all_values([line])))
        return "line", [3 - _log10(div), _flat(line, div)]
    elif gtype == "Polygon":
        if kind not in (None, "polygon", "multipolygon"):
            raise InvalidGeometry(f"a Polygon cannot be a {kind}")
        poly = _poly(coords)
        div = 10 ** (3 - _decimals(_all_values(poly)))
        enc = [_flat(r, div) for r in poly]
        if kind == "multipolygon":
            return "multipolygon", [3 - _log10(div), [enc]]
        return "polygon", [3 - _log10(div), enc]
    elif gtype == "MultiPolygon":
        if kind not in (None, "polygon", "multipolygon"):
            raise InvalidGeometry(f"a MultiPolygon cannot be a {kind}")
        if not isinstance(coords, (list, tuple)) or not coords:
            raise InvalidGeometry("MultiPolygon has no polygons")
        polys = sorted(_poly(p) for p in coords)
        div = 10 ** (3 - _decimals(_all_values(r for p in polys for r in p)))
        encp = [[_flat(r, div) for r in p] for p in polys]
        if len(encp) == 1 and kind == "polygon":
            return "polygon", [3 - _log10(div), encp[0]]
        return "multipolygon", [3 - _log10(div), encp]
    else:
        raise InvalidGeometry(f"unsupported geometry type {gtype!r}")
    div = 10 ** (3 - _decimals(_all_values([pts])))
    return out_kind, [3 - _log10(div), _flat_abs(pts, div)]


def _log10(div: int) -> int:
    return {1: 0, 10: 1, 100: 2, 1000: 3}[div]


def _is_axis_rect(pts: Sequence[Coord]) -> bool:
    if len(pts) != 4:
        return False
    xs = {p[0] for p in pts}
    ys = {p[1] for p in pts}
    return len(xs) == 2 and len(ys) == 2 and len(set(pts)) == 4


# --- decoding ---------------------------------------------------------------


def _num(v: int, d: int) -> float | int:
    return v if d == 0 else v / 10**d


def _unflat(flat: Sequence[int], d: int) -> list[list[float | int]]:
    out: list[list[float | int]] = []
    x = flat[0]
    y = flat[1]
    out.append([_num(x, d), _num(y, d)])
    for i in range(2, len(flat), 2):
        x += flat[i]
        y += flat[i + 1]
        out.append([_num(x, d), _num(y, d)])
    return out


def _pairs(flat: Sequence[int], d: int) -> list[list[float | int]]:
    return [[_num(flat[i], d), _num(flat[i + 1], d)] for i in range(0, len(flat), 2)]


def _closed(ring: list[list[float | int]]) -> list[list[float | int]]:
    return [*ring, ring[0]]


def ellipse_ring(x0: float, y0: float, x1: float, y1: float, n: int = ELLIPSE_VERTICES) -> list[list[float]]:
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
    ring = []
    for i in range(n):
        t = 2 * math.pi * i / n
        ring.append([round(cx + rx * math.cos(t), 3), round(cy + ry * math.sin(t), 3)])
    # exact extremes so the bounding box survives a round trip
    q = n // 4
    ring[0][0], ring[q][1], ring[2 * q][0], ring[3 * q][1] = x1, y1, x0, y0
    return _closed(ring)  # type: ignore[arg-type]


def to_geojson(kind: str, encoded: Sequence[Any]) -> dict[str, Any]:
    d, payload = encoded
    if kind == "point":
        return {"type": "Point", "coordinates": _pairs(payload, d)[0]}
    if kind == "multipoint":
        return {"type": "MultiPoint", "coordinates": _pairs(payload, d)}
    if kind == "box":
        (x0, y0), (x1, y1) = _pairs(payload, d)
        return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
    if kind == "ellipse":
        (x0, y0), (x1, y1) = _pairs(payload, d)
        return {"type": "Polygon", "coordinates": [ellipse_ring(x0, y0, x1, y1)], "isEllipse": True}
    if kind == "line":
        return {"type": "LineString", "coordinates": _unflat(payload, d)}
    if kind == "polygon":
        return {"type": "Polygon", "coordinates": [_closed(_unflat(r, d)) for r in payload]}
    if kind == "multipolygon":
        return {
            "type": "MultiPolygon",
            "coordinates": [[_closed(_unflat(r, d)) for r in p] for p in payload],
        }
    raise InvalidGeometry(f"unknown shape kind {kind!r}")


def bounds(kind: str, encoded: Sequence[Any]) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) in pixels, computed from the encoding."""
    d, payload = encoded
    if kind in ("point", "multipoint", "box", "ellipse"):
        xs = payload[0::2]
        ys = payload[1::2]
    else:
        rings: list[Sequence[int]]
        if kind == "line":
            rings = [payload]
        elif kind == "polygon":
            rings = [payload[0]]
        else:
            rings = [p[0] for p in payload]
        xs, ys = [], []
        for r in rings:
            x, y = r[0], r[1]
            xs.append(x)
            ys.append(y)
            for i in range(2, len(r), 2):
                x += r[i]
                y += r[i + 1]
                xs.append(x)
                ys.append(y)
    s = 10**d
    return min(xs) / s, min(ys) / s, max(xs) / s, max(ys) / s


def to_shapely(kind: str, encoded: Sequence[Any]) -> Any:
    import shapely.geometry

    gj = to_geojson(kind, encoded)
    gj.pop("isEllipse", None)
    return shapely.geometry.shape(gj)


def validate(kind: str, encoded: Sequence[Any]) -> None:
    """Raise InvalidGeometry when a polygonal shape is not valid per shapely."""
    if kind not in ("polygon", "multipolygon"):
        return
    import shapely
    import shapely.validation

    g = to_shapely(kind, encoded)
    if not shapely.is_valid(g):
        raise InvalidGeometry(f"invalid {kind}: {shapely.validation.explain_validity(g)}")
