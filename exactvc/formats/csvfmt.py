"""CSV export: one row an annotation, byte-identical for the same commit.

Columns::

    image,id,label,kind,x0,y0,x1,y1,plane_z,plane_t,geometry_wkt,properties_json

* rows sorted by image, then id; ``\\n`` line ends; fields quoted only when needed;
* ``x0..y1`` the bounding box (``geometry.bounds``) in level-0 pixels;
* ``plane_z``, ``plane_t`` are 0 for the default plane;
* ``geometry_wkt`` is written from the stored integers, so coordinates are exact
  decimals with trailing zeros trimmed (at most 3 decimals); boxes are written as
  their rectangle, ellipses as QuPath's 96-vertex polygon (see ``geometry``);
* ``properties_json`` compact JSON with sorted keys, ``{}`` when empty.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from .. import geometry
from .qupath import format_uuid, iter_records, selected_images

if TYPE_CHECKING:
    from ..repo import Repository

HEADER = ["image", "id", "label", "kind", "x0", "y0", "x1", "y1", "plane_z", "plane_t",
          "geometry_wkt", "properties_json"]


def dec(v: int, d: int) -> str:
    """The stored integer ``v`` (``d`` decimals) as an exact, trimmed decimal."""
    if d == 0:
        return str(v)
    s = str(abs(v)).rjust(d + 1, "0")
    whole, frac = s[:-d], s[-d:].rstrip("0")
    out = f"{whole}.{frac}" if frac else whole
    return f"-{out}" if v < 0 else out


def num(x: float) -> str:
    """A float in its shortest round-trip form; integral values without ".0"."""
    if x == int(x):
        return str(int(x))
    return repr(x)


def _pairs_abs(flat: Sequence[int], d: int) -> list[str]:
    return [f"{dec(flat[i], d)} {dec(flat[i + 1], d)}" for i in range(0, len(flat), 2)]


def _ring(flat: Sequence[int], d: int, close: bool) -> str:
    xs = list(accumulate(flat[0::2]))
    ys = list(accumulate(flat[1::2]))
    pts = [f"{dec(x, d)} {dec(y, d)}" for x, y in zip(xs, ys, strict=True)]
    if close:
        pts.append(pts[0])
    return "(" + ", ".join(pts) + ")"


def wkt(kind: str, enc: Sequence[Any]) -> str:
    """WKT of a stored geometry, from its integers (exact, the same on every machine)."""
    d, payload = enc
    if kind == "point":
        return f"POINT ({dec(payload[0], d)} {dec(payload[1], d)})"
    if kind == "multipoint":
        return "MULTIPOINT (" + ", ".join(f"({p})" for p in _pairs_abs(payload, d)) + ")"
    if kind == "line":
        return "LINESTRING " + _ring(payload, d, False)
    if kind == "polygon":
        return "POLYGON (" + ", ".join(_ring(r, d, True) for r in payload) + ")"
    if kind == "multipolygon":
        return "MULTIPOLYGON (" + ", ".join(
            "(" + ", ".join(_ring(r, d, True) for r in poly) + ")" for poly in payload
        ) + ")"
    if kind == "box":
        x0, y0, x1, y1 = (dec(v, d) for v in payload)
        return f"POLYGON (({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"
    if kind == "ellipse":
        ring = geometry.to_geojson(kind, enc)["coordinates"][0]
        return "POLYGON ((" + ", ".join(f"{num(x)} {num(y)}" for x, y in ring) + "))"
    raise ValueError(f"unknown shape kind {kind!r}")


def export_csv(repo: Repository, rev: str | None, image: str | None, out: BinaryIO) -> int:
    """Write the CSV (see the module docstring); returns the number of rows."""
    chosen, _labels = selected_images(repo, rev, image)
    sio = io.StringIO()
    w = csv.writer(sio, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(HEADER)
    n = 0
    for name, entry in chosen:
        for key, rec in iter_records(repo, entry):
            kind, enc = rec["k"], rec["g"]
            x0, y0, x1, y1 = geometry.bounds(kind, enc)
            z = rec.get("z") or (0, 0)
            props = rec.get("p") or {}
            w.writerow([
                name, format_uuid(key), rec["l"], kind, num(x0), num(y0), num(x1), num(y1),
                int(z[0]), int(z[1]), wkt(kind, enc), orjson.dumps(props, option=orjson.OPT_SORT_KEYS).decode(),
            ])
            n += 1
            if n % 2048 == 0:
                out.write(sio.getvalue().encode("utf-8"))
                sio.seek(0)
                sio.truncate()
    out.write(sio.getvalue().encode("utf-8"))
    return n
