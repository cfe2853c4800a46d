"""Annotation tiles for the web viewer: a per-(tree, label order) pyramid of binary tiles in image space.

Format: docs/viewer-tiles.md (``exactvc.annotiles/v1``). Every annotation is in exactly one geometry tile
(a loose quadtree: the deepest level whose tile side is at least the annotation's larger side, the tile
holding its bounding-box centre) and counted in exactly one density cell at every level.

A pyramid is built once from the tree's leaves, with numpy arrays rather than one Python object per
annotation, and cached under ``.exact/cache/annotiles/`` as one file of gzip-compressed tiles with an
index; serving a tile is then a dict lookup and a slice of a memory-mapped file.
"""

from __future__ import annotations

import gc
import json
import mmap
import os
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from . import geometry, tree
from .errors import InvalidInput
from .store import ObjectStore

FORMAT = "exactvc.annotiles/v1"
TILE = 2048  # image px side of the finest tiles
GRID = 128  # density cells per tile side
ELLIPSE_VERTICES = 64
KINDS = ("g", "d", "i")
KIND_CODE = {"point": 0, "multipoint": 0, "line": 1, "box": 2, "ellipse": 2, "polygon": 2, "multipolygon": 2}
_FILE_MAGIC = b"EXATL001"
_GZIP_LEVEL = 6


def _gzip(data: bytes) -> bytes:
    c = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31)  # gzip container, mtime 0: deterministic
    return c.compress(data) + c.flush()


def gunzip(data: bytes) -> bytes:
    return zlib.decompress(data, 31)


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


# --- the annotations as arrays ------------------------------------------------------------------------


@dataclass
class Flat:
    """A tree's annotations in key order, as arrays (level-0 image px)."""

    keys: Any  # (n, 16) uint8
    label: Any  # (n,) int64 label index
    kind: Any  # (n,) uint8 KIND_CODE
    ring_start: Any  # (n + 1,) int64
    ring_flag: Any  # (r,) uint8: 1 exterior / line / point, 0 hole
    vert_start: Any  # (r + 1,) int64
    xy: Any  # (v, 2) float64
    bbox: Any  # (n, 4) float64 x0, y0, x1, y1

    @property
    def n(self) -> int:
        return int(self.label.shape[0])


def _ranges(np: Any, starts: Any, ends: Any) -> Any:
    """Concatenated ``arange(s, e)`` for each (s, e)."""
    lens = ends - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    before = np.cumsum(lens) - lens
    return np.repeat(starts - before, lens) + np.arange(total, dtype=np.int64)


def _leaves(store: ObjectStore, root: bytes | None) -> Any:
    """The leaves of tree ``root`` in key order. Leaves are decoded without entering the node cache: a
    million records' keys and bytes would otherwise stay on the heap for every garbage collection."""
    if root is None:
        return
    stack: list[tuple[bytes, bool]] = [(root, False)]
    while stack:
        oid, leaf = stack.pop()
        node = tree.decode_node(store.get_typed(oid, "node"), oid) if leaf else tree.load(store, oid)
        if node.level == 0:
            yield node
        else:
            stack.extend((v[0], node.level == 1) for v in reversed(node.values))


def flatten(store: ObjectStore, root: bytes | None, label_names: Sequence[str],
            frame: int | None = None) -> tuple[Flat, list[str]]:
    """The annotations of tree ``root`` as arrays, and the label names by index (``label_names`` first, then
    labels the annotations use that are not among them, in name order). ``frame``: only the annotations
    of that z plane (a record's ``z`` = [z, t]; none: z 0), for the frames of a multi-frame image."""
    import numpy as np

    index = {name: i for i, name in enumerate(label_names)}
    extra: dict[str, int] = {}
    keys: list[bytes] = []
    labels: list[int] = []
    kinds: list[int] = []
    rings_per: list[int] = []  # rings of each annotation
    ring_flags: list[int] = []
    ring_lens: list[int] = []  # vertices of each ring
    ring_div: list[int] = []  # 10**d of each ring
    chunks: list[Any] = []  # int64 arrays of delta-coded values, leaf by leaf
    gc_on = gc.isenabled()
    gc.disable()  # a million short-lived records, no cycles: collections would only walk them
    try:
        for node in _leaves(store, root):
            if not node.raw:
                continue
            n = len(node.raw)
            recs = msgpack.unpackb(b"\xdd" + n.to_bytes(4, "big") + b"".join(node.raw), raw=False)
            vals: list[int] = []
            for key, rec in zip(node.keys, recs, strict=True):
                if frame is not None and (rec["z"][0] if "z" in rec else 0) != frame:
                    continue
                if "G" in rec:
                    rec = tree.join_record(store, rec)
                kind = rec["k"]
                d, payload = rec["g"]
                lb = rec["l"]
                li = index.get(lb)
                if li is None:
                    li = extra.setdefault(lb, -1 - len(extra))
                keys.append(key)
                labels.append(li)
                kinds.append(KIND_CODE[kind])
                div = 10**d
                if kind == "polygon":
                    rings_per.append(len(payload))
                    for j, r in enumerate(payload):
                        vals.extend(r)
                        ring_lens.append(len(r) >> 1)
                        ring_flags.append(1 if j == 0 else 0)
                        ring_div.append(div)
                elif kind == "multipolygon":
                    nr = 0
                    for p in payload:
                        for j, r in enumerate(p):
                            vals.extend(r)
                            ring_lens.append(len(r) >> 1)
                            ring_flags.append(1 if j == 0 else 0)
                            ring_div.append(div)
                            nr += 1
                    rings_per.append(nr)
                elif kind == "line":
                    rings_per.append(1)
                    vals.extend(payload)
                    ring_lens.append(len(payload) >> 1)
                    ring_flags.append(1)
                    ring_div.append(div)
                elif kind in ("point", "multipoint"):
                    npt = len(payload) >> 1
                    rings_per.append(npt)
                    vals.extend(payload)  # one-vertex rings: delta coding is the identity
                    ring_lens.extend([1] * npt)
                    ring_flags.extend([1] * npt)
                    ring_div.extend([div] * npt)
                elif kind == "box":
                    x0, y0, x1, y1 = payload
                    rings_per.append(1)
                    vals.extend((x0, y0, x1 - x0, 0, 0, y1 - y0, x0 - x1, 0))
                    ring_lens.append(4)
                    ring_flags.append(1)
                    ring_div.append(div)
                else:  # ellipse: a polygon of ELLIPSE_VERTICES, in 1/1000 px
                    s = 10**d
                    x0, y0, x1, y1 = (v / s for v in payload)
                    ring = geometry.ellipse_ring(x0, y0, x1, y1, ELLIPSE_VERTICES)[:-1]
                    qs = [(round(p[0] * 1000), round(p[1] * 1000)) for p in ring]
                    prev = (0, 0)
                    for q in qs:
                        vals.extend((q[0] - prev[0], q[1] - prev[1]))
                        prev = q
                    rings_per.append(1)
                    ring_lens.append(len(qs))
                    ring_flags.append(1)
                    ring_div.append(1000)
            chunks.append(np.array(vals, dtype=np.int64))
    finally:
        if gc_on:
            gc.enable()
    names = list(label_names) + sorted(extra)
    label = np.array(labels, dtype=np.int64)
    if extra:
        remap = {v: len(label_names) + i for i, (_name, v) in enumerate(sorted(extra.items()))}
        for old, new in remap.items():
            label[label == old] = new
    n = len(keys)
    ring_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.array(rings_per, dtype=np.int64), out=ring_start[1:])
    lens = np.array(ring_lens, dtype=np.int64)
    vert_start = np.zeros(len(ring_lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=vert_start[1:])
    allv = np.concatenate(chunks).reshape(-1, 2) if chunks else np.zeros((0, 2), dtype=np.int64)
    # segmented cumulative sum: each ring's first vertex is absolute, the rest deltas
    c = np.cumsum(allv, axis=0)
    before = np.zeros((len(ring_lens), 2), dtype=np.int64)
    if len(ring_lens):
        before[1:] = c[vert_start[1:-1] - 1]
    absq = c - np.repeat(before, lens, axis=0)
    xy = absq / np.repeat(np.array(ring_div, dtype=np.float64), lens)[:, None]
    if n:
        vs = vert_start[ring_start[:-1]]  # first vertex of each annotation
        bbox = np.stack([np.minimum.reduceat(xy[:, 0], vs), np.minimum.reduceat(xy[:, 1], vs),
                         np.maximum.reduceat(xy[:, 0], vs), np.maximum.reduceat(xy[:, 1], vs)], axis=1)
    else:
        bbox = np.zeros((0, 4))
    karr = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, 16)
    flat = Flat(karr, label, np.array(kinds, dtype=np.uint8), ring_start, np.array(ring_flags, dtype=np.uint8),
                vert_start, xy, bbox)
    return flat, names


# --- the pyramid --------------------------------------------------------------------------------------


def pyramid_shape(width: float, height: float, bbox: Any) -> tuple[int, int]:
    """(extent, levels): the power-of-two multiple of TILE covering the image and every annotation."""
    far = max(float(width), float(height), 1.0)
    if len(bbox):
        far = max(far, float(bbox[:, 2].max()), float(bbox[:, 3].max()))
    extent, levels = TILE, 1
    while extent < far:
        extent *= 2
        levels += 1
    return extent, levels


def _geometry_tile(np: Any, flat: Flat, a: Any, x0: float, y0: float, unit: float) -> bytes:
    rs0, rs1 = flat.ring_start[a], flat.ring_start[a + 1]
    r = _ranges(np, rs0, rs1)
    v = _ranges(np, flat.vert_start[r], flat.vert_start[r + 1])
    ring_start = np.zeros(len(a) + 1, dtype="<u4")
    np.cumsum(rs1 - rs0, out=ring_start[1:])
    vlen = flat.vert_start[r + 1] - flat.vert_start[r]
    vert_start = np.zeros(len(r) + 1, dtype="<u4")
    np.cumsum(vlen, out=vert_start[1:])
    q = np.rint((flat.xy[v] - (x0, y0)) / unit)
    q = np.clip(q, 0, 65535).astype(np.int64)
    # each ring's first vertex, then differences to the previous vertex, modulo 2**16 (small: gzip likes them)
    dq = q.copy()
    dq[1:] -= q[:-1]
    first = vert_start[:-1][vlen > 0].astype(np.int64)
    dq[first] = q[first]
    q = (dq % 65536).astype("<u2")
    head = b"EXG1" + struct.pack("<III3d", len(a), len(r), len(v), x0, y0, unit)
    return b"".join([head, _pad4(flat.label[a].astype("<u2").tobytes()), _pad4(flat.kind[a].tobytes()),
                     ring_start.tobytes(), _pad4(flat.ring_flag[r].tobytes()), vert_start.tobytes(), q.tobytes()])


def empty_tile(kind: str, x0: float, y0: float, unit: float) -> bytes:
    if kind == "g":
        return b"EXG1" + struct.pack("<III3d", 0, 0, 0, x0, y0, unit) + b"\0" * 4 + b"\0" * 4
    if kind == "d":
        return b"EXD1" + struct.pack("<III3d", GRID, 0, 0, x0, y0, unit)
    return b""


def _density_tile(np: Any, x0: float, y0: float, cell: float, labels: Any, cells: Any, counts: Any) -> bytes:
    present = np.unique(labels)
    planes = np.zeros((len(present), GRID * GRID), dtype="<u4")
    planes[np.searchsorted(present, labels), cells] = counts
    head = b"EXD1" + struct.pack("<III3d", GRID, len(present), int(counts.sum()), x0, y0, cell)
    return head + _pad4(present.astype("<u2").tobytes()) + planes.tobytes()


def build(flat: Flat, names: list[str], width: float, height: float) -> tuple[dict[str, Any], dict[tuple[str, int, int, int], bytes]]:
    """The manifest (without commit, tree, image) and every non-empty tile, uncompressed."""
    import numpy as np

    extent, levels = pyramid_shape(width, height, flat.bbox)
    last = levels - 1
    bb = flat.bbox
    cx = np.clip((bb[:, 0] + bb[:, 2]) / 2, 0, extent - 1e-6)
    cy = np.clip((bb[:, 1] + bb[:, 3]) / 2, 0, extent - 1e-6)
    side = np.maximum(bb[:, 2] - bb[:, 0], bb[:, 3] - bb[:, 1])
    up = np.ceil(np.log2(np.maximum(side, 1e-9) / TILE))
    z = (last - np.clip(up, 0, last)).astype(np.int64)
    size = (extent >> z).astype(np.float64)
    tx = np.floor(cx / size).astype(np.int64)
    ty = np.floor(cy / size).astype(np.int64)
    tiles: dict[tuple[str, int, int, int], bytes] = {}
    geo_levels: list[dict[str, Any]] = [{"z": k, "size": extent >> k, "tiles": []} for k in range(levels)]
    order = np.lexsort((np.arange(flat.n), tx, ty, z))
    if flat.n:
        zs, ys, xs = z[order], ty[order], tx[order]
        cut = np.flatnonzero((np.diff(zs) != 0) | (np.diff(ys) != 0) | (np.diff(xs) != 0)) + 1
        bounds = [0, *cut.tolist(), flat.n]
        for s, e in zip(bounds, bounds[1:], strict=False):
            a = order[s:e]
            k, gx, gy = int(zs[s]), int(xs[s]), int(ys[s])
            sz = extent >> k
            tiles[("g", k, gx, gy)] = _geometry_tile(np, flat, a, gx * sz - sz / 2, gy * sz - sz / 2, 2 * sz / 65536)
            tiles[("i", k, gx, gy)] = flat.keys[a].tobytes()
            geo_levels[k]["tiles"].append([gx, gy, e - s])
    den_levels: list[dict[str, Any]] = []
    nlab = max(len(names), 1)
    for k in range(levels):
        sz = extent >> k
        cell = sz / GRID
        side_cells = GRID << k
        gx = np.minimum(np.floor(cx / cell).astype(np.int64), side_cells - 1)
        gy = np.minimum(np.floor(cy / cell).astype(np.int64), side_cells - 1)
        tile_id = (gy // GRID) * (1 << k) + gx // GRID
        local = (gy % GRID) * GRID + gx % GRID
        key = (tile_id * nlab + flat.label) * (GRID * GRID) + local
        uk, counts = np.unique(key, return_counts=True)
        ut = uk // (nlab * GRID * GRID)
        ul = (uk // (GRID * GRID)) % nlab
        uc = uk % (GRID * GRID)
        lv: dict[str, Any] = {"z": k, "size": sz, "tiles": []}
        if len(uk):
            cut = np.flatnonzero(np.diff(ut) != 0) + 1
            bounds = [0, *cut.tolist(), len(uk)]
            for s, e in zip(bounds, bounds[1:], strict=False):
                t = int(ut[s])
                x, y = t % (1 << k), t // (1 << k)
                tiles[("d", k, x, y)] = _density_tile(np, x * sz, y * sz, cell, ul[s:e], uc[s:e], counts[s:e])
                lv["tiles"].append([x, y, int(counts[s:e].sum())])
        den_levels.append(lv)
    for lv in geo_levels:
        lv["tiles"].sort(key=lambda t: (t[1], t[0]))
    manifest = {"format": FORMAT, "width": int(width), "height": int(height), "count": flat.n, "tile": TILE,
                "grid": GRID, "extent": extent, "levels": levels, "labels": names,
                "geometry": geo_levels, "density": den_levels}
    return manifest, tiles


# --- decoding (tests, benchmarks, and the format's reference) ---------------------------------------


def decode_geometry(data: bytes) -> dict[str, Any]:
    import numpy as np

    if data[:4] != b"EXG1":
        raise InvalidInput("not a geometry tile")
    n, r, v, x0, y0, unit = struct.unpack_from("<III3d", data, 4)
    off = 40

    def take(dtype: str, count: int) -> Any:
        nonlocal off
        a = np.frombuffer(data, dtype=dtype, count=count, offset=off)
        off += a.nbytes + (-a.nbytes % 4)
        return a

    label, kind = take("<u2", n), take("u1", n)
    ring_start, ring_flag, vert_start = take("<u4", n + 1), take("u1", r), take("<u4", r + 1)
    dq = take("<u2", 2 * v).reshape(-1, 2).astype(np.int64)
    c = np.cumsum(dq, axis=0)
    lens = np.diff(vert_start.astype(np.int64))
    before = np.zeros((r, 2), dtype=np.int64)
    if r > 1:
        before[1:] = c[vert_start[1:-1].astype(np.int64) - 1]
    q = (c - np.repeat(before, lens, axis=0)) % 65536
    xy = q * unit + (x0, y0)
    return {"n": n, "label": label, "kind": kind, "ring_start": ring_start, "ring_flag": ring_flag,
            "vert_start": vert_start, "xy": xy, "unit": unit, "x0": x0, "y0": y0}


def decode_density(data: bytes) -> dict[str, Any]:
    import numpy as np

    if data[:4] != b"EXD1":
        raise InvalidInput("not a density tile")
    grid, m, total, x0, y0, cell = struct.unpack_from("<III3d", data, 4)
    off = 40
    labels = np.frombuffer(data, dtype="<u2", count=m, offset=off)
    off += 2 * m + (-2 * m % 4)
    counts = np.frombuffer(data, dtype="<u4", count=m * grid * grid, offset=off).reshape(m, grid, grid)
    return {"grid": grid, "labels": labels, "counts": counts, "total": total, "x0": x0, "y0": y0, "cell": cell}


# --- the cache file and open pyramids -----------------------------------------------------------------


def label_digest(names: Sequence[str], width: int, height: int, frame: int | None = None) -> str:
    import blake3

    # the cache file's own version too: a changed encoder never serves an old file
    key: list[Any] = [FORMAT, _FILE_MAGIC.decode(), TILE, GRID, list(names), width, height]
    if frame is not None:
        key.append(["frame", frame])
    return blake3.blake3(json.dumps(key).encode()).hexdigest()[:16]


class Pyramid:
    """A built pyramid: the manifest and the gzip-compressed tiles, from a mapped cache file or memory."""

    def __init__(self, manifest: dict[str, Any], index: dict[tuple[str, int, int, int], tuple[int, int]],
                 data: bytes | mmap.mmap, tag: str, file: Any = None) -> None:
        self.manifest = manifest
        self.manifest_bytes = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
        self._index = index
        self._data = data
        self._file = file
        self.tag = tag  # tree id (16 hex) + label digest: the ETag stem
        self._label_counts: dict[str, int] | None = None

    def check(self, kind: str, z: int, x: int, y: int) -> None:
        if kind not in KINDS:
            raise InvalidInput(f"unknown tile kind {kind!r} (g, d or i)")
        levels = self.manifest["levels"]
        if not 0 <= z < levels:
            raise InvalidInput(f"tile level {z} out of range (0..{levels - 1})")
        if not (0 <= x < (1 << z) and 0 <= y < (1 << z)):
            raise InvalidInput(f"tile {x},{y} out of range at level {z} (0..{(1 << z) - 1})")

    def tile_gz(self, kind: str, z: int, x: int, y: int) -> bytes:
        """The gzip-compressed tile (an empty tile for an empty address)."""
        self.check(kind, z, x, y)
        hit = self._index.get((kind, z, x, y))
        if hit is not None:
            return bytes(self._data[hit[0]:hit[0] + hit[1]])
        sz = self.manifest["extent"] >> z
        if kind == "g":
            return _gzip(empty_tile("g", x * sz - sz / 2, y * sz - sz / 2, 2 * sz / 65536))
        return _gzip(empty_tile(kind, x * sz, y * sz, sz / GRID))

    def tile(self, kind: str, z: int, x: int, y: int) -> bytes:
        return gunzip(self.tile_gz(kind, z, x, y))

    def label_counts(self) -> dict[str, int]:
        """Annotations per label name (labels with none left out), summed from the one level-0 density
        tile (it counts every annotation once): no pass over the annotations."""
        if self._label_counts is None:
            d = decode_density(self.tile("d", 0, 0, 0))
            sums = d["counts"].reshape(len(d["labels"]), -1).sum(axis=1)
            names = self.manifest["labels"]
            self._label_counts = {names[int(i)]: int(c) for i, c in zip(d["labels"], sums, strict=True) if c}
        return dict(self._label_counts)

    def close(self) -> None:
        if isinstance(self._data, mmap.mmap):
            self._data.close()
        if self._file is not None:
            self._file.close()


def _write(path: Path, manifest: dict[str, Any], tiles: dict[tuple[str, int, int, int], bytes]) -> None:
    parts = [_FILE_MAGIC]
    pos = len(_FILE_MAGIC)
    index: list[list[Any]] = []
    for key in sorted(tiles):
        gz = _gzip(tiles[key])
        index.append([key[0], key[1], key[2], key[3], pos, len(gz)])
        parts.append(gz)
        pos += len(gz)
    trailer = msgpack.packb([manifest, index])
    parts += [trailer, struct.pack("<Q", pos), _FILE_MAGIC]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(b"".join(parts))
    os.replace(tmp, path)


def _load(path: Path, tag: str) -> Pyramid | None:
    if not path.exists():
        return None
    f = open(path, "rb")  # noqa: SIM115 - closed with the pyramid
    data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if len(data) < 24 or data[-8:] != _FILE_MAGIC or data[:8] != _FILE_MAGIC:
        data.close()
        f.close()
        return None
    (pos,) = struct.unpack("<Q", data[-16:-8])
    manifest, entries = msgpack.unpackb(data[pos:-16], raw=False, strict_map_key=False)
    index = {(e[0], e[1], e[2], e[3]): (e[4], e[5]) for e in entries}
    return Pyramid(manifest, index, data, tag, f)


_open: OrderedDict[tuple[str, str], Pyramid] = OrderedDict()
_open_lock = threading.Lock()
_build_locks: dict[tuple[str, str], threading.Lock] = {}
MAX_OPEN = 8


def pyramid(store: ObjectStore, root: bytes | None, label_names: Sequence[str], width: int, height: int,
            cache_dir: Path | None, frame: int | None = None) -> Pyramid:
    """The pyramid of tree ``root`` with the labels in this order (``frame``: of that z plane only): open,
    loaded from the cache, or built (once per process however many threads ask at the same time)."""
    tag = f"{(root or b'').hex()[:16] or 'empty'}-{label_digest(label_names, width, height, frame)}"
    key = (str(cache_dir), tag)
    with _open_lock:
        hit = _open.get(key)
        if hit is not None:
            _open.move_to_end(key)
            return hit
        lock = _build_locks.setdefault(key, threading.Lock())
    with lock:
        with _open_lock:
            hit = _open.get(key)
        if hit is not None:
            return hit
        path = cache_dir / f"{(root or b'').hex() or 'empty'}-{tag.split('-')[1]}.atl" if cache_dir else None
        p = _load(path, tag) if path is not None else None
        if p is None:
            flat, names = flatten(store, root, label_names, frame)
            manifest, tiles = build(flat, names, width, height)
            if frame is not None:
                manifest["frame"] = frame
            del flat
            if path is not None:
                _write(path, manifest, tiles)
                p = _load(path, tag)
            if p is None:
                index: dict[tuple[str, int, int, int], tuple[int, int]] = {}
                parts, pos = [], 0
                for k in sorted(tiles):
                    gz = _gzip(tiles[k])
                    index[k] = (pos, len(gz))
                    parts.append(gz)
                    pos += len(gz)
                p = Pyramid(manifest, index, b"".join(parts), tag)
        with _open_lock:
            _open[key] = p
            while len(_open) > MAX_OPEN:
                _open.popitem(last=False)  # not closed: a request may still be reading it (freed with it)
            _build_locks.pop(key, None)
        return p


_by_commit: OrderedDict[tuple[str, bytes, str, int | None], tuple[Pyramid, str, bytes | None]] = OrderedDict()
MAX_COMMITS = 256


def for_commit(repo: Any, image: str, commit: bytes, frame: int | None = 0) -> tuple[Pyramid, str, bytes | None]:
    """The pyramid of ``image`` at commit ``commit`` of ``repo`` (an ``exactvc.repo.Repository``), the
    image's name and its tree id. On a multi-frame image, the annotations of frame (z plane) ``frame``
    only (None: of every frame). A commit never changes, so the answer is remembered per commit: a tile
    request for a known commit reads no object."""
    from .errors import NotFound

    key = (str(repo.exact_dir), commit, image, frame)
    with _open_lock:
        hit = _by_commit.get(key)
        if hit is not None:
            _by_commit.move_to_end(key)
            return hit
    if not repo.store.has_now(commit) or repo.store.get(commit)[0] != "commit":
        raise NotFound(f"no commit {commit.hex()}")
    rev = commit.hex()
    entry, root = repo.tree_of(image, rev)
    rec = repo.image_record(entry)
    frames = max(1, int(rec.frames or 1))
    if frame is not None and not 0 <= frame < frames:
        raise NotFound(f"image {rec.name!r} has {frames} frame{'s' if frames != 1 else ''} (0..{frames - 1}): "
                       f"no frame {frame}")
    names = [lb.name for lb in repo.labels(rev).ordered()]
    cache = repo.exact_dir / "cache" / "annotiles" if repo.exact_dir else None
    p = pyramid(repo.store, root, names, rec.width, rec.height, cache, frame if frames > 1 else None)
    out = p, rec.name, root
    if repo.exact_dir is not None:
        with _open_lock:
            _by_commit[key] = out
            while len(_by_commit) > MAX_COMMITS:
                _by_commit.popitem(last=False)
    return out
