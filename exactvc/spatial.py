"""Spatial index of a tree: built once per tree id, cached on disk, kept open per process.

Files under ``.exact/cache/rtree/`` (a cache: deleting them is always safe):

* ``<tree>.dat/.idx``  libspatialindex R-tree of the annotations' bounding boxes
  (rtree id = position in the tree's key order);
* ``<tree>.recs``      the encoded leaf entries ``[key, record]`` in the same order;
* ``<tree>.offs``      N + 1 little-endian u64 offsets into ``.recs``; written
  last, so its presence marks a complete index.

A query reads the R-tree and slices the matching entries out of the mapped
``.recs`` file: no tree walk, whatever the key order of the annotations.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import msgpack

from . import geometry, tree
from .store import ObjectStore


def record_bounds(rec: dict[str, Any]) -> tuple[float, float, float, float]:
    b = rec.get("b")
    if b is not None:
        return float(b[0]), float(b[1]), float(b[2]), float(b[3])
    return geometry.bounds(rec["k"], rec["g"])


class SpatialIndex:
    def __init__(self, idx: Any, recs: bytes | mmap.mmap, offs: bytes | mmap.mmap, n: int,
                 files: list[Any] | None = None) -> None:
        self._idx = idx
        self._recs = recs
        self._offs = offs
        self._offs_np: Any = None
        self.n = n
        self._files = files or []
        self._lock = threading.Lock()

    def entries_in(self, bbox: tuple[float, float, float, float]) -> list[tuple[bytes, dict[str, Any]]]:
        """``(key, record)`` of every annotation whose bounding box meets ``bbox``, in key order."""
        import numpy as np

        with self._lock:  # libspatialindex handles are not thread-safe
            ids, _counts = self._idx.intersection_v(np.array([bbox[:2]], dtype=np.float64),
                                                    np.array([bbox[2:]], dtype=np.float64))
        if not len(ids):
            return []
        ids.sort()
        if self._offs_np is None:
            self._offs_np = np.frombuffer(self._offs, dtype="<u8", count=self.n + 1)
        starts = self._offs_np[ids].tolist()
        ends = self._offs_np[ids + 1].tolist()
        recs = self._recs
        # one msgpack array of the hits' [key, record] entries: one decoding call for them all
        n = len(starts)
        head = b"\xdd" + n.to_bytes(4, "big")
        entries: list[tuple[bytes, dict[str, Any]]] = msgpack.unpackb(
            head + b"".join([recs[a:b] for a, b in zip(starts, ends, strict=True)]), raw=False
        )
        return entries

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._idx.close()
        for f in self._files:
            with contextlib.suppress(Exception):
                f.close()


_open: OrderedDict[tuple[str, bytes], SpatialIndex] = OrderedDict()
_open_lock = threading.Lock()
MAX_OPEN = 16


def _props() -> Any:
    from rtree import index

    props = index.Property()
    props.dimension = 2
    props.leaf_capacity = 64
    props.fill_factor = 0.9
    return props


def open_or_build(store: ObjectStore, root: bytes, cache_dir: Path | None) -> SpatialIndex:
    key = (str(cache_dir), root)
    with _open_lock:
        hit = _open.get(key)
        if hit is not None:
            _open.move_to_end(key)
            return hit
    si = _load(cache_dir, root) if cache_dir is not None else None
    if si is None:
        si = _build(store, root, cache_dir)
    with _open_lock:
        _open[key] = si
        while len(_open) > MAX_OPEN:
            _open.popitem(last=False)[1].close()
    return si


def _load(cache_dir: Path, root: bytes) -> SpatialIndex | None:
    from rtree import index

    base = cache_dir / root.hex()
    offs_path = Path(str(base) + ".offs")
    if not offs_path.exists():
        return None
    files = [open(str(base) + ".recs", "rb"), open(offs_path, "rb")]  # noqa: SIM115 - closed with the index
    maps = [mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(f.fileno()).st_size else b""
            for f in files]
    n = max(0, len(maps[1]) // 8 - 1)
    return SpatialIndex(index.Index(str(base), properties=_props()), maps[0], maps[1], n, files)


def _build(store: ObjectStore, root: bytes, cache_dir: Path | None) -> SpatialIndex:
    import numpy as np
    from rtree import index

    raws: list[bytes] = []
    boxes: list[tuple[float, float, float, float]] = []
    for _oid, node in tree.iter_nodes(store, root):
        if node.level == 0:
            # the entry [key (bin 16), record] as msgpack, for entries_in to decode in one call
            raws.extend(b"\x92\xc4\x10" + k + r for k, r in zip(node.keys, node.raw, strict=True))
            boxes.extend(record_bounds(node.value(i)) for i in range(len(node.raw)))
    # iter_nodes is depth-first in key order, so raws are sorted by key
    n = len(raws)
    offsets = [0]
    total = 0
    for r in raws:
        total += len(r)
        offsets.append(total)
    recs = b"".join(raws)
    offs = struct.pack(f"<{n + 1}Q", *offsets)
    arr = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    ids = np.arange(n, dtype=np.int64)
    stream = (ids, arr[:, :2].copy(), arr[:, 2:].copy())
    if cache_dir is None:
        idx = index.Index(stream, properties=_props()) if n else index.Index(properties=_props())
        return SpatialIndex(idx, recs, offs, n)
    cache_dir.mkdir(parents=True, exist_ok=True)
    base = cache_dir / root.hex()
    tmp = cache_dir / f".{root.hex()}.{os.getpid()}.{threading.get_ident()}"
    idx = index.Index(str(tmp), stream, properties=_props()) if n else index.Index(str(tmp), properties=_props())
    idx.close()
    for ext in (".dat", ".idx"):
        os.replace(str(tmp) + ext, str(base) + ext)
    for ext, data in ((".recs", recs), (".offs", offs)):  # .offs last: it marks a complete index
        Path(str(tmp) + ext).write_bytes(data)
        os.replace(str(tmp) + ext, str(base) + ext)
    got = _load(cache_dir, root)
    assert got is not None
    return got


def intersects(b: tuple[float, float, float, float], q: tuple[float, float, float, float]) -> bool:
    return b[0] <= q[2] and b[2] >= q[0] and b[1] <= q[3] and b[3] >= q[1]
