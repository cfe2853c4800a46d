"""Repository maintenance: reachability, ``fsck`` and ``gc``.

Roots of reachability are every ref, HEAD (also when detached), the working
snapshot of ``.exact/WORKING`` (with its base commit) and ids named by state
files such as ``.exact/MERGE_STATE`` / ``.exact/MERGE_HEAD``, and the commits
of HEAD reflog entries younger than ``REFLOG_GRACE`` (30 days). From the roots
the walk goes commit -> parents and root snapshot, tag -> target, snapshot ->
label set, image records and tree roots, tree node -> children, leaf record
-> split-out geometry blob (key ``"G"``), label -> example blob.

``fsck`` never raises on corruption: it verifies every reachable object (it
is present, its bytes hash to its id, it decodes, it has the type its
referrer expects, tree nodes are consistent with their parents, commit
generations add up) and every pack file (trailer hash, index entries inside
the pack and tiling it) and loose file, and reports what it finds.

``gc`` holds the repository lock, streams every reachable object, stored
whole, into one new pack (fsynced and made visible by its index before
anything is deleted), then removes the packs and loose objects that existed
when it started and prunes the spatial-index cache. A crash at any moment
leaves every reachable object readable.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import orjson

from . import codec
from .errors import CorruptObject, ExactError, MissingObject
from .objects import ARTEFACT_CHUNK, TYPES, Commit, ImageRecord, LabelSet, Snapshot, Tag, references
from .refs import DiskRefs
from .store import (
    CODE_TYPES,
    IDX_MAGIC,
    MAX_DEPTH,
    PACK_MAGIC,
    ZSTD,
    DiskStore,
    MemoryStore,
    ObjectStore,
    Pending,
)
from .tree import MAX_NODE, decode_node, entry_size, is_boundary, split_geometries

Progress = Callable[[int, int], None]
"""``progress(done, total)``: objects handled so far out of an upper bound (the objects stored)."""

REFLOG_GRACE = 30 * 86400.0  # seconds: commits named by the HEAD reflog this recently survive gc
STATE_FILES = ("MERGE_STATE", "MERGE_HEAD", "ORIG_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "REBASE_STATE")
TMP_GRACE = 600.0  # seconds: temporary files and index-less packs younger than this may belong to a live writer
_HEX64 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
_TRAILER = 32
_ENTRY_HEAD = struct.Struct("<BBI")
_MAX_TREE_DEPTH = 64


# --- reports ----------------------------------------------------------------------------------


@dataclass
class Problem:
    """One thing wrong. ``oid`` is None for problems of a file (pack, index, ref) rather than an object."""

    oid: str | None
    type: str  # object type (expected or found), or "pack" / "index" / "ref" / "state" for files
    message: str
    referenced_from: str | None = None  # e.g. "commit 1a2b3c4d5e6f (root)", "refs/heads/main", "WORKING"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FsckReport:
    problems: list[Problem] = field(default_factory=list)
    checked: int = 0  # reachable objects read and verified
    unreachable: int = 0  # stored objects no root reaches (gc drops them)
    notes: list[str] = field(default_factory=list)  # harmless findings: leftover temporary files, stale locks

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "unreachable": self.unreachable,
            "problems": [p.to_dict() for p in self.problems],
            "notes": list(self.notes),
        }


@dataclass
class GcReport:
    kept: int  # reachable objects, now all in one pack
    dropped: int  # unreachable objects removed
    bytes_before: int  # size of .exact/objects before and after
    bytes_after: int
    packs_removed: int
    loose_removed: int
    cache_files_removed: int
    pack: str | None  # file name of the new pack (None when nothing is reachable)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the walk ---------------------------------------------------------------------------------

# level, count, first key, last key, ends at a cut point (boundary key or size limit)
_NodeInfo = tuple[int, int, bytes, bytes, bool]
# expected level, count, key the previous sibling ends with (None: first), last key, rightmost in its level
_NodeExp = tuple[int, int, bytes | None, bytes, bool]


def _short(oid: bytes) -> str:
    return oid.hex()[:12]


class _Walker:
    """Depth-first walk of everything reachable, each object read once.

    Order: all commits and tags first (newest first along history), then for each
    snapshot its label set, image records and trees (pre-order, children left to
    right, blobs right after the leaf that references them). That order keeps
    related objects next to each other in a pack written from the walk.

    ``lenient``: report problems (fsck); otherwise raise CorruptObject on the
    first object that cannot be read (gc must not drop what it cannot see).
    ``structure``: also check tree shape, counts, generations (fsck).
    """

    def __init__(self, repo: Any, *, verify: bool, lenient: bool, structure: bool,
                 progress: Progress | None = None, total: int = 0) -> None:
        self.repo = repo
        self.store: ObjectStore = repo.store
        self.verify = verify
        self.lenient = lenient
        self.structure = structure
        self.progress = progress
        self.total = total
        self.problems: list[Problem] = []
        self.known_bad: dict[bytes, Problem] = {}  # found by the storage scan, by object id
        self.seen: dict[bytes, str] = {}  # id -> type ("?" when it could not be read)
        self.nodes: dict[bytes, _NodeInfo | None] = {}
        self.gens: dict[bytes, tuple[int, tuple[bytes, ...]]] = {}
        self.commit_stack: list[tuple[bytes, str | None, str]] = []
        self.snapshots: deque[tuple[bytes, str]] = deque()
        self.count = 0

    # -- reporting --
    def problem(self, oid: bytes | None, type_tag: str, message: str, ref: str | None) -> None:
        if not self.lenient:
            raise CorruptObject(message + (f" (referenced from {ref})" if ref else ""))
        self.problems.append(Problem(oid.hex() if oid is not None else None, type_tag, message, ref))

    def shape_problem(self, oid: bytes, type_tag: str, message: str, ref: str | None) -> None:
        """A consistency problem that does not make the object unreadable: fsck only."""
        if self.structure:
            self.problems.append(Problem(oid.hex(), type_tag, message, ref))

    # -- reading --
    def where(self, oid: bytes) -> str:
        return _where(self.repo, oid)

    def read(self, oid: bytes, expected: str | None, ref: str | None) -> tuple[str, bytes] | None:
        h = oid.hex()
        try:
            t, data = self.store.verify(oid) if self.verify else self.store.get(oid)
        except MissingObject as exc:
            if h in str(exc):
                self.problem(oid, expected or "unknown", f"object {h} ({expected or 'any type'}) is missing", ref)
            else:  # a delta base is missing
                self.problem(oid, expected or "unknown",
                             f"object {h} ({self.where(oid)}) cannot be read: {exc}", ref)
            return None
        except Exception as exc:  # corrupt bytes can make the decoders fail in many ways
            bad = self.known_bad.get(oid)
            if bad is not None and self.lenient:
                if bad.referenced_from is None:
                    bad.referenced_from = ref
                if bad.type == "unknown" and expected:
                    bad.type = expected
                return None
            msg = exc.message if isinstance(exc, ExactError) else f"{type(exc).__name__}: {exc}"
            self.problem(oid, expected or "unknown", f"object {h} ({self.where(oid)}) is corrupt: {msg}", ref)
            return None
        self.count += 1
        if self.progress is not None and self.count % 1000 == 0:
            self.progress(self.count, max(self.total, self.count))
        if expected is not None and t != expected:
            self.shape_problem(oid, t, f"object {h} is a {t}, expected a {expected}", ref)
        return t, data

    def first_visit(self, oid: bytes, expected: str | None, ref: str | None) -> bool:
        t = self.seen.get(oid)
        if t is None:
            return True
        if expected is not None and t not in (expected, "?"):
            self.shape_problem(oid, t, f"object {oid.hex()} is a {t}, expected a {expected}", ref)
        return False

    # -- roots --
    def roots(self) -> list[tuple[bytes, str | None, str, bool]]:
        """(id, expected type, where it is named, soft). Soft roots are skipped when absent."""
        repo = self.repo
        out: list[tuple[bytes, str | None, str, bool]] = []
        # HEAD
        try:
            head = repo.refs.read_head()
            if not head.startswith("ref: "):
                out.append((_parse_hex(head, "HEAD"), "commit", "HEAD", False))
        except Exception as exc:
            if not self.lenient:
                raise
            self.problems.append(Problem(None, "ref", f"HEAD is unreadable: {_msg(exc)}", None))
        # refs
        for name, oid in self.ref_list().items():
            expected = "commit" if name.startswith(("heads/", "remotes/")) else None
            out.append((oid, expected, f"refs/{name}", False))
        # working state
        d: Path | None = repo.exact_dir
        if d is None:
            base, snap = repo.working()
            out.append((snap, "snapshot", "WORKING", False))
            if base is not None:
                out.append((base, "commit", "WORKING (base)", True))
        else:
            try:
                raw = (d / "WORKING").read_bytes()
            except FileNotFoundError:
                raw = None
            if raw is not None:
                try:
                    w = orjson.loads(raw)
                    snap = _parse_hex(w["snapshot"], "WORKING snapshot")
                    base = _parse_hex(w["base"], "WORKING base") if w.get("base") else None
                except Exception as exc:
                    if not self.lenient:
                        raise CorruptObject(f".exact/WORKING is corrupt: {_msg(exc)}") from None
                    self.problems.append(Problem(None, "state", f".exact/WORKING is corrupt: {_msg(exc)}", None))
                else:
                    try:
                        current = repo.head_commit() == base
                    except Exception:
                        current = False
                    # a WORKING file whose base is not HEAD is stale; its snapshot is kept if still stored
                    out.append((snap, "snapshot", "WORKING" if current else "WORKING (stale)", not current))
                    if base is not None:
                        out.append((base, "commit", "WORKING (base)", True))
            # merge and similar in-progress states: any 64-hex id they name, if stored
            for name in STATE_FILES:
                p = d / name
                try:
                    text = p.read_text("utf-8", "replace")
                except (FileNotFoundError, IsADirectoryError):
                    continue
                for m in _HEX64.finditer(text.lower()):
                    out.append((bytes.fromhex(m.group(0)), None, f".exact/{name}", True))
            # commits HEAD pointed at recently (a detached HEAD's work): kept for REFLOG_GRACE
            out.extend((oid, "commit", "logs/HEAD", True) for oid in _recent_reflog(d / "logs" / "HEAD"))
        return out

    def ref_list(self) -> dict[str, bytes]:
        refs = self.repo.refs
        if not self.lenient:
            listed: dict[str, bytes] = refs.list()
            return listed
        try:
            listed = refs.list()
            return listed
        except Exception as exc:
            if not isinstance(refs, DiskRefs):
                self.problems.append(Problem(None, "ref", f"refs cannot be listed: {_msg(exc)}", None))
                return {}
        # read each ref file on its own, reporting the bad ones
        out: dict[str, bytes] = {}
        for p in sorted(refs.refs_dir.rglob("*")):
            if not p.is_file() or p.name.endswith(".lock") or p.name.startswith("."):
                continue
            name = p.relative_to(refs.refs_dir).as_posix()
            try:
                oid = refs.read(name)
            except Exception as exc:
                self.problems.append(Problem(None, "ref", f"ref {name} is unreadable: {_msg(exc)}", None))
                continue
            if oid is not None:
                if len(oid) != codec.ID_LEN:
                    self.problems.append(Problem(None, "ref", f"ref {name} does not hold an object id", None))
                    continue
                out[name] = oid
        return out

    # -- objects checked before (see exactvc/received.py): not walked below, only matched to their parent --
    def is_trusted(self, oid: bytes) -> bool:
        return False

    def trusted_visit(self, oid: bytes, expected: str | None, ref: str | None) -> None:
        raise NotImplementedError

    def trusted_node(self, oid: bytes, exp: _NodeExp | None, ref: str | None) -> None:
        raise NotImplementedError

    def has(self, oid: bytes) -> bool:
        try:
            return self.store.has(oid)
        except Exception:
            return True  # let the read report it

    # -- the walk --
    def run(self) -> Iterator[tuple[bytes, str, bytes]]:
        roots = self.roots()
        later: list[tuple[bytes, str | None, str]] = []
        for oid, expected, ref, soft in roots:
            if len(oid) != codec.ID_LEN:
                self.problem(None, "ref", f"{ref} does not name an object id", None)
                continue
            if soft and not self.has(oid):
                continue
            if expected in (None, "commit", "tag"):
                self.commit_stack.append((oid, expected, ref))
            else:
                later.append((oid, expected, ref))
        self.commit_stack.reverse()  # HEAD and the refs in their order
        while self.commit_stack or self.snapshots or later:
            while self.commit_stack:
                oid, expected, ref = self.commit_stack.pop()
                yield from self.visit(oid, expected, ref)
            while self.snapshots:
                oid, ref = self.snapshots.popleft()
                yield from self.visit(oid, "snapshot", ref)
            for oid, expected, ref in later:
                yield from self.visit(oid, expected, ref)
            later = []
        if self.structure:
            self.check_generations()
        if self.progress is not None:
            self.progress(self.count, max(self.total, self.count))

    def visit(self, oid: bytes, expected: str | None, ref: str | None) -> Iterator[tuple[bytes, str, bytes]]:
        if expected == "node":
            yield from self.tree(oid, ref, None, 0)
            return
        if not self.first_visit(oid, expected, ref):
            return
        if self.is_trusted(oid):
            self.trusted_visit(oid, expected, ref)
            return
        got = self.read(oid, expected, ref)
        if got is None:
            self.seen[oid] = "?"
            return
        t, data = got
        self.seen[oid] = t
        if t == "node":  # reached through a tag or a state file
            del self.seen[oid]
            self.count -= 1
            yield from self.tree(oid, ref, None, 0)
            return
        yield oid, t, data
        try:
            body = codec.unpack(data)
        except CorruptObject as exc:
            self.problem(oid, t, f"object {oid.hex()} ({t}) does not decode: {exc.message}", ref)
            return
        me = f"{t} {_short(oid)}"
        try:
            if t == "commit":
                c = Commit.from_body(body)
                self.gens[oid] = (c.generation, c.parents)
                for p in c.parents:
                    if not isinstance(p, bytes) or len(p) != codec.ID_LEN:
                        self.problem(oid, t, f"commit {oid.hex()} has a malformed parent id", ref)
                        continue
                    self.commit_stack.append((p, "commit", f"{me} (parent)"))
                self.snapshots.append((c.root, f"{me} (root)"))
            elif t == "tag":
                tag = Tag.from_body(body)
                self.commit_stack.append((tag.target, None, f"{me} (object)"))
            elif t == "snapshot":
                yield from self.snapshot(oid, Snapshot.from_body(body), ref)
            elif t == "labels":
                ls = LabelSet.from_body(body)
                for lb in ls.labels:
                    ex = lb.example
                    if isinstance(ex, str) and _HEX64.fullmatch(ex.lower()):
                        eid = bytes.fromhex(ex)
                        if self.has(eid):  # an optional reference: kept alive when stored
                            yield from self.visit(eid, None, f"{me} (example of label {lb.name!r})")
            elif t == "image":
                ImageRecord.from_body(body)
            elif t in ("run", "artefact", "chunk"):
                if t == "artefact" and len(body["chunks"]) != -(-body["size"] // ARTEFACT_CHUNK):
                    self.shape_problem(oid, t, f"artefact {oid.hex()} of {body['size']} bytes lists "
                                       f"{len(body['chunks'])} chunks", ref)
                for want, ref_id in references(t, body):
                    if want == "commit":
                        self.commit_stack.append((ref_id, "commit", f"{me} (labels commit)"))
                    else:
                        yield from self.visit(ref_id, want, f"{me} ({want})")
        except ExactError as exc:
            self.problem(oid, t, f"object {oid.hex()} ({t}) is malformed: {exc.message}", ref)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.problem(oid, t, f"object {oid.hex()} ({t}) is malformed: {type(exc).__name__}: {exc}", ref)

    def snapshot(self, oid: bytes, snap: Snapshot, ref: str | None) -> Iterator[tuple[bytes, str, bytes]]:
        me = f"snapshot {_short(oid)}"
        if snap.labels is not None:
            yield from self.visit(snap.labels, "labels", f"{me} (labels)")
        for name, e in snap.images.items():
            if not isinstance(e.record, bytes) or len(e.record) != codec.ID_LEN:
                self.problem(oid, "snapshot", f"snapshot {oid.hex()}: image {name!r} has a malformed record id", ref)
            else:
                yield from self.visit(e.record, "image", f"{me} (image {name!r})")
            if e.tree is None:
                if e.count != 0:
                    self.shape_problem(oid, "snapshot", f"snapshot {oid.hex()}: image {name!r} has no tree "
                                       f"but a count of {e.count}", ref)
                continue
            if not isinstance(e.tree, bytes) or len(e.tree) != codec.ID_LEN:
                self.problem(oid, "snapshot", f"snapshot {oid.hex()}: image {name!r} has a malformed tree id", ref)
                continue
            yield from self.tree(e.tree, f"{me} (tree of image {name!r})", None, 0)
            info = self.nodes.get(e.tree)
            if self.structure and info is not None:
                if info[1] != e.count:
                    self.shape_problem(oid, "snapshot", f"snapshot {oid.hex()}: image {name!r} records "
                                       f"{e.count} annotations, its tree holds {info[1]}", ref)

    def tree(self, oid: bytes, ref: str | None, exp: _NodeExp | None, depth: int
             ) -> Iterator[tuple[bytes, str, bytes]]:
        if not self.first_visit(oid, "node", ref):
            if exp is not None and self.structure:
                known = self.nodes.get(oid)
                if known is not None:
                    self.check_node(oid, known, exp, ref)
            return
        if depth > _MAX_TREE_DEPTH:
            self.problem(oid, "node", f"tree node {oid.hex()} is nested more than {_MAX_TREE_DEPTH} deep", ref)
            return
        if self.is_trusted(oid):
            self.trusted_node(oid, exp, ref)
            return
        got = self.read(oid, "node", ref)
        if got is None:
            self.seen[oid] = "?"
            self.nodes[oid] = None
            return
        t, data = got
        self.seen[oid] = t
        yield oid, t, data
        if t != "node":
            return
        me = f"node {_short(oid)}"
        if not self.structure:
            # gc / reachability: only the references matter
            try:
                node = decode_node(data, oid)
                if node.level == 0:
                    for k, g in split_geometries(node):
                        yield from self.visit(g, "blob", f"{me} (geometry of {k.hex()})")
                else:
                    for child in node.raw:
                        yield from self.tree(child, f"{me} (child)", None, depth + 1)
            except ExactError:
                raise
            except Exception as exc:
                raise CorruptObject(f"tree node {oid.hex()} is malformed: {type(exc).__name__}: {exc}") from None
            return
        try:
            node = decode_node(data, oid)
        except Exception as exc:
            self.nodes[oid] = None
            self.problem(oid, "node", f"tree node {oid.hex()} does not decode: {_msg(exc)}", ref)
            return
        n = len(node.keys)
        if n == 0:
            self.nodes[oid] = None
            self.shape_problem(oid, "node", f"tree node {oid.hex()} is empty", ref)
            return
        # canonical cut points: no boundary before the last entry, no size overflow before it
        size = 0
        ends_clean = False
        for i, (k, raw) in enumerate(zip(node.keys, node.raw, strict=True)):
            size += entry_size(raw)
            cut = size >= MAX_NODE or (isinstance(k, bytes) and is_boundary(k, node.level))
            if i == n - 1:
                ends_clean = cut
            elif cut:
                self.shape_problem(oid, "node", f"tree node {oid.hex()} is not in canonical form: it should "
                                   f"end after entry {i} of {n}", ref)
                break
        info: _NodeInfo = (node.level, node.count, node.keys[0], node.keys[-1], ends_clean)
        self.nodes[oid] = info
        if exp is not None:
            self.check_node(oid, info, exp, ref)
        elif node.level > 0 and n == 1:
            self.shape_problem(oid, "node", f"tree root {oid.hex()} has a single child (trees are collapsed)", ref)
        rightmost = exp[4] if exp is not None else True
        if node.level == 0:
            for k, rec in zip(node.keys, node.values, strict=True):
                if "g" not in rec and "G" not in rec:
                    self.shape_problem(oid, "node", f"tree node {oid.hex()}: record {k.hex()} has no geometry", ref)
                g = rec.get("G")
                if g is not None:
                    if not isinstance(g, bytes) or len(g) != codec.ID_LEN:
                        self.problem(oid, "node", f"tree node {oid.hex()}: record {k.hex()} has a malformed "
                                     "blob id", ref)
                        continue
                    yield from self.visit(g, "blob", f"{me} (geometry of {k.hex()})")
            return
        prev: bytes | None = None
        for i, (k, v) in enumerate(zip(node.keys, node.values, strict=True)):
            child, cnt = v
            if not isinstance(child, bytes) or len(child) != codec.ID_LEN:
                self.problem(oid, "node", f"tree node {oid.hex()}: entry {i} has a malformed child id", ref)
                continue
            cexp: _NodeExp = (node.level - 1, cnt, prev, k, rightmost and i == n - 1)
            yield from self.tree(child, f"{me} (entry {i})", cexp, depth + 1)
            prev = k

    def check_node(self, oid: bytes, info: _NodeInfo, exp: _NodeExp, ref: str | None) -> None:
        level, cnt, first, last, ends_clean = info
        elevel, ecnt, after, elast, rightmost = exp
        h = oid.hex()
        if level != elevel:
            self.shape_problem(oid, "node", f"tree node {h} is at level {level}, its parent expects {elevel}", ref)
        if cnt != ecnt:
            self.shape_problem(oid, "node", f"tree node {h} holds {cnt} annotations, its parent records {ecnt}", ref)
        if last != elast:
            self.shape_problem(oid, "node", f"tree node {h} ends with key {_khex(last)}, its parent records "
                               f"{_khex(elast)}", ref)
        if after is not None and isinstance(first, bytes) and isinstance(after, bytes) and first <= after:
            self.shape_problem(oid, "node", f"tree node {h} starts with key {_khex(first)}, not after its left "
                               f"sibling's last key {_khex(after)}", ref)
        if not rightmost and not ends_clean:
            self.shape_problem(oid, "node", f"tree node {h} is not in canonical form: it ends without a cut "
                               "point but is not the last node of its level", ref)

    def check_generations(self) -> None:
        for oid, (gen, parents) in self.gens.items():
            pg = [self.gens[p][0] for p in parents if p in self.gens]
            if len(pg) != len(parents):
                continue  # a parent is unreadable: reported already
            want = 1 + max(pg, default=0)
            if gen != want:
                self.shape_problem(oid, "commit", f"commit {oid.hex()} has generation {gen}, expected {want}",
                                   None)


def _khex(k: Any) -> str:
    return k.hex() if isinstance(k, bytes) else repr(k)


def _msg(exc: BaseException) -> str:
    return exc.message if isinstance(exc, ExactError) else f"{type(exc).__name__}: {exc}"


def _parse_hex(text: Any, what: str) -> bytes:
    if not isinstance(text, str) or not _HEX64.fullmatch(text.strip().lower()):
        raise CorruptObject(f"{what} is not an object id: {str(text)[:80]!r}")
    return bytes.fromhex(text.strip())


def _rel(repo: Any, p: Path) -> str:
    base = repo.path
    if base is not None:
        with contextlib.suppress(ValueError):
            return p.relative_to(base).as_posix()
    return str(p)


def _where(repo: Any, oid: bytes) -> str:
    """Where an object is stored, for messages: a pack and offset, or a loose file."""
    store = repo.store
    if not isinstance(store, DiskStore):
        return "in memory"
    found: list[str] = []
    try:
        for pack in store.packs():
            i = pack.find(oid)
            if i is not None:
                found.append(f"pack {pack.path.name} at offset {pack.offset(i)}")
    except Exception:
        pass
    h = oid.hex()
    loose = store.root / h[:2] / h[2:]
    if loose.exists():
        found.append(f"loose file {_rel(repo, loose)}")
    return ", ".join(found) if found else "not stored"


# --- reachability -----------------------------------------------------------------------------


def _recent_reflog(path: Path) -> list[bytes]:
    """Commits the reflog at ``path`` names in entries younger than REFLOG_GRACE."""
    try:
        lines = path.read_text("utf-8", "replace").splitlines()
    except (FileNotFoundError, IsADirectoryError):
        return []
    cutoff = time.time() - REFLOG_GRACE
    out: dict[bytes, None] = {}
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) < 3 or not parts[2].isdigit() or int(parts[2]) < cutoff:
            continue
        for h in parts[:2]:
            if _HEX64.fullmatch(h) and h != "0" * 64:
                out[bytes.fromhex(h)] = None
    return list(out)


def reachable(repo: Any) -> Iterator[tuple[bytes, str]]:
    """Every object reachable from the refs, HEAD, the working state and merge state, once each.

    Raises CorruptObject (or MissingObject) when a reachable object cannot be read.
    """
    w = _Walker(repo, verify=False, lenient=False, structure=False)
    for oid, t, _data in w.run():
        yield oid, t


# --- fsck -------------------------------------------------------------------------------------


def fsck(repo: Any, progress: Progress | None = None) -> FsckReport:
    """Check the repository; every problem found is reported, none raised."""
    report = FsckReport()
    store = repo.store
    known_bad: dict[bytes, Problem] = {}
    total = 0
    if isinstance(store, DiskStore):
        try:
            store.refresh()
        except Exception as exc:
            report.problems.append(Problem(None, "index", f"packs cannot be opened: {_msg(exc)}", None))
        total += _scan_packs(repo, store, report)
        total += _scan_loose(repo, store, report, known_bad)
        _scan_locks(repo, report)
    elif callable(getattr(store, "check", None)):  # object storage (backends.s3): indexes and uploads
        try:
            problems, notes = store.check()
        except ExactError as exc:
            problems, notes = [f"packs cannot be listed: {exc.message}"], []
        report.problems.extend(Problem(None, "index", m, None) for m in problems)
        report.notes.extend(notes)
    w = _Walker(repo, verify=True, lenient=True, structure=True, progress=progress, total=total)
    w.known_bad = known_bad
    try:
        for _ in w.run():
            pass
    except Exception as exc:  # a bug, not corruption; still report rather than die mid-way
        report.problems.append(Problem(None, "unknown", f"fsck stopped early: {_msg(exc)}", None))
    report.problems.extend(w.problems)
    report.checked = w.count
    try:
        report.unreachable = sum(1 for oid in store.iter_ids() if oid not in w.seen)
    except Exception as exc:
        report.notes.append(f"stored objects could not be listed: {_msg(exc)}")
    return report


def _scan_packs(repo: Any, store: DiskStore, report: FsckReport) -> int:
    """Check every pack file and its index; returns the number of index entries."""
    total = 0
    pack_dir = store.pack_dir
    idx_files = sorted(pack_dir.glob("pack-*.idx"))
    stems = {p.stem for p in idx_files}
    for p in sorted(pack_dir.glob("pack-*.pack")):
        if p.stem not in stems:
            report.notes.append(f"{_rel(repo, p)} has no index (left by an interrupted write; gc removes it)")
    for p in sorted(pack_dir.iterdir()):
        if p.name.startswith("."):
            report.notes.append(f"temporary file {_rel(repo, p)} (left by an interrupted write)")
    for idx_path in idx_files:
        total += _scan_pack(repo, idx_path, idx_path.with_suffix(".pack"), report)
    return total


def _scan_pack(repo: Any, idx_path: Path, pack_path: Path, report: FsckReport) -> int:
    iname, pname = _rel(repo, idx_path), _rel(repo, pack_path)

    def bad(kind: str, msg: str, oid: bytes | None = None) -> None:
        report.problems.append(Problem(oid.hex() if oid is not None else None, kind, msg, None))

    try:
        idx = idx_path.read_bytes()
    except OSError as exc:
        bad("index", f"pack index {iname} cannot be read: {exc}")
        return 0
    if idx[:8] != IDX_MAGIC or len(idx) < 16 + _TRAILER:
        bad("index", f"pack index {iname} has a bad header")
        return 0
    (n,) = struct.unpack_from("<Q", idx, 8)
    ids_end = 16 + 32 * n
    if len(idx) != ids_end + 8 * n + _TRAILER:
        bad("index", f"pack index {iname} has {len(idx)} bytes, {ids_end + 8 * n + _TRAILER} expected for "
            f"{n} entries")
        return 0
    ids = np.frombuffer(idx, dtype="S32", count=n, offset=16)
    offsets = np.frombuffer(idx, dtype="<u8", count=n, offset=ids_end)
    idx_trailer = idx[-_TRAILER:]
    if n > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        i = int(np.argmin(ids[1:] > ids[:-1]))
        bad("index", f"pack index {iname}: object ids are not sorted (entry {i + 1}); lookups in this pack fail")
    try:
        size = pack_path.stat().st_size
    except FileNotFoundError:
        bad("pack", f"pack {pname} is missing (its index {iname} lists {n} objects)")
        return n
    with open(pack_path, "rb") as f:
        head = f.read(len(PACK_MAGIC))
        if head != PACK_MAGIC:
            bad("pack", f"pack {pname} has a bad header")
        if size < len(PACK_MAGIC) + _TRAILER:
            bad("pack", f"pack {pname} is truncated ({size} bytes)")
            return n
        # trailer: blake3 over everything before it
        h = blake3.blake3()
        f.seek(0)
        left = size - _TRAILER
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
        trailer = f.read(_TRAILER)
        digest = h.digest()
        if digest == trailer == idx_trailer:
            pass
        elif digest == idx_trailer:
            bad("pack", f"pack {pname}: its trailer is damaged (the contents still match the index's checksum)")
        elif digest == trailer:
            bad("index", f"pack index {iname} does not belong to {pname} (checksums differ)")
        else:
            bad("pack", f"pack {pname}: contents do not match its trailer hash (the pack is corrupt)")
        # entries: inside the pack, tiling it from the header to the trailer
        end_of_entries = size - _TRAILER
        ids_b = idx[16:ids_end]
        inside: list[tuple[int, bytes]] = []
        for j in np.argsort(offsets, kind="stable").tolist():
            off = int(offsets[j])
            oid = ids_b[32 * j : 32 * j + 32]
            if off < len(PACK_MAGIC) or off + _ENTRY_HEAD.size > end_of_entries:
                bad("index", f"pack index {iname}: entry of object {oid.hex()} points outside the pack "
                    f"(offset {off}, pack size {size})", oid)
            else:
                inside.append((off, oid))
        if inside and inside[0][0] != len(PACK_MAGIC):
            bad("pack", f"pack {pname}: bytes {len(PACK_MAGIC)}..{inside[0][0]} are not covered by any index entry")
        for k, (off, oid) in enumerate(inside):
            f.seek(off)
            code, depth, length = _ENTRY_HEAD.unpack(f.read(_ENTRY_HEAD.size))
            end = off + _ENTRY_HEAD.size + length
            nxt = inside[k + 1][0] if k + 1 < len(inside) else end_of_entries
            at = f"pack {pname}: entry of object {oid.hex()} at offset {off}"
            if end > end_of_entries:
                bad("pack", f"{at} runs past the end of the pack ({length} bytes declared)", oid)
            elif end != nxt:
                where = "the trailer" if k + 1 == len(inside) else "the next entry"
                bad("pack", f"{at} declares {length} bytes and so ends at {end}, but {where} starts at {nxt}", oid)
            if code & ~ZSTD not in CODE_TYPES:
                bad("pack", f"{at} has an unknown type code {code}", oid)
            if depth > MAX_DEPTH:
                bad("pack", f"{at} has delta depth {depth} (at most {MAX_DEPTH})", oid)
        if not n and end_of_entries != len(PACK_MAGIC):
            bad("pack", f"pack {pname}: holds data but its index lists no objects")
    return n


def _scan_loose(repo: Any, store: DiskStore, report: FsckReport, known_bad: dict[bytes, Problem]) -> int:
    n = 0
    for d in sorted(store.root.glob("[0-9a-f][0-9a-f]")):
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if f.name.startswith("."):
                report.notes.append(f"temporary file {_rel(repo, f)} (left by an interrupted write)")
                continue
            if len(f.name) != 62 or not _HEX64.fullmatch(d.name + f.name):
                report.notes.append(f"unexpected file {_rel(repo, f)}")
                continue
            n += 1
            oid = bytes.fromhex(d.name + f.name)
            h = oid.hex()
            where = f"loose file {_rel(repo, f)}"
            problem: Problem | None = None
            try:
                raw = zlib.decompress(f.read_bytes())
            except zlib.error:
                problem = Problem(h, "unknown", f"object {h}: {where} does not decompress")
            except OSError as exc:
                problem = Problem(h, "unknown", f"object {h}: {where} cannot be read: {exc}")
            else:
                t, sep, data = raw.partition(b"\0")
                tt = t.decode("ascii", "replace")
                if not sep or tt not in TYPES:
                    problem = Problem(h, "unknown", f"object {h}: {where} has no valid type header")
                elif codec.object_id(tt, data) != oid:
                    problem = Problem(h, tt, f"object {h}: {where} holds bytes that do not match its id")
                else:
                    try:
                        codec.unpack(data)
                    except CorruptObject:
                        problem = Problem(h, tt, f"object {h}: {where} does not decode")
            if problem is not None:
                report.problems.append(problem)
                known_bad[oid] = problem
    return n


def _scan_locks(repo: Any, report: FsckReport) -> None:
    d: Path | None = repo.exact_dir
    if d is None:
        return
    for p in sorted((d / "refs").rglob("*.lock")):
        try:
            age = time.time() - p.stat().st_mtime
        except OSError:
            continue  # released meanwhile
        report.notes.append(f"{_rel(repo, p)} exists ({age:.0f} s old): a ref update is running or was "
                            "interrupted")


# --- gc ---------------------------------------------------------------------------------------


def gc(repo: Any, progress: Progress | None = None, grace: float | None = None) -> GcReport:
    """Keep exactly the reachable objects, all of them whole in one new pack.

    ``grace``: on object storage, packs younger than this many seconds are kept (default: an hour).
    """
    store = repo.store
    if isinstance(store, MemoryStore):
        return _gc_memory(repo, store)
    if hasattr(store, "collect"):
        return _gc_remote(repo, store, progress, grace)
    if not isinstance(store, DiskStore):
        raise TypeError(f"gc does not support {type(store).__name__}")
    with repo.lock():
        start_ns = time.time_ns()
        cutoff = _fs_now(store.root, start_ns)
        store.refresh()
        old_packs = store.packs()
        loose_before = store.loose_ids()
        bytes_before = store.size_on_disk()
        before = sum(1 for _ in store.iter_ids())

        walker = _Walker(repo, verify=True, lenient=False, structure=False, progress=progress, total=before)

        def items() -> Iterator[Pending]:
            for oid, t, data in walker.run():
                yield Pending(oid, t, data)

        new_pack: Path | None = None
        try:
            stream = items()
            first = next(stream, None)
            if first is not None:
                new_pack = store.write_pack(_chain(first, stream), deltas=False)
        except BaseException:
            _remove_own_tmp_packs(store, start_ns)
            raise
        kept = walker.count
        if new_pack is not None:
            written = next((p for p in store.packs() if p.path == new_pack), None)
            if written is None or written.count != kept:
                raise CorruptObject(f"gc: the new pack {new_pack.name} does not hold the {kept} objects written; "
                                    "nothing was removed")
        if progress is not None:
            progress(before, before)
        # everything reachable is now in the new pack (complete, fsynced, indexed): drop the rest
        keep_paths = {new_pack} if new_pack is not None else set()
        dropping = [p for p in old_packs if p.path not in keep_paths]
        store.remove_packs(dropping)
        reach_loose = [o for o in loose_before if o in walker.seen]
        other_loose = [o for o in loose_before if o not in walker.seen]
        loose_removed = store.remove_loose(reach_loose, math.inf)  # copies of objects now in the pack
        loose_removed += store.remove_loose(other_loose, cutoff)  # unreachable, and older than gc
        _remove_stale_tmp(store, cutoff)
        cache_removed = _prune_cache(repo, walker.seen, cutoff)
        with store._cache_lock:
            store._cache.clear()
        store.refresh()
        after = sum(1 for _ in store.iter_ids())
        if after < kept:
            raise CorruptObject(f"gc: {kept} objects are reachable but only {after} remain stored")
        young = sum(1 for o in other_loose if (store.root / o.hex()[:2] / o.hex()[2:]).exists())
        return GcReport(
            kept=kept,
            dropped=max(before - kept - young, 0),
            bytes_before=bytes_before,
            bytes_after=store.size_on_disk(),
            packs_removed=len(dropping),
            loose_removed=loose_removed,
            cache_files_removed=cache_removed,
            pack=new_pack.name if new_pack is not None else None,
        )


def _chain(first: Pending, rest: Iterator[Pending]) -> Iterator[Pending]:
    yield first
    yield from rest


def _fs_now(root: Path, start_ns: int) -> float:
    """The file system's idea of "now": files written after this have a later or equal mtime.

    File times come from a coarse kernel clock that can lag ``time.time()`` by a few
    milliseconds; taking the earlier of the two keeps a file written just after gc
    started from looking older than gc.
    """
    marker = root / f".gc-{os.getpid()}-{start_ns:x}.tmp"
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        fs_time = marker.stat().st_mtime
        marker.unlink()
    except OSError:
        fs_time = start_ns / 1e9
    return min(fs_time, start_ns / 1e9)


def _remove_own_tmp_packs(store: DiskStore, start_ns: int) -> None:
    """After a failed gc: delete the temporary pack this process began (write_pack leaves it)."""
    pid = f"{os.getpid():x}"
    for p in store.pack_dir.glob(".pack-*.pack.tmp"):
        parts = p.name[len(".pack-") : -len(".pack.tmp")].split("-")
        if len(parts) == 2 and parts[1] == pid:
            with contextlib.suppress(ValueError, FileNotFoundError):
                if int(parts[0], 16) >= start_ns:
                    p.unlink()


def _remove_stale_tmp(store: DiskStore, cutoff: float) -> None:
    """Temporary files and index-less packs of writers that died long ago."""
    limit = cutoff - TMP_GRACE
    idx_stems = {p.stem for p in store.pack_dir.glob("pack-*.idx")}
    cands = [p for p in store.pack_dir.iterdir() if p.name.startswith(".")]
    cands += [p for p in store.pack_dir.glob("pack-*.pack") if p.stem not in idx_stems]
    for d in store.root.glob("[0-9a-f][0-9a-f]"):
        if d.is_dir():
            cands += [p for p in d.iterdir() if p.name.startswith(".")]
    cands += [p for p in store.root.glob(".gc-*.tmp")]
    for p in cands:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            if p.stat().st_mtime < limit:
                p.unlink()


def _prune_cache(repo: Any, seen: dict[bytes, str], cutoff: float) -> int:
    """Spatial indexes of trees nothing reaches any more."""
    d: Path | None = repo.exact_dir
    if d is None:
        return 0
    cache = d / "cache" / "rtree"
    if not cache.is_dir():
        return 0
    n = 0
    for p in cache.iterdir():
        name = p.name
        tmp = name.startswith(".")
        stem = name.lstrip(".")[:64]
        if not _HEX64.fullmatch(stem):
            continue
        oid = bytes.fromhex(stem)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            if tmp:
                # an index being built by a running query is recent; old ones are leftovers
                if p.stat().st_mtime < cutoff - TMP_GRACE:
                    p.unlink()
                    n += 1
            elif seen.get(oid) != "node":
                p.unlink()
                n += 1
    return n


def _gc_remote(repo: Any, store: Any, progress: Progress | None, grace: float | None) -> GcReport:
    """gc on object storage (``backends.s3``): one new pack of the reachable objects; older packs go."""
    with repo.lock():
        store.refresh()
        before = sum(1 for _ in store.iter_ids())
        bytes_before = store.size_on_disk()
        walker = _Walker(repo, verify=True, lenient=False, structure=False, progress=progress, total=before)
        items = (Pending(oid, t, data) for oid, t, data in walker.run())
        kw = {} if grace is None else {"grace": grace}
        name, removed, kept = store.collect(items, **kw)
        after = sum(1 for _ in store.iter_ids())
        if after < kept:
            raise CorruptObject(f"gc: {kept} objects are reachable but only {after} remain stored")
        return GcReport(kept=kept, dropped=max(before - after, 0), bytes_before=bytes_before,
                        bytes_after=store.size_on_disk(), packs_removed=removed, loose_removed=0,
                        cache_files_removed=0, pack=name)


def _gc_memory(repo: Any, store: MemoryStore) -> GcReport:
    keep = {oid for oid, _t in reachable(repo)}
    ids = list(store.iter_ids())
    drop = [o for o in ids if o not in keep]
    store.delete(drop)
    return GcReport(kept=len(ids) - len(drop), dropped=len(drop), bytes_before=0, bytes_after=0,
                    packs_removed=0, loose_removed=0, cache_files_removed=0, pack=None)


__all__ = ["FsckReport", "GcReport", "Problem", "Progress", "fsck", "gc", "reachable"]
