"""The commit graph: ancestry and merge bases, pruned by generation numbers."""

from __future__ import annotations

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
