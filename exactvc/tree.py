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

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from . import codec
from .errors import CorruptObject
from .store import ObjectStore, Pending

BITS = 5
MAX_NODE = 32 * 1024
INLINE_GEOMETRY = 2048  # geometries encoding to more bytes go to their own blob object
_HIGH_KEY = b"\xff" * 17  # sorts after every 16-byte key


def array_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def node_bytes(level: int, entries: Sequence[bytes]) -> bytes:
    """Canonical msgpack of ``[level, [entry, ...]]`` from already-encoded entries."""
    return b"\x92" + codec.pack(level) + array_header(len(entries)) + b"".join(entries)


def is_boundary(key: bytes, level: int) -> bool:
    return codec.key_hash(key) & ((1 << (BITS * (level + 1))) - 1) == 0


class Node:
    """A decoded node. Leaf records stay encoded until asked for (``value(i)``): a cached leaf
    is a few bytes objects, not thousands of dicts and lists for the garbage collector to walk."""

    __slots__ = ("level", "keys", "raw", "_values")

    def __init__(self, level: int, keys: list[bytes], raw: list[bytes], values: list[Any] | None = None) -> None:
        self.level = level
        self.keys = keys
        self.raw = raw  # encoded entries
        self._values = values  # internal nodes: [child_id, count]; leaves: decoded on demand

    def value(self, i: int) -> Any:
        if self._values is not None:
            return self._values[i]
        return _leaf_record(self.raw[i])

    @property
    def values(self) -> list[Any]:
        """All values (leaf records decoded fresh each time for leaves)."""
        if self._values is not None:
            return self._values
        return [_leaf_record(r) for r in self.raw]

    @property
    def count(self) -> int:
        if self.level == 0:
            return len(self.keys)
        return sum(v[1] for v in self.values)


def _leaf_record(raw: bytes) -> dict[str, Any]:
    e = codec.unpack(raw)
    if not (isinstance(e, list) and len(e) == 2 and isinstance(e[1], dict)):
        raise CorruptObject("tree leaf entry is not [key, record]")
    rec: dict[str, Any] = e[1]
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


_UINT = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}


def _uint(r: bytes, at: int) -> int:
    """A msgpack unsigned integer that ends ``r`` at offset ``at``; -1 if it is not one."""
    b = r[at]
    if b < 0x80:
        return b if len(r) == at + 1 else -1
    n = _UINT.get(b)
    if n is None or len(r) != at + 1 + n:
        return -1
    return int.from_bytes(r[at + 1 :], "big")


def decode_node(data: bytes, oid: bytes | None = None) -> Node:
    """Split a node into its encoded entries (msgpack skips, no full decode) and check its shape."""
    import msgpack

    where = oid.hex() if oid else "node"
    up = msgpack.Unpacker(raw=False, strict_map_key=True)
    up.feed(data)
    try:
        if up.read_array_header() != 2:
            raise ValueError
        level = up.unpack()
        if not isinstance(level, int) or level < 0:
            raise ValueError
        n = up.read_array_header()
        starts = [up.tell()]
        for _ in range(n):
            up.skip()
            starts.append(up.tell())
        if starts[-1] != len(data):
            raise ValueError
    except Exception:  # msgpack raises several exception types for malformed input
        raise CorruptObject(f"tree node {where} is malformed") from None
    raw = [data[starts[i] : starts[i + 1]] for i in range(n)]
    keys: list[bytes] = []
    values: list[Any] | None = None
    if level == 0:
        for r in raw:
            is_map = len(r) > 19 and ((r[19] & 0xF0) == 0x80 or r[19] in (0xDE, 0xDF))
            if r[:3] != b"\x92\xc4\x10" or not is_map:
                raise CorruptObject(f"tree node {where} has a malformed leaf entry")
            keys.append(r[3:19])
    else:
        values = []
        for r in raw:
            if r[:3] != b"\x93\xc4\x10" or r[19:21] != b"\xc4\x20" or len(r) < 54:
                raise CorruptObject(f"tree node {where} has a malformed child entry")
            cnt = _uint(r, 53)
            if cnt < 0:
                raise CorruptObject(f"tree node {where} has a malformed child count")
            keys.append(r[3:19])
            values.append([r[21:53], cnt])
    if any(a >= b for a, b in zip(keys, keys[1:], strict=False)):
        raise CorruptObject(f"tree node {where} has keys out of order")
    return Node(level, keys, raw, values)


def load(store: ObjectStore, oid: bytes) -> Node:
    cache = _cache(store)
    n = cache.get(oid)
    if n is None:
        n = decode_node(store.get_typed(oid, "node"), oid)
        cache.put(oid, n)
    return n


# --- records ------------------------------------------------------------------------


def encode_entry(key: bytes, record: dict[str, Any]) -> bytes:
    return codec.pack([key, record])


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
        self.counts = 0
        self.size = 0
        self.made: list[tuple[bytes, bytes, int]] = []  # (last key, node id, count)
        self.bases: list[tuple[bytes, bytes]] = []  # old nodes to delta against, in order

    def add(self, key: bytes, raw: bytes, count: int) -> None:
        self.keys.append(key)
        self.raw.append(raw)
        self.counts += count
        self.size += len(raw)
        if self.size >= MAX_NODE or is_boundary(key, self.level):
            self.close()

    @property
    def open(self) -> bool:
        return bool(self.keys)

    def close(self) -> None:
        if not self.keys:
            return
        data = node_bytes(self.level, self.raw)
        oid = codec.object_id("node", data)
        i = len(self.made)
        base = self.bases[i] if i < len(self.bases) else None
        if base is not None and base[0] != oid:
            self.out.append(Pending(oid, "node", data, base[0], base[1]))
        else:
            self.out.append(Pending(oid, "node", data))
        self.made.append((self.keys[-1], oid, self.counts))
        self.keys, self.raw, self.counts, self.size = [], [], 0, 0


def _internal_entry(last_key: bytes, oid: bytes, count: int) -> bytes:
    return codec.pack([last_key, oid, count])


def _build_up(level: int, nodes: list[tuple[bytes, bytes, int]], out: list[Pending]) -> bytes | None:
    """Build levels above ``nodes`` (level ``level - 1`` nodes) until one node remains."""
    while len(nodes) > 1:
        ch = _Chunker(level, out)
        for k, oid, cnt in nodes:
            ch.add(k, _internal_entry(k, oid, cnt), cnt)
        ch.close()
        nodes = ch.made
        level += 1
    return nodes[0][1] if nodes else None


def build(entries: Iterable[tuple[bytes, bytes]], out: list[Pending]) -> bytes | None:
    """Root id of the tree holding ``entries`` (sorted ``(key, encoded entry)`` pairs)."""
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


def get(store: ObjectStore, root: bytes | None, key: bytes) -> dict[str, Any] | None:
    if root is None:
        return None
    node = load(store, root)
    while node.level > 0:
        i = _child_index(node, key)
        node = load(store, node.values[i][0])
    from bisect import bisect_left

    i = bisect_left(node.keys, key)
    if i < len(node.keys) and node.keys[i] == key:
        rec: dict[str, Any] = node.value(i)
        return rec
    return None


def _child_index(node: Node, key: bytes) -> int:
    from bisect import bisect_left

    i = bisect_left(node.keys, key)
    return min(i, len(node.keys) - 1)


def items(store: ObjectStore, root: bytes | None, start: bytes | None = None) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Every ``(key, record)`` in key order, from ``start`` on."""
    if root is None:
        return
    yield from _items(store, load(store, root), start)


def _items(store: ObjectStore, node: Node, start: bytes | None) -> Iterator[tuple[bytes, dict[str, Any]]]:
    from bisect import bisect_left

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


Edit = tuple[bytes, bytes | None, int]  # key, encoded entry (None: delete), count it carries


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
            nk = len(node.keys)
            while i < nk or (ei < n_edits and edits[ei][0] <= last):
                if ei < n_edits and edits[ei][0] <= last and (i >= nk or edits[ei][0] <= node.keys[i]):
                    k, raw, c = edits[ei]
                    if i < nk and node.keys[i] == k:
                        i += 1  # replaced or deleted
                    if raw is not None:
                        ch.add(k, raw, c)
                    ei += 1
                else:
                    ch.add(node.keys[i], node.raw[i], 1 if level == 0 else node.value(i)[1])
                    i += 1
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
            changes[k] = (_internal_entry(k, oid, c), c)
        for k in sorted(changes):
            raw, c = changes[k]
            up.append((k, raw, c))
    if at_root:
        return [], made_all
    return up, None


def apply(store: ObjectStore, root: bytes | None, edits: dict[bytes, bytes | None], out: list[Pending]) -> bytes | None:
    """Root of the tree ``root`` with ``edits`` (key -> encoded entry, or None to delete) applied."""
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


def diff(
    store: ObjectStore, a: bytes | None, b: bytes | None
) -> Iterator[tuple[bytes, dict[str, Any] | None, dict[str, Any] | None]]:
    """Keys whose records differ between trees ``a`` and ``b``: ``(key, old, new)``.

    Subtrees with equal ids are skipped without being read, so the cost follows
    the size of the change, not the size of the trees.
    """
    if a == b:
        return
    # stack items: (True, level, node id) for nodes, (False, key, record) for entries; top = end
    sa: list[tuple[bool, Any, Any]] = [(True, load(store, a).level, a)] if a else []
    sb: list[tuple[bool, Any, Any]] = [(True, load(store, b).level, b)] if b else []

    def expand(stack: list[tuple[bool, Any, Any]]) -> None:
        _, _, oid = stack.pop()
        node = load(store, oid)
        if node.level == 0:
            stack.extend((False, k, r) for k, r in zip(reversed(node.keys), reversed(node.raw), strict=True))
        else:
            lvl = node.level - 1
            stack.extend((True, lvl, v[0]) for v in reversed(node.values))

    while sa and sb:
        x, y = sa[-1], sb[-1]
        if x[0] and y[0]:
            if x[2] == y[2]:
                sa.pop()
                sb.pop()
            elif x[1] >= y[1]:
                expand(sa)
            else:
                expand(sb)
        elif x[0]:
            expand(sa)
        elif y[0]:
            expand(sb)
        else:
            if x[1] < y[1]:
                yield x[1], _leaf_record(x[2]), None
                sa.pop()
            elif x[1] > y[1]:
                yield y[1], None, _leaf_record(y[2])
                sb.pop()
            else:
                if x[2] != y[2]:  # canonical encodings: equal bytes, equal records
                    yield x[1], _leaf_record(x[2]), _leaf_record(y[2])
                sa.pop()
                sb.pop()
    while sa:
        if sa[-1][0]:
            expand(sa)
        else:
            _, k, r = sa.pop()
            yield k, _leaf_record(r), None
    while sb:
        if sb[-1][0]:
            expand(sb)
        else:
            _, k, r = sb.pop()
            yield k, None, _leaf_record(r)
