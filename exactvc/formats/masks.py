"""Binary masks <-> polygons, for COCO RLE and CVAT masks.

A mask becomes the exact outline of its pixels (pixel edges, so nothing is
approximated): each row's runs of set pixels become boxes, runs repeated on the
next rows are merged into taller boxes, and shapely unions them into polygons with
holes (one vectorised call). Going back, a polygon is rasterised by testing pixel
centres (``shapely.contains_xy``), which gives the original mask again.
numpy and shapely are imported here, lazily: not on ``import exactvc``'s path.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInput


def coco_counts(counts: Any) -> list[int]:
    """COCO RLE counts: an int list, or pycocotools' compressed string (LEB128-like, 6 bits a char,
    deltas against the run two back from the third run on)."""
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise InvalidInput("RLE counts must be non-negative integers")
        return counts
    if not isinstance(counts, str):
        raise InvalidInput("RLE counts must be a list of integers or a compressed string")
    out: list[int] = []
    s = counts.encode("ascii", "replace")
    p = 0
    while p < len(s):
        x = 0
        k = 0
        more = True
        while more:
            if p >= len(s):
                raise InvalidInput("RLE counts string ends inside a number")
            c = s[p] - 48
            if not 0 <= c < 64:
                raise InvalidInput(f"RLE counts string has an invalid character {chr(s[p])!r}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        if x < 0:
            raise InvalidInput("RLE counts string decodes to a negative run")
        out.append(x)
    return out


def coco_counts_string(counts: list[int]) -> str:
    """The compressed form of ``coco_counts`` (what pycocotools' rleToString writes)."""
    out = bytearray()
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = (x != -1) if (ch & 0x10) else (x != 0)
            if more:
                ch |= 0x20
            out.append(ch + 48)
    return out.decode("ascii")


def runs_to_mask(counts: list[int], height: int, width: int, column_major: bool) -> Any:
    """A bool array (height, width) from alternating runs starting with 0s."""
    import numpy as np

    total = height * width
    if sum(counts) != total:
        raise InvalidInput(f"RLE counts sum to {sum(counts)}, not {height}x{width} = {total}")
    vals = np.zeros(len(counts), dtype=np.bool_)
    vals[1::2] = True
    flat = np.repeat(vals, np.asarray(counts, dtype=np.int64))
    if column_major:
        return flat.reshape((width, height)).T
    return flat.reshape((height, width))


def mask_to_geojson(mask: Any, left: float = 0, top: float = 0) -> dict[str, Any]:
    """The exact pixel outline of a mask as a GeoJSON Polygon or MultiPolygon (holes kept)."""
    import numpy as np
    import shapely

    m = np.asarray(mask, dtype=np.bool_)
    if not m.any():
        raise InvalidInput("mask has no pixels set")
    h, w = m.shape
    pad = np.zeros((h, w + 2), dtype=np.int8)
    pad[:, 1:-1] = m
    d = np.diff(pad, axis=1)
    rows_s, cols_s = np.nonzero(d == 1)
    _rows_e, cols_e = np.nonzero(d == -1)
    # a run repeated on the next rows becomes one taller box
    by_row: dict[int, set[tuple[int, int]]] = {}
    for r, a, b in zip(rows_s.tolist(), cols_s.tolist(), cols_e.tolist(), strict=True):
        by_row.setdefault(r, set()).add((a, b))
    boxes: list[tuple[int, int, int, int]] = []
    open_: dict[tuple[int, int], int] = {}  # run -> first row
    prev = -2
    for r in sorted(by_row):
        cur = by_row[r]
        for run in list(open_):
            if r != prev + 1 or run not in cur:
                boxes.append((run[0], open_.pop(run), run[1], prev + 1))
        for run in cur:
            open_.setdefault(run, r)
        prev = r
    for run, first in open_.items():
        boxes.append((run[0], first, run[1], prev + 1))
    arr = np.asarray(boxes, dtype=np.float64)
    polys = shapely.box(arr[:, 0] + left, arr[:, 1] + top, arr[:, 2] + left, arr[:, 3] + top)
    u = shapely.union_all(polys)
    u = shapely.simplify(u, 0)  # drop collinear vertices along pixel edges
    g = shapely.geometry.mapping(u)
    return {"type": g["type"], "coordinates": _lists(g["coordinates"])}


def _lists(c: Any) -> Any:
    if isinstance(c, (list, tuple)) and c and isinstance(c[0], (int, float)):
        return [float(v) if not float(v).is_integer() else int(v) for v in c]
    return [_lists(x) for x in c]


def geojson_to_mask(g: dict[str, Any], left: int, top: int, width: int, height: int) -> Any:
    """Rasterise a (Multi)Polygon over the box (left, top, width, height): pixel centres inside."""
    import numpy as np
    import shapely

    geom = shapely.geometry.shape(g)
    ys, xs = np.mgrid[0:height, 0:width]
    return shapely.contains_xy(geom, xs.ravel() + left + 0.5, ys.ravel() + top + 0.5).reshape((height, width))


def mask_runs(mask: Any, column_major: bool) -> list[int]:
    """Alternating runs (first a run of 0s, possibly empty) of a bool array."""
    import numpy as np

    flat = (mask.T if column_major else mask).ravel().astype(np.int8)
    change = np.nonzero(np.diff(flat))[0] + 1
    edges = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(edges).tolist()
    if flat.size and flat[0]:
        runs.insert(0, 0)
    return [int(r) for r in runs]
