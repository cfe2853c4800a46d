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
import operator
from collections.abc import Iterable, Sequence
from itertools import accumulate, chain
from typing import Any

from .errors import InvalidGeometry

KINDS = ("point", "multipoint", "box", "ellipse", "line", "polygon", "multipolygon")
QUANTUM = 1000  # coordinates are kept to 1/1000 px
ELLIPSE_VERTICES = 96
MAX_Q = 2**53  # quantised coordinates stay exact in a float64 (about 9e12 px)

Coord = tuple[int, int]  # in 1/1000 px


def _q(c: Any) -> int:
    if isinstance(c, bool) or not isinstance(c, (int, float)):
        raise InvalidGeometry(f"coordinate {c!r} is not a number")
    if isinstance(c, float) and not math.isfinite(c):
        raise InvalidGeometry(f"coordinate {c!r} is not finite")
    q = c * QUANTUM
    if not -MAX_Q < q < MAX_Q:  # also catches c * QUANTUM overflowing to infinity
        raise InvalidGeometry(f"coordinate {c!r} is out of range (|c| < {MAX_Q // QUANTUM})")
    return round(q)


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
        if len(pts) > 1 and (pts[0] == pts[-1] or any(map(operator.eq, pts, pts[1:]))):
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
    return sum(map(operator.mul, xs, ys[1:] + ys[:1])) - sum(map(operator.mul, xs[1:] + xs[:1], ys))


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
    g = math.gcd(*values)
    if g % 1000 == 0:
        return 0
    if g % 100 == 0:
        return 1
    if g % 10 == 0:
        return 2
    return 3


def _all_values(rings: Iterable[Sequence[Coord]]) -> Iterable[int]:
    return [v for r in rings for p in r for v in p]


def _flat(ring: Sequence[Coord], div: int) -> list[int]:
    xs = [p[0] for p in ring]
    ys = [p[1] for p in ring]
    if div != 1:
        xs = [x // div for x in xs]
        ys = [y // div for y in ys]
    dx = map(operator.sub, xs[1:], xs)
    dy = map(operator.sub, ys[1:], ys)
    return [xs[0], ys[0], *chain.from_iterable(zip(dx, dy, strict=False))]


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
    xs = accumulate(flat[0::2])
    ys = accumulate(flat[1::2])
    if d == 0:
        return [[x, y] for x, y in zip(xs, ys, strict=True)]
    s = 10**d
    return [[x / s, y / s] for x, y in zip(xs, ys, strict=True)]


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
        xs: Iterable[int] = payload[0::2]
        ys: Iterable[int] = payload[1::2]
        x0, x1, y0, y1 = float(min(xs)), float(max(xs)), float(min(ys)), float(max(ys))
    else:
        if kind == "line":
            rings = [payload]
        elif kind == "polygon":
            rings = [payload[0]]
        else:
            rings = [p[0] for p in payload]
        x0 = y0 = math.inf
        x1 = y1 = -math.inf
        for r in rings:
            xa = list(accumulate(r[0::2]))
            ya = list(accumulate(r[1::2]))
            x0, x1 = min(x0, min(xa)), max(x1, max(xa))
            y0, y1 = min(y0, min(ya)), max(y1, max(ya))
    s = 10**d
    return x0 / s, y0 / s, x1 / s, y1 / s


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


def first_invalid(items: Sequence[tuple[str, Sequence[Any]]]) -> tuple[int, str] | None:
    """Position and reason of the first polygonal shape among ``items`` that shapely finds invalid."""
    import numpy as np
    import shapely
    import shapely.validation

    idx = [i for i, (k, _enc) in enumerate(items) if k in ("polygon", "multipolygon")]
    if not idx:
        return None
    geoms = to_shapely_many([items[i] for i in idx])
    ok = shapely.is_valid(geoms)
    if bool(np.all(ok)):
        return None
    j = int(np.argmin(ok))
    return idx[j], f"invalid {items[idx[j]][0]}: {shapely.validation.explain_validity(geoms[j])}"


# --- many at once --------------------------------------------------------------------------

Bounds = tuple[float, float, float, float]


def canonical_many(
    geoms: Sequence[Any], kind: str | None = None, check_valid: bool = False
) -> list[tuple[str, list[Any], Bounds]]:
    """``canonical`` for many geometries at once, with their bounds.

    Simple polygons (one ring, the bulk of cell annotations) go through a
    vectorised numpy path that gives exactly what ``canonical`` gives; anything
    else, or anything unusual, takes ``canonical`` itself (which also raises the
    precise error for invalid input).
    """
    import numpy as np

    out: list[tuple[str, list[Any], Bounds] | None] = [None] * len(geoms)
    fast: list[int] = []
    rings: list[Any] = []
    if kind in (None, "polygon"):
        for i, g in enumerate(geoms):
            if isinstance(g, dict) and g.get("type") == "Polygon" and not g.get("isEllipse"):
                c = g.get("coordinates")
                if isinstance(c, list) and len(c) == 1 and isinstance(c[0], list) and len(c[0]) >= 4:
                    fast.append(i)
                    rings.append(c[0])
    slow = set(range(len(geoms))) - set(fast)
    if rings:
        done = _fast_rings(np, rings, check_valid)
        for i, res in zip(fast, done, strict=True):
            if res is None:
                slow.add(i)
            else:
                out[i] = res
    for i in sorted(slow):
        k, enc = canonical(geoms[i], kind)
        if check_valid:
            validate(k, enc)
        out[i] = (k, enc, bounds(k, enc))
    return out  # type: ignore[return-value]


def _fast_rings(np: Any, rings: list[Any], check_valid: bool) -> list[tuple[str, list[Any], Bounds] | None]:
    n_rings = len(rings)
    lengths = np.fromiter(map(len, rings), dtype=np.int64, count=n_rings)
    total = int(lengths.sum())
    try:
        if sum(map(len, chain.from_iterable(rings))) != 2 * total:
            raise ValueError
        flat = np.fromiter(chain.from_iterable(chain.from_iterable(rings)), dtype=np.float64, count=2 * total)
    except (TypeError, ValueError):
        return [None] * n_rings  # odd positions: the careful path names the problem
    q = flat * QUANTUM
    ok_ring = np.ones(n_rings, dtype=bool)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(q) & (np.abs(q) < 2.0**53)  # beyond: the careful path reports it
    starts = np.zeros(n_rings, dtype=np.int64)
    starts[1:] = np.cumsum(lengths)[:-1]
    if not finite.all():
        bad = np.add.reduceat((~finite).reshape(-1, 2).any(axis=1).astype(np.int64), starts) > 0
        ok_ring &= ~bad
        q[~finite] = 0
    qi = np.rint(q).astype(np.int64)
    xs, ys = qi[0::2], qi[1::2]
    ends = starts + lengths - 1
    closed = (xs[starts] == xs[ends]) & (ys[starts] == ys[ends])
    # keep every vertex but the closing one
    keep = np.ones(total, dtype=bool)
    keep[ends[closed]] = False
    n = lengths - closed.astype(np.int64)
    xs, ys = xs[keep], ys[keep]
    st = np.zeros(n_rings, dtype=np.int64)
    st[1:] = np.cumsum(n)[:-1]
    ring_of = np.repeat(np.arange(n_rings), n)
    pos = np.arange(len(xs)) - st[ring_of]
    # consecutive duplicates (incl. last == first after dropping the closing vertex) -> careful path
    nxt = st[ring_of] + (pos + 1) % n[ring_of]
    same = (xs == xs[nxt]) & (ys == ys[nxt])
    dup = np.add.reduceat(same.astype(np.int64), st) > 0
    ok_ring &= ~dup & (n >= 3)
    big = (np.abs(xs) >= 2**31) | (np.abs(ys) >= 2**31)
    if big.any():
        ok_ring &= ~(np.add.reduceat(big.astype(np.int64), st) > 0)
        xs = np.where(big, 0, xs)
        ys = np.where(big, 0, ys)
    area2 = np.add.reduceat(xs * ys[nxt] - xs[nxt] * ys, st)
    ok_ring &= area2 != 0
    # start vertex: the smallest (x, y); must be unique in its ring
    key = xs * (2**32) + ys
    kmin = np.minimum.reduceat(key, st)
    is_min = key == kmin[ring_of]
    ok_ring &= np.add.reduceat(is_min.astype(np.int64), st) == 1
    m = np.zeros(n_rings, dtype=np.int64)
    m[ring_of[is_min]] = pos[is_min]
    rev = area2 < 0
    nr = n[ring_of]
    fwd_idx = (m[ring_of] + pos) % nr
    rev_idx = (m[ring_of] - pos) % nr  # walking backwards from the start vertex
    order = st[ring_of] + np.where(rev[ring_of], rev_idx, fwd_idx)
    cx, cy = xs[order], ys[order]
    if check_valid:
        import shapely

        lr = shapely.linearrings(np.stack([cx, cy], axis=1).astype(np.float64), indices=ring_of)
        ok_ring &= shapely.is_valid(shapely.polygons(lr))
    g = np.gcd.reduceat(np.gcd(np.abs(cx), np.abs(cy)), st)
    d = np.where(g % 1000 == 0, 0, np.where(g % 100 == 0, 1, np.where(g % 10 == 0, 2, 3)))
    div = (10 ** (3 - d))[ring_of]
    vx, vy = cx // div, cy // div
    dx = np.empty_like(vx)
    dy = np.empty_like(vy)
    dx[0] = vx[0]
    dy[0] = vy[0]
    dx[1:] = vx[1:] - vx[:-1]
    dy[1:] = vy[1:] - vy[:-1]
    first = pos == 0
    dx[first] = vx[first]
    dy[first] = vy[first]
    inter = np.empty(2 * len(dx), dtype=np.int64)
    inter[0::2] = dx
    inter[1::2] = dy
    x0 = np.minimum.reduceat(cx, st) / QUANTUM
    x1 = np.maximum.reduceat(cx, st) / QUANTUM
    y0 = np.minimum.reduceat(cy, st) / QUANTUM
    y1 = np.maximum.reduceat(cy, st) / QUANTUM
    vals = inter.tolist()
    okl = ok_ring.tolist()
    dl = d.tolist()
    s2 = (2 * st).tolist()
    e2 = (2 * (st + n)).tolist()
    b = list(zip(x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist(), strict=True))
    return [
        ("polygon", [dl[i], [vals[s2[i] : e2[i]]]], b[i]) if okl[i] else None for i in range(n_rings)
    ]


def to_shapely_many(items: Sequence[tuple[str, Sequence[Any]]]) -> Any:
    """Shapely geometries (a numpy object array) for many ``(kind, encoded)`` at once.

    Points and one-ring polygons are built in bulk; other shapes one by one.
    """
    import numpy as np
    import shapely

    out = np.empty(len(items), dtype=object)
    pts_i: list[int] = []
    poly_i: list[int] = []
    for i, (k, enc) in enumerate(items):
        if k == "point":
            pts_i.append(i)
        elif k == "polygon" and len(enc[1]) == 1:
            poly_i.append(i)
        else:
            out[i] = to_shapely(k, enc)
    if pts_i:
        xy = np.array([items[i][1][1] for i in pts_i], dtype=np.float64)
        scale = np.array([10.0 ** items[i][1][0] for i in pts_i])
        out[pts_i] = shapely.points(xy / scale[:, None])
    if poly_i:
        rings = [items[i][1][1][0] for i in poly_i]
        lengths = np.fromiter((len(r) // 2 for r in rings), dtype=np.int64, count=len(rings))
        flat = np.fromiter(chain.from_iterable(rings), dtype=np.float64, count=int(lengths.sum()) * 2)
        xy = flat.reshape(-1, 2)
        starts = np.zeros(len(rings), dtype=np.int64)
        starts[1:] = np.cumsum(lengths)[:-1]
        csum = np.cumsum(xy, axis=0)
        offset = np.zeros_like(xy)
        ring_of = np.repeat(np.arange(len(rings)), lengths)
        before = np.vstack([np.zeros((1, 2)), csum[:-1]])[starts]  # sum of everything before each ring
        offset = before[ring_of]
        coords = csum - offset
        scale = np.array([10.0 ** items[i][1][0] for i in poly_i])[ring_of]
        coords = coords / scale[:, None]
        lr = shapely.linearrings(coords, indices=ring_of)
        out[poly_i] = shapely.polygons(lr)
    return out
