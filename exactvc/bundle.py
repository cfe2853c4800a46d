"""Bundles: commits and objects in one verified file, for institutions without a network path
(like ``git bundle``). Format::

    "EXBNDL1\\n"
    u32 LE     length of the header
    header     JSON {"refs": {BRANCH: commit hex}, "tags": {TAG: commit or tag object hex},
               "prerequisites": [commit hex, ...]}  ("tags" may be absent: older bundles)
    stream     the object stream of docs/protocol.md (framed, zlib, ids checked, blake3 trailer)

Prerequisites are commits the receiver must already have (the ``A`` of ``A..B``); objects may travel
as deltas against what they reach. Reading a bundle checks it object by object exactly as a push is
checked (``transfer.read_stream``, ``verify_closure``, ``received.refuse_invalid``) before anything is
stored: a forged or truncated bundle changes nothing.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import received, transfer
from .errors import InvalidInput, NotFound
from .fsutil import atomic_write
from .refs import check_short_name
from .store import Pending

if TYPE_CHECKING:
    from .repo import Repository

MAGIC = b"EXBNDL1\n"
MAX_HEADER = 1 << 20


@dataclass
class Bundle:
    refs: dict[str, bytes]
    prerequisites: list[bytes]
    items: list[Pending]
    tags: dict[str, bytes] = field(default_factory=dict)  # tag name -> commit or annotated tag object

    def tips(self) -> list[tuple[bytes, str]]:
        """Every ref the bundle carries, as (object id, ``heads/NAME`` or ``tags/NAME``)."""
        return ([(oid, "heads/" + n) for n, oid in sorted(self.refs.items())]
                + [(oid, "tags/" + n) for n, oid in sorted(self.tags.items())])


def _parse_revs(repo: Repository, revs: list[str]) -> tuple[dict[str, bytes], dict[str, bytes], list[bytes]]:
    """(branches, tags, prerequisites) named by ``revs``: ``NAME`` or ``BASE..NAME``, where NAME is a
    branch, else a tag."""
    refs: dict[str, bytes] = {}
    tags: dict[str, bytes] = {}
    haves: list[bytes] = []
    for rev in revs:
        lo, sep, hi = rev.partition("..")
        name = hi if sep else rev
        if name == "HEAD":
            name = repo.current_branch() or ""
            if not name:
                raise InvalidInput("HEAD is detached: name a branch to bundle")
        is_tag = name.startswith("tags/")
        name = name.removeprefix("tags/")
        check_short_name(name, "bundled branch or tag")
        oid = None if is_tag else repo.refs.read("heads/" + name)
        if oid is not None:
            refs[name] = oid
        else:
            oid = repo.refs.read("tags/" + name)
            if oid is None:
                raise NotFound(f"no branch or tag {name!r} to bundle")
            tags[name] = oid
        if sep:
            haves.append(repo.resolve(lo or "HEAD"))
    return refs, tags, haves


def create(repo: Repository, path: str | os.PathLike[str], revs: list[str], all_tags: bool = False) -> dict[str, Any]:
    """Write branches and tags (``NAME``, or ``BASE..NAME`` for only what BASE lacks) to one bundle file;
    ``all_tags``: every local tag too (annotated tags travel as their tag objects)."""
    import io

    if not revs and not all_tags:
        raise InvalidInput("name what to bundle: BRANCH, TAG or BASE..BRANCH (or --tags)")
    refs, tags, haves = _parse_revs(repo, revs)
    if all_tags:
        for ref, oid in repo.refs.list("tags/").items():
            tags.setdefault(ref.removeprefix("tags/"), oid)
    oids = list(transfer.objects_with_bases(repo, [*refs.values(), *tags.values()], haves))
    buf = io.BytesIO()
    n = transfer.write_stream(repo, oids, buf)
    meta: dict[str, Any] = {"refs": {k: v.hex() for k, v in sorted(refs.items())},
                            "prerequisites": sorted({h.hex() for h in haves})}
    if tags:
        meta["tags"] = {k: v.hex() for k, v in sorted(tags.items())}
    header = json.dumps(meta, sort_keys=True).encode()
    data = MAGIC + struct.pack("<I", len(header)) + header + buf.getvalue()
    atomic_write(Path(path), data)
    return {"path": str(path), **meta, "tags": meta.get("tags", {}), "objects": n, "bytes": len(data)}


def read(repo: Repository, f: IO[bytes], max_bytes: int = 1 << 34) -> Bundle:
    """Parse and verify a bundle against ``repo`` (nothing is stored)."""
    head = f.read(len(MAGIC) + 4)
    if len(head) < len(MAGIC) + 4 or head[:len(MAGIC)] != MAGIC:
        raise transfer.BadStream("not an exactvc bundle (bad magic)")
    (hlen,) = struct.unpack("<I", head[len(MAGIC):])
    if hlen > MAX_HEADER:
        raise transfer.BadStream("bundle header too large")
    raw = f.read(hlen)
    if len(raw) != hlen:
        raise transfer.BadStream("truncated bundle header")
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise transfer.BadStream("bundle header is not valid JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("refs"), dict) or \
            not isinstance(meta.get("tags", {}), dict) or not (meta["refs"] or meta.get("tags")) or \
            not isinstance(meta.get("prerequisites", []), list):
        raise transfer.BadStream("bundle header must hold refs (branch -> commit), tags and prerequisites")
    refs: dict[str, bytes] = {}
    tags: dict[str, bytes] = {}
    for into, what, names in ((refs, "branch", meta["refs"]), (tags, "tag", meta.get("tags", {}))):
        for name, oid in names.items():
            if not isinstance(name, str):
                raise transfer.BadStream(f"bundle {what} name is not a string")
            check_short_name(name, f"bundled {what}")
            b = transfer._opt_hex(oid)
            if b is None:
                raise transfer.BadStream(f"bundle {what} {name} has no object")
            into[name] = b
    prereq = [b for x in meta.get("prerequisites", []) if (b := transfer._opt_hex(x)) is not None]
    for p in prereq:
        if not repo.store.has(p):
            raise transfer.MissingReference(f"the bundle needs commit {p.hex()[:12]}, which this repository "
                                            "lacks (fetch or unbundle the earlier history first)")
    items = transfer.read_stream(repo, f, max_bytes)
    if f.read(1):
        raise transfer.BadStream("trailing bytes after the bundle's object stream")
    return Bundle(refs, prereq, items, tags)


def verify(repo: Repository, path: str | os.PathLike[str]) -> tuple[Bundle, dict[str, Any]]:
    """Every check a push gets: ids, decoding, closure, fsck's structure checks from the tips."""
    with open(path, "rb") as f:
        b = read(repo, f)
    transfer.verify_closure(repo, b.items)
    received.refuse_invalid(repo, b.items, b.tips())
    new = sum(1 for p in b.items if not repo.store.has(p.oid))
    return b, {"path": str(path), "ok": True, "refs": {k: v.hex() for k, v in sorted(b.refs.items())},
               "tags": {k: v.hex() for k, v in sorted(b.tags.items())},
               "prerequisites": [p.hex() for p in b.prerequisites], "objects": len(b.items), "new": new}


def unbundle(repo: Repository, path: str | os.PathLike[str], who: str = "exact") -> dict[str, Any]:
    """Verify, store the objects, then create or fast-forward each bundled branch (a branch that would not
    fast-forward, or the checked-out branch, is kept and reported) and create each bundled tag (a tag
    that exists here with another value is kept, as fetch keeps tags, and reported in ``tags_kept``)."""
    from .graph import is_ancestor
    from .refs import check_new_tag

    b, info = verify(repo, path)
    tags_new, tags_kept = {}, {}
    for name, oid in sorted(b.tags.items()):
        cur = repo.refs.read("tags/" + name)
        if cur is None:
            check_new_tag(repo.refs, name)  # before anything is stored: a refusal changes nothing
            tags_new[name] = oid.hex()
        elif cur != oid:
            tags_kept[name] = oid.hex()
    new = [p for p in b.items if not repo.store.has(p.oid)]
    if new:
        repo.store.write(new)
    updated, kept = {}, {}
    current = repo.current_branch()
    for name, oid in sorted(b.refs.items()):
        ref = "heads/" + name
        cur = repo.refs.read(ref)
        if cur == oid:
            continue
        if cur is not None and (name == current or not is_ancestor(repo, cur, oid)):
            kept[name] = oid.hex()
            continue
        if cur is None:
            from .refs import check_new_branch

            check_new_branch(repo.refs, name)
        repo.refs.cas(ref, cur, oid, who, f"unbundle {Path(path).name}")
        updated[name] = oid.hex()
    for name, hexid in tags_new.items():
        repo.refs.cas("tags/" + name, None, bytes.fromhex(hexid), who, f"unbundle {Path(path).name}")
    return {**info, "stored": len(new), "updated": updated, "kept": kept, "tags_updated": tags_new,
            "tags_kept": tags_kept}
