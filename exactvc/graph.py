"""The commit graph: ancestry and merge bases, pruned by generation numbers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .repo import Repository


def is_ancestor(repo: Repository, anc: bytes, desc: bytes) -> bool:
    """True when ``anc`` is ``desc`` or one of its ancestors."""
    if anc == desc:
        return True
    target_gen = repo.commit_object(anc).generation
    stack = [desc]
    seen = {desc}
    while stack:
        c = stack.pop()
        if c == anc:
            return True
        co = repo.commit_object(c)
        if co.generation <= target_gen:
            continue  # nothing below this generation can reach anc
        for p in co.parents:
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return False


def only_in(repo: Repository, tips: Iterable[bytes], excluded: Iterable[bytes]) -> list[bytes]:
    """Commits reachable from ``tips`` but not from ``excluded``, newest generation first.

    Walks both sides together by generation and stops once everything left is
    reachable from ``excluded``: the cost follows the commits in between, not the history.
    """
    import heapq

    inc, exc = 1, 2
    flags: dict[bytes, int] = {}
    heap: list[tuple[int, bytes]] = []
    for oids, flag in ((tips, inc), (excluded, exc)):
        for c in oids:
            if c not in flags:
                heapq.heappush(heap, (-repo.commit_object(c).generation, c))
            flags[c] = flags.get(c, 0) | flag
    out: list[bytes] = []
    while heap and any(flags[c] == inc for _, c in heap):
        _, c = heapq.heappop(heap)
        f = flags[c]
        if f == inc:
            out.append(c)
        for p in repo.commit_object(c).parents:
            old = flags.get(p)
            if old is None:
                heapq.heappush(heap, (-repo.commit_object(p).generation, p))
                flags[p] = f
            else:
                flags[p] = old | f
    return out
