"""A local folder of immutable byte blobs (pack indexes, pack blocks), bounded in size: least recently
used goes first; a small memory tier in front. Used by the object-storage backend (``backends.s3``).

Several processes may share one folder (server processes on one ROOT): every blob is immutable and written
under a temporary name then renamed, a blob evicted by another process is a miss, and each process bounds
what it knows of (so N processes may hold up to N times the bound between restarts)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

TMP_GRACE = 600.0  # seconds: a temporary file younger than this may belong to a live writer


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except FileNotFoundError:
        return 0.0


class BlockCache:
    """Immutable byte blobs in a folder, at most ``max_bytes`` of them (LRU), with a small memory tier."""

    def __init__(self, root: Path, max_bytes: int, memory_bytes: int = 64 << 20) -> None:
        self.root = root
        self.max_bytes = max_bytes
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._files: OrderedDict[str, int] = OrderedDict()
        self.total = 0
        stale = time.time() - TMP_GRACE
        for p in sorted(root.iterdir(), key=_mtime):
            if p.name.startswith("."):
                # another process sharing the folder (several servers on one ROOT) may be writing it now
                with contextlib.suppress(OSError):
                    if p.stat().st_mtime < stale:
                        p.unlink()
                continue
            try:
                size = p.stat().st_size
            except FileNotFoundError:  # evicted by another process meanwhile
                continue
            self._files[p.name] = size
            self.total += size
        self._mem: OrderedDict[str, bytes] = OrderedDict()
        self._mem_total = 0
        self._mem_max = min(memory_bytes, max_bytes)
        self._evict()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            hit = self._mem.get(key)
            if hit is not None:
                self._mem.move_to_end(key)
                return hit
            if key not in self._files:
                return None
            self._files.move_to_end(key)
        try:
            data = (self.root / key).read_bytes()
        except FileNotFoundError:
            with self._lock:
                self.total -= self._files.pop(key, 0)
            return None
        self._remember(key, data)
        return data

    def __contains__(self, key: str) -> bool:
        return key in self._files

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        tmp = self.root / f".{key}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_bytes(data)
        os.replace(tmp, self.root / key)
        with self._lock:
            self.total += len(data) - self._files.pop(key, 0)
            self._files[key] = len(data)
        self._remember(key, data)
        self._evict()

    def _remember(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._mem:
                return
            self._mem[key] = data
            self._mem_total += len(data)
            while self._mem_total > self._mem_max and self._mem:
                self._mem_total -= len(self._mem.popitem(last=False)[1])

    def _evict(self) -> None:
        with self._lock:
            while self.total > self.max_bytes and self._files:
                key, size = self._files.popitem(last=False)
                self.total -= size
                with contextlib.suppress(FileNotFoundError):
                    (self.root / key).unlink()
