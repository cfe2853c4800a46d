"""Spatial index of a tree: an rtree built once per tree id and cached on disk.

Files under ``.exact/cache/rtree/``: ``<tree id>.dat/.idx`` (libspatialindex)
and ``<tree id>.keys`` (16-byte annotation keys, in rtree id order). They are
a cache: deleting them is always safe.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import geometry, tree
from .store import ObjectStore


def record_bounds(rec: dict[str, Any]) -> tuple[float, float, float, float]:
    b = rec.get("b")
    if b is not None:
        return float(b[0]), float(b[1]), float(b[2]), float(b[3])
    return geometry.bounds(rec["k"], rec["g"])


class SpatialIndex:
    def __init__(self, idx: Any, keys: bytes) -> None:
        self._idx = idx
        self._keys = keys

    def keys_in(self, bbox: tuple[float, float, float, float]) -> list[bytes]:
        k = self._keys
        return [k[i * 16 : i * 16 + 16] for i in self._idx.intersection(bbox)]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._idx.close()


def open_or_build(store: ObjectStore, root: bytes, cache_dir: Path | None) -> SpatialIndex:
    from rtree import index

    props = index.Property()
    props.dimension = 2
    props.leaf_capacity = 64
    props.fill_factor = 0.9
    if cache_dir is None:
        keys = bytearray()
        entries = _stream(store, root, keys)
        return SpatialIndex(index.Index(entries, properties=props) if root else index.Index(properties=props),
                            bytes(keys))
    cache_dir.mkdir(parents=True, exist_ok=True)
    base = cache_dir / root.hex()
    keys_path = base.with_suffix(".keys")
    if keys_path.exists() and base.with_suffix(".dat").exists():
        return SpatialIndex(index.Index(str(base), properties=props), keys_path.read_bytes())
    tmp = cache_dir / f".{root.hex()}.{os.getpid()}"
    keys = bytearray()
    idx = index.Index(str(tmp), _stream(store, root, keys), properties=props)
    idx.close()
    for ext in (".dat", ".idx"):
        os.replace(str(tmp) + ext, str(base) + ext)
    tmp_keys = Path(str(tmp) + ".keys")
    tmp_keys.write_bytes(bytes(keys))
    os.replace(tmp_keys, keys_path)  # written last: its presence marks a complete index
    return SpatialIndex(index.Index(str(base), properties=props), bytes(keys))


def _stream(store: ObjectStore, root: bytes, keys: bytearray) -> Iterable[tuple[int, tuple[float, ...], None]]:
    for i, (k, rec) in enumerate(tree.items(store, root)):
        keys += k
        yield i, record_bounds(rec), None


def intersects(b: tuple[float, float, float, float], q: tuple[float, float, float, float]) -> bool:
    return b[0] <= q[2] and b[2] >= q[0] and b[1] <= q[3] and b[3] >= q[1]
