"""Synthetic cell detections as a QuPath GeoJSON file: what a whole-slide model run writes.

:func:`write_cells_geojson` places ``n`` non-overlapping, cell-like polygons on a
jittered grid inside an elliptical "tissue" region of a ``width`` x ``height``
slide, in the order a tile-by-tile model emits them (tiles of 1024 px, row by
row), each a QuPath detection with a classification and a time-ordered UUID
(version 7 layout). Output is a pure function of the arguments (same bytes for
the same seed), so ids stay the same between runs.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import orjson

from exactvc.errors import UsageError

__all__ = ["write_cells_geojson"]

_TILE = 1024
_BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: the simulated start of the model run


def _uuid7_texts(n: int, rng: np.random.Generator) -> list[str]:
    seq = np.arange(n, dtype=np.uint64)
    ms = np.uint64(_BASE_MS) + seq // np.uint64(8)  # 8 detections a simulated millisecond
    hi = (ms << np.uint64(16)) | np.uint64(0x7000) | (seq % np.uint64(8))
    lo = (np.uint64(2) << np.uint64(62)) | rng.integers(0, 2**62, n, dtype=np.uint64)
    raw = np.stack([hi, lo], axis=1).astype(">u8").tobytes().hex()
    out = []
    for i in range(0, 32 * n, 32):
        h = raw[i:i + 32]
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


def write_cells_geojson(path: str | os.PathLike[str], n: int, width: int, height: int,
                        classes: list[tuple[str, float]], seed: int = 0, vertices: int = 10) -> Path:
    """Write ``n`` detections (labels drawn from ``classes``: ``(name, share)``) to ``path``; return it.

    The file is written to a temporary name beside ``path`` and renamed when complete.
    """
    if n < 1 or width < 64 or height < 64 or vertices < 3 or not classes:
        raise UsageError("write_cells_geojson: n >= 1, a slide of at least 64x64 px, >= 3 vertices, a class")
    rng = np.random.default_rng(seed)
    # the tissue: an ellipse over ~70% of the slide; a grid of spacing s holds >= n points inside it
    ax, ay = 0.47 * width, 0.47 * height
    area = math.pi * ax * ay
    s = math.sqrt(area / (n * 1.15))
    xs = np.arange(s / 2, width - s / 2, s)
    ys = np.arange(s / 2, height - s / 2, s)
    gx, gy = np.meshgrid(xs, ys)
    gx, gy = gx.ravel(), gy.ravel()
    inside = ((gx - width / 2) / ax) ** 2 + ((gy - height / 2) / ay) ** 2 <= 1.0
    gx, gy = gx[inside], gy[inside]
    if gx.size < n:
        raise UsageError(f"write_cells_geojson: {n} cells do not fit a {width}x{height} slide")
    keep = rng.choice(gx.size, size=n, replace=False)
    x = gx[keep] + rng.uniform(-0.15, 0.15, n) * s
    y = gy[keep] + rng.uniform(-0.15, 0.15, n) * s
    tile = (y // _TILE).astype(np.int64) * (width // _TILE + 1) + (x // _TILE).astype(np.int64)
    order = np.lexsort((x, y, tile))
    x, y = x[order], y[order]
    # star-shaped (so always simple), slightly elliptical outlines, radius up to 0.34 s: no overlaps
    r0 = rng.uniform(0.18, 0.28, n) * s
    theta = 2 * np.pi * np.arange(vertices) / vertices + rng.uniform(-0.12, 0.12, (n, vertices))
    r = r0[:, None] * (1.0 + np.clip(rng.normal(0, 0.08, (n, vertices)), -0.2, 0.2))
    aspect = rng.uniform(0.7, 1.0, n)[:, None]
    phi = rng.uniform(0, np.pi, n)[:, None]
    lx, ly = r * np.cos(theta), r * np.sin(theta) * aspect
    px = np.round(x[:, None] + lx * np.cos(phi) - ly * np.sin(phi), 1)
    py = np.round(y[:, None] + lx * np.sin(phi) + ly * np.cos(phi), 1)
    shares = np.array([c[1] for c in classes], dtype=np.float64)
    labels = rng.choice(len(classes), size=n, p=shares / shares.sum())
    ids = _uuid7_texts(n, rng)
    props = [orjson.dumps({"objectType": "detection", "classification": {"name": name}}) for name, _ in classes]
    out = Path(path)
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as f:
        f.write(b'{"type":"FeatureCollection","features":[\n')
        step = 20_000
        for a in range(0, n, step):
            b = min(n, a + step)
            ring = np.stack([px[a:b], py[a:b]], axis=2)
            rings = np.concatenate([ring, ring[:, :1]], axis=1).tolist()
            parts = []
            for j in range(b - a):
                i = a + j
                geom = orjson.dumps({"type": "Polygon", "coordinates": [rings[j]]})
                parts.append(b'{"type":"Feature","id":"%s","geometry":%s,"properties":%s}%s' % (
                    ids[i].encode(), geom, props[labels[i]], b",\n" if i < n - 1 else b"\n"))
            f.write(b"".join(parts))
        f.write(b"]}\n")
    tmp.replace(out)
    return out
