"""Sample detector: nuclei as dark blobs of the haematoxylin channel (scikit-image, no model weights).

Parameters: ``label`` (default ``nucleus``), ``min_sigma`` / ``max_sigma`` (px at the working scale),
``threshold`` (of the Laplacian of Gaussian), ``downsample`` (working scale; default: at most 2048 px a side).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

kind = "detector"
title = "Nucleus / blob detector (scikit-image)"
label = "nucleus"
time_limit = 600.0
TILE = 1024


def detect(image: Any, region: tuple[int, int, int, int], params: dict[str, Any],
           progress: Callable[..., None]) -> Iterator[dict[str, Any]]:
    import numpy as np
    from skimage.color import rgb2hed
    from skimage.feature import blob_log

    x0, y0, w, h = region
    ds = float(params.get("downsample") or max(1.0, max(w, h) / 2048))
    step = int(TILE * ds)
    tiles = [(x, y) for y in range(y0, y0 + h, step) for x in range(x0, x0 + w, step)]
    for i, (x, y) in enumerate(tiles):
        tw, th = min(step, x0 + w - x), min(step, y0 + h - y)
        rgb = image.read(x, y, tw, th, ds)
        hema = rgb2hed(rgb)[..., 0]
        lo, hi = float(np.percentile(hema, 1)), float(np.percentile(hema, 99.5))
        norm = np.clip((hema - lo) / (hi - lo or 1.0), 0, 1)
        blobs = blob_log(norm, min_sigma=float(params.get("min_sigma", 3)),
                         max_sigma=float(params.get("max_sigma", 8)), num_sigma=4,
                         threshold=float(params.get("threshold", 0.15)))
        for r, c, _s in blobs:
            score = float(norm[int(r), int(c)])
            px, py = x + c * ds, y + r * ds
            if x0 <= px < x0 + w and y0 <= py < y0 + h:
                yield {"label": params.get("label", label), "score": round(min(1.0, max(0.0, score)), 4),
                       "geometry": {"type": "Point", "coordinates": [round(px, 1), round(py, 1)]}}
        progress((i + 1) / len(tiles), f"tile {i + 1} of {len(tiles)}")
