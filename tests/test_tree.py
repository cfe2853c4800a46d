"""The prolly tree: history independence, bounded nodes, O(k log n) edits, diff."""

from __future__ import annotations

import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from exactvc import codec, tree
from exactvc.store import MemoryStore, Pending


def rec(i: int, label: str = "x") -> dict[str, object]:
    return {"g": [0, [i % 1000, i // 1000]], "k": "point", "l": label}


def build_ref(store: MemoryStore, entries: dict[bytes, dict[str, object]]) -> bytes | None:
    out: list[Pending] = []
    root = tree.build(sorted((k, tree.encode_record(v)) for k, v in entries.items()), out)
    store.write(out)
    return root


def apply(store: MemoryStore, root: bytes | None, edits: dict[bytes, dict[str, object] | None]) -> bytes | None:
    out: list[Pending] = []
    new = tree.apply(store, root, {k: (tree.encode_record(v) if v is not None else None)
                                   for k, v in edits.items()}, out)
    store.write(out)
    return new


keys_st = st.lists(st.binary(min_size=16, max_size=16), min_size=0, max_size=400, unique=True)


@settings(max_examples=60, deadline=None)
@given(keys=keys_st, seed=st.integers(0, 2**32 - 1))
def test_same_set_same_root_whatever_the_order(keys: list[bytes], seed: int) -> None:
    store = MemoryStore()
    entries = {k: rec(i) for i, k in enumerate(keys)}
    ref = build_ref(store, entries)
    rng = random.Random(seed)
    order = list(keys)
    rng.shuffle(order)
    root = None
    i = 0
    while i < len(order):
        n = rng.randint(1, 60)
        root = apply(store, root, {k: entries[k] for k in order[i : i + n]})
        i += n
    assert root == ref
    # add junk and delete it again: back to the same root
    junk = {os.urandom(16): rec(7, "junk") for _ in range(rng.randint(1, 80))}
    root2 = apply(store, root, junk)
    assert tree.count(store, root2) == len(keys) + len(junk)
    root3 = apply(store, root2, dict.fromkeys(junk))
    assert root3 == ref


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 3000), ops=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6)), max_size=120))
def test_diff_lists_exactly_the_changed_keys(n: int, ops: list[tuple[int, int]]) -> None:
    store = MemoryStore()
    rng = random.Random(n)
    entries = {rng.randbytes(16): rec(i) for i in range(n)}
    a = build_ref(store, entries)
    after = dict(entries)
    keys = sorted(entries)
    for op, x in ops:
        if op == 0 or not keys:
            after[rng.randbytes(16)] = rec(x, "new")
        elif op == 1:
            after.pop(keys[x % len(keys)], None)
        else:
            k = keys[x % len(keys)]
            if k in after:
                after[k] = rec(x, "changed")
    b = build_ref(store, after)
    got = {k: (old, new) for k, old, new in tree.diff(store, a, b)}
    want = {k for k in set(entries) | set(after) if entries.get(k) != after.get(k)}
    assert set(got) == want
    for k, (old, new) in got.items():
        assert old == entries.get(k) and new == after.get(k)
    assert tree.count(store, b) == len(after)
    assert [k for k, _ in tree.items(store, b)] == sorted(after)


def test_nodes_stay_small_and_edits_write_few_nodes() -> None:
    store = MemoryStore()
    rng = random.Random(1)
    big_props = {"note": "x" * 300}
    entries = {rng.randbytes(16): {"g": [0, [1, 2]], "k": "point", "l": "x", "p": big_props} for _ in range(30000)}
    root = build_ref(store, entries)
    sizes = [len(store.get(oid)[1]) for oid, _ in tree.iter_nodes(store, root)]
    assert max(sizes) <= 64 * 1024
    n_nodes = len(sizes)
    h = tree.height(store, root)
    out: list[Pending] = []
    k = rng.choice(list(entries))
    tree.apply(store, root, {k: tree.encode_record(rec(5))}, out)
    # one edit rewrites about one node per level (a few more when cut points move)
    assert 1 <= len(out) <= 3 * (h + 1)
    assert n_nodes > 100


def test_huge_geometry_is_split_into_a_blob() -> None:
    store = MemoryStore()
    ring = [[i, (i * 7919) % 1000] for i in range(5000)]
    record = {"g": [0, [x for p in ring for x in p]], "k": "line", "l": "x"}
    blobs: list[Pending] = []
    split = tree.split_record(record, blobs)
    assert "G" in split and "g" not in split and len(blobs) == 1
    store.write(blobs)
    assert tree.join_record(store, split) == record
    assert len(codec.pack(split)) < 200


def test_nodes_are_encoded_as_docs_format_md_says() -> None:
    """A second reading of §4 of docs/format.md, with plain msgpack and blake3, agrees with the tree."""
    import struct

    import blake3
    import msgpack

    store = MemoryStore()
    entries = {os.urandom(16): rec(i, label=f"l{i % 3}") for i in range(3000)}
    root = build_ref(store, entries)
    assert root is not None

    def h(key: bytes) -> int:
        return int.from_bytes(blake3.blake3(b"exactvc:chunk\0" + key).digest()[:8], "big")

    found: dict[bytes, dict[str, object]] = {}
    total = 0

    def walk(oid: bytes, level_expected: int | None) -> tuple[bytes, int]:
        nonlocal total
        t, data = store.get(oid)
        assert t == "node" and codec.object_id("node", data) == oid
        level, keys, a, b = msgpack.unpackb(data, raw=False)
        assert level_expected is None or level == level_expected
        ks = [keys[i : i + 16] for i in range(0, len(keys), 16)]
        assert ks == sorted(set(ks))
        size = 0
        for j, k in enumerate(ks[:-1]):  # no cut point before the last entry
            size += 20 + (struct.unpack_from("<I", a, 4 * j)[0] if level == 0 else 32)
            assert h(k) % 2 ** (5 * (level + 1)) != 0 and size < 32768
        if level == 0:
            lens = struct.unpack(f"<{len(ks)}I", a)
            assert sum(lens) == len(b) and min(lens) > 0
            pos = 0
            for k, n in zip(ks, lens, strict=True):
                found[k] = msgpack.unpackb(b[pos : pos + n], raw=False)
                pos += n
            return ks[-1], len(ks)
        count = 0
        for j, (k, c) in enumerate(zip(ks, b, strict=True)):
            last, n = walk(a[32 * j : 32 * j + 32], level - 1)
            assert (last, n) == (k, c)
            count += c
        return ks[-1], count

    _, total = walk(root, None)
    assert total == len(entries) == tree.count(store, root)
    assert found == entries
