"""A repository as one caller may see it: refs filtered by the access layer's ``ref_visible`` rule.

The server hands every route this view (server/context.py ``Repos.get``), so refs advertisement, REST,
history, diff, pulls and the viewer share one rule instead of each route checking on its own.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable

from .errors import NotFound
from .refs import ReflogEntry, RefStore
from .repo import Repository


class ScopedRefs(RefStore):
    def __init__(self, inner: RefStore, visible: Callable[[str], bool]) -> None:
        self.inner = inner
        self.visible = visible

    def read(self, name: str) -> bytes | None:
        return self.inner.read(name) if self.visible(name) else None

    def cas(self, name: str, old: bytes | None, new: bytes | None, who: str = "", message: str = "") -> None:
        if not self.visible(name):
            raise NotFound(f"no ref {name!r}")
        self.inner.cas(name, old, new, who, message)

    def list(self, prefix: str = "") -> dict[str, bytes]:
        return {k: v for k, v in self.inner.list(prefix).items() if self.visible(k)}

    def read_head(self) -> str:
        return self.inner.read_head()

    def write_head(self, value: str, who: str = "", message: str = "") -> None:
        self.inner.write_head(value, who, message)

    def reflog(self, name: str) -> builtins.list[ReflogEntry]:
        return self.inner.reflog(name) if name == "HEAD" or self.visible(name) else []


def scoped(repo: Repository, visible: Callable[[str], bool]) -> Repository:
    """``repo`` with only the refs ``visible`` allows (same objects, same folder)."""
    return Repository(repo.store, ScopedRefs(repo.refs, visible), repo.path)
