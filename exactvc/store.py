"""Object storage: one interface, an in-memory and an on-disk backend.

On disk (``.exact/objects``):

* loose objects: ``objects/ab/cdef...`` holding ``zlib(type_tag + b"\\0" + data)``;
* packs: ``objects/pack/pack-<name>.pack`` with a sorted index ``.idx``.
  A pack is visible only once its index exists; both are written to temporary
  names, fsynced and renamed, so a crash leaves either a whole pack or none.

Pack entries may be deltas against an object stored elsewhere (see ``delta``);
chains are kept short (``MAX_DEPTH``). Format details: docs/format.md.
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import os
import struct
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from . import codec
from .delta import apply_delta, delta_size, make_delta
from .errors import CorruptObject, MissingObject
from .fsutil import atomic_write, fsync_dir
from .objects import TYPES

TYPE_CODES = {t: i + 1 for i, t in enumerate(TYPES)}
CODE_TYPES = {v: k for k, v in TYPE_CODES.items()}
MAX_DEPTH = 8
PACK_MAGIC = b"EXPACK1\n"
IDX_MAGIC = b"EXIDX01\n"
LOOSE_LIMIT = 16  # batches larger than this go to a pack
ZLEVEL = 6  # zlib level for loose objects (few, small)
ZSTD_LEVEL = 3  # pack entries: zstd, as small as zlib -6 and two to three times faster both ways
ZSTD = 0x80  # set in a pack entry's type code: its payload is zstd-compressed (else zlib)
_zstd = threading.local()


def _zc() -> Any:
    c = getattr(_zstd, "c", None)
    if c is None:  # zstandard's (de)compressors are not thread-safe: one of each a thread
        import zstandard

        c = _zstd.c = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        _zstd.d = zstandard.ZstdDecompressor()
    return c


def compress(data: bytes) -> bytes:
    return bytes(_zc().compress(data))


def decompress(code: int, payload: bytes | memoryview) -> bytes:
    """A pack entry's payload, uncompressed (``code``: the entry's type code byte)."""
    if code & ZSTD:
        _zc()
        try:
            return bytes(_zstd.d.decompress(payload))
        except Exception:  # zstandard.ZstdError and kin
            raise zlib.error("zstd payload does not decompress") from None
    return zlib.decompress(payload)


LARGE_ENTRY = 256 * 1024  # pack entries this large are read with pread rather than through the mapping
DICT_INDEX_MAX = 4096  # packs up to this many objects are looked up through a dict


@dataclass
class Pending:
    oid: bytes
    type: str
    data: bytes
    base: bytes | None = None  # id of an object this one may be stored as a delta against
    base_data: bytes | None = None


class ObjectStore(ABC):
    """What every backend provides. Objects are immutable; writing one twice is harmless."""

    def __init__(self) -> None:
        self._cache: OrderedDict[bytes, tuple[str, bytes]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.cache_size = 2048

    @abstractmethod
    def _read(self, oid: bytes) -> tuple[str, bytes] | None: ...

    @abstractmethod
    def has(self, oid: bytes) -> bool: ...

    def has_now(self, oid: bytes) -> bool:
        """``has`` that never answers a stale no: for ids a request names or a shared ref store holds (another
        server process may have stored the object a moment ago). ``has`` may, where a listing is cached,
        answer no for such an object for a short while (harmless where it only means storing a duplicate)."""
        return self.has(oid)

    @abstractmethod
    def _write(self, items: list[Pending]) -> None: ...

    @abstractmethod
    def iter_ids(self) -> Iterator[bytes]: ...

    def depth(self, oid: bytes) -> int:
        """Length of the delta chain behind ``oid`` (0: stored whole)."""
        return 0

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()
        nc = getattr(self, "_node_cache", None)
        if nc is not None:
            nc.clear()

    def get(self, oid: bytes) -> tuple[str, bytes]:
        with self._cache_lock:
            hit = self._cache.get(oid)
            if hit is not None:
                self._cache.move_to_end(oid)
                return hit
        got = self._read(oid)
        if got is None:
            raise MissingObject(f"object {oid.hex()} is missing")
        self.remember(oid, *got)
        return got

    def get_uncached(self, oid: bytes) -> tuple[str, bytes]:
        """Like :meth:`get`, without keeping the object in the read cache (large artefact chunks)."""
        with self._cache_lock:
            hit = self._cache.get(oid)
        if hit is not None:
            return hit
        got = self._read(oid)
        if got is None:
            raise MissingObject(f"object {oid.hex()} is missing")
        return got

    def remember(self, oid: bytes, type_tag: str, data: bytes) -> None:
        """Put an object (just read, or just stored) into the read cache."""
        with self._cache_lock:
            self._cache[oid] = (type_tag, data)
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def get_typed(self, oid: bytes, type_tag: str) -> bytes:
        t, data = self.get(oid)
        if t != type_tag:
            raise CorruptObject(f"object {oid.hex()} is a {t}, expected a {type_tag}")
        return data

    def write(self, items: Iterable[Pending]) -> int:
        """Store the objects not already present; returns how many were new."""
        batch = list(items)
        stored = self._stored_test(len(batch))
        seen: set[bytes] = set()
        todo = []
        for it in batch:
            if it.oid in seen or stored(it.oid):
                continue
            seen.add(it.oid)
            todo.append(it)
        if todo:
            self._write(todo)
        return len(todo)

    def _stored_test(self, n: int) -> Callable[[bytes], bool]:
        """How ``write`` tells, for a batch of ``n`` objects, that one is already stored."""
        return self.has

    def verify(self, oid: bytes) -> tuple[str, bytes]:
        """Read an object and check that its bytes hash to its id and decode."""
        t, data = self._read(oid) or (None, None)
        if t is None or data is None:
            raise MissingObject(f"object {oid.hex()} is missing")
        if codec.object_id(t, data) != oid:
            raise CorruptObject(f"object {oid.hex()} ({t}): bytes do not match its id")
        codec.unpack(data)
        return t, data


class MemoryStore(ObjectStore):
    """Objects in a dict: for unit tests and scratch work."""

    def __init__(self) -> None:
        super().__init__()
        self._objs: dict[bytes, tuple[str, bytes]] = {}

    def _read(self, oid: bytes) -> tuple[str, bytes] | None:
        return self._objs.get(oid)

    def has(self, oid: bytes) -> bool:
        return oid in self._objs

    def _write(self, items: list[Pending]) -> None:
        for it in items:
            self._objs[it.oid] = (it.type, it.data)

    def iter_ids(self) -> Iterator[bytes]:
        return iter(list(self._objs))

    def delete(self, oids: Iterable[bytes]) -> None:
        for o in oids:
            self._objs.pop(o, None)


class _IdView:
    """The sorted ids of a pack index as a sequence, for bisect (no copy, no numpy)."""

    __slots__ = ("_buf", "_n")

    def __init__(self, buf: memoryview, n: int) -> None:
        self._buf = buf
        self._n = n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> bytes:
        return bytes(self._buf[16 + 32 * i : 48 + 32 * i])


class Pack:
    """A read-only pack file and its index, memory-mapped."""

    def __init__(self, pack_path: Path, idx_path: Path) -> None:
        self.path = pack_path
        self.idx_path = idx_path
        with open(idx_path, "rb") as f:
            idx = f.read()
        if idx[:8] != IDX_MAGIC:
            raise CorruptObject(f"pack index {idx_path.name} has a bad header")
        (n,) = struct.unpack_from("<Q", idx, 8)
        ids_end = 16 + 32 * n
        if len(idx) != ids_end + 8 * n + 32:
            raise CorruptObject(f"pack index {idx_path.name} is truncated")
        self.count = n
        self._idx = idx
        self._ids = _IdView(memoryview(idx), n)
        self._where: dict[bytes, int] | None = None  # small packs: id -> entry, built on the first lookup
        self._firsts: bytes | None = None  # larger packs: the first byte of each id
        self._seconds = b""  # and the second
        self._offs_at = ids_end
        self._f = open(pack_path, "rb")
        self.size = os.fstat(self._f.fileno()).st_size
        self._mm = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ) if self.size else None

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
        self._f.close()

    def find(self, oid: bytes) -> int | None:
        where = self._where
        if where is not None:
            return where.get(oid)
        firsts = self._firsts
        if firsts is None:
            idx = self._idx
            if self.count <= DICT_INDEX_MAX:
                # small (per-commit) packs: a dict, one hash probe a lookup (most lookups miss most packs)
                self._where = {idx[16 + 32 * i : 48 + 32 * i]: i for i in range(self.count)}
                return self._where.get(oid)
            # the first and the second byte of every id, in order: within the run of ids that share a first
            # byte, second bytes are sorted too, so two binary searches over plain bytes (in C) narrow a lookup
            # to the few ids sharing two bytes with it (none, for most misses)
            self._seconds = idx[17 : 17 + 32 * self.count : 32]
            firsts = self._firsts = idx[16 : 16 + 32 * self.count : 32]
        b = oid[0]
        lo = bisect.bisect_left(firsts, b)
        hi = bisect.bisect_right(firsts, b, lo)
        b = oid[1]
        seconds = self._seconds
        lo = bisect.bisect_left(seconds, b, lo, hi)
        hi = bisect.bisect_right(seconds, b, lo, hi)
        if hi - lo == 1:
            return lo if self._idx[16 + 32 * lo : 48 + 32 * lo] == oid else None
        i = bisect.bisect_left(self._ids, oid, lo, hi)
        if i < hi and self._idx[16 + 32 * i : 48 + 32 * i] == oid:
            return i
        return None

    def offset(self, i: int) -> int:
        (off,) = struct.unpack_from("<Q", self._idx, self._offs_at + 8 * i)
        return int(off)

    def entry(self, i: int) -> tuple[int, int, bytes]:
        """(type code, depth, payload) of entry ``i``."""
        assert self._mm is not None
        off = self.offset(i)
        if off + 6 > self.size:
            raise CorruptObject(f"pack {self.path.name}: index points past the end (offset {off})")
        code, depth, length = struct.unpack_from("<BBI", self._mm, off)
        if length >= LARGE_ENTRY:  # an artefact chunk: read, so its pages do not stay mapped in (RSS)
            payload = os.pread(self._f.fileno(), length, off + 6)
        else:
            payload = self._mm[off + 6 : off + 6 + length]
        if len(payload) != length:
            raise CorruptObject(f"pack {self.path.name} is truncated at offset {off}")
        return code, depth, payload

    def iter_ids(self) -> Iterator[bytes]:
        for i in range(self.count):
            yield self._idx[16 + 32 * i : 48 + 32 * i]


def packs_to_merge(packs: Iterable[Pack], max_packs: int) -> list[Pack]:
    """Which packs a consolidation merges (none while there are at most ``max_packs``): the smallest
    two, then on while the next is at most twice what is taken so far, so that sizes grow
    geometrically (an LSM tree) and what gets rewritten stays small. Shared by every pack store."""
    by_size = sorted(packs, key=lambda p: p.size)
    if len(by_size) <= max_packs:
        return []
    small = by_size[:2]
    total = small[0].size + small[1].size
    for p in by_size[2:]:
        if p.size > 2 * total:
            break
        small.append(p)
        total += p.size
    return small


class DiskStore(ObjectStore):
    """Loose objects and packs under ``root`` (``.exact/objects``)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self._root_s = str(root)
        self.pack_dir = root / "pack"
        self.pack_dir.mkdir(parents=True, exist_ok=True)
        self._packs: dict[str, Pack] = {}
        self.bad_packs: dict[str, str] = {}
        self._order: list[Pack] | None = None
        self._lock = threading.RLock()
        self.refresh()

    # --- packs ---------------------------------------------------------------
    def refresh(self) -> None:
        with self._lock:
            names = {p.stem for p in self.pack_dir.glob("pack-*.idx")}
            packs = {k: v for k, v in self._packs.items() if k in names}
            # packs that went away are not closed here: a reader in another thread may still be in one;
            # their maps close when the last reference goes
            for name in sorted(names - set(packs)):
                pack = self.pack_dir / f"{name}.pack"
                if pack.exists():
                    try:
                        packs[name] = Pack(pack, self.pack_dir / f"{name}.idx")
                    except (CorruptObject, OSError, ValueError) as exc:
                        # a damaged index must not lock everyone out: fsck reports it
                        self.bad_packs[name] = str(exc)
            self._packs = packs
            self._order = sorted(packs.values(), key=lambda p: p.count)

    def packs(self) -> list[Pack]:
        order = self._order
        if order is None:
            with self._lock:
                # small (recent, per-commit) packs first: they hold what is looked up most
                order = self._order = sorted(self._packs.values(), key=lambda p: p.count)
        return order

    def _find(self, oid: bytes) -> tuple[Pack, int] | None:
        order = self.packs()
        for j, pack in enumerate(order):
            i = pack.find(oid)
            if i is not None:
                if j and self._order is order:  # the pack that answered goes first: reads come in runs
                    self._order = [pack, *order[:j], *order[j + 1 :]]
                return pack, i
        return None

    def _loose_path(self, oid: bytes) -> Path:
        return Path(self._loose_name(oid))

    def _loose_name(self, oid: bytes) -> str:
        h = oid.hex()
        return f"{self._root_s}/{h[:2]}/{h[2:]}"  # a plain string: no pathlib work on hot paths

    def has(self, oid: bytes) -> bool:
        # no refresh here: packs written by other processes are picked up by refresh() (each server
        # request, each open) and by a read that misses; a stale "no" only means a harmless duplicate
        return self._find(oid) is not None or os.path.exists(self._loose_name(oid))

    def _stored_test(self, n: int) -> Callable[[bytes], bool]:
        if n <= LOOSE_LIMIT:
            return self.has
        # a batch for a pack: what the packs hold, without a file-system call an object (a loose copy
        # stored again in the pack is harmless, gc drops it)
        return lambda oid: self._find(oid) is not None

    def depth(self, oid: bytes) -> int:
        found = self._find(oid)
        if found is None:
            return 0
        pack, i = found
        return pack.entry(i)[1]

    def _read(self, oid: bytes) -> tuple[str, bytes] | None:
        found = self._find(oid)
        if found is None:
            try:
                raw = zlib.decompress(_read_file(self._loose_name(oid)))
            except FileNotFoundError:
                self.refresh()
                found = self._find(oid)
                if found is None:
                    return None
            except zlib.error:
                raise CorruptObject(f"loose object {oid.hex()} does not decompress") from None
            else:
                tb, sep, data = raw.partition(b"\0")
                if not sep or tb.decode("ascii", "replace") not in TYPE_CODES:
                    raise CorruptObject(f"loose object {oid.hex()} has no valid type header")
                return tb.decode("ascii"), data
        pack, i = found
        try:
            return self._read_entry(oid, pack, i)
        except CorruptObject as first_error:
            # another pack may hold the same object whole (a gc or merge killed half-way can leave a
            # delta copy whose base is gone next to a complete copy): use any copy that reads
            for other in self.packs():
                j = other.find(oid) if other is not pack else None
                if j is not None:
                    with contextlib.suppress(CorruptObject):
                        return self._read_entry(oid, other, j)
            raise first_error

    def _read_entry(self, oid: bytes, pack: Pack, i: int) -> tuple[str, bytes]:
        code, depth, payload = pack.entry(i)
        t = CODE_TYPES.get(code & ~ZSTD)
        if t is None:
            raise CorruptObject(f"object {oid.hex()} in {pack.path.name} has unknown type code {code}")
        try:
            if depth == 0:
                return t, decompress(code, payload)
            base_id = bytes(payload[:32])
            ops = codec.unpack(decompress(code, payload[32:]))
        except zlib.error:
            raise CorruptObject(f"object {oid.hex()} in {pack.path.name} does not decompress") from None
        _bt, base = self.get(base_id)
        try:
            return t, apply_delta(base, ops)
        except (ValueError, TypeError):
            raise CorruptObject(f"object {oid.hex()}: delta does not apply to its base") from None

    def iter_ids(self) -> Iterator[bytes]:
        seen: set[bytes] = set()
        for pack in self.packs():
            for oid in pack.iter_ids():
                if oid not in seen:
                    seen.add(oid)
                    yield oid
        for d in sorted(self.root.glob("[0-9a-f][0-9a-f]")):
            for f in sorted(d.iterdir()):
                if len(f.name) == 62 and not f.name.startswith("."):
                    oid = bytes.fromhex(d.name + f.name)
                    if oid not in seen:
                        yield oid

    # --- writing -------------------------------------------------------------
    def _write(self, items: list[Pending]) -> None:
        if len(items) <= LOOSE_LIMIT:
            for it in items:
                path = self._loose_path(it.oid)
                if not path.exists():
                    atomic_write(path, zlib.compress(it.type.encode("ascii") + b"\0" + it.data, ZLEVEL), 0o444)
            return
        self.write_pack(items)

    def write_pack(self, items: Iterable[Pending], deltas: bool = True) -> Path:
        """Write one pack holding ``items`` (fsynced, then made visible by its index)."""
        name = f"pack-{time.time_ns():x}-{os.getpid():x}"
        tmp_pack = self.pack_dir / f".{name}.pack.tmp"
        hasher = blake3.blake3()
        depths: dict[bytes, int] = {}
        try:
            trailer, entries = self._write_entries(tmp_pack, items, deltas, hasher, depths)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp_pack.unlink()
            raise
        return self._publish(name, tmp_pack, trailer, entries)

    def _write_entries(
        self, tmp_pack: Path, items: Iterable[Pending], deltas: bool, hasher: Any, depths: dict[bytes, int]
    ) -> tuple[bytes, list[tuple[bytes, int]]]:
        entries: list[tuple[bytes, int]] = []
        with open(tmp_pack, "wb") as f:
            f.write(PACK_MAGIC)
            hasher.update(PACK_MAGIC)
            pos = len(PACK_MAGIC)
            for it in items:
                code = TYPE_CODES[it.type] | ZSTD
                depth = 0
                payload = b""
                if deltas and it.base is not None and it.base_data is not None:
                    bdepth = depths.get(it.base)
                    if bdepth is None:
                        bdepth = self.depth(it.base) if self.has(it.base) else MAX_DEPTH
                    if bdepth < MAX_DEPTH:
                        ops = make_delta(it.base_data, it.data)
                        if delta_size(ops) < len(it.data) // 2:
                            depth = bdepth + 1
                            payload = it.base + compress(codec.pack(ops))
                if depth == 0:
                    payload = compress(it.data)
                depths[it.oid] = depth
                head = struct.pack("<BBI", code, depth, len(payload))
                f.write(head)
                f.write(payload)
                hasher.update(head)
                hasher.update(payload)
                entries.append((it.oid, pos))
                pos += len(head) + len(payload)
            trailer = hasher.digest()
            f.write(trailer)
            f.flush()
            os.fsync(f.fileno())
        return trailer, entries

    def _publish(self, name: str, tmp_pack: Path, trailer: bytes, entries: list[tuple[bytes, int]]) -> Path:
        entries.sort()
        n = len(entries)
        idx = bytearray(IDX_MAGIC)
        idx += struct.pack("<Q", n)
        idx += b"".join(e[0] for e in entries)
        idx += struct.pack(f"<{n}Q", *(e[1] for e in entries))
        idx += trailer
        pack_path = self.pack_dir / f"{name}.pack"
        # the pack (complete and fsynced) gets its name, then its index (a pack is visible once its index
        # exists); the index's directory fsync makes both names durable
        os.replace(tmp_pack, pack_path)
        atomic_write(self.pack_dir / f"{name}.idx", bytes(idx), 0o444)
        self.refresh()
        return pack_path

    def consolidate(self, max_packs: int = 8) -> int:
        """Once there are more than ``max_packs`` packs, merge the smallest into one (entries copied as
        they are, deltas included): smallest first, and on while the next is at most twice what is
        taken so far. A pack much larger than everything below it is left alone, so what gets
        rewritten stays small: sizes grow geometrically, as in an LSM tree. Returns how many packs
        were merged.

        Crash-safe like every pack write: the merged pack is visible before the old ones go.
        Call with the repository lock held.
        """
        self.refresh()
        small = packs_to_merge(self.packs(), max_packs)
        if not small:
            return 0
        name = f"pack-{time.time_ns():x}-{os.getpid():x}"
        tmp_pack = self.pack_dir / f".{name}.pack.tmp"
        hasher = blake3.blake3()
        entries: list[tuple[bytes, int]] = []
        seen: set[bytes] = set()
        try:
            with open(tmp_pack, "wb") as f:
                f.write(PACK_MAGIC)
                hasher.update(PACK_MAGIC)
                pos = len(PACK_MAGIC)
                for pack in small:
                    for i, oid in enumerate(pack.iter_ids()):
                        if oid in seen:
                            continue
                        seen.add(oid)
                        code, depth, payload = pack.entry(i)
                        head = struct.pack("<BBI", code, depth, len(payload))
                        f.write(head)
                        f.write(payload)
                        hasher.update(head)
                        hasher.update(payload)
                        entries.append((oid, pos))
                        pos += len(head) + len(payload)
                trailer = hasher.digest()
                f.write(trailer)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp_pack.unlink()
            raise
        self._publish(name, tmp_pack, trailer, entries)
        self.remove_packs(small)
        return len(small)

    def loose_ids(self) -> list[bytes]:
        out = []
        for d in self.root.glob("[0-9a-f][0-9a-f]"):
            for f in d.iterdir():
                if len(f.name) == 62 and not f.name.startswith("."):
                    out.append(bytes.fromhex(d.name + f.name))
        return out

    def remove_loose(self, oids: Iterable[bytes], older_than: float) -> int:
        n = 0
        for oid in oids:
            p = self._loose_path(oid)
            with contextlib.suppress(FileNotFoundError):
                if p.stat().st_mtime < older_than:
                    p.unlink()
                    n += 1
        return n

    def remove_packs(self, packs: Iterable[Pack]) -> None:
        with self._lock:
            for pack in packs:
                # the index goes first: without it the pack is invisible
                with contextlib.suppress(FileNotFoundError):
                    pack.idx_path.unlink()
                with contextlib.suppress(FileNotFoundError):
                    pack.path.unlink()
            fsync_dir(self.pack_dir)
            self.refresh()

    def size_on_disk(self) -> int:
        total = 0
        for p in self.root.rglob("*"):
            if p.is_file():
                total += p.stat().st_size
        return total


def _read_file(name: str) -> bytes:
    """A small file's bytes through plain system calls (no buffered file object: history walks read
    a thousand commits this way)."""
    fd = os.open(name, os.O_RDONLY)
    try:
        parts = []
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                break
            parts.append(b)
    finally:
        os.close(fd)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def pending(type_tag: str, body: Any, base: tuple[bytes, bytes] | None = None) -> Pending:
    oid, data = _enc(type_tag, body)
    if base is None:
        return Pending(oid, type_tag, data)
    return Pending(oid, type_tag, data, base[0], base[1])


def _enc(type_tag: str, body: Any) -> tuple[bytes, bytes]:
    data = codec.pack_canonical(body)
    return codec.object_id(type_tag, data), data
