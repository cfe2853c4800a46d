"""Objects on S3-compatible storage: packs written once under content-addressed keys, read by range.

Layout under ``s3://BUCKET/PREFIX/REPO/packs/``: ``pack-<blake3 of the pack>.pack`` and its index
``pack-<same>.idx`` (the formats of ``store``). The pack is uploaded first, its index second: a pack is
visible only once its index exists, so an upload cut short leaves an invisible pack that gc removes
after the grace period. Objects are immutable, so every byte read can be cached: indexes whole,
packs in aligned blocks, in a local folder bounded in size (least recently used goes first).
Pack discovery is an S3 LIST under the repository's prefix, repeated when an id is not found.

Client: obstore (Rust object_store); why, with numbers, in docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import blake3

from ..errors import BackendUnavailable, CorruptObject, UsageError
from ..store import IDX_MAGIC, PACK_MAGIC, DiskStore, ObjectStore, Pack, Pending, _IdView, packs_to_merge
from .blockcache import BlockCache

BLOCK = 1 << 20  # packs are read and cached in aligned blocks of this size
GRACE = 3600.0  # gc never deletes a pack younger than this (an upload in flight may own it)
DEFAULT_CACHE = 1 << 30
READ_AHEAD = 4  # blocks fetched together on a miss
LIST_INTERVAL = 0.5  # has() re-lists on a miss at most this often
AUTO_CONSOLIDATE = 16  # more packs than this after a write (a server's pushes): the smallest are merged


def _unavailable(exc: BaseException, what: str) -> BackendUnavailable:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    first = re.sub(r"https?://\S+", "<endpoint>", first)[:160]  # clients learn nothing of the endpoint
    return BackendUnavailable(f"object storage is unavailable ({what}): {first}")


class RemotePack(Pack):
    """A pack on S3: its index held in memory, its entries read through the block cache."""

    def __init__(self, store: S3ObjectStore, name: str, size: int, idx: bytes, modified: float) -> None:
        # Pack.__init__ opens files; a remote pack sets the same lookup fields itself
        if idx[:8] != IDX_MAGIC:
            raise CorruptObject(f"pack index {name}.idx has a bad header")
        (n,) = struct.unpack_from("<Q", idx, 8)
        ids_end = 16 + 32 * n
        if len(idx) != ids_end + 8 * n + 32:
            raise CorruptObject(f"pack index {name}.idx is truncated")
        self.name = name
        self.path = Path(f"{name}.pack")
        self.idx_path = Path(f"{name}.idx")
        self.count = n
        self._idx = idx
        self._ids = _IdView(memoryview(idx), n)
        self._where = None
        self._firsts = None
        self._seconds = b""
        self._offs_at = ids_end
        self.size = size
        self.modified = modified
        self._store = store
        self._mm = None

    def close(self) -> None:
        pass

    def entry(self, i: int) -> tuple[int, int, bytes]:
        off = self.offset(i)
        if off + 6 > self.size:
            raise CorruptObject(f"pack {self.path.name}: index points past the end (offset {off})")
        code, depth, length = struct.unpack("<BBI", self._store.read_range(self, off, 6))
        payload = self._store.read_range(self, off + 6, length)
        if len(payload) != length:
            raise CorruptObject(f"pack {self.path.name} is truncated at offset {off}")
        return code, depth, payload


class S3ObjectStore(ObjectStore):
    """Packs and indexes of one repository under an S3 prefix, with a local cache."""

    def __init__(self, client: Any, where: str, cache_dir: Path, cache_bytes: int = DEFAULT_CACHE) -> None:
        super().__init__()
        self.client = client  # an obstore S3Store rooted at the repository's prefix
        self.where = where  # s3://bucket/prefix/repo, for messages (no credentials in it)
        self.cache = BlockCache(cache_dir, cache_bytes)
        self.bad_packs: dict[str, str] = {}
        self._packs: dict[str, RemotePack] = {}
        self._order: list[RemotePack] = []
        self._lock = threading.RLock()
        self._listed = 0.0
        self._executor: ThreadPoolExecutor | None = None
        self.refresh(force=True)

    # --- talking to S3 ---------------------------------------------------------
    def _call(self, what: str, fn: Any, *args: Any, **kw: Any) -> Any:
        import obstore.exceptions as oe

        try:
            return fn(*args, **kw)
        except oe.NotFoundError:
            raise
        except (oe.PermissionDeniedError, oe.UnauthenticatedError) as exc:
            raise BackendUnavailable(f"object storage refused access at {self.where} ({what}): "
                                     f"{type(exc).__name__}") from None
        except (oe.BaseError, OSError) as exc:
            raise _unavailable(exc, what) from None

    def _list(self) -> dict[str, tuple[int, float]]:
        import obstore

        def run() -> dict[str, tuple[int, float]]:
            out: dict[str, tuple[int, float]] = {}
            for batch in obstore.list(self.client, prefix="packs/"):
                for meta in batch:
                    out[str(meta["path"])[len("packs/"):]] = (int(meta["size"]),
                                                              meta["last_modified"].timestamp())
            return out

        result: dict[str, tuple[int, float]] = self._call("list", run)
        return result

    def _get(self, key: str) -> bytes:
        import obstore

        return bytes(self._call(f"get {key}", lambda: obstore.get(self.client, key).bytes()))

    def _put(self, key: str, data: bytes) -> None:
        import obstore

        self._call(f"put {key}", obstore.put, self.client, key, data)

    def read_range(self, pack: RemotePack, off: int, n: int) -> bytes:
        """``n`` bytes of ``pack`` from ``off``, through the cache (whole aligned blocks are fetched)."""
        parts = []
        end = off + n
        while off < end:
            b = off // BLOCK
            data = self._block(pack, b)
            lo = off - b * BLOCK
            hi = min(end - b * BLOCK, len(data))
            if hi <= lo:
                break
            parts.append(data[lo:hi])
            off = b * BLOCK + hi
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _block(self, pack: RemotePack, b: int) -> bytes:
        import obstore

        key = f"{pack.name}.{b}"
        data = self.cache.get(key)
        if data is not None:
            return data
        # read ahead: the next blocks (not cached yet) are fetched at the same time, in parallel
        # (reads of a pack come in runs: a clone, a tree walk, gc)
        last = (pack.size - 1) // BLOCK
        todo = [b] + [k for k in range(b + 1, min(b + READ_AHEAD, last + 1))
                      if f"{pack.name}.{k}" not in self.cache]
        path = f"packs/{pack.name}.pack"

        def fetch(k: int) -> bytes:
            start = k * BLOCK
            return bytes(obstore.get_range(self.client, path, start=start, end=min(start + BLOCK, pack.size)))

        try:
            if len(todo) == 1:
                got = [self._call(f"range read {path}", fetch, b)]
            else:
                got = self._call(f"range read {path}", lambda: list(self._pool().map(fetch, todo)))
        except Exception as exc:
            import obstore.exceptions as oe

            if isinstance(exc, oe.NotFoundError):  # removed by a consolidation elsewhere
                raise CorruptObject(f"pack {pack.name} is gone from {self.where}") from None
            raise
        for k, blob in zip(todo, got, strict=True):
            self.cache.put(f"{pack.name}.{k}", blob)
        return got[0]

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="exact-s3")
            return self._executor

    # --- packs ---------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """List the packs again. Unforced (the server's per-request call) at most every LIST_INTERVAL s:
        misses re-list by themselves, so nothing correct depends on it."""
        if not force and time.monotonic() - self._listed < LIST_INTERVAL:
            return
        with self._lock:
            listing = self._list()
            names = {k[:-4] for k in listing if k.endswith(".idx") and k[:-4] + ".pack" in listing}
            packs = {k: v for k, v in self._packs.items() if k in names}
            for name in sorted(names - set(packs)):
                try:
                    packs[name] = self._open_pack(name, listing[name + ".pack"])
                except CorruptObject as exc:
                    self.bad_packs[name] = str(exc)
            self._packs = packs
            self._order = sorted(packs.values(), key=lambda p: p.count)
            self._listed = time.monotonic()

    def _open_pack(self, name: str, meta: tuple[int, float]) -> RemotePack:
        import obstore.exceptions as oe

        key = f"{name}.idx"
        idx = self.cache.get(key)
        if idx is None:
            try:
                idx = self._get(f"packs/{key}")
            except oe.NotFoundError:
                raise CorruptObject(f"pack index {key} vanished while listing") from None
            self.cache.put(key, idx)
        return RemotePack(self, name, meta[0], idx, meta[1])

    def packs(self) -> list[Pack]:
        return list(self._order)

    def _find(self, oid: bytes) -> tuple[RemotePack, int] | None:
        for pack in self._order:
            i = pack.find(oid)
            if i is not None:
                return pack, i
        return None

    def has(self, oid: bytes) -> bool:
        # a miss re-lists (at most every LIST_INTERVAL s), so objects pushed through another server process
        # are seen; writes skip this (a stale "no" there only stores a harmless duplicate)
        if self._find(oid) is not None:
            return True
        if time.monotonic() - self._listed < LIST_INTERVAL:
            return False
        self.refresh(force=True)
        return self._find(oid) is not None

    def has_now(self, oid: bytes) -> bool:
        if self._find(oid) is not None:
            return True
        self.refresh(force=True)
        return self._find(oid) is not None

    def _stored_test(self, n: int) -> Callable[[bytes], bool]:
        return lambda oid: self._find(oid) is not None

    def depth(self, oid: bytes) -> int:
        found = self._find(oid)
        return found[0].entry(found[1])[1] if found is not None else 0

    def _read(self, oid: bytes) -> tuple[str, bytes] | None:
        found = self._find(oid)
        if found is None:
            self.refresh(force=True)  # written by another process since the last listing
            found = self._find(oid)
            if found is None:
                return None
        pack, i = found
        try:
            return DiskStore._read_entry(self, oid, pack, i)  # type: ignore[arg-type]
        except CorruptObject:
            self.refresh(force=True)  # the pack may have been consolidated away: look again
            again = self._find(oid)
            if again is None or again[0] is pack:
                raise
            return DiskStore._read_entry(self, oid, again[0], again[1])  # type: ignore[arg-type]

    def iter_ids(self) -> Iterator[bytes]:
        seen: set[bytes] = set()
        for pack in list(self._order):
            for oid in pack.iter_ids():
                if oid not in seen:
                    seen.add(oid)
                    yield oid

    # --- writing -------------------------------------------------------------
    def _write(self, items: list[Pending]) -> None:
        self.write_pack(items)
        if len(self._order) > AUTO_CONSOLIDATE:
            # every push writes a pack: keep lookups to a handful of packs, as commits do locally. Safe
            # against other processes doing the same (a pack gone under us stops the merge, nothing lost);
            # a failure here does not fail the write, which is complete
            with contextlib.suppress(BackendUnavailable, CorruptObject):
                self.consolidate(AUTO_CONSOLIDATE // 2)

    def write_pack(self, items: Iterable[Pending], deltas: bool = True) -> str:
        """Upload one pack holding ``items``, then its index; returns the pack's name."""
        tmp = self.cache.root / f".upload-{os.getpid()}-{threading.get_ident()}-{time.time_ns():x}"
        try:
            trailer, entries = DiskStore._write_entries(self, tmp, items, deltas,  # type: ignore[arg-type]
                                                        blake3.blake3(), {})
            body = tmp.read_bytes()
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return self._publish(body, trailer, entries)

    def _publish(self, body: bytes, trailer: bytes, entries: list[tuple[bytes, int]]) -> str:
        entries.sort()
        n = len(entries)
        idx = bytearray(IDX_MAGIC)
        idx += struct.pack("<Q", n)
        idx += b"".join(e[0] for e in entries)
        idx += struct.pack(f"<{n}Q", *(e[1] for e in entries))
        idx += trailer
        name = f"pack-{trailer.hex()}"  # content-addressed: the same pack always gets the same key
        self._put(f"packs/{name}.pack", body)
        self._put(f"packs/{name}.idx", bytes(idx))  # the pack becomes visible
        if len(body) <= self.cache.max_bytes // 4:  # what we just wrote is read next: keep it
            for b in range(0, len(body), BLOCK):
                self.cache.put(f"{name}.{b // BLOCK}", body[b : b + BLOCK])
        self.cache.put(f"{name}.idx", bytes(idx))
        with self._lock:
            pack = RemotePack(self, name, len(body), bytes(idx), time.time())
            self._packs[name] = pack
            self._order = sorted(self._packs.values(), key=lambda p: p.count)
        return name

    def _copy_packs(self, packs: list[Pack]) -> str:
        out = bytearray(PACK_MAGIC)
        hasher = blake3.blake3()
        hasher.update(PACK_MAGIC)
        entries: list[tuple[bytes, int]] = []
        seen: set[bytes] = set()
        for pack in packs:
            for i, oid in enumerate(pack.iter_ids()):
                if oid in seen:
                    continue
                seen.add(oid)
                code, depth, payload = pack.entry(i)
                head = struct.pack("<BBI", code, depth, len(payload))
                entries.append((oid, len(out)))
                out += head
                out += payload
                hasher.update(head)
                hasher.update(payload)
        trailer = hasher.digest()
        out += trailer
        return self._publish(bytes(out), trailer, entries)

    def consolidate(self, max_packs: int = 8) -> int:
        """Merge the smallest packs into one, as ``DiskStore.consolidate`` does; returns how many."""
        self.refresh(force=True)
        small = packs_to_merge(self.packs(), max_packs)
        if not small:
            return 0
        try:
            merged = self._copy_packs(small)
        except CorruptObject:
            return 0  # a pack went away under us (another process consolidated): nothing lost
        self.remove_packs([p for p in small if p.path.stem != merged])
        return len(small)

    def remove_packs(self, packs: Iterable[Pack]) -> None:
        import obstore

        keys = []
        for p in packs:
            keys += [f"packs/{p.path.stem}.idx", f"packs/{p.path.stem}.pack"]  # the index goes first
        if keys:
            self._call("delete", obstore.delete, self.client, keys)
        self.refresh(force=True)

    def collect(self, keep: Iterator[Pending], grace: float = GRACE) -> tuple[str | None, int, int]:
        """gc: write ``keep`` (every reachable object) as one pack, then delete every other pack older
        than ``grace`` seconds, and index-less uploads as old. Returns (new pack, packs removed, kept)."""
        import obstore

        self.refresh(force=True)
        old = list(self._order)
        first = next(keep, None)
        name = None
        kept = 0
        if first is not None:
            count = [0]

            def counted() -> Iterator[Pending]:
                for it in itertools.chain([first], keep):
                    count[0] += 1
                    yield it

            name = self.write_pack(counted(), deltas=False)
            kept = count[0]
            if self._packs[name].count != kept:
                raise CorruptObject(f"gc: the new pack {name} does not hold the {kept} objects written; "
                                    "nothing was removed")
        cutoff = time.time() - grace
        dropping: list[Pack] = [p for p in old if p.name != name and p.modified < cutoff]
        listing = self._list()
        orphans = [f"packs/{k}" for k, (_s, m) in listing.items()
                   if k.endswith(".pack") and k[:-5] + ".idx" not in listing and m < cutoff]
        if orphans:
            self._call("delete", obstore.delete, self.client, orphans)
        self.remove_packs(dropping)
        with self._cache_lock:
            self._cache.clear()
        return name, len(dropping), kept

    def size_on_disk(self) -> int:
        return sum(p.size for p in self._order)

    def check(self) -> tuple[list[str], list[str]]:
        """For fsck: (problems, notes). Problems: indexes that do not parse; notes: packs without an index
        (an upload cut short, invisible; gc removes them after the grace period)."""
        self.refresh(force=True)
        listing = self._list()
        notes = [f"{self.where}/packs/{k} has no index (left by an interrupted upload; gc removes it)"
                 for k in sorted(listing) if k.endswith(".pack") and k[:-5] + ".idx" not in listing]
        problems = [f"pack index {name}.idx on {self.where}: {why}" for name, why in sorted(self.bad_packs.items())
                    if name + ".idx" in listing]
        return problems, notes


def open_s3_store(url: str, repo: str, cache_dir: Path, cache_bytes: int = DEFAULT_CACHE) -> S3ObjectStore:
    """The object store of repository ``repo`` under ``url`` (``s3://BUCKET/PREFIX``).

    Endpoint and credentials come from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
    (AWS_REGION optional); they are never part of a message.
    """
    from obstore.store import S3Store

    if not url.startswith("s3://") or len(url) <= 5:
        raise UsageError(f"object storage URL must look like s3://BUCKET/PREFIX, not {url[:80]!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise UsageError("object storage URL names no bucket")
    key_prefix = "/".join(p for p in (prefix.strip("/"), repo) if p)
    config: dict[str, Any] = {"region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                              or "us-east-1"}
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        config["endpoint"] = endpoint
    for env, key in (("AWS_ACCESS_KEY_ID", "access_key_id"), ("AWS_SECRET_ACCESS_KEY", "secret_access_key")):
        if os.environ.get(env):
            config[key] = os.environ[env]
    client_options = {"allow_http": bool(endpoint and endpoint.startswith("http://")),
                      "connect_timeout": "2s", "timeout": "30s"}
    retry = {"max_retries": 3, "retry_timeout": timedelta(seconds=4),
             "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=1),
                         "base": 2}}
    client = S3Store(bucket, prefix=key_prefix, config=config,  # type: ignore[arg-type]
                     client_options=client_options, retry_config=retry)  # type: ignore[arg-type]
    return S3ObjectStore(client, f"s3://{bucket}/{key_prefix}", Path(cache_dir), cache_bytes)


__all__ = ["BLOCK", "GRACE", "BlockCache", "RemotePack", "S3ObjectStore", "open_s3_store"]
