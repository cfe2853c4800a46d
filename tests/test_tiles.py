"""DeepZoom tiles: every level matches openslide's pixels; stored tiles pass through untouched."""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from exactvc.errors import NotFound
from exactvc.testing.slides import make_pyramidal_tiff
from exactvc.tiles import Slide, build_companion

from .conftest import REAL_SLIDE


def reference(s: Slide, level: int, col: int, row: int, w: int, h: int) -> np.ndarray:
    """openslide's read_region of the tile's area (clipped to the image), scaled to the tile's size."""
    ds = 2 ** (s.max_level - level)
    x0, y0 = col * s.tile * ds, row * s.tile * ds
    rw, rh = min(w * ds, s.width - x0), min(h * ds, s.height - y0)
    best = s.osr.get_best_level_for_downsample(ds + 1e-6)
    lds = s.osr.level_downsamples[best]
    im = s.osr.read_region((x0, y0), best, (math.ceil(rw / lds), math.ceil(rh / lds))).convert("RGB")
    return np.asarray(im.resize((w, h), Image.Resampling.BOX), dtype=np.int16)


def all_tiles_match(s: Slide, max_mad: float = 2.0) -> dict[str, int]:
    seen = {"passthrough": 0, "other": 0}
    for level in range(s.max_level + 1):
        cols, rows = s.grid(level)
        for c in range(cols):
            for r in range(rows):
                data = s.tile_jpeg(level, c, r)
                im = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
                w, h = s.level_size(level)
                assert im.shape[:2] == (min(s.tile, h - r * s.tile), min(s.tile, w - c * s.tile))
                mad = float(np.abs(im - reference(s, level, c, r, im.shape[1], im.shape[0])).mean())
                native = level in s.passthrough and s.passthrough[level].path == s.path
                if native and im.shape[:2] == (s.tile, s.tile):
                    assert mad == 0.0, (level, c, r, mad)  # the stored bytes, decoded exactly as openslide does
                    seen["passthrough"] += 1
                else:
                    assert mad <= max_mad, (level, c, r, mad)
                    seen["other"] += 1
    return seen


def test_real_slide_every_level(tmp_path: Path) -> None:
    s = Slide(REAL_SLIDE)
    assert (s.width, s.height, s.tile) == (2220, 2967, 240)
    assert s.max_level == math.ceil(math.log2(2967))
    missing = s.missing_levels()
    comp = build_companion(s, tmp_path / "c.tiff")
    assert comp is not None and missing
    s2 = Slide(REAL_SLIDE, comp)
    # every level with more than one tile is now stored: a pass-through for interior tiles
    assert all(lv in s2.passthrough for lv in range(s2.max_level + 1) if s2.grid(lv) != (1, 1))
    seen = all_tiles_match(s2)
    assert seen["passthrough"] == 9 * 12
    # a stored interior tile is the file's own JPEG data (with its tables merged), not a re-encode
    raw = s2.tile_jpeg(s2.max_level, 1, 1)
    lv = s2.passthrough[s2.max_level]
    assert raw.endswith(Path(REAL_SLIDE).read_bytes()[lv.offsets[11] + 2 : lv.offsets[11] + lv.counts[11]])


@pytest.mark.parametrize(("tile", "photometric", "aperio"), [(256, "ycbcr", True), (240, "rgb", True),
                                                            (256, "rgb", False)])
def test_generated_pyramids(tmp_path: Path, tile: int, photometric: str, aperio: bool) -> None:
    path = make_pyramidal_tiff(tmp_path / "g.tiff", 3000, 2100, tile=tile, photometric=photometric, aperio=aperio,
                               min_level_size=300, seed=tile)
    s = Slide(path)
    assert s.osr.level_count >= 2 and s.tile == tile
    comp = build_companion(s, tmp_path / "g.companion.tiff")
    s2 = Slide(path, comp)
    seen = all_tiles_match(s2)
    assert seen["passthrough"] > 0 and seen["other"] > 0


def test_descriptor_and_bad_addresses() -> None:
    s = Slide(REAL_SLIDE)
    root = ET.fromstring(s.dzi())
    assert root.get("TileSize") == "240" and root.get("Overlap") == "0" and root.get("Format") == "jpeg"
    size = root[0]
    assert (size.get("Width"), size.get("Height")) == ("2220", "2967")
    info = s.info()
    assert len(info["levels"]) == s.max_level + 1 and info["levels"][-1]["width"] == 2220
    assert info["levels"][0]["width"] == 1 and info["levels"][0]["height"] == 1
    for bad in ((-1, 0, 0), (s.max_level + 1, 0, 0), (s.max_level, 10, 0), (s.max_level, 0, 13), (0, 1, 0)):
        with pytest.raises(NotFound):
            s.tile_jpeg(*bad)
