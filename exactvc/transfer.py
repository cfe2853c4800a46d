"""Moving objects between repositories: what to send, the framed stream, and verified receiving.

Stream format (see docs/protocol.md)::

    "EXSTRM1\\n"
    frame*        type code (u8) | id (32 bytes) | length (u32 LE) | zlib(data)
    end frame     type code 0 | count of frames (u32 LE)
    trailer       blake3 of everything before it (32 bytes)

The receiver checks every frame (id = hash of its bytes, the bytes decode as
their type), then that every object referenced by a received object is either
in the stream or already stored, and only then writes them (one pack) — refs
are moved afterwards by the caller, with compare-and-swap.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import blake3

from . import codec, tree
from .errors import ExactError, InvalidInput
from .objects import Commit, Snapshot, Tag, references
from .store import CODE_TYPES, TYPE_CODES, Pending

if TYPE_CHECKING:
    from .repo import Repository

MAGIC = b"EXSTRM1\n"
EXPERIMENT_REFS = {"runs": "run", "runtags": "run", "artefacts": "artefact"}  # ref folder -> object type
MAX_OBJECT = 16 * 1024 * 1024


class BadStream(InvalidInput):
    kind = "bad_stream"


class MissingReference(BadStream):
    """A received object references one that is neither in the stream nor stored."""

    kind = "missing_reference"


# --- what to send -------------------------------------------------------------------------------------


def commits_to_send(repo: Repository, wants: Iterable[bytes], haves: Iterable[bytes]) -> list[bytes]:
    """Commits reachable from ``wants`` but not from ``haves`` (haves the receiver really has), oldest first."""
    from .graph import only_in

    have = [h for h in haves if repo.store.has(h)]
    return list(reversed(only_in(repo, list(wants), have)))


def _kind(repo: Repository, oid: bytes) -> str | None:
    try:
        return repo.store.get(oid)[0]
    except ExactError:
        return None


def _old_covering(repo: Repository, old: bytes, level: int, lo: bytes | None, hi: bytes | None) -> list[bytes]:
    """Nodes of tree ``old`` at ``level`` whose key ranges overlap (lo, hi] (None: unbounded)."""
    root = tree.load(repo.store, old)
    if root.level < level:
        return []
    frontier: list[tuple[bytes, bytes | None]] = [(old, None)]  # (node id, lower bound of its range)
    cur_level = root.level
    while cur_level > level:
        nxt: list[tuple[bytes, bytes | None]] = []
        for oid, lower in frontier:
            n = tree.load(repo.store, oid)
            prev = lower
            for k, v in zip(n.keys, n.values, strict=True):
                if (lo is None or k > lo) and (hi is None or prev is None or prev < hi):
                    nxt.append((v[0], prev))
                prev = k
        frontier = nxt
        cur_level -= 1
    return [oid for oid, _ in frontier]


def _new_nodes(repo: Repository, old: bytes | None, new: bytes | None) -> Iterator[tuple[bytes, bytes | None]]:
    """Nodes and blobs of tree ``new`` that tree ``old`` lacks, each with the old node covering the same
    keys (a delta base the receiver has). Walks ``new`` top-down and, for each node, only the old nodes
    over the same key range: subtrees found unchanged are skipped, so the cost follows the change."""
    if new is None or old == new:
        return
    stack: list[tuple[bytes, bytes | None, bytes | None]] = [(new, None, None)]
    while stack:
        oid, lo, hi = stack.pop()
        n = tree.load(repo.store, oid)
        olds = _old_covering(repo, old, n.level, lo, hi) if old is not None else []
        if oid in olds:
            continue  # the receiver has this whole subtree
        base = None
        if olds:
            first = n.keys[0]
            base = olds[0]
            for o in olds:  # the old node holding our first key, if any
                if tree.load(repo.store, o).keys[-1] >= first:
                    base = o
                    break
        yield oid, base
        if n.level == 0:
            for _k, g in tree.split_geometries(n):
                yield g, None
            continue
        # children the old tree has at the same level over the same keys are skipped without a read
        known = set(_old_covering(repo, old, n.level - 1, lo, hi)) if old is not None else set()
        prev = lo
        for k, v in zip(n.keys, n.values, strict=True):
            if v[0] not in known:
                stack.append((v[0], prev, k))
            prev = k


def objects_to_send(repo: Repository, wants: Iterable[bytes], haves: Iterable[bytes]) -> Iterator[bytes]:
    """Every object the receiver needs for ``wants``, given it has ``haves`` (and all they reach)."""
    for oid, _base in objects_with_bases(repo, wants, haves):
        yield oid


def objects_with_bases(
    repo: Repository, wants: Iterable[bytes], haves: Iterable[bytes], known: Iterable[bytes] = ()
) -> Iterator[tuple[bytes, bytes | None]]:
    """Like :func:`objects_to_send`, each with an object the receiver has that it may be sent as a delta of.

    A want may also be a run or an artefact (docs/format.md §10): it travels with the artefacts and chunks
    it references (except those in ``known``, which the receiver has) and its labels commit."""
    haves = [h for h in haves if _kind(repo, h) == "commit"]
    wanted: list[bytes] = []
    extras: list[bytes] = []
    for w in wants:  # annotated tags travel as themselves, their commits as commits
        while _kind(repo, w) == "tag":
            yield w, None
            w = Tag.from_body(codec.unpack(repo.store.get_typed(w, "tag"))).target
        k = _kind(repo, w)
        if k in ("run", "artefact"):
            extras.append(w)
            wanted.extend(c for t, c in references(k, codec.unpack(repo.store.get_typed(w, k)))
                          if t == "commit" and repo.store.has(c))
            continue
        if k != "commit":
            raise InvalidInput(f"{w.hex()} is not a commit, tag, run or artefact")
        wanted.append(w)
    yield from _experiment_objects(repo, extras, set(known))
    commits = commits_to_send(repo, wanted, haves)
    sent: set[bytes] = set()
    base_snaps = [repo.snapshot_object(repo.commit_object(h).root) for h in haves]
    for c in commits:
        co = repo.commit_object(c)
        yield c, None
        if co.root in sent:
            continue
        sent.add(co.root)
        yield co.root, None
        snap = repo.snapshot_object(co.root)
        parent_snaps = [repo.snapshot_object(repo.commit_object(p).root) for p in co.parents
                        if repo.store.has(p)]
        refs = parent_snaps + base_snaps
        if snap.labels is not None and snap.labels not in sent and all(s.labels != snap.labels for s in refs):
            sent.add(snap.labels)
            yield snap.labels, None
        for name, e in snap.images.items():
            if e.record not in sent and all(s.images.get(name, None) is None or
                                            s.images[name].record != e.record for s in refs):
                sent.add(e.record)
                yield e.record, None
            old = None
            for s in refs:  # the parent first: its tree is the closest to this one
                pe = s.images.get(name)
                if pe is not None and pe.tree is not None:
                    if old is None:
                        old = pe.tree
                    if pe.tree == e.tree:
                        old = pe.tree
                        break
            for oid, base in _new_nodes(repo, old, e.tree):
                if oid not in sent:
                    sent.add(oid)
                    yield oid, base


def _experiment_objects(repo: Repository, wants: list[bytes], known: set[bytes]
                        ) -> Iterator[tuple[bytes, bytes | None]]:
    """Runs and artefacts with what they reference (commits aside), each once, skipping ``known``."""
    stack = list(reversed(wants))
    while stack:
        oid = stack.pop()
        if oid in known:
            continue
        known.add(oid)
        t = _kind(repo, oid)
        yield oid, None
        if t in ("run", "artefact"):
            for rt, r in reversed(references(t, codec.unpack(repo.store.get_typed(oid, t)))):
                if rt != "commit" and r not in known:
                    stack.append(r)


# --- the stream ---------------------------------------------------------------------------------------


DELTA = 0xFF


def write_stream(repo: Repository, oids: Iterable[bytes | tuple[bytes, bytes | None]], out: IO[bytes],
                 progress: Callable[[int], None] | None = None) -> int:
    """Write a stream of the objects; an item ``(id, base)`` may go as a delta against ``base``
    (an object the receiver is known to have) when that is smaller."""
    from .delta import delta_size, make_delta

    h = blake3.blake3()
    h.update(MAGIC)
    out.write(MAGIC)
    n = 0
    for item in oids:
        oid, base = item if isinstance(item, tuple) else (item, None)
        t, data = repo.store.get_uncached(oid)
        frame = None
        if base is not None:
            bt, bdata = repo.store.get(base)
            if bt == t:
                ops = make_delta(bdata, data)
                if delta_size(ops) < len(data) // 2:
                    z = zlib.compress(bytes([TYPE_CODES[t]]) + base + codec.pack(ops), 6)
                    frame = struct.pack("<B32sI", DELTA, oid, len(z)) + z
        if frame is None:
            z = zlib.compress(data, 6)
            frame = struct.pack("<B32sI", TYPE_CODES[t], oid, len(z)) + z
        out.write(frame)
        h.update(frame)
        n += 1
        if progress is not None:
            progress(n)
    end = struct.pack("<BI", 0, n)
    out.write(end)
    h.update(end)
    out.write(h.digest())
    return n


def stream_bytes(repo: Repository, oids: Iterable[bytes | tuple[bytes, bytes | None]]) -> bytes:
    import io

    buf = io.BytesIO()
    write_stream(repo, oids, buf)
    return buf.getvalue()


def _refs_of(t: str, body: Any) -> list[bytes]:
    if t == "commit":
        c = Commit.from_body(body)
        return [c.root, *c.parents]
    if t == "tag":
        return [Tag.from_body(body).target]
    if t == "snapshot":
        return [oid for _, oid in Snapshot.from_body(body).references()]
    return [oid for _, oid in references(t, body)]


@dataclass
class Received:
    objects: int
    new: int
    types: dict[str, int]


def read_stream(repo: Repository, data: IO[bytes], max_bytes: int = 1 << 34) -> list[Pending]:
    """Parse and verify a stream; returns the objects (nothing is written)."""
    h = blake3.blake3()
    total = 0

    def take(n: int) -> bytes:
        nonlocal total
        b = data.read(n)
        while len(b) < n:  # network streams may return less than asked
            more = data.read(n - len(b))
            if not more:
                raise BadStream("truncated object stream")
            b += more
        total += n
        if total > max_bytes:
            raise BadStream("object stream too large")
        return b

    if take(len(MAGIC)) != MAGIC:
        raise BadStream("not an exactvc object stream")
    h.update(MAGIC)
    items: list[Pending] = []
    received: dict[bytes, Pending] = {}  # a delta may name any earlier frame as its base
    while True:
        code_b = take(1)
        h.update(code_b)
        if code_b == b"\0":
            rest = take(4)
            h.update(rest)
            (count,) = struct.unpack("<I", rest)
            if count != len(items):
                raise BadStream(f"stream says {count} objects, carried {len(items)}")
            break
        head = take(36)
        h.update(head)
        oid, length = struct.unpack("<32sI", head)
        t = CODE_TYPES.get(code_b[0]) if code_b[0] != DELTA else "delta"
        if t is None:
            raise BadStream(f"unknown object type code {code_b[0]}")
        if length > MAX_OBJECT:
            raise BadStream(f"object {oid.hex()} is too large ({length} bytes)")
        z = take(length)
        h.update(z)
        try:
            raw = zlib.decompress(z)
        except zlib.error:
            raise BadStream(f"object {oid.hex()} does not decompress") from None
        if t == "delta":
            t, raw = _undelta(repo, oid, raw, received)
        if codec.object_id(t, raw) != oid:
            raise BadStream(f"object {oid.hex()}: bytes do not match its id")
        p = Pending(oid, t, raw)
        items.append(p)
        received[oid] = p
    if take(32) != h.digest():
        raise BadStream("stream checksum mismatch")
    return items


def _undelta(repo: Repository, oid: bytes, raw: bytes, recent: dict[bytes, Pending]) -> tuple[str, bytes]:
    from .delta import apply_delta

    if len(raw) < 33 or raw[0] not in CODE_TYPES:
        raise BadStream(f"object {oid.hex()}: malformed delta")
    t = CODE_TYPES[raw[0]]
    base = raw[1:33]
    if base in recent:
        bdata = recent[base].data
    else:
        try:
            _bt, bdata = repo.store.get(base)
        except ExactError:
            raise BadStream(f"object {oid.hex()}: delta base {base.hex()} is not here") from None
    try:
        ops = codec.unpack(raw[33:])
        return t, apply_delta(bdata, ops)
    except (ExactError, ValueError, TypeError):
        raise BadStream(f"object {oid.hex()}: delta does not apply") from None


def verify_closure(repo: Repository, items: list[Pending]) -> None:
    """Every object referenced by a received one must be received too or already stored."""
    have = {p.oid for p in items}
    for p in items:
        try:
            if p.type == "node":
                refs = tree.node_references(tree.decode_node(p.data, p.oid))
            else:
                refs = _refs_of(p.type, codec.unpack(p.data))
        except ExactError as exc:
            raise BadStream(f"object {p.oid.hex()} ({p.type}) does not decode: {exc}") from None
        except (KeyError, TypeError, ValueError, IndexError):
            raise BadStream(f"object {p.oid.hex()} ({p.type}) is malformed") from None
        for r in refs:
            if not isinstance(r, bytes) or len(r) != 32:
                raise BadStream(f"object {p.oid.hex()} has a malformed reference")
            # a commit may build only on commits and snapshots the receiver's caller may read (in a
            # blind-mode view, not on another annotator's work whose id they learned)
            if r not in have and (not repo.store.has_now(r) or p.type == "commit" and not repo.readable(r)):
                raise MissingReference(f"object {p.oid.hex()} ({p.type}) references {r.hex()}, "
                                "which is neither sent nor stored")


def receive(repo: Repository, data: IO[bytes], max_bytes: int = 1 << 34) -> Received:
    """Read, verify and store a stream (one pack). Refs are not touched."""
    items = read_stream(repo, data, max_bytes)
    verify_closure(repo, items)
    types: dict[str, int] = {}
    for p in items:
        types[p.type] = types.get(p.type, 0) + 1
    new = [p for p in items if not repo.store.has(p.oid)]
    if new:
        repo.store.write(new)
    return Received(len(items), len(new), types)


# --- ref updates -------------------------------------------------------------------------------------


@dataclass
class RefUpdate:
    ref: str
    old: bytes | None
    new: bytes | None
    force: bool = False

    @classmethod
    def from_json(cls, d: Any) -> RefUpdate:
        from .refs import check_ref_name

        if not isinstance(d, dict) or not isinstance(d.get("ref"), str):
            raise InvalidInput("ref update must be an object with 'ref', 'old', 'new'")
        check_ref_name(d["ref"])
        force = d.get("force", False)
        if not isinstance(force, bool):
            raise InvalidInput(f"force must be true or false, not {force!r}")
        return cls(d["ref"], _opt_hex(d.get("old")), _opt_hex(d.get("new")), force)

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "old": self.old.hex() if self.old else None,
                "new": self.new.hex() if self.new else None, "force": self.force}


def _opt_hex(v: Any) -> bytes | None:
    if v is None:
        return None
    if not isinstance(v, str) or len(v) != 64:
        raise InvalidInput(f"not an object id: {v!r}")
    try:
        return bytes.fromhex(v)
    except ValueError:
        raise InvalidInput(f"not an object id: {v!r}") from None


@dataclass(frozen=True)
class Refusal:
    """Why one ref update of a push is refused: an error type of docs/api.md, its status, a message."""

    kind: str
    status: int
    message: str


def check_update(repo: Repository, u: RefUpdate) -> Refusal | None:
    """Why ``u`` cannot be applied (None if it can): a missing or wrong-type target, a ref name that
    collides with existing refs, or not a fast-forward."""
    from .graph import is_ancestor

    if u.new is not None:
        if not repo.store.has_now(u.new):
            return Refusal("missing_reference", 422, f"{u.new.hex()[:12]} is neither sent nor stored")
        t, _ = repo.store.get(u.new)
        if u.ref.startswith("heads/") and t != "commit":
            return Refusal("invalid_object", 422, f"{u.ref} must point at a commit, not a {t}")
        want = EXPERIMENT_REFS.get(u.ref.split("/", 1)[0])
        if want is not None:
            if t != want:
                return Refusal("invalid_object", 422, f"{u.ref} must point at a {want}, not a {t}")
        elif t not in ("commit", "tag"):
            return Refusal("invalid_object", 422, f"{u.ref} must point at a commit or a tag, not a {t}")
    clash = _name_clash(repo, u.ref)
    if clash is not None:
        return Refusal("ref_name_conflict", 409, f"{u.ref} conflicts with the existing ref {clash}")
    cur = repo.refs.read(u.ref)
    if cur == u.new:
        return None  # already there: a re-sent push is harmless
    if cur != u.old and not u.force:
        return Refusal("non_fast_forward", 409,
                       f"{u.ref} is at {cur.hex()[:12] if cur else 'nothing'}, not "
                       f"{u.old.hex()[:12] if u.old else 'nothing'}: fetch and merge first (non-fast-forward)")
    if u.new is not None and cur is not None and not u.force and u.ref.startswith("heads/"):
        if not is_ancestor(repo, cur, u.new):
            return Refusal("non_fast_forward", 409,
                           f"{u.ref}: {u.new.hex()[:12]} does not contain {cur.hex()[:12]} (non-fast-forward)")
    return None


def _name_clash(repo: Repository, ref: str) -> str | None:
    """An existing ref that ``ref`` cannot live beside (``heads/a`` and ``heads/a/b`` are one file and one
    folder of the same name)."""
    existing = repo.refs.list()
    if ref in existing:
        return None
    parts = ref.split("/")
    for i in range(1, len(parts)):
        if "/".join(parts[:i]) in existing:
            return "/".join(parts[:i])
    prefix = ref + "/"
    for name in existing:
        if name.startswith(prefix):
            return name
    return None


def apply_updates(repo: Repository, updates: list[RefUpdate], who: str, message: str) -> None:
    """Move several refs together or none (RefConflict): ``RefStore.cas_many``, one transaction where
    the ref backend has them (forced updates swap from whatever is there now)."""
    moves = [(u.ref, repo.refs.read(u.ref) if u.force else u.old, u.new) for u in updates]
    if len(moves) == 1:
        repo.refs.cas(*moves[0], who, message)
    elif moves:
        repo.refs.cas_many(moves, who, message)


def apply_update(repo: Repository, u: RefUpdate, who: str, message: str) -> None:
    """Move one ref by compare-and-swap (forced updates swap from whatever is there now)."""
    cur = repo.refs.read(u.ref)
    expected = cur if u.force else u.old
    repo.refs.cas(u.ref, expected, u.new, who, message)
