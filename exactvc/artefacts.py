"""Artefacts: files (models, predictions, plots) attached to runs or commits, stored as chunk objects.

A file is cut into fixed ``CHUNK``-sized pieces, each a ``chunk`` object; the ``artefact`` object lists
them with the file's name, kind, size and blake3 hash (docs/format.md §10). Files go in and out as
streams: a 2 GB model never sits in memory, and a chunk shared by several files is stored once.
An artefact attached to a commit is named by the ref ``artefacts/<commit hex>/<artefact hex>``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import blake3

from . import codec
from .errors import CorruptObject, InvalidInput, NotFound
from .objects import ARTEFACT_CHUNK, artefact_references
from .store import DiskStore, Pending

if TYPE_CHECKING:
    from .repo import Repository

CHUNK = ARTEFACT_CHUNK
KINDS = ("model", "metrics", "predictions", "config", "plot", "diff", "other")
_BATCH = 64  # chunks per store write outside a pack stream (memory stores)


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"unknown artefact kind {kind!r} ({', '.join(KINDS)})")
    return kind


def _chunks_of(f: IO[bytes], h: Any, sizes: list[int]) -> Iterator[Pending]:
    while True:
        piece = f.read(CHUNK)
        if not piece:
            return
        h.update(piece)
        sizes[0] += len(piece)
        data = codec.pack_canonical(bytes(piece))
        yield Pending(codec.object_id("chunk", data), "chunk", data)


def store_stream(repo: Repository, f: IO[bytes], name: str, kind: str = "other",
                 commit: bytes | None = None) -> tuple[bytes, dict[str, Any]]:
    """Store the bytes of ``f`` as chunks and an artefact object; returns (artefact id, its body)."""
    check_kind(kind)
    if not name or "/" in name or name in (".", "..") or len(name) > 255:
        raise InvalidInput(f"invalid artefact name {name!r}")
    h = blake3.blake3()
    sizes = [0]
    ids: list[bytes] = []
    seen: set[bytes] = set()
    store = repo.store

    def fresh() -> Iterator[Pending]:
        for p in _chunks_of(f, h, sizes):
            ids.append(p.oid)
            if p.oid in seen or store.has(p.oid):
                continue
            seen.add(p.oid)
            yield p

    if isinstance(store, DiskStore):
        gen = fresh()
        first = next(gen, None)
        if first is not None:
            def chain() -> Iterator[Pending]:
                yield first
                yield from gen
            store.write_pack(chain(), deltas=False)
            store.refresh()
    else:
        batch: list[Pending] = []
        for p in fresh():
            batch.append(p)
            if len(batch) >= _BATCH:
                store.write(batch)
                batch = []
        if batch:
            store.write(batch)
    body: dict[str, Any] = {"name": name, "kind": kind, "size": sizes[0], "hash": h.hexdigest(), "chunks": ids}
    if commit is not None:
        body["commit"] = commit
    return repo.put("artefact", body), body


def store_file(repo: Repository, path: str | os.PathLike[str], name: str | None = None, kind: str = "other",
               commit: bytes | None = None) -> tuple[bytes, dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no such file: {p}")
    with open(p, "rb") as f:
        return store_stream(repo, f, name or p.name, kind, commit)


def store_bytes(repo: Repository, data: bytes, name: str, kind: str = "other") -> tuple[bytes, dict[str, Any]]:
    import io

    return store_stream(repo, io.BytesIO(data), name, kind)


def load(repo: Repository, oid: bytes) -> dict[str, Any]:
    body = codec.unpack(repo.store.get_typed(oid, "artefact"))
    artefact_references(body)
    return dict(body)


def iter_bytes(repo: Repository, oid: bytes, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """The artefact's bytes [start, end) chunk by chunk, each chunk checked against its id."""
    body = load(repo, oid)
    size = body["size"]
    end = size if end is None else min(end, size)
    if start >= end:
        return
    for i in range(start // CHUNK, (end - 1) // CHUNK + 1):
        cid = body["chunks"][i]
        t, data = repo.store.get_uncached(cid)
        if t != "chunk" or codec.object_id("chunk", data) != cid:
            raise CorruptObject(f"chunk {cid.hex()} of artefact {oid.hex()} does not match its id")
        piece = codec.unpack(data)
        if not isinstance(piece, bytes):
            raise CorruptObject(f"chunk {cid.hex()} does not hold bytes")
        lo = max(start - i * CHUNK, 0)
        hi = min(end - i * CHUNK, len(piece))
        yield piece[lo:hi]


def write_file(repo: Repository, oid: bytes, out: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the artefact to ``out`` (temp file, renamed only once its size and hash check out)."""
    body = load(repo, oid)
    dest = Path(out)
    tmp = dest.with_name(f".{dest.name}.exact-tmp-{os.getpid()}")
    h = blake3.blake3()
    n = 0
    try:
        with open(tmp, "wb") as f:
            for piece in iter_bytes(repo, oid):
                h.update(piece)
                n += len(piece)
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        if n != body["size"] or h.hexdigest() != body["hash"]:
            raise CorruptObject(f"artefact {oid.hex()} ({body['name']}): its bytes do not match its hash")
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return describe(oid, body)


def describe(oid: bytes, body: dict[str, Any]) -> dict[str, Any]:
    out = {"id": oid.hex(), "name": body["name"], "kind": body["kind"], "size": body["size"], "hash": body["hash"],
           "chunks": len(body["chunks"])}
    if body.get("commit") is not None:
        out["commit"] = body["commit"].hex()
    return out


# --- attached to commits ---------------------------------------------------------------------------


def attach_to_commit(repo: Repository, commit: bytes, path: str | os.PathLike[str], name: str | None = None,
                     kind: str = "other") -> dict[str, Any]:
    oid, body = store_file(repo, path, name, kind, commit)
    ref = f"artefacts/{commit.hex()}/{oid.hex()}"
    if repo.refs.read(ref) is None:
        repo.refs.cas(ref, None, oid, "exact", f"artefact add {body['name']}")
    return describe(oid, body)


def of_commit(repo: Repository, commit: bytes) -> list[dict[str, Any]]:
    out = []
    for _ref, oid in sorted(repo.refs.list(f"artefacts/{commit.hex()}/").items()):
        out.append(describe(oid, load(repo, oid)))
    return sorted(out, key=lambda d: (d["name"], d["id"]))


def all_refs(repo: Repository) -> dict[str, bytes]:
    return repo.refs.list("artefacts/")
