"""Binary deltas between two versions of an object.

A delta is a list of operations; applied to the base bytes it rebuilds the
target: ``[offset, length]`` copies ``base[offset:offset+length]``, a ``bytes``
item is inserted as it is. Deltas let a commit that edits a few annotations
store each rewritten tree node in a few hundred bytes.
"""

from __future__ import annotations

from typing import Any

BLOCK = 16
SMALL_CHANGE = 1024  # a changed middle this short is stored as it is (no search for copies in it)
RESYNC = 64  # differing bytes skipped looking for the next run that agrees at the same offset


def _common_prefix(a: bytes, b: bytes) -> int:
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:  # largest n with a[:n] == b[:n]
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: bytes, b: bytes, limit: int) -> int:
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _match_len(new: bytes, i: int, base: bytes, j: int, limit: int) -> int:
    """Length of the common run new[i:] / base[j:], at most ``limit``."""
    lo, hi = 0, min(limit, len(base) - j)
    if new[i : i + hi] == base[j : j + hi]:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if new[i : i + mid] == base[j : j + mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def make_delta(base: bytes, new: bytes) -> list[Any]:
    """Operations that turn ``base`` into ``new`` (never larger than ``new`` plus a few bytes per op)."""
    p = _common_prefix(base, new)
    s = _common_suffix(base, new, min(len(base), len(new)) - p)
    end = len(new) - s
    ops: list[Any] = []
    if p:
        ops.append([0, p])
    # runs that agree at the same offset in both (a node whose entries kept their sizes up to here): after
    # a few differing bytes, copy the aligned run that follows
    lit = p
    same_end = min(end, len(base) - s)
    while lit < same_end:
        k = lit
        limit = min(same_end, lit + RESYNC)
        while k < limit and new[k] != base[k]:
            k += 1
        if k >= limit:
            break
        n = _match_len(new, k, base, k, same_end - k)
        if n < BLOCK:
            break
        if k > lit:
            ops.append(new[lit:k])
        ops.append([k, n])
        lit = k + n
    if end - lit > SMALL_CHANGE:
        index: dict[bytes, int] = {}
        for off in range(len(base) - BLOCK, -1, -BLOCK):
            index[base[off : off + BLOCK]] = off
        i = lit
        while i + BLOCK <= end:
            j = index.get(new[i : i + BLOCK])
            if j is None:
                i += 1
                continue
            k = BLOCK + _match_len(new, i + BLOCK, base, j + BLOCK, end - i - BLOCK)
            back = 0
            while i - back > lit and j - back > 0 and new[i - back - 1] == base[j - back - 1]:
                back += 1
            if i - back > lit:
                ops.append(new[lit : i - back])
            ops.append([j - back, k + back])
            i += k
            lit = i
    if lit < end:
        ops.append(new[lit:end])
    if s:
        ops.append([len(base) - s, s])
    return ops


def apply_delta(base: bytes, ops: list[Any]) -> bytes:
    parts = []
    for op in ops:
        if isinstance(op, (bytes, bytearray)):
            parts.append(bytes(op))
        else:
            off, n = op
            if off < 0 or n < 0 or off + n > len(base):
                raise ValueError("delta copies outside its base")
            parts.append(base[off : off + n])
    return b"".join(parts)


def delta_size(ops: list[Any]) -> int:
    return sum(len(op) + 1 if isinstance(op, (bytes, bytearray)) else 8 for op in ops)
