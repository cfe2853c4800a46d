"""DeepZoom tiles from whole-slide images, passing stored JPEG tiles through whenever the grids match.

A slide is served as a DeepZoom pyramid with tile size = the file's stored tile
size and overlap 0. DeepZoom level ``L`` is the image downsampled by
``2 ** (max_level - L)``. When a stored level of the file (or of the
*companion* pyramid built once at registration for the levels the file lacks)
has exactly that size and tile size, an interior tile is the stored JPEG tile,
sent as it is after merging the file's JPEG tables (and an Adobe marker for RGB
JPEG, so browsers do not read it as YCbCr): no decoding. Edge tiles are cut from
the decoded stored tile; anything else falls back to openslide's read_region
plus a JPEG encode (Pillow, libjpeg-turbo).
"""

from __future__ import annotations

import io
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidInput, NotFound

JPEG_QUALITY = 95
EDGE_QUALITY = 100  # edge tiles are re-encoded once from stored pixels; they are few
COMPANION_QUALITY = 98  # companion levels are made from each other: keep the loss per step small
ADOBE_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"  # APP14, transform 0: RGB, not YCbCr
MAX_REGION_PIXELS = 4096 * 4096


@dataclass
class StoredLevel:
    """A tiled JPEG page whose tiles can be sent as they are."""

    path: str
    width: int
    height: int
    tile: int
    offsets: tuple[int, ...]
    counts: tuple[int, ...]
    tables: bytes | None
    rgb: bool  # photometric RGB (needs the Adobe marker)

    @property
    def cols(self) -> int:
        return math.ceil(self.width / self.tile)

    def raw(self, fd: int, col: int, row: int) -> bytes:
        i = row * self.cols + col
        data = os.pread(fd, self.counts[i], self.offsets[i])
        if self.tables and len(self.tables) > 4:
            data = b"\xff\xd8" + self.tables[2:-2] + data[2:]
        if self.rgb:
            data = b"\xff\xd8" + ADOBE_RGB + data[2:]
        return data


def stored_levels(path: str | os.PathLike[str]) -> list[StoredLevel]:
    """Tiled JPEG pages of a TIFF-based file (main IFD chain)."""
    import tifffile

    out = []
    try:
        with tifffile.TiffFile(path) as tf:
            for page in tf.pages:
                if not isinstance(page, tifffile.TiffPage) or not page.is_tiled or page.compression != 7:
                    continue  # 7: JPEG
                if page.tilewidth != page.tilelength or page.samplesperpixel != 3:
                    continue
                out.append(StoredLevel(
                    str(path), int(page.imagewidth), int(page.imagelength), int(page.tilewidth),
                    tuple(int(x) for x in page.dataoffsets), tuple(int(x) for x in page.databytecounts),
                    bytes(page.jpegtables) if page.jpegtables is not None else None, int(page.photometric) == 2))
    except (tifffile.TiffFileError, OSError, ValueError):
        return []
    return out


class Slide:
    """One slide, opened once (thread-safe: openslide reads are, and stored tiles are read with pread)."""

    def __init__(self, path: str | os.PathLike[str], companion: str | os.PathLike[str] | None = None,
                 tile_size: int | None = None) -> None:
        import openslide

        self.path = str(path)
        self.osr = openslide.OpenSlide(self.path)
        self.width, self.height = self.osr.dimensions
        levels = stored_levels(self.path)
        if tile_size is None:
            base = next((lv for lv in levels if (lv.width, lv.height) == (self.width, self.height)), None)
            tile_size = base.tile if base is not None else 256
        self.tile = tile_size
        self.max_level = max(0, math.ceil(math.log2(max(self.width, self.height))))
        self._fds: dict[str, int] = {}
        self.passthrough: dict[int, StoredLevel] = {}
        self._add_levels(levels)
        self.companion = str(companion) if companion else None
        if companion and Path(companion).exists():
            self._add_levels(companion_levels(companion))
        self.frames = 1

    def _add_levels(self, levels: list[StoredLevel]) -> None:
        for lv in levels:
            if lv.tile != self.tile:
                continue
            for dz in range(self.max_level + 1):
                if self.level_size(dz) == (lv.width, lv.height) and dz not in self.passthrough:
                    self.passthrough[dz] = lv
                    if lv.path not in self._fds:
                        self._fds[lv.path] = os.open(lv.path, os.O_RDONLY)

    def close(self) -> None:
        self.osr.close()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    # --- geometry ---
    def level_size(self, level: int) -> tuple[int, int]:
        d = 2 ** (self.max_level - level)
        return math.ceil(self.width / d), math.ceil(self.height / d)

    def grid(self, level: int) -> tuple[int, int]:
        w, h = self.level_size(level)
        return math.ceil(w / self.tile), math.ceil(h / self.tile)

    def missing_levels(self) -> list[int]:
        """DeepZoom levels (>= 1 px per tile side) without a stored pass-through level."""
        return [lv for lv in range(self.max_level, -1, -1) if lv not in self.passthrough]

    def dzi(self) -> str:
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="jpeg" '
                f'Overlap="0" TileSize="{self.tile}"><Size Width="{self.width}" Height="{self.height}"/></Image>')

    def info(self) -> dict[str, Any]:
        props = self.osr.properties
        mpp = props.get("openslide.mpp-x")
        return {
            "width": self.width, "height": self.height, "tile_size": self.tile, "overlap": 0,
            "max_level": self.max_level, "mpp": float(mpp) if mpp else None,
            "vendor": props.get("openslide.vendor"), "frames": self.frames,
            "levels": [{"level": lv, "width": self.level_size(lv)[0], "height": self.level_size(lv)[1],
                        "cols": self.grid(lv)[0], "rows": self.grid(lv)[1], "passthrough": lv in self.passthrough}
                       for lv in range(self.max_level + 1)],
        }

    # --- tiles ---
    def check_tile(self, level: int, col: int, row: int) -> None:
        if not 0 <= level <= self.max_level:
            raise NotFound(f"no level {level} (0..{self.max_level})")
        cols, rows = self.grid(level)
        if not (0 <= col < cols and 0 <= row < rows):
            raise NotFound(f"no tile {col}_{row} at level {level} ({cols}x{rows} tiles)")

    def tile_jpeg(self, level: int, col: int, row: int) -> bytes:
        """The JPEG bytes of DeepZoom tile (level, col, row)."""
        self.check_tile(level, col, row)
        w, h = self.level_size(level)
        t = self.tile
        tw, th = min(t, w - col * t), min(t, h - row * t)
        lv = self.passthrough.get(level)
        edge = (tw, th) != (t, t)
        if lv is not None and not edge:
            return lv.raw(self._fds[lv.path], col, row)  # the stored bytes, untouched
        if lv is not None and lv.path == self.path:
            from PIL import Image

            with Image.open(io.BytesIO(lv.raw(self._fds[lv.path], col, row))) as im:
                # an edge tile of a level the file stores: cut it out, re-encode nearly losslessly
                return _encode(im.convert("RGB").crop((0, 0, tw, th)), EDGE_QUALITY)
        # edge tiles of built levels, and levels nobody stores: openslide, as the reference does it
        return _encode(self.region(level, col * t, row * t, tw, th), EDGE_QUALITY if edge else JPEG_QUALITY)

    def region(self, level: int, x: int, y: int, w: int, h: int) -> Any:
        """Pixels (RGB PIL image) of a rectangle of DeepZoom level ``level``."""
        from PIL import Image

        ds = 2 ** (self.max_level - level)
        best = self.osr.get_best_level_for_downsample(ds + 1e-6)
        lds = self.osr.level_downsamples[best]
        # the level-0 area, clipped to the image (the last pixels of a level cover less)
        x0, y0 = x * ds, y * ds
        x1, y1 = min((x + w) * ds, self.width), min((y + h) * ds, self.height)
        rw, rh = math.ceil((x1 - x0) / lds), math.ceil((y1 - y0) / lds)
        im = self.osr.read_region((int(x0), int(y0)), best, (max(1, rw), max(1, rh)))
        rgb = Image.new("RGB", im.size, (255, 255, 255))
        rgb.paste(im, mask=im.split()[3])
        if rgb.size != (w, h):
            rgb = rgb.resize((w, h), Image.Resampling.BOX)
        return rgb

    def thumbnail(self, size: int = 512) -> bytes:
        im = self.osr.get_thumbnail((size, size)).convert("RGB")
        return _encode(im)


def _encode(im: Any, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, subsampling=0)  # 4:4:4: stained tissue is all colour detail
    return buf.getvalue()


def build_companion(slide: Slide, out: str | os.PathLike[str], progress: Any = None) -> Path | None:
    """Write the DeepZoom levels the file lacks, one tiled JPEG TIFF per level in the folder ``out``
    (RGB, tile = slide tile), so every level is a pass-through. Each level is made from the one above
    it, tile by tile, reading that level back from disk: memory stays a few tiles whatever the size.
    The folder appears whole or not at all."""
    import shutil

    import numpy as np
    import tifffile
    from PIL import Image

    missing = [lv for lv in slide.missing_levels() if slide.level_size(lv) >= (1, 1)]
    if not missing:
        return None
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t = slide.tile

    def source_tile(level: int, col: int, row: int) -> Any:
        """Level ``level`` pixels of tile (col, row), from a stored level (the file's, or one just built)."""
        w, h = slide.level_size(level)
        if not (0 <= col * t < w and 0 <= row * t < h):
            return None
        lv = slide.passthrough.get(level)
        if lv is not None:
            with Image.open(io.BytesIO(lv.raw(slide._fds[lv.path], col, row))) as im:
                return im.convert("RGB").crop((0, 0, min(t, w - col * t), min(t, h - row * t)))
        return slide.region(level, col * t, row * t, min(t, w - col * t), min(t, h - row * t))

    def tiles(level: int) -> Iterator[Any]:
        cols, rows = slide.grid(level)
        w, h = slide.level_size(level)
        for r in range(rows):
            for c in range(cols):
                canvas = Image.new("RGB", (2 * t, 2 * t), (255, 255, 255))
                for dy in (0, 1):
                    for dx in (0, 1):
                        src = source_tile(level + 1, 2 * c + dx, 2 * r + dy)
                        if src is not None:
                            canvas.paste(src, (dx * t, dy * t))
                # beyond the image edge, repeat the last pixel: an odd edge then averages with itself
                pw, ph = slide.level_size(level + 1)
                sw, sh = min(2 * t, pw - 2 * c * t), min(2 * t, ph - 2 * r * t)
                big = np.asarray(canvas, dtype=np.uint8).copy()
                if sw < 2 * t:
                    big[:, sw:] = big[:, sw - 1 : sw]
                if sh < 2 * t:
                    big[sh:, :] = big[sh - 1 : sh, :]
                arr = np.asarray(Image.fromarray(big).reduce(2), dtype=np.uint8).copy()
                tw, th = min(t, w - c * t), min(t, h - r * t)
                arr[th:, :, :] = 255  # pad the edges like stored tiles are padded
                arr[:, tw:, :] = 255
                yield arr

    try:
        # from the largest missing level down: each reads its parent (stored, or written just before)
        for level in sorted(missing, reverse=True):
            if level + 1 > slide.max_level:
                raise InvalidInput("the full-resolution level must be stored to build the missing levels")
            w, h = slide.level_size(level)
            path = tmp / f"level{level:02d}.tiff"
            with tifffile.TiffWriter(path, bigtiff=True) as tw:
                tw.write(tiles(level), shape=(h, w, 3), dtype="uint8", tile=(t, t), compression="jpeg",
                         compressionargs={"level": COMPANION_QUALITY, "outcolorspace": "RGB"},
                         photometric="rgb", metadata=None)
            slide._add_levels(stored_levels(path))
            if progress is not None:
                progress(level, len(missing))
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # the slide read the levels from the temporary folder: reopen them at their final place
    for lv in list(slide.passthrough):
        if slide.passthrough[lv].path.startswith(str(tmp)):
            del slide.passthrough[lv]
    for fd_path in [p for p in slide._fds if p.startswith(str(tmp))]:
        os.close(slide._fds.pop(fd_path))
    slide._add_levels(companion_levels(out))
    return out


def companion_levels(path: str | os.PathLike[str]) -> list[StoredLevel]:
    """The stored levels of a companion (a folder of level files, or one file)."""
    p = Path(path)
    if p.is_dir():
        return [lv for f in sorted(p.glob("level*.tiff")) for lv in stored_levels(f)]
    return stored_levels(p)


class SlideCache:
    """A thread-safe LRU of open slides, keyed by fingerprint."""

    def __init__(self, size: int = 32) -> None:
        self._d: OrderedDict[str, Slide] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def peek(self, key: str) -> Slide | None:
        with self._lock:
            s = self._d.get(key)
            if s is not None:
                self._d.move_to_end(key)
            return s

    def get(self, key: str, path: str, companion: str | None = None) -> Slide:
        with self._lock:
            s = self._d.get(key)
            if s is not None:
                self._d.move_to_end(key)
                return s
        s = Slide(path, companion)
        with self._lock:
            self._d[key] = s
            while len(self._d) > self.size:
                self._d.popitem(last=False)[1].close()
        return s
