"""Conversion, once at registration, of images openslide cannot read into pyramidal tiled JPEG TIFFs.

PNG, JPEG (and whatever else Pillow reads), plain striped TIFF, OME-TIFF and
multi-page TIFF become *generic-tiff* pyramids that openslide opens and that
:class:`exactvc.tiles.Slide` serves as pure pass-through:

* level 0 at full size, then levels halving (``ceil``) down to 1x1: exactly
  DeepZoom's sizes ``(ceil(W / 2**k), ceil(H / 2**k))``, so every DeepZoom
  level is a stored level (interior tiles are sent untouched, edge tiles are
  cut from the stored tile, nothing is resampled at serving time);
* tiles of ``tile`` x ``tile`` pixels, JPEG, YCbCr without chroma subsampling
  (4:4:4: stained tissue is all colour detail), edge tiles padded by repeating
  the last row/column (no ringing against black at the image edge); the levels
  that fit in one tile at quality :data:`OVERVIEW_QUALITY`;
* every pixel of a smaller level is the mean of the source pixels it covers
  (2x2 means of the level above, weighted by area at the right/bottom edge);
* later levels are NewSubfileType=1 (reduced resolution) pages in the main IFD
  chain, which is what openslide's generic-tiff reader requires;
* X/YResolution in pixels per centimetre when the source says its pixel size
  (TIFF resolution tags, ImageJ ``unit=micron``, OME ``PhysicalSizeX``, PNG/JPEG DPI).

Pixels become 8-bit RGB: greyscale is replicated, alpha is composited on
white, palettes are applied, and samples that are not 8-bit unsigned (16-bit,
32-bit, float) are scaled linearly from the data's own range (min..max over
all planes of the file, so z/time planes stay comparable) to 0..255.

*Planes*: every page of a TIFF in the main IFD chain that has the first page's
shape and dtype (and is not a reduced-resolution page) is one plane, a z or
time frame or a channel, written as its own pyramid file (see
:func:`plane_path`); so are the frames of an animated GIF/PNG/WebP. Video files
(AVI/MP4) are refused: their frames would need PyAV or imageio, which exactvc does
not depend on (and which are not installed here).

Memory: TIFFs are streamed strip by strip or tile row by tile row (tifffile
decodes segments, in parallel); images Pillow reads are decoded whole (one
full-resolution image in memory). The pyramid itself is built in the same
single pass: each level keeps at most one tile row, finished tile rows are
JPEG-encoded on a thread pool and spooled to an anonymous temporary file, and
the TIFF is written from the spool at the end, under a temporary name that is
renamed into place only when the file is complete.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import ExactError, InvalidInput, NotFound, UsageError
from .images import check_file

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    U8 = npt.NDArray[np.uint8]

__all__ = [
    "MAX_PILLOW_PIXELS",
    "OVERVIEW_QUALITY",
    "VIDEO_SUFFIXES",
    "convert_to_pyramid",
    "frames",
    "needs_conversion",
    "plane_path",
    "pyramid_sizes",
]

ProgressFn = Callable[[int, int], None]
"""Progress callback: ``(source_rows_done, source_rows_total)`` summed over all planes."""

MAX_PILLOW_PIXELS = 2**31
"""Largest image (pixels per plane) decoded whole with Pillow; larger ones should be TIFFs (streamed)."""

VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".mov", ".mkv", ".m4v", ".wmv", ".webm", ".mpg", ".mpeg"})

OVERVIEW_QUALITY = 100
"""JPEG quality of the levels that fit in one tile (~100 KiB in all at tile 256): each of their pixels
averages many source pixels, so they are all fine detail, which costs more JPEG error per pixel at
equal quality (quality 95 gives a mean error of 2-3.5 grey levels on them, 100 about 0.5)."""

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_READ_BUFFER = 32 * 2**20  # bytes tifffile reads from the file at once (its default is 256 MiB)
_MAX_IN_FLIGHT = 256  # tiles queued for encoding at once (256 x 192 KiB raw at tile 256)
_PIL_LOCK = threading.Lock()


# --- public API -------------------------------------------------------------------------------------


def pyramid_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """Level sizes of the pyramid :func:`convert_to_pyramid` writes: DeepZoom's, halving (ceil) down to 1x1.

    The levels smaller than a tile cost a few KiB each, and with them every DeepZoom level is a
    stored level: :class:`exactvc.tiles.Slide` never falls back to openslide's resampling."""
    sizes = [(width, height)]
    while max(sizes[-1]) > 1:
        w, h = sizes[-1]
        sizes.append(((w + 1) // 2, (h + 1) // 2))
    return sizes


def plane_path(dst: str | os.PathLike[str], plane: int) -> Path:
    """Where :func:`convert_to_pyramid` writes plane ``plane``: ``dst`` itself for plane 0, else
    ``<stem>.p<plane><suffix>`` beside it (``slide.tiff`` -> ``slide.p1.tiff``, ``slide.p2.tiff``, ...)."""
    dst = Path(dst)
    if plane == 0:
        return dst
    return dst.with_name(f"{dst.stem}.p{plane}{dst.suffix or '.tiff'}")


def needs_conversion(path: str | os.PathLike[str]) -> bool:
    """Whether the file must be converted before openslide can serve it (all of it, correctly).

    True when openslide does not detect the format or refuses the file, and for a generic-tiff
    openslide opens but would show wrongly: several full-size pages (planes openslide ignores), or
    samples that are not 8-bit (openslide scales 16-bit by the type's range, not the data's).
    """
    import openslide

    name = check_file(path)
    try:
        vendor = openslide.OpenSlide.detect_format(name)
    except (openslide.OpenSlideError, OSError):
        vendor = None
    if vendor is None:
        return True
    try:
        with openslide.OpenSlide(name):
            pass
    except (openslide.OpenSlideError, OSError):
        return True
    if vendor != "generic-tiff":
        return False
    import tifffile

    try:
        with tifffile.TiffFile(name) as tf:
            pages = _full_pages(tf)
            first = pages[0]
            return len(pages) > 1 or int(first.bitspersample) != 8 or int(first.sampleformat) != 1
    except (tifffile.TiffFileError, OSError, ValueError, IndexError):
        return True


def frames(path: str | os.PathLike[str]) -> int:
    """Number of planes (z/time frames, channels stored as pages) the source has; 1 for a whole-slide image."""
    name = check_file(path)
    if _is_tiff(name):
        import tifffile

        try:
            with tifffile.TiffFile(name) as tf:
                return len(_full_pages(tf))
        except ExactError:
            raise
        except Exception as exc:
            raise _decode_error("read the TIFF", exc, name) from None
    if _openslide_vendor(name) is not None:
        return 1
    with _open_source(name) as src:
        return src.planes


def convert_to_pyramid(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    tile: int = 256,
    quality: int = 90,
    progress: ProgressFn | None = None,
) -> list[Path]:
    """Convert ``src`` into pyramidal tiled JPEG TIFF(s) openslide reads as generic-tiff; return the paths.

    One file per plane: ``dst`` for the first, then :func:`plane_path` names. Each is written under
    a temporary name beside ``dst`` and renamed into place once every plane is complete; on any
    error nothing is left behind. Raises NotFound for a missing ``src``, InvalidInput (naming the
    file) for anything that does not decode, UsageError for bad arguments.
    """
    if not (16 <= tile <= 4096 and tile % 16 == 0):
        raise UsageError(f"tile size must be a multiple of 16 in 16..4096: {tile}")
    if not 1 <= quality <= 100:
        raise UsageError(f"JPEG quality must be in 1..100: {quality}")
    name = check_file(src)
    dst = Path(dst)
    if not dst.parent.is_dir():
        raise NotFound(f"no such directory for the converted image: {dst.parent}")
    outs: list[Path] = []
    temps: list[Path] = []
    try:
        with _open_source(name) as source:
            outs = [plane_path(dst, i) for i in range(source.planes)]
            if any(out.resolve() == Path(name).resolve() for out in outs):
                raise UsageError(f"the pyramid would overwrite its source: {name}")
            total = source.planes * source.height
            done = 0

            def rows_done(n: int) -> None:
                nonlocal done
                done += n
                if progress is not None:
                    progress(done, total)

            for plane, out in enumerate(outs):
                tmp = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
                temps.append(tmp)
                _write_pyramid(source, plane, tmp, tile, quality, rows_done)
        for tmp, out in zip(temps, outs, strict=True):
            os.replace(tmp, out)
        temps.clear()
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return outs


# --- sources ------------------------------------------------------------------------------------------


class _Source:
    """A readable image: size, planes, pixel size, and its planes as consecutive 8-bit RGB row bands."""

    name: str
    width: int
    height: int
    planes: int
    mpp: tuple[float, float] | None = None

    def bands(self, plane: int) -> Iterator[U8]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fail(self, what: str, exc: BaseException) -> InvalidInput:
        return _decode_error(what, exc, self.name)


@dataclass
class _Pixels:
    """How raw samples become 8-bit RGB."""

    colour: int  # colour samples (1 grey, 3 RGB, 4 CMYK)
    alpha: bool  # one more sample: alpha
    alpha_max: float
    scale: tuple[float, float] | None = None  # (lo, hi) to stretch to 0..255; None: already 8-bit
    bilevel: bool = False
    invert: bool = False  # min-is-white
    palette: Any = None  # (2**bits, 3) uint8
    cmyk: bool = False


def _to_rgb8(a: Any, px: _Pixels) -> U8:
    import numpy as np

    if a.ndim == 2:
        a = a[:, :, None]
    colour = a[:, :, : px.colour]
    if px.palette is not None:
        rgb = px.palette[np.clip(colour[:, :, 0], 0, len(px.palette) - 1)]
    elif px.bilevel:
        rgb = (colour != 0).astype(np.uint8) * np.uint8(255)
    elif px.scale is not None:
        lo, hi = px.scale
        f = colour.astype(np.float32)
        if hi > lo:
            f -= np.float32(lo)
            f *= np.float32(255.0 / (hi - lo))
        else:
            f[...] = 0.0
        np.nan_to_num(f, copy=False, nan=0.0)
        rgb = np.rint(np.clip(f, 0.0, 255.0)).astype(np.uint8)
    else:
        rgb = colour.astype(np.uint8, copy=False)
    if px.invert:
        rgb = 255 - rgb
    if px.cmyk:
        k = 255.0 - rgb[:, :, 3:4].astype(np.float32)
        rgb = np.rint((255.0 - rgb[:, :, :3].astype(np.float32)) * k / 255.0).astype(np.uint8)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    if px.alpha:
        alpha = np.clip(a[:, :, px.colour].astype(np.float32) / np.float32(px.alpha_max), 0.0, 1.0)[:, :, None]
        rgb = np.rint(rgb * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    out: U8 = np.ascontiguousarray(rgb)
    return out


def _open_source(name: str) -> _Source:
    if _is_tiff(name):
        return _TiffSource(name)
    if Path(name).suffix.lower() in VIDEO_SUFFIXES:
        raise InvalidInput(f"video frames need PyAV or imageio, which are not installed: {name}")
    return _PillowSource(name)


class _TiffSource(_Source):
    """A TIFF read with tifffile: every full-size page is a plane, streamed by strips or tile rows."""

    def __init__(self, name: str) -> None:
        import tifffile

        self.name = name
        try:
            self.tf = tifffile.TiffFile(name)
        except Exception as exc:
            raise self.fail("read the TIFF", exc) from None
        try:
            self.pages = _full_pages(self.tf)
            first = self.pages[0]
            self.height, self.width = int(first.imagelength), int(first.imagewidth)
            self.planes = len(self.pages)
            self.mpp = _tiff_mpp(self.tf, first)
            self.needs_range = False
            self.px = self._pixels(first)
        except ExactError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise self.fail("read the TIFF", exc) from None
        if self.width < 1 or self.height < 1 or first.imagedepth != 1:
            self.close()
            raise InvalidInput(f"no 2-D pixels in the first TIFF page ({first.shape}): {name}")

    def close(self) -> None:
        self.tf.close()

    def _pixels(self, page: Any) -> _Pixels:
        import numpy as np

        photometric = int(page.photometric)
        samples = int(page.samplesperpixel)
        extra = tuple(int(x) for x in (page.extrasamples or ()))
        colour = samples - len(extra)
        if photometric == 5 and colour != 4:  # SEPARATED, but not CMYK
            raise InvalidInput(f"TIFF separated ink set with {colour} inks is not supported: {self.name}")
        if photometric == 8 or photometric == 9 or photometric == 10:
            raise InvalidInput(f"TIFF CIE L*a*b* pixels are not supported: {self.name}")
        if photometric == 6 and int(page.compression) not in (6, 7):
            raise InvalidInput(f"TIFF YCbCr pixels without JPEG compression are not supported: {self.name}")
        if colour not in (1, 3, 4) or len(extra) > 1:
            raise InvalidInput(f"TIFF with {samples} samples per pixel is not supported: {self.name}")
        dtype = np.dtype(page.dtype)
        alpha = len(extra) == 1
        alpha_max = float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0
        px = _Pixels(colour, alpha, alpha_max, invert=photometric == 0, cmyk=photometric == 5)
        if photometric == 3:  # PALETTE
            cmap = page.colormap
            if cmap is None:
                raise InvalidInput(f"TIFF palette image without a colour map: {self.name}")
            cmap = np.asarray(cmap).T
            px.palette = (cmap >> 8 if cmap.max() > 255 else cmap).astype(np.uint8)
        elif int(page.bitspersample) == 1:
            px.bilevel = True
        elif dtype == np.uint8 and int(page.bitspersample) < 8:
            px.scale = (0.0, float(2 ** int(page.bitspersample) - 1))
        elif dtype != np.uint8:
            self.needs_range = True  # found by a first pass over the pixels, when they are needed
        return px

    def _range(self, px: _Pixels) -> tuple[float, float]:
        """Min and max of the colour samples over all planes (a first pass over the pixels)."""
        import numpy as np

        lo, hi = math.inf, -math.inf
        for plane in range(self.planes):
            for band in self._raw_bands(plane):
                colour = band[:, :, : px.colour] if band.ndim == 3 else band
                if colour.dtype.kind == "f":
                    if np.isnan(colour).all():
                        continue
                    lo, hi = min(lo, float(np.nanmin(colour))), max(hi, float(np.nanmax(colour)))
                else:
                    lo, hi = min(lo, float(colour.min())), max(hi, float(colour.max()))
        return (lo, hi) if lo <= hi else (0.0, 0.0)

    def _raw_bands(self, plane: int) -> Iterator[Any]:
        """Consecutive row bands of the page's samples, (rows, width[, samples]), in stored order."""
        import numpy as np

        page = self.pages[plane]
        try:
            if int(page.planarconfig) == 2 and int(page.samplesperpixel) > 1:
                arr = page.asarray()  # separate sample planes: (samples, length, width)
                yield np.moveaxis(arr.reshape(-1, self.height, self.width), 0, -1)
                return
            if not page.is_tiled:
                for seg, idx, _shape in page.segments(buffersize=_READ_BUFFER):
                    if seg is None:
                        raise ValueError(f"missing strip at row {idx[2]}")
                    yield seg[0, : self.height - int(idx[2])]
                return
            th, tw = int(page.tilelength), int(page.tilewidth)
            cols = math.ceil(self.width / tw)
            rows_done: dict[int, tuple[Any, int]] = {}
            for seg, idx, _shape in page.segments(buffersize=_READ_BUFFER):
                y, x = int(idx[2]), int(idx[3])
                if y not in rows_done:
                    h = min(th, self.height - y)
                    rows_done[y] = (np.empty((h, self.width, int(page.samplesperpixel)), page.dtype), 0)
                band, n = rows_done[y]
                if seg is None:
                    raise ValueError(f"missing tile at ({x}, {y})")
                band[:, x : x + tw] = seg[0, : band.shape[0], : min(tw, self.width - x)]
                rows_done[y] = (band, n + 1)
                if n + 1 == cols:
                    del rows_done[y]
                    yield band
        except ExactError:
            raise
        except Exception as exc:
            raise self.fail(f"decode TIFF page {plane}", exc) from None

    def bands(self, plane: int) -> Iterator[U8]:
        if self.needs_range and self.px.scale is None:
            self.px.scale = self._range(self.px)
        for band in self._raw_bands(plane):
            yield _to_rgb8(band, self.px)


class _PillowSource(_Source):
    """An image Pillow reads (PNG, JPEG, GIF, BMP, WebP, ...), decoded whole; animation frames are planes."""

    def __init__(self, name: str) -> None:
        from PIL import Image

        self.name = name
        with _PIL_LOCK:  # our own size limit replaces Pillow's decompression-bomb check, for this open only
            saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                self.im = Image.open(name)
            except Exception as exc:
                raise InvalidInput(f"not an image Pillow or tifffile can read ({type(exc).__name__}): {name}") from None
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        self.width, self.height = self.im.size
        self.planes = max(1, int(getattr(self.im, "n_frames", 1)))
        if self.width * self.height > MAX_PILLOW_PIXELS:
            self.close()
            raise InvalidInput(f"image too large to convert ({self.width}x{self.height} > "
                               f"{MAX_PILLOW_PIXELS} pixels; use a tiled TIFF): {name}")
        dpi = self.im.info.get("dpi")
        try:
            if isinstance(dpi, tuple) and len(dpi) == 2 and float(dpi[0]) > 0 and float(dpi[1]) > 0:
                self.mpp = (25400.0 / float(dpi[0]), 25400.0 / float(dpi[1]))
        except (TypeError, ValueError):
            pass
        self._scale: tuple[float, float] | None = None

    def close(self) -> None:
        self.im.close()

    def _plane(self, plane: int) -> Any:
        """The plane as an RGB/RGBA Pillow image, or a numpy array of samples to scale."""
        import numpy as np

        im = self.im
        try:
            im.seek(plane)
            im.load()
            if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
                return np.asarray(im)
            if "A" in im.mode or "a" in im.mode or "transparency" in im.info:
                return im.convert("RGBA")
            return im if im.mode == "RGB" else im.convert("RGB")
        except Exception as exc:
            raise self.fail(f"decode frame {plane}" if self.planes > 1 else "decode the image", exc) from None

    def bands(self, plane: int) -> Iterator[U8]:
        import numpy as np

        pixels = self._plane(plane)
        if isinstance(pixels, np.ndarray):
            if self._scale is None:
                lo, hi = math.inf, -math.inf
                for p in range(self.planes):
                    a = pixels if p == plane else self._plane(p)
                    lo, hi = min(lo, float(np.nanmin(a))), max(hi, float(np.nanmax(a)))
                self._scale = (lo, hi)
            px = _Pixels(1, False, 1.0, scale=self._scale)
            for y in range(0, self.height, 256):
                yield _to_rgb8(pixels[y : y + 256], px)
            return
        rgba = pixels.mode == "RGBA"
        px = _Pixels(3, rgba, 255.0)
        for y in range(0, self.height, 256):
            band = np.asarray(pixels.crop((0, y, self.width, min(self.height, y + 256))))
            yield band if not rgba else _to_rgb8(band, px)


# --- the pyramid ---------------------------------------------------------------------------------------


def _encode_tile(data: Any, quality: int) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpeg8_encode(data, level=quality, colorspace="RGB", outcolorspace="YCBCR",
                                          subsampling=(1, 1)))


def _halve(rows: U8, last_col: float = 1.0, last_row: float = 1.0) -> U8:
    """Each 2x2 block averaged (rounded), weighted by the source area each pixel covers.

    ``last_col``/``last_row``: the share of a full pixel's area that the last column/row covers
    (the image's right and bottom edges rarely fall on a pixel boundary of a smaller level). An odd
    last row/column makes an output pixel on its own; an even one is averaged with its neighbour
    by area, so that every pixel of every level is the mean of the source pixels it covers.
    """
    import numpy as np
    from PIL import Image

    h, w = rows.shape[:2]
    # Pillow's reduce: a partial block at an odd edge averages the pixels it has; rounds like (s + 2) >> 2
    out: U8 = np.array(Image.fromarray(rows).reduce(2))
    if (w % 2 == 0 and last_col < 1.0) or (h % 2 == 0 and last_row < 1.0):
        hp, wp = h + h % 2, w + w % 2  # padded to even: a padding row/column has no weight of its own
        wc = np.ones(wp)
        wc[w - 1] = last_col
        wc[w:] = 0.0
        wr = np.ones(hp)
        wr[h - 1] = last_row
        wr[h:] = 0.0

        def area_mean(y0: int, x0: int) -> Any:  # the output pixels of rows[y0:] x [x0:], weighted
            px = rows[y0:, x0:]
            px = np.pad(px, ((0, hp - h), (0, wp - w), (0, 0)), mode="edge").astype(np.float64)
            wts = wr[y0:, None] * wc[None, x0:]
            m, n = wts.shape[0] // 2, wts.shape[1] // 2
            num = (px * wts[:, :, None]).reshape(m, 2, n, 2, 3).sum(axis=(1, 3))
            den = wts.reshape(m, 2, n, 2).sum(axis=(1, 3))
            return np.rint(num / den[:, :, None]).astype(np.uint8)

        out[:, -1:] = area_mean(0, wp - 2)
        out[-1:, :] = area_mean(hp - 2, 0)
    return out


class _Builder:
    """Cuts each level into tile rows as its pixel rows arrive, encodes them, and feeds the next level."""

    def __init__(self, width: int, height: int, tile: int, quality: int, spool: IO[bytes],
                 pool: ThreadPoolExecutor | None) -> None:
        self.sizes = pyramid_sizes(width, height)
        self.tile = tile
        self.quality = quality
        self.spool = spool
        self.pool = pool
        self.pending: list[list[U8]] = [[] for _ in self.sizes]
        self.pending_rows = [0] * len(self.sizes)
        self.index: list[list[tuple[int, int]]] = [[] for _ in self.sizes]
        self.rows_emitted = [0] * len(self.sizes)
        # the share of a full pixel's source area that each level's last column / row covers
        self.last_col = [(width - (w - 1) * 2**k) / 2**k for k, (w, _h) in enumerate(self.sizes)]
        self.last_row = [(height - (h - 1) * 2**k) / 2**k for k, (_w, h) in enumerate(self.sizes)]
        self.queue: deque[tuple[int, Future[bytes] | bytes]] = deque()

    def add(self, level: int, band: U8) -> None:
        import numpy as np

        t = self.tile
        self.pending[level].append(band)
        self.pending_rows[level] += band.shape[0]
        while self.pending_rows[level] >= t:
            pieces = self.pending[level]
            rows = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
            self.pending[level] = [rows[t:]] if rows.shape[0] > t else []
            self.pending_rows[level] -= t
            self._emit(level, rows[:t])

    def finish(self) -> None:
        import numpy as np

        for level in range(len(self.sizes)):
            if self.pending_rows[level]:
                rows = np.concatenate(self.pending[level])
                self.pending[level], self.pending_rows[level] = [], 0
                self._emit(level, rows)
        self._drain(0)
        for level, (w, h) in enumerate(self.sizes):
            expected = math.ceil(w / self.tile) * math.ceil(h / self.tile)
            if len(self.index[level]) != expected:
                raise RuntimeError(f"level {level}: {len(self.index[level])} tiles, expected {expected}")

    def _emit(self, level: int, rows: U8) -> None:
        import numpy as np

        t = self.tile
        w = self.sizes[level][0]
        quality = self.quality if max(self.sizes[level]) > t else OVERVIEW_QUALITY
        for x in range(0, w, t):
            data = rows[:, x : x + t]
            if data.shape[:2] != (t, t):  # pad edge tiles with their last row/column
                data = np.pad(data, ((0, t - data.shape[0]), (0, t - data.shape[1]), (0, 0)), mode="edge")
            item: Future[bytes] | bytes
            if self.pool is not None:
                item = self.pool.submit(_encode_tile, np.ascontiguousarray(data), quality)
            else:
                item = _encode_tile(np.ascontiguousarray(data), quality)
            self.queue.append((level, item))
        self._drain(_MAX_IN_FLIGHT)
        self.rows_emitted[level] += rows.shape[0]
        if level + 1 < len(self.sizes):
            last = self.rows_emitted[level] == self.sizes[level][1]
            self.add(level + 1, _halve(rows, self.last_col[level], self.last_row[level] if last else 1.0))

    def _drain(self, keep: int) -> None:
        while len(self.queue) > keep:
            level, item = self.queue.popleft()
            data = item.result() if isinstance(item, Future) else item
            self.index[level].append((self.spool.tell(), len(data)))
            self.spool.write(data)

    def tiles(self, level: int) -> Iterator[bytes]:
        for offset, length in self.index[level]:
            self.spool.seek(offset)
            yield self.spool.read(length)


def _write_pyramid(source: _Source, plane: int, out: Path, tile: int, quality: int,
                   rows_done: Callable[[int], None]) -> None:
    import tempfile

    import tifffile

    workers = min(8, os.cpu_count() or 1)
    with tempfile.TemporaryFile(dir=out.parent) as spool, \
            ThreadPoolExecutor(workers) if workers > 1 else _NoPool() as pool:
        builder = _Builder(source.width, source.height, tile, quality, spool, pool)
        y = 0
        for band in source.bands(plane):
            if band.shape[1] != source.width or band.shape[0] < 1 or y + band.shape[0] > source.height:
                raise InvalidInput(f"plane {plane} does not have the first plane's size: {source.name}")
            builder.add(0, band)
            y += band.shape[0]
            rows_done(band.shape[0])
        if y != source.height:
            raise InvalidInput(f"plane {plane} has {y} of {source.height} rows: {source.name}")
        builder.finish()
        size = spool.tell()
        bigtiff = size + 64 * sum(len(ix) for ix in builder.index) > 2**32 - 2**26
        mpp = source.mpp
        with tifffile.TiffWriter(out, bigtiff=bigtiff) as tw:
            for level, (w, h) in enumerate(builder.sizes):
                extra: dict[str, Any] = {}
                if mpp is not None:
                    ds_x, ds_y = source.width / w, source.height / h
                    extra = {"resolution": (1e4 / (mpp[0] * ds_x), 1e4 / (mpp[1] * ds_y)),
                             "resolutionunit": "CENTIMETER"}
                tw.write(builder.tiles(level), shape=(h, w, 3), dtype="uint8", tile=(tile, tile),
                         photometric="rgb", compression="jpeg", subsampling=(1, 1),
                         compressionargs={"outcolorspace": "YCBCR"}, subfiletype=1 if level else 0,
                         software="exactvc", metadata=None, **extra)


class _NoPool:
    """``with ... as pool`` giving None: encode in the calling thread (one CPU)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        pass


# --- helpers --------------------------------------------------------------------------------------------


def _decode_error(what: str, exc: BaseException, name: str) -> InvalidInput:
    """A one-line InvalidInput naming the file, for whatever a decoder raised."""
    detail = " ".join(f"{type(exc).__name__}: {exc}".split())
    return InvalidInput(f"cannot {what} ({detail}): {name}")


def _is_tiff(name: str) -> bool:
    try:
        with open(name, "rb") as f:
            return f.read(4) in _TIFF_MAGIC
    except OSError as exc:
        raise InvalidInput(f"cannot read ({exc.strerror}): {name}") from None


def _openslide_vendor(name: str) -> str | None:
    import openslide

    try:
        vendor = openslide.OpenSlide.detect_format(name)
    except (openslide.OpenSlideError, OSError):
        return None
    return str(vendor) if vendor else None


def _full_pages(tf: Any) -> list[Any]:
    """The planes of a TIFF: pages of the main IFD chain with the first page's shape and dtype,
    leaving out reduced-resolution pages (bit 0 of NewSubfileType) and transparency masks (bit 2)."""
    import tifffile

    tf.pages.useframes = False
    out: list[Any] = []
    for page in tf.pages:
        if not isinstance(page, tifffile.TiffPage):
            page = page.aspage()
        if int(page.subfiletype) & 0b101:
            continue
        if not out or (page.shape == out[0].shape and page.dtype == out[0].dtype):
            out.append(page)
    if not out:
        raise InvalidInput(f"TIFF has no full-resolution page: {tf.filehandle.path}")
    return out


def _resolution(page: Any, axis: str) -> float | None:
    tag = page.tags.get(f"{axis}Resolution")
    if tag is None:
        return None
    try:
        num, den = tag.value
        value = float(num) / float(den)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _tiff_mpp(tf: Any, page: Any) -> tuple[float, float] | None:
    """Micrometres per pixel (x, y): resolution tags in cm or inch, ImageJ's unit, or OME PhysicalSize."""
    x, y = _resolution(page, "X"), _resolution(page, "Y")
    unit_tag = page.tags.get("ResolutionUnit")
    unit = int(unit_tag.value) if unit_tag is not None else 2
    if x is not None:
        y = y or x
        if unit == 3:
            return 1e4 / x, 1e4 / y
        if tf.is_imagej and str((tf.imagej_metadata or {}).get("unit", "")).lower() in ("micron", "um", "µm"):
            return 1 / x, 1 / y
        if unit == 2:
            return 25400.0 / x, 25400.0 / y
    if tf.is_ome and tf.ome_metadata:
        found = re.search(r'<Pixels\b[^>]*>', tf.ome_metadata)
        if found:
            attrs: dict[str, str] = dict(re.findall(r'(\w+)="([^"]*)"', found.group(0)))
            unit_ok = attrs.get("PhysicalSizeXUnit", "µm") in ("µm", "um")
            try:
                px, py = float(attrs["PhysicalSizeX"]), float(attrs.get("PhysicalSizeY", attrs["PhysicalSizeX"]))
            except (KeyError, ValueError):
                return None
            if unit_ok and px > 0 and py > 0:
                return px, py
    return None
