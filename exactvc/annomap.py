"""Annotation maps: a virtual image tiling one patch per annotation of a label (or a filter) in a grid,
served as DeepZoom and built lazily, tile by tile, from the source slides.

The spec (``MapSpec``): which annotations (``label``, optional ``images``, an optional property filter
``prop=key=value``), the patch side ``patch`` in map pixels, the source resolution ``scale`` (a power of
two: a patch covers ``patch * scale`` level-0 pixels of its slide, centred on the annotation's bounding
box) and ``per_row`` patches per row.

The layout is deterministic: the matching annotations of every selected image (images in name order),
in ``order`` ``id`` (annotation id order, which for UUIDv7 ids is creation order) or ``position``
(top to bottom in bands of one patch height, then left to right, per image). Patch ``i`` sits in cell
(``i % per_row``, ``i // per_row``). A map is named by ``map_id``: a hash of the repository, the image
fingerprints, their annotation tree ids and the spec, so the same annotations and spec always give the
same map, and any edit gives a new one.

Tiles: DeepZoom level ``L`` is the map downsampled by ``d = 2 ** (max_level - L)``. Cell ``c`` spans the
level's pixels ``[floor(c * patch / d), floor((c + 1) * patch / d))`` (the cells partition every level,
no gaps). A patch at that level is cut, one to one, from the source slide's DeepZoom level of downsample
``scale * d`` (clamped at the slide's smallest level). A tile of at most ``FEW`` x ``FEW`` cells reads each
patch through openslide (C, with its own cache of decoded tiles); a zoomed-out tile of many patches gathers
its pixels in one vectorised pass from decoded tiles of the slides' coarse levels (an LRU of them): a
handful of source tiles for thousands of patches. Nothing is rendered up front.
"""

from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import blake3

from . import codec, geometry, tree
from .errors import InvalidInput, NotFound
from .ids import format_id

if TYPE_CHECKING:
    import numpy as np

    from .repo import Repository
    from .tiles import Slide

TILE = 256
ORDERS = ("id", "position")
MAX_PATCH = 1024
MAX_PER_ROW = 1000
MAX_SCALE = 64
MAX_PATCHES = 1_000_000
BACKGROUND = 255  # outside a slide and beyond the last patch: white
FEW = 8  # a tile at most FEW x FEW cells is read patch by patch from openslide; larger ones are gathered


@dataclass(frozen=True)
class MapSpec:
    label: str
    images: tuple[str, ...] = ()  # empty: every image of the revision
    patch: int = 128
    per_row: int = 20
    scale: int = 1
    order: str = "id"
    prop: tuple[str, str] | None = None  # only annotations whose property key equals value (as text)

    def key(self) -> dict[str, Any]:
        return {"label": self.label, "images": list(self.images), "patch": self.patch, "per_row": self.per_row,
                "scale": self.scale, "order": self.order, "prop": list(self.prop) if self.prop else None}


def _whole(args: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    v = args.get(name)
    if v is None or v == "":
        return default
    if not (v.isascii() and v.isdigit()) or len(v) > 9:
        raise InvalidInput(f"{name} must be a whole number from {lo} to {hi}, not {v[:40]!r}")
    n = int(v)
    if not lo <= n <= hi:
        raise InvalidInput(f"{name} must be between {lo} and {hi}")
    return n


def parse_spec(args: Mapping[str, str], images: Sequence[str] = ()) -> MapSpec:
    """A spec from query parameters: label (required), patch, per_row, scale, order, prop=KEY=VALUE."""
    label = args.get("label") or ""
    if not label:
        raise InvalidInput("a map needs a label (label=NAME)")
    patch = _whole(args, "patch", 128, 8, MAX_PATCH)
    per_row = _whole(args, "per_row", 20, 1, MAX_PER_ROW)
    scale = _whole(args, "scale", 1, 1, MAX_SCALE)
    if scale & (scale - 1):
        raise InvalidInput(f"scale must be a power of two (1, 2, 4, ... {MAX_SCALE}), not {scale}")
    order = args.get("order") or "id"
    if order not in ORDERS:
        raise InvalidInput(f"order must be one of {', '.join(ORDERS)}, not {order[:40]!r}")
    prop = None
    if args.get("prop"):
        k, sep, v = args["prop"].partition("=")
        if not sep or not k:
            raise InvalidInput("prop must be KEY=VALUE")
        prop = (k, v)
    return MapSpec(label, tuple(sorted(set(images))), patch, per_row, scale, order, prop)


@dataclass(frozen=True)
class Patch:
    image: str
    fingerprint: str
    key: bytes
    label: str
    bounds: tuple[float, float, float, float]
    origin: tuple[int, int]  # level-0 pixel of the slide at the patch's top-left corner

    @property
    def id(self) -> str:
        return format_id(self.key)


@dataclass
class MapLayout:
    repo: str
    spec: MapSpec
    patches: list[Patch]
    trees: dict[str, str]  # image -> annotation tree id (hex, "" for no annotations)
    map_id: str = ""
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # fingerprint -> slide size

    @property
    def rows(self) -> int:
        return max(1, math.ceil(len(self.patches) / self.spec.per_row))

    @property
    def width(self) -> int:
        return self.spec.per_row * self.spec.patch

    @property
    def height(self) -> int:
        return self.rows * self.spec.patch

    def cell(self, i: int) -> tuple[int, int]:
        """Top-left map pixel of patch ``i`` (full resolution)."""
        return (i % self.spec.per_row) * self.spec.patch, (i // self.spec.per_row) * self.spec.patch

    def index_at(self, x: float, y: float) -> int | None:
        """The patch under map pixel (x, y), if any."""
        if x < 0 or y < 0 or x >= self.width:
            return None
        i = int(y // self.spec.patch) * self.spec.per_row + int(x // self.spec.patch)
        return i if i < len(self.patches) else None

    def describe(self, i: int) -> dict[str, Any]:
        p = self.patches[i]
        x, y = self.cell(i)
        side = self.spec.patch * self.spec.scale
        return {"index": i, "image": p.image, "id": p.id, "label": p.label, "cell": [x, y, self.spec.patch],
                "source": [p.origin[0], p.origin[1], side, side], "bounds": list(p.bounds)}


def _matches(rec: dict[str, Any], spec: MapSpec) -> bool:
    if rec["l"] != spec.label:
        return False
    if spec.prop is not None:
        props = rec.get("p") or {}
        k, v = spec.prop
        if k not in props:
            return False
        have = props[k]
        text = ("true" if have else "false") if isinstance(have, bool) else str(have)
        if text != v:
            return False
    return True


def _bounds(rec: dict[str, Any]) -> tuple[float, float, float, float]:
    if "b" in rec:  # a split-out geometry keeps its bounds in the record
        b = rec["b"]
        return float(b[0]), float(b[1]), float(b[2]), float(b[3])
    return geometry.bounds(rec["k"], rec["g"])


def map_sources(repo: Repository, rev: str, spec: MapSpec) -> list[tuple[str, str, bytes | None, int, int]]:
    """The selected images at ``rev``: (name, fingerprint, annotation tree id, width, height), name order."""
    snap = repo.snapshot_at(rev)
    out = []
    for name in list(spec.images) or sorted(snap.images):
        _entry, root = repo.tree_of(name, rev)
        rec = repo.image(name, rev)
        out.append((rec.name, rec.fingerprint, root, rec.width, rec.height))
    return sorted(out)


def map_id(repo_name: str, spec: MapSpec, sources: Sequence[tuple[str, str, bytes | None, int, int]]) -> str:
    """The map's name: the repository, the spec and each image's fingerprint and annotation tree id."""
    ident = codec.pack_canonical({"repo": repo_name, "spec": spec.key(),
                                  "trees": [[n, fp, root.hex() if root else ""] for n, fp, root, _w, _h in sources]})
    return blake3.blake3(b"exactvc.annomap/v1\0" + ident).hexdigest()[:32]


def build_layout(repo: Repository, repo_name: str, rev: str, spec: MapSpec,
                 sources: Sequence[tuple[str, str, bytes | None, int, int]] | None = None) -> MapLayout:
    """The layout of the map of ``spec`` at ``rev``: one pass over the selected images' annotation trees
    (records only; split-out geometries are not fetched: their bounds are in the record)."""
    if sources is None:
        sources = map_sources(repo, rev, spec)
    patches: list[Patch] = []
    trees: dict[str, str] = {}
    sizes: dict[str, tuple[int, int]] = {}
    side = spec.patch * spec.scale
    for name, fp, root, width, height in sources:
        trees[name] = root.hex() if root else ""
        sizes[fp] = (width, height)
        mine: list[Patch] = []
        for k, rec in tree.items(repo.store, root):
            if not _matches(rec, spec):
                continue
            b = _bounds(rec)
            cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
            # the origin on the scale grid, so a patch is whole pixels of the source level
            ox = (math.floor(cx / spec.scale) - spec.patch // 2) * spec.scale
            oy = (math.floor(cy / spec.scale) - spec.patch // 2) * spec.scale
            mine.append(Patch(name, fp, k, rec["l"], b, (ox, oy)))
            if len(patches) + len(mine) > MAX_PATCHES:
                raise InvalidInput(f"a map holds at most {MAX_PATCHES} patches: narrow the filter")
        if spec.order == "position":
            mine.sort(key=lambda p: (math.floor((p.bounds[1] + p.bounds[3]) / 2 / side),
                                     (p.bounds[0] + p.bounds[2]) / 2, p.key))
        patches.extend(mine)  # "id": tree order is id order
    return MapLayout(repo_name, spec, patches, trees, map_id(repo_name, spec, sources), sizes)


# --- pixels -----------------------------------------------------------------------------------------


class SourceTiles:
    """Decoded DeepZoom tiles of source slides (numpy RGB), an LRU bounded by count."""

    def __init__(self, open_slide: Callable[[str], Slide], size: int = 384) -> None:
        self.open_slide = open_slide
        self.size = size
        self._d: OrderedDict[tuple[str, int, int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.decoded = 0

    def tile(self, fp: str, slide: Slide, level: int, col: int, row: int) -> np.ndarray | None:
        cols, rows = slide.grid(level)
        if not (0 <= col < cols and 0 <= row < rows):
            return None
        key = (fp, level, col, row)
        with self._lock:
            hit = self._d.get(key)
            if hit is not None:
                self._d.move_to_end(key)
                return hit
        import numpy as np
        from PIL import Image

        lv = slide.passthrough.get(level)
        if lv is not None:  # a stored tile (edge tiles too: decoded and cut, never re-encoded)
            w, h = slide.level_size(level)
            t = slide.tile
            with Image.open(io.BytesIO(lv.raw(slide._fds[lv.path], col, row))) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)[: min(t, h - row * t), : min(t, w - col * t)]
        else:
            with Image.open(io.BytesIO(slide.tile_jpeg(level, col, row))) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
        with self._lock:
            self._d[key] = arr
            self.decoded += 1
            while len(self._d) > self.size:
                self._d.popitem(last=False)
        return arr

    @staticmethod
    def region_openslide(slide: Slide, level: int, x: int, y: int, w: int, h: int) -> Any:
        """Pixels of a rectangle of DeepZoom level ``level`` read by openslide, white outside the slide."""
        from PIL import Image

        lw, lh = slide.level_size(level)
        ax0, ay0, ax1, ay1 = max(0, x), max(0, y), min(lw, x + w), min(lh, y + h)
        if ax1 <= ax0 or ay1 <= ay0:
            return Image.new("RGB", (w, h), (BACKGROUND,) * 3)
        inner = slide.region(level, ax0, ay0, ax1 - ax0, ay1 - ay0)
        if (ax0, ay0, ax1, ay1) == (x, y, x + w, y + h):
            return inner
        im = Image.new("RGB", (w, h), (BACKGROUND,) * 3)
        im.paste(inner, (ax0 - x, ay0 - y))
        return im


class MapRenderer:
    """The DeepZoom pyramid of one map: geometry, descriptor and tiles (thread-safe)."""

    def __init__(self, layout: MapLayout, sources: SourceTiles) -> None:
        self.layout = layout
        self.sources = sources
        self.tile = TILE
        self.width, self.height = layout.width, layout.height
        self.max_level = max(0, math.ceil(math.log2(max(self.width, self.height))))
        self._origins: tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None = None
        self.openers: set[str | None] = set()  # who opened it (the server's blind-mode check)

    def level_size(self, level: int) -> tuple[int, int]:
        d = 2 ** (self.max_level - level)
        return math.ceil(self.width / d), math.ceil(self.height / d)

    def grid(self, level: int) -> tuple[int, int]:
        w, h = self.level_size(level)
        return math.ceil(w / self.tile), math.ceil(h / self.tile)

    def dzi(self) -> str:
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="jpeg" '
                f'Overlap="0" TileSize="{self.tile}"><Size Width="{self.width}" Height="{self.height}"/></Image>')

    def check_tile(self, level: int, col: int, row: int) -> None:
        if not 0 <= level <= self.max_level:
            raise NotFound(f"no level {level} (0..{self.max_level})")
        cols, rows = self.grid(level)
        if not (0 <= col < cols and 0 <= row < rows):
            raise NotFound(f"no tile {col}_{row} at level {level} ({cols}x{rows} tiles)")

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """Per patch: level-0 origin x, y and the index of its slide in the fingerprint list."""
        import numpy as np

        if self._origins is None:
            fps = sorted({p.fingerprint for p in self.layout.patches})
            at = {fp: k for k, fp in enumerate(fps)}
            pts = self.layout.patches
            self._origins = (np.fromiter((p.origin[0] for p in pts), np.int64, len(pts)),
                             np.fromiter((p.origin[1] for p in pts), np.int64, len(pts)),
                             np.fromiter((at[p.fingerprint] for p in pts), np.int64, len(pts)), fps)
        return self._origins

    def tile_pixels(self, level: int, col: int, row: int) -> np.ndarray:
        """The tile's pixels, gathered in one vectorised pass: each output pixel's patch, its offset in the
        patch, the source pixel under it, grouped by the decoded source tile that holds it."""
        import numpy as np

        self.check_tile(level, col, row)
        lay, spec = self.layout, self.layout.spec
        d = 2 ** (self.max_level - level)
        w, h = self.level_size(level)
        x0, y0 = col * self.tile, row * self.tile
        tw, th = min(self.tile, w - x0), min(self.tile, h - y0)
        out = np.full((th, tw, 3), BACKGROUND, dtype=np.uint8)
        n = len(lay.patches)
        if not n:
            return out
        P = spec.patch
        u = np.arange(x0, x0 + tw, dtype=np.int64)
        v = np.arange(y0, y0 + th, dtype=np.int64)
        cu, rv = ((u + 1) * d - 1) // P, ((v + 1) * d - 1) // P  # the cell column / row of each pixel
        ou, ov = u - (cu * P) // d, v - (rv * P) // d  # the pixel's offset in its cell, at this level
        idx = rv[:, None] * spec.per_row + cu[None, :]
        valid = (idx < n) & (cu[None, :] < spec.per_row)
        if not valid.any():
            return out
        if (x0 + tw) * d // P - x0 * d // P + 1 <= FEW and (y0 + th) * d // P - y0 * d // P + 1 <= FEW:
            return self._few(out, x0, y0, tw, th, d)
        ox, oy, fpi, fps = self._arrays()
        yy, xx = np.nonzero(valid)
        ii = idx[yy, xx]
        down = spec.scale * d
        for k, fp in enumerate(fps):
            sel = fpi[ii] == k if len(fps) > 1 else slice(None)
            gy, gx, gi = yy[sel], xx[sel], ii[sel]
            if not len(gi):
                continue
            slide = self.sources.open_slide(fp)
            lk = min(int(math.log2(down)), slide.max_level)  # clamped at the slide's smallest level
            ds, slevel = 2 ** lk, slide.max_level - lk
            sx = (ox[gi] + ou[gx] * down) // ds
            sy = (oy[gi] + ov[gy] * down) // ds
            lw, lh = slide.level_size(slevel)
            inside = (sx >= 0) & (sy >= 0) & (sx < lw) & (sy < lh)
            gy, gx, sx, sy = gy[inside], gx[inside], sx[inside], sy[inside]
            t = slide.tile
            cols = (lw + t - 1) // t
            key = (sy // t) * cols + sx // t
            order = np.argsort(key, kind="stable")
            key, gy, gx, sx, sy = key[order], gy[order], gx[order], sx[order], sy[order]
            starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
            ends = np.r_[starts[1:], len(key)]
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                kk = int(key[a])
                tc, tr = kk % cols, kk // cols
                arr = self.sources.tile(fp, slide, slevel, tc, tr)
                if arr is None:
                    continue
                py, px = sy[a:b] - tr * t, sx[a:b] - tc * t
                ok = (py < arr.shape[0]) & (px < arr.shape[1])
                out[gy[a:b][ok], gx[a:b][ok]] = arr[py[ok], px[ok]]
        return out

    def _few(self, out: np.ndarray, x0: int, y0: int, tw: int, th: int, d: int) -> np.ndarray:
        """A tile of a few large patches: each read from its slide's level by openslide (C, its own cache of
        decoded tiles), cheaper than decoding every source tile under them in Python."""
        import numpy as np

        lay, spec = self.layout, self.layout.spec
        P, down = spec.patch, spec.scale * d
        for r in range(max(0, (y0 * d) // P - 1), min(lay.rows, ((y0 + th) * d) // P + 1)):
            ey0, ey1 = (r * P) // d, ((r + 1) * P) // d
            cy0, cy1 = max(ey0, y0), min(ey1, y0 + th)
            if cy1 <= cy0:
                continue
            for c in range(max(0, (x0 * d) // P - 1), min(spec.per_row, ((x0 + tw) * d) // P + 1)):
                i = r * spec.per_row + c
                if i >= len(lay.patches):
                    break
                ex0, ex1 = (c * P) // d, ((c + 1) * P) // d
                cx0, cx1 = max(ex0, x0), min(ex1, x0 + tw)
                if cx1 <= cx0:
                    continue
                p = lay.patches[i]
                slide = self.sources.open_slide(p.fingerprint)
                lk = min(int(math.log2(down)), slide.max_level)
                ds = 2 ** lk
                sx, sy = (p.origin[0] + (cx0 - ex0) * down) // ds, (p.origin[1] + (cy0 - ey0) * down) // ds
                px = self.sources.region_openslide(slide, slide.max_level - lk, sx, sy, cx1 - cx0, cy1 - cy0)
                out[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] = np.asarray(px, dtype=np.uint8)
        return out

    def tile_jpeg(self, level: int, col: int, row: int) -> bytes:
        from PIL import Image

        from .tiles import _encode

        return _encode(Image.fromarray(self.tile_pixels(level, col, row)))


class MapCache:
    """Maps by id (layout + renderer), an LRU: a map is cheap to rebuild from its spec."""

    def __init__(self, size: int = 64) -> None:
        self._d: OrderedDict[str, MapRenderer] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, map_id: str) -> MapRenderer | None:
        with self._lock:
            r = self._d.get(map_id)
            if r is not None:
                self._d.move_to_end(map_id)
            return r

    def put(self, r: MapRenderer) -> MapRenderer:
        with self._lock:
            have = self._d.get(r.layout.map_id)
            if have is not None:
                return have
            self._d[r.layout.map_id] = r
            while len(self._d) > self.size:
                self._d.popitem(last=False)
            return r
