"""Synthetic whole-slide images for tests, the demo and benchmarks.

:func:`make_pyramidal_tiff` writes a tiled, JPEG-compressed, multi-resolution
TIFF that OpenSlide opens, either with an Aperio-like SVS layout (vendor
``aperio``) or as a generic tiled TIFF (vendor ``generic-tiff``).
:func:`make_plain_image` writes small PNG/JPEG/TIFF images.

The content is procedural "H&E-like tissue": a light background with pink
stroma blobs and purple nuclei. It is a pure function of level-0
coordinates, so every pyramid level shows the same tissue, and it is rendered
tile by tile from a few precomputed periodic textures, so memory stays small
whatever the slide size.

What OpenSlide requires (OpenSlide 4.0):

* aperio: the first IFD must be tiled and its ImageDescription must start
  with ``Aperio``; ``|MPP = x`` in it gives ``openslide.mpp-x``. Every further
  *tiled* IFD in the main chain is a level (SubIFDs are ignored); an untiled
  second IFD is the ``thumbnail`` associated image.
* generic-tiff: the first IFD must be tiled; further tiled IFDs in the main
  chain are levels *only if* their NewSubfileType has the reduced-resolution
  bit set. SubIFDs are not read. The mpp comes from X/YResolution with a
  centimetre ResolutionUnit.
* JPEG tiles: tifffile's ``photometric`` is the colour space of the *input*
  array; the stored colour space is ``compressionargs['outcolorspace']``
  (YCbCr by default, with 2x2 chroma subsampling). OpenSlide decodes both.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from exactvc.errors import UsageError

__all__ = ["make_plain_image", "make_pyramidal_tiff"]

_Q = 32  # quantisation steps for each of the three fields (tissue, stroma, nuclei)
_NUC_PERIOD = 1024  # level-0 period of the nuclei texture
_STROMA_PERIOD = 1536  # level-0 period of the stroma texture (lcm with the above: 3072)
_CELL = 32  # spacing of the jittered nuclei grid, level-0 px

_BACKGROUND = (243.0, 241.0, 246.0)
_STROMA_LIGHT = (247.0, 200.0, 222.0)
_STROMA_DARK = (214.0, 120.0, 170.0)
_NUCLEUS = (86.0, 50.0, 138.0)

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]


def _smoothstep(x: F64) -> F64:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _interp_weights(coords: F64, spacing: float, n: int) -> tuple[F64, int]:
    """Smooth 1-D interpolation weights of ``coords`` on a grid of ``n`` knots ``spacing`` apart.

    Returns the dense weight matrix restricted to the knots actually used and the index of its first knot.
    """
    g = np.clip(coords / spacing, 0.0, n - 1.000001)
    i0 = np.floor(g).astype(np.intp)
    s = _smoothstep(g - i0)
    lo = int(i0.min())
    hi = int(i0.max()) + 1
    w = np.zeros((coords.size, hi - lo + 1))
    rows = np.arange(coords.size)
    w[rows, i0 - lo] = 1.0 - s
    w[rows, i0 - lo + 1] = s
    return w, lo


def _grid_noise(grid: F64, spacing: float, ys: F64, xs: F64) -> F64:
    """Value noise: ``grid`` (knots ``spacing`` apart) smoothly interpolated at the outer product ys x xs."""
    wy, y0 = _interp_weights(ys, spacing, grid.shape[0])
    wx, x0 = _interp_weights(xs, spacing, grid.shape[1])
    sub = grid[y0 : y0 + wy.shape[1], x0 : x0 + wx.shape[1]]
    result: F64 = wy @ sub @ wx.T
    return result


def _periodic_weights(size: int, knots: int) -> F64:
    """Weights (size x knots) interpolating a periodic grid of ``knots`` over ``size`` pixels."""
    g = (np.arange(size) + 0.5) * (knots / size)
    i0 = np.floor(g).astype(np.intp)
    s = _smoothstep(g - i0)
    w = np.zeros((size, knots))
    rows = np.arange(size)
    np.add.at(w, (rows, i0 % knots), 1.0 - s)
    np.add.at(w, (rows, (i0 + 1) % knots), s)
    return w


def _periodic_noise(rng: np.random.Generator, size: int, knots_y: int, knots_x: int) -> F64:
    grid = rng.random((knots_y, knots_x))
    result: F64 = _periodic_weights(size, knots_y) @ grid @ _periodic_weights(size, knots_x).T
    return result


def _normalise(a: F64) -> F64:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _nuclei_texture(rng: np.random.Generator) -> F64:
    """Periodic nuclei coverage in [0, 1]: two offset jittered grids of ellipses."""
    p, cell = _NUC_PERIOD, _CELL
    n = p // cell
    density = _normalise(_periodic_noise(rng, n, 6, 6))  # smooth per-cell density, periodic
    coords = np.arange(p)
    result = np.zeros((p, p))
    for layer, (offset, share) in enumerate(((0, 0.75), (cell // 2, 0.35))):
        shifted = (coords - offset) % p
        cy = (shifted // cell)[:, None]
        cx = (shifted // cell)[None, :]
        ly = (shifted % cell - cell / 2 + 0.5)[:, None]
        lx = (shifted % cell - cell / 2 + 0.5)[None, :]
        present = rng.random((n, n)) < share * (0.25 + 0.95 * np.roll(density, layer * 3, axis=0))
        radius = rng.uniform(5.0, 11.0, (n, n))
        room = cell / 2 - radius
        jy = rng.uniform(-1.0, 1.0, (n, n)) * room
        jx = rng.uniform(-1.0, 1.0, (n, n)) * room
        aspect = rng.uniform(0.55, 1.0, (n, n))
        angle = rng.uniform(0.0, math.pi, (n, n))
        strength = rng.uniform(0.6, 1.0, (n, n)) * present
        dy = ly - jy[cy, cx]
        dx = lx - jx[cy, cx]
        cos, sin = np.cos(angle)[cy, cx], np.sin(angle)[cy, cx]
        u = (dx * cos + dy * sin) / aspect[cy, cx]
        v = dy * cos - dx * sin
        dist = np.sqrt(u * u + v * v)
        blob = np.clip(radius[cy, cx] - dist + 0.5, 0.0, 1.0) * strength[cy, cx]
        np.maximum(result, blob, out=result)
    chromatin = 0.8 + 0.2 * rng.random((p, p))
    out: F64 = result * chromatin
    return out


def _stroma_texture(rng: np.random.Generator) -> F64:
    """Periodic stroma shade in [0, 1]: blotches plus horizontal-ish fibres."""
    p = _STROMA_PERIOD
    tex = (
        0.45 * _periodic_noise(rng, p, 8, 8)
        + 0.25 * _periodic_noise(rng, p, 32, 32)
        + 0.2 * _periodic_noise(rng, p, 128, 16)
        + 0.1 * rng.random((p, p))
    )
    return _normalise(tex)


def _block_mean(tex: F64, factor: int) -> F64:
    p = tex.shape[0]
    if factor <= 1:
        return tex
    if factor > p or p % factor:
        return np.full((1, 1), tex.mean())
    m = p // factor
    result: F64 = tex.reshape(m, factor, m, factor).mean(axis=(1, 3))
    return result


def _quantise(a: F64, scale: int) -> U16:
    q = np.rint(np.clip(a, 0.0, 1.0) * (_Q - 1)).astype(np.uint16)
    result: U16 = q * np.uint16(scale)
    return result


def _colour_table() -> U8:
    """Colour of every (tissue, stroma, nucleus) quantised triple, indexed t*Q*Q + s*Q + n."""
    steps = np.linspace(0.0, 1.0, _Q)
    t = steps[:, None, None, None]
    s = steps[None, :, None, None]
    n = steps[None, None, :, None]
    bg = np.array(_BACKGROUND)
    stroma = np.array(_STROMA_LIGHT) + s * (np.array(_STROMA_DARK) - np.array(_STROMA_LIGHT))
    cell = stroma + n * (np.array(_NUCLEUS) - stroma)
    colour = bg + t * (cell - bg)
    table: U8 = np.rint(colour).clip(0, 255).astype(np.uint8).reshape(_Q**3, 3)
    return table


class _Tissue:
    """Procedural tissue over a ``width`` x ``height`` level-0 plane, renderable at any downsample."""

    def __init__(self, width: int, height: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.width = width
        self.height = height
        self._nuclei0 = _nuclei_texture(rng)
        self._stroma0 = _stroma_texture(rng)
        self._table = _colour_table()
        size = max(width, height)
        # tissue mask: three octaves of value noise; spacings relative to the slide so the
        # number of tissue pieces does not depend on the slide size, plus ragged edges.
        self._octaves: list[tuple[F64, float, float]] = []
        for spacing, weight in ((size / 4.0, 0.62), (size / 16.0, 0.3), (min(128.0, size / 32.0), 0.08)):
            spacing = max(spacing, 4.0)
            # room for renders that run past the right/bottom edge (full border tiles)
            ny = int(math.ceil(2 * height / spacing)) + 3
            nx = int(math.ceil(2 * width / spacing)) + 3
            self._octaves.append((rng.random((ny, nx)), spacing, weight))
        self._levels: dict[int, tuple[U16, U16]] = {}

    def _level_textures(self, ds: int) -> tuple[U16, U16]:
        if ds not in self._levels:
            self._levels[ds] = (
                _quantise(_block_mean(self._stroma0, ds), _Q),
                _quantise(_block_mean(self._nuclei0, ds), 1),
            )
        return self._levels[ds]

    def _mask(self, ds: int, x0: int, y0: int, w: int, h: int) -> F64:
        ys: F64 = (y0 + np.arange(h, dtype=np.float64) + 0.5) * ds
        xs: F64 = (x0 + np.arange(w, dtype=np.float64) + 0.5) * ds
        v = np.zeros((h, w))
        for grid, spacing, weight in self._octaves:
            v += weight * _grid_noise(grid, spacing, ys, xs)
        # keep tissue away from the slide border, like a real scan's margins
        ey = np.clip(1.0 - np.minimum(ys, self.height - ys) / (0.06 * self.height), 0.0, 1.0)
        ex = np.clip(1.0 - np.minimum(xs, self.width - xs) / (0.06 * self.width), 0.0, 1.0)
        v -= 0.5 * np.maximum(ey[:, None], ex[None, :])
        return _smoothstep((v - 0.47) / 0.05)

    def render(self, ds: int, x0: int, y0: int, w: int, h: int) -> U8:
        """RGB pixels of the region (x0, y0, w, h), in level coordinates of downsample ``ds``."""
        t = _quantise(self._mask(ds, x0, y0, w, h), _Q * _Q)
        if not t.any():
            background: U8 = np.broadcast_to(self._table[0], (h, w, 3))
            return background
        stroma, nuclei = self._level_textures(ds)
        idx = t + _window(stroma, x0, y0, w, h)
        idx += _window(nuclei, x0, y0, w, h)
        pixels: U8 = np.take(self._table, idx, axis=0)
        return pixels


def _window(tex: U16, x0: int, y0: int, w: int, h: int) -> U16:
    """The (x0, y0, w, h) window of a periodic texture (a view when it does not wrap)."""
    py, px = y0 % tex.shape[0], x0 % tex.shape[1]
    if py + h <= tex.shape[0] and px + w <= tex.shape[1]:
        return tex[py : py + h, px : px + w]
    ys = (py + np.arange(h)) % tex.shape[0]
    xs = (px + np.arange(w)) % tex.shape[1]
    result: U16 = tex[np.ix_(ys, xs)]
    return result


def _tiles(tissue: _Tissue, ds: int, width: int, height: int, tile: int) -> Iterator[U8]:
    for ty in range(0, height, tile):
        for tx in range(0, width, tile):
            yield tissue.render(ds, tx, ty, tile, tile)


def _level_downsamples(width: int, height: int, downsample: int, min_level_size: int) -> list[int]:
    levels = [1]
    while max(width, height) // (levels[-1] * downsample) >= min_level_size:
        levels.append(levels[-1] * downsample)
    return levels


def make_pyramidal_tiff(
    path: str | os.PathLike[str],
    width: int,
    height: int,
    tile: int = 256,
    mpp: float = 0.25,
    aperio: bool = True,
    photometric: str = "ycbcr",
    quality: int = 85,
    seed: int = 0,
    min_level_size: int = 512,
    downsample: int = 4,
) -> Path:
    """Write a synthetic tiled, JPEG-compressed pyramidal TIFF that OpenSlide opens; return its path.

    Levels are level 0 and successive ``downsample``-fold reductions while the larger side of the
    next level stays >= ``min_level_size``. ``aperio=True`` writes an Aperio-like SVS (vendor
    'aperio', levels as tiled pages in the main IFD chain, a stripped thumbnail as second page);
    ``aperio=False`` a generic tiled TIFF (vendor 'generic-tiff', reduced-resolution pages).
    ``photometric`` is the stored JPEG colour space: 'ycbcr' (2x2 subsampled) or 'rgb'.
    """
    import tifffile

    if width < 1 or height < 1:
        raise UsageError(f"slide size must be positive: {width}x{height}")
    if tile < 16 or tile % 16:
        raise UsageError(f"tile size must be a positive multiple of 16: {tile}")
    if photometric not in ("rgb", "ycbcr"):
        raise UsageError(f"photometric must be 'rgb' or 'ycbcr': {photometric!r}")
    if not 1 <= quality <= 100:
        raise UsageError(f"JPEG quality must be in 1..100: {quality}")
    if not mpp > 0:
        raise UsageError(f"mpp must be positive: {mpp}")
    if downsample < 2:
        raise UsageError(f"downsample must be >= 2: {downsample}")

    out = Path(path)
    tissue = _Tissue(width, height, seed)
    downsamples = _level_downsamples(width, height, downsample, max(1, min_level_size))
    compressionargs: dict[str, Any] = {"level": quality}
    if photometric == "rgb":
        compressionargs["outcolorspace"] = "RGB"
    resolution = (1e4 / mpp, 1e4 / mpp)  # pixels per centimetre
    # classic TIFF offsets are 32-bit; JPEG output is far smaller than raw, but stay safe
    bigtiff = width * height * 3 >= 2**32 - 2**26
    head = f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}] ({tile}x{tile})"
    head += f" JPEG/{'RGB' if photometric == 'rgb' else 'YCbCr'} Q={quality}"
    meta = f"|AppMag = {40 if mpp < 0.375 else 20}|MPP = {mpp}|exactvc synthetic = seed {seed}"

    with tifffile.TiffWriter(out, bigtiff=bigtiff) as tw:
        for index, ds in enumerate(downsamples):
            w, h = max(1, width // ds), max(1, height // ds)
            description: str | None = None
            if aperio:
                description = head + (f" -> {w}x{h}" if index else "") + meta
            tw.write(
                _tiles(tissue, ds, w, h, tile),
                shape=(h, w, 3),
                dtype=np.uint8,
                tile=(tile, tile),
                photometric="rgb",
                compression="jpeg",
                compressionargs=compressionargs,
                subfiletype=0 if aperio or index == 0 else 1,
                description=description,
                metadata=None,
                resolution=resolution,
                resolutionunit="CENTIMETER",
            )
            if aperio and index == 0:
                # Aperio's second IFD: a stripped thumbnail, exposed as associated image 'thumbnail'
                tds = 1 << max(0, math.ceil(math.log2(max(width, height) / 768)))
                tw_, th_ = max(1, width // tds), max(1, height // tds)
                tw.write(
                    np.ascontiguousarray(tissue.render(tds, 0, 0, tw_, th_)),
                    photometric="rgb",
                    compression="jpeg",
                    compressionargs={"level": 90},
                    description=f"{head} -> {tw_}x{th_} - {meta}",
                    metadata=None,
                    rowsperstrip=16,
                )
    return out


def make_plain_image(
    path: str | os.PathLike[str],
    width: int,
    height: int,
    fmt: str = "png",
    pages: int = 1,
    seed: int = 0,
) -> Path:
    """Write a small plain image with tissue-like content; return its path.

    ``fmt`` is 'png', 'jpeg' or 'tiff' (striped, uncompressed). Only 'tiff' can hold several
    ``pages`` (each page shows a different field of the same tissue, all the same size).
    """
    if width < 1 or height < 1:
        raise UsageError(f"image size must be positive: {width}x{height}")
    if fmt not in ("png", "jpeg", "tiff"):
        raise UsageError(f"image format must be 'png', 'jpeg' or 'tiff': {fmt!r}")
    if pages < 1 or (pages > 1 and fmt != "tiff"):
        raise UsageError(f"{fmt} cannot hold {pages} pages")
    out = Path(path)
    tissue = _Tissue(width * pages, height, seed)
    frames = [np.ascontiguousarray(tissue.render(1, page * width, 0, width, height)) for page in range(pages)]
    if fmt == "tiff":
        import tifffile

        with tifffile.TiffWriter(out) as tw:
            for frame in frames:
                tw.write(frame, photometric="rgb", metadata=None, rowsperstrip=64)
    else:
        from PIL import Image

        Image.fromarray(frames[0]).save(out, format=fmt.upper(), **({"quality": 90} if fmt == "jpeg" else {}))
    return out
