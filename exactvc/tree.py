"""Per-image annotation trees: history-independent prolly trees keyed by annotation id.

A tree is a sequence of entries sorted by 16-byte key, cut into nodes:

* level 0 (leaves): entries ``[key, record]``;
* level L > 0: entries ``[last_key, child_id, count]``, one per level-(L-1) node.

Where a node ends is decided by the content alone, so the same set of
annotations gives the same nodes (and the same root id) whatever order it was
built in. A node at level L ends after an entry whose key hash ``h`` has its
low ``BITS * (L + 1)`` bits all zero (boundaries nest: a level-L boundary is a
boundary at every lower level), or once it reaches ``MAX_NODE`` bytes (counted
from the node's first entry). Each level averages ``2**BITS`` entries a node.

An edit of k keys rewrites only the nodes that hold them and their ancestors,
re-cutting from the start of the first touched node until the new cut points
meet the old ones again: O(k log n) new nodes.
"""

from __future__ import annotations

import functools
import operator
import struct
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate
from typing import Any

from . import codec
from .errors import CorruptObject
from .store import ObjectStore, Pending

BITS = 5
MAX_NODE = 32 * 1024
INLINE_GEOMETRY = 2048  # geometries encoding to more bytes go to their own blob object
_HIGH_KEY = b"\xff" * 17  # sorts after every 16-byte key


ENTRY_OVERHEAD = 20  # bytes an entry counts for, besides its record or child id (see entry_size)


def entry_size(raw: bytes) -> int:
    """What an entry adds to a node's size for the MAX_NODE cut (docs/format.md §4.2)."""
    return len(raw) + ENTRY_OVERHEAD


def node_bytes(level: int, keys: Sequence[bytes], raws: Sequence[bytes], counts: Sequence[int]) -> bytes:
    """Canonical msgpack of a node (docs/format.md §4.1).

    Leaf: ``[0, keys, lengths, records]``; level L > 0: ``[L, keys, child ids, counts]``.
    ``raws`` are the encoded records (leaf) or the child ids; ``counts`` matter for L > 0 only.
    """
    if level == 0:
        lengths = struct.pack(f"<{len(raws)}I", *map(len, raws))
        return codec.pack([0, b"".join(keys), lengths, b"".join(raws)])
    return codec.pack([level, b"".join(keys), b"".join(raws), list(counts)])


def is_boundary(key: bytes, level: int) -> bool:
    return codec.key_hash(key) & ((1 << (BITS * (level + 1))) - 1) == 0


class Node:
    """A decoded node. Leaf records stay encoded until asked for (``value(i)``): a cached leaf
    is a few bytes objects, not thousands of dicts and lists for the garbage collector to walk.
    ``keys`` and ``raw`` are tuples of bytes: the collector stops tracking such a tuple the first time it
    sees one, so a full cache of leaves costs a collection nothing (as lists, a million keys and records
    were walked by every full collection: ~80 ms in a server that had counted a 1M slide's labels)."""

    __slots__ = ("level", "keys", "raw", "_values")

    def __init__(self, level: int, keys: Sequence[bytes], raw: Sequence[bytes],
                 values: list[Any] | None = None) -> None:
        self.level = level
        self.keys = keys
        self.raw = raw  # encoded entries
        self._values = values  # internal nodes: [child_id, count]; leaves: decoded on demand

    def value(self, i: int) -> Any:
        if self._values is not None:
            return self._values[i]
        return node_record(self.raw[i])

    @property
    def values(self) -> list[Any]:
        """All values (leaf records decoded fresh each time for leaves)."""
        if self._values is not None:
            return self._values
        return [node_record(r) for r in self.raw]

    def count_of(self, i: int) -> int:
        """Annotations under entry ``i``."""
        return 1 if self._values is None else int(self._values[i][1])

    @property
    def count(self) -> int:
        if self.level == 0:
            return len(self.keys)
        return sum(v[1] for v in self.values)


def node_references(node: Node) -> list[bytes]:
    """Ids a node refers to: its children, or the split-out geometries of its records."""
    if node.level > 0:
        return list(node.raw)
    return [g for _k, g in split_geometries(node)]


def split_geometries(leaf: Node) -> Iterator[tuple[bytes, bytes]]:
    """``(key, blob id)`` of the leaf's records whose geometry is a blob of its own (``split_record``)."""
    for k, r in zip(leaf.keys, leaf.raw, strict=True):
        if b"\xa1G" in r:  # the key "G" in msgpack: only records holding it can refer to a blob
            g = node_record(r).get("G")
            if g is not None:
                yield k, g


def node_record(raw: bytes) -> dict[str, Any]:
    """A leaf's encoded record, decoded."""
    rec = codec.unpack(raw)
    if not isinstance(rec, dict):
        raise CorruptObject("tree leaf record is not a map")
    return rec


class NodeCache:
    def __init__(self, size: int = 4096) -> None:
        self._d: OrderedDict[bytes, Node] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, oid: bytes) -> Node | None:
        with self._lock:
            n = self._d.get(oid)
            if n is not None:
                self._d.move_to_end(oid)
            return n

    def clear(self) -> None:
        with self._lock:
            self._d.clear()

    def put(self, oid: bytes, node: Node) -> None:
        with self._lock:
            self._d[oid] = node
            if len(self._d) > self.size:
                self._d.popitem(last=False)


def _cache(store: ObjectStore) -> NodeCache:
    c = getattr(store, "_node_cache", None)
    if c is None:
        c = NodeCache()
        store._node_cache = c  # type: ignore[attr-defined]
    return c


@functools.lru_cache(maxsize=1024)
def _split(size: int, n: int) -> struct.Struct:
    """Cuts ``n * size`` bytes into n pieces."""
    return struct.Struct(f"{size}s" * n)


def decode_node(data: bytes, oid: bytes | None = None) -> Node:
    """A node's keys and its encoded records (leaf) or child ids and counts, with its shape checked."""
    where = oid.hex() if oid else "node"
    try:
        body = codec.unpack(data)
        level, kb, second, third = body
        if type(level) is not int or level < 0 or type(kb) is not bytes or len(kb) % 16 or type(second) is not bytes:
            raise ValueError
        n = len(kb) // 16
        keys = _split(16, n).unpack(kb)
        values: list[Any] | None = None
        if level == 0:
            if type(third) is not bytes or len(second) != 4 * n:
                raise ValueError
            lengths = struct.unpack(f"<{n}I", second)
            if n and (min(lengths) == 0 or sum(lengths) != len(third)):
                raise ValueError  # every record non-empty, filling the records exactly
            ends = list(accumulate(lengths))
            raw = tuple(third[a:b] for a, b in zip([0, *ends], ends, strict=False))
        else:
            if type(third) is not list or len(second) != 32 * n or len(third) != n:
                raise ValueError
            if n and (set(map(type, third)) != {int} or min(third) < 0):
                raise ValueError
            raw = _split(32, n).unpack(second)
            values = list(zip(raw, third, strict=True))
    except CorruptObject:
        raise CorruptObject(f"tree node {where} is malformed") from None
    except (ValueError, TypeError, struct.error):
        raise CorruptObject(f"tree node {where} is malformed") from None
    if not all(map(operator.lt, keys, keys[1:])):
        raise CorruptObject(f"tree node {where} has keys out of order")
    return Node(level, keys, raw, values)


def remember(store: ObjectStore, written: Iterable[Pending]) -> None:
    """Keep nodes just written at hand: their bytes (the next edit deltas against them) and, for
    nodes above the leaves (which the next edit most likely reads again), their decoded form."""
    cache = _cache(store)
    for p in written:
        if p.type == "node":
            store.remember(p.oid, "node", p.data)
            if p.data[1:2] != b"\x00":  # level > 0 (the level is a positive fixint after the array header)
                cache.put(p.oid, decode_node(p.data, p.oid))


def load(store: ObjectStore, oid: bytes) -> Node:
    cache = _cache(store)
    n = cache.get(oid)
    if n is None:
        n = decode_node(store.get_typed(oid, "node"), oid)
        cache.put(oid, n)
    return n


# --- records ------------------------------------------------------------------------


def encode_record(record: dict[str, Any]) -> bytes:
    """A canonical record as a leaf stores it (the form ``apply`` and ``build`` take)."""
    return codec.pack(record)


def split_record(record: dict[str, Any], blobs: list[Pending]) -> dict[str, Any]:
    """Move a large geometry into a blob object; the record keeps its id and bounds."""
    g = record.get("g")
    if g is None or _small(record["k"], g[1]):
        return record
    gb = codec.pack(g)
    if len(gb) <= INLINE_GEOMETRY:
        return record
    from .geometry import bounds

    data = codec.pack(g)
    oid = codec.object_id("blob", data)
    blobs.append(Pending(oid, "blob", data))
    out = {k: v for k, v in record.items() if k != "g"}
    out["G"] = oid
    out["b"] = codec.canonicalize(list(bounds(record["k"], g)))
    return dict(sorted(out.items()))


def _small(kind: str, payload: list[Any]) -> bool:
    """Cheap check that a geometry payload surely encodes under INLINE_GEOMETRY bytes (9 bytes a number at most)."""
    if kind == "polygon":
        n = sum(map(len, payload))
    elif kind == "multipolygon":
        n = sum(len(r) for p in payload for r in p)
    else:
        n = len(payload)
    return n * 9 + 64 < INLINE_GEOMETRY


def join_record(store: ObjectStore, record: dict[str, Any]) -> dict[str, Any]:
    """The record with its geometry inline (fetching a split-out blob)."""
    if "G" not in record:
        return record
    g = codec.unpack(store.get_typed(record["G"], "blob"))
    out = {k: v for k, v in record.items() if k not in ("G", "b")}
    out["g"] = g
    return dict(sorted(out.items()))


# --- building -------------------------------------------------------------------------


class _Chunker:
    """Cuts a stream of level-L entries into nodes, writing them out."""

    def __init__(self, level: int, out: list[Pending]) -> None:
        self.level = level
        self.out = out
        self.keys: list[bytes] = []
        self.raw: list[bytes] = []
        self.cnts: list[int] = []  # per entry (levels above 0)
        self.counts = 0
        self.size = 0
        self.made: list[tuple[bytes, bytes, int]] = []  # (last key, node id, count)
        self.bases: list[tuple[bytes, bytes]] = []  # old nodes to delta against, in order

    def add(self, key: bytes, raw: bytes, count: int) -> None:
        if self._push(key, raw, count) or is_boundary(key, self.level):
            self.close()

    def _push(self, key: bytes, raw: bytes, count: int) -> bool:
        """Append an entry; whether the node has reached MAX_NODE."""
        self.keys.append(key)
        self.raw.append(raw)
        self.cnts.append(count)
        self.counts += count
        self.size += len(raw) + ENTRY_OVERHEAD
        return self.size >= MAX_NODE

    def add_old(self, node: Node, i: int, j: int) -> None:
        """Add entries ``i:j`` of an existing node of this level. Only a node's last entry can be a
        hash boundary (the node would have ended at any other), so the others are not hashed."""
        nk = len(node.keys)
        inner = min(j, nk - 1)
        if i < inner:
            raws = node.raw[i:inner]
            size = self.size + sum(map(len, raws)) + ENTRY_OVERHEAD * (inner - i)
            if size < MAX_NODE:
                self.keys += node.keys[i:inner]
                self.raw += raws
                self.size = size
                vals = node._values
                if vals is None:
                    self.cnts += [1] * (inner - i)
                    self.counts += inner - i
                else:
                    cs = [v[1] for v in vals[i:inner]]
                    self.cnts += cs
                    self.counts += sum(cs)
            else:
                for k in range(i, inner):
                    if self._push(node.keys[k], node.raw[k], node.count_of(k)):
                        self.close()
        if j == nk and nk:
            self.add(node.keys[nk - 1], node.raw[nk - 1], node.count_of(nk - 1))

    @property
    def open(self) -> bool:
        return bool(self.keys)

    def close(self) -> None:
        if not self.keys:
            return
        data = node_bytes(self.level, self.keys, self.raw, self.cnts)
        oid = codec.object_id("node", data)
        i = len(self.made)
        base = self.bases[i] if i < len(self.bases) else None
        if base is not None and base[0] != oid:
            self.out.append(Pending(oid, "node", data, base[0], base[1]))
        else:
            self.out.append(Pending(oid, "node", data))
        self.made.append((self.keys[-1], oid, self.counts))
        self.keys, self.raw, self.cnts, self.counts, self.size = [], [], [], 0, 0


def _build_up(level: int, nodes: list[tuple[bytes, bytes, int]], out: list[Pending]) -> bytes | None:
    """Build levels above ``nodes`` (level ``level - 1`` nodes) until one node remains."""
    while len(nodes) > 1:
        ch = _Chunker(level, out)
        for k, oid, cnt in nodes:
            ch.add(k, oid, cnt)
        ch.close()
        nodes = ch.made
        level += 1
    return nodes[0][1] if nodes else None


def build(entries: Iterable[tuple[bytes, bytes]], out: list[Pending]) -> bytes | None:
    """Root id of the tree holding ``entries`` (sorted ``(key, encoded record)`` pairs)."""
    ch = _Chunker(0, out)
    for k, raw in entries:
        ch.add(k, raw, 1)
    ch.close()
    return _build_up(1, ch.made, out)


# --- reading --------------------------------------------------------------------------


def height(store: ObjectStore, root: bytes | None) -> int:
    return -1 if root is None else load(store, root).level


def count(store: ObjectStore, root: bytes | None) -> int:
    return 0 if root is None else load(store, root).count


def count_from(store: ObjectStore, root: bytes | None, written: list[Pending]) -> int:
    """``count`` of a root that may still be among ``written`` (not yet in the store)."""
    if root is None:
        return 0
    for p in reversed(written):  # the root is written last
        if p.oid == root:
            return decode_node(p.data, root).count
    return load(store, root).count


def get(store: ObjectStore, root: bytes | None, key: bytes) -> dict[str, Any] | None:
    if root is None:
        return None
    node = load(store, root)
    while node.level > 0:
        i = _child_index(node, key)
        node = load(store, node.values[i][0])
    i = bisect_left(node.keys, key)
    if i < len(node.keys) and node.keys[i] == key:
        rec: dict[str, Any] = node.value(i)
        return rec
    return None


def _child_index(node: Node, key: bytes) -> int:
    i = bisect_left(node.keys, key)
    return min(i, len(node.keys) - 1)


def items(store: ObjectStore, root: bytes | None, start: bytes | None = None) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Every ``(key, record)`` in key order, from ``start`` on."""
    if root is None:
        return
    yield from _items(store, load(store, root), start)


def _items(store: ObjectStore, node: Node, start: bytes | None) -> Iterator[tuple[bytes, dict[str, Any]]]:
    i0 = 0 if start is None else bisect_left(node.keys, start)
    if node.level == 0:
        for i in range(i0, len(node.keys)):
            yield node.keys[i], node.value(i)
        return
    for i in range(min(i0, len(node.keys) - 1) if start is not None else 0, len(node.keys)):
        yield from _items(store, load(store, node.values[i][0]), start)
        start = None


def iter_nodes(store: ObjectStore, root: bytes | None) -> Iterator[tuple[bytes, Node]]:
    if root is None:
        return
    stack = [root]
    while stack:
        oid = stack.pop()
        node = load(store, oid)
        yield oid, node
        if node.level > 0:
            stack.extend(v[0] for v in reversed(node.values))


# --- editing --------------------------------------------------------------------------


class _LevelCursor:
    """Walks the level-``level`` nodes of a tree in key order (as ``(last key, id, count)``)."""

    def __init__(self, store: ObjectStore, root: bytes, level: int) -> None:
        self.store = store
        self.root = root
        self.level = level
        self.root_node = load(store, root)
        self.stack: list[tuple[Node, int]] = []

    def seek(self, key: bytes) -> tuple[bytes, bytes, int] | None:
        """Position on the level node that holds ``key`` (or the last one)."""
        if self.root_node.level == self.level:
            self.stack = []
            self._at_root = True
            return (_HIGH_KEY, self.root, self.root_node.count)
        self._at_root = False
        node = self.root_node
        self.stack = []
        while True:
            i = _child_index(node, key)
            self.stack.append((node, i))
            if node.level == self.level + 1:
                return self.current()
            node = load(self.store, node.values[i][0])

    def current(self) -> tuple[bytes, bytes, int]:
        node, i = self.stack[-1]
        last = node.keys[i]
        # the last node of the whole level takes every key beyond it
        if all(n_i == len(n.keys) - 1 for n, n_i in self.stack):
            last = _HIGH_KEY
        return last, node.values[i][0], node.values[i][1]

    def real_key(self) -> bytes | None:
        if getattr(self, "_at_root", False):
            return None
        node, i = self.stack[-1]
        return node.keys[i]

    def next(self) -> tuple[bytes, bytes, int] | None:
        if getattr(self, "_at_root", False):
            return None
        depth = len(self.stack) - 1
        while depth >= 0:
            node, i = self.stack[depth]
            if i + 1 < len(node.keys):
                self.stack[depth] = (node, i + 1)
                break
            depth -= 1
        else:
            return None
        del self.stack[depth + 1 :]
        node, i = self.stack[depth]
        while node.level > self.level + 1:
            child = load(self.store, node.values[i][0])
            self.stack.append((child, 0))
            node, i = child, 0
        return self.current()


Edit = tuple[bytes, bytes | None, int]  # key, encoded record or child id (None: delete), count it carries


def _apply_level(
    store: ObjectStore, root: bytes, level: int, edits: list[Edit], out: list[Pending]
) -> tuple[list[Edit], list[tuple[bytes, bytes, int]] | None]:
    """Apply sorted edits to the level-``level`` sequence.

    Returns the edits for the next level up, or (when ``level`` is the root
    level) ``None`` and the complete list of new nodes at this level.
    """
    cur = _LevelCursor(store, root, level)
    at_root = cur.root_node.level == level
    up: list[Edit] = []
    made_all: list[tuple[bytes, bytes, int]] = []
    ei = 0
    n_edits = len(edits)
    while ei < n_edits:
        node_ref = cur.seek(edits[ei][0])
        assert node_ref is not None
        ch = _Chunker(level, out)
        old_keys: list[bytes] = []
        while True:
            last, oid, _cnt = node_ref
            node = load(store, oid)
            ch.bases.append((oid, store.get_typed(oid, "node")))
            rk = cur.real_key()
            if rk is not None:
                old_keys.append(rk)
            # merge this node's entries with the edits that fall in it
            i = 0
            keys = node.keys
            nk = len(keys)
            while i < nk or (ei < n_edits and edits[ei][0] <= last):
                if ei < n_edits and edits[ei][0] <= last and (i >= nk or edits[ei][0] <= keys[i]):
                    k, raw, c = edits[ei]
                    if i < nk and keys[i] == k:
                        i += 1  # replaced or deleted
                    if raw is not None:
                        ch.add(k, raw, c)
                    ei += 1
                else:
                    # the run of old entries up to the next edit
                    j = bisect_left(keys, edits[ei][0], i, nk) if ei < n_edits and edits[ei][0] <= last else nk
                    ch.add_old(node, i, j)
                    i = j
            if not ch.open and (ei >= n_edits or edits[ei][0] > last):
                break  # cut points meet the old ones again
            node_ref = cur.next()
            if node_ref is None:
                ch.close()
                break
        made = ch.made
        if at_root:
            made_all.extend(made)
            continue
        # old nodes of this group disappear, new ones come in (unchanged ones cancel out)
        new_by_key = {k: (oid, c) for k, oid, c in made}
        changes: dict[bytes, tuple[bytes | None, int]] = {}
        for k in old_keys:
            changes[k] = (None, 0)
        for k, (oid, c) in new_by_key.items():
            changes[k] = (oid, c)
        for k in sorted(changes):
            raw, c = changes[k]
            up.append((k, raw, c))
    if at_root:
        return [], made_all
    return up, None


def apply(store: ObjectStore, root: bytes | None, edits: dict[bytes, bytes | None], out: list[Pending]) -> bytes | None:
    """Root of the tree ``root`` with ``edits`` (key -> encoded record, see ``encode_record``, or None to
    delete) applied."""
    if not edits:
        return root
    if root is None:
        return build(((k, v) for k, v in sorted(edits.items()) if v is not None), out)
    level_edits: list[Edit] = [(k, v, 1) for k, v in sorted(edits.items())]
    level = 0
    while True:
        up, top = _apply_level(store, root, level, level_edits, out)
        if top is not None:
            if not top:
                return None
            new_root = _build_up(level + 1, top, out)
            assert new_root is not None
            return _collapse(store, new_root, out)
        if not up:
            return root
        level_edits = up
        level += 1


def _collapse(store: ObjectStore, root: bytes, out: list[Pending]) -> bytes:
    """Drop single-child roots: the same set must give the same (lowest) root."""
    pending = {p.oid: p for p in out}
    while True:
        p = pending.get(root)
        node = decode_node(p.data) if p is not None else load(store, root)
        if node.level == 0 or len(node.keys) > 1:
            return root
        root = node.values[0][0]


# --- diff -----------------------------------------------------------------------------


class _Run:
    """The entries of a leaf still to compare in a diff, from ``i`` on."""

    __slots__ = ("keys", "raws", "i")

    def __init__(self, keys: Sequence[bytes], raws: Sequence[bytes]) -> None:
        self.keys = keys
        self.raws = raws
        self.i = 0


def diff(
    store: ObjectStore, a: bytes | None, b: bytes | None
) -> Iterator[tuple[bytes, dict[str, Any] | None, dict[str, Any] | None]]:
    """Keys whose records differ between trees ``a`` and ``b``: ``(key, old, new)``.

    Subtrees with equal ids are skipped without being read, so the cost follows
    the size of the change, not the size of the trees.
    """
    if a == b:
        return
    # stack items: (level, node id) for nodes, a _Run for the entries of an expanded leaf; top = end
    sa: list[Any] = [(load(store, a).level, a)] if a else []
    sb: list[Any] = [(load(store, b).level, b)] if b else []

    def expand(stack: list[Any]) -> None:
        _, oid = stack.pop()
        node = load(store, oid)
        if node.level == 0:
            if node.keys:
                stack.append(_Run(node.keys, node.raw))
        else:
            lvl = node.level - 1
            stack.extend([(lvl, c) for c in reversed(node.raw)])

    rec = node_record
    while sa and sb:
        x, y = sa[-1], sb[-1]
        xr, yr = type(x) is _Run, type(y) is _Run
        if not xr and not yr:
            if x[1] == y[1]:
                sa.pop()
                sb.pop()
            elif x[0] == y[0] > 0:
                node_a, node_b = load(store, x[1]), load(store, y[1])
                if node_a.keys == node_b.keys:
                    # the same children's key ranges (edits in place): only the pairs that differ go on
                    sa.pop()
                    sb.pop()
                    lvl = x[0] - 1
                    pairs = [(p, q) for p, q in zip(node_a.raw, node_b.raw, strict=True) if p != q]
                    sa.extend([(lvl, p) for p, _q in reversed(pairs)])
                    sb.extend([(lvl, q) for _p, q in reversed(pairs)])
                else:
                    expand(sa)
            elif x[0] >= y[0]:
                expand(sa)
            else:
                expand(sb)
        elif not xr:
            expand(sa)
        elif not yr:
            expand(sb)
        else:
            # two leaves' entries side by side, until one of them ends
            ka, ra, i = x.keys, x.raws, x.i
            kb, rb, j = y.keys, y.raws, y.i
            if i == 0 and j == 0 and ka == kb:  # the same keys (an update in place): compare records only
                for m in [m for m, (p, q) in enumerate(zip(ra, rb, strict=True)) if p != q]:
                    yield ka[m], rec(ra[m]), rec(rb[m])
                sa.pop()
                sb.pop()
                continue
            na, nb = len(ka), len(kb)
            while i < na and j < nb:
                ak, bk = ka[i], kb[j]
                if ak == bk:
                    if ra[i] != rb[j]:  # canonical encodings: equal bytes, equal records
                        yield ak, rec(ra[i]), rec(rb[j])
                    i += 1
                    j += 1
                elif ak < bk:
                    yield ak, rec(ra[i]), None
                    i += 1
                else:
                    yield bk, None, rec(rb[j])
                    j += 1
            x.i, y.i = i, j
            if i >= na:
                sa.pop()
            if j >= nb:
                sb.pop()
    for stack, deleted in ((sa, True), (sb, False)):
        while stack:
            top = stack[-1]
            if type(top) is not _Run:
                expand(stack)
                continue
            stack.pop()
            for k, r in zip(top.keys[top.i :], top.raws[top.i :], strict=True):
                yield (k, rec(r), None) if deleted else (k, None, rec(r))
