"""A repository as one caller may see it: refs filtered by the access layer's ``ref_visible`` rule, and
commits limited to those the visible refs reach.

The server hands every route this view (server/context.py ``Repos.get``), so refs advertisement, REST,
history, diff, pulls and the viewer share one rule instead of each route checking on its own:

* refs: :class:`ScopedRefs` lists, reads and moves only the visible ones;
* revisions: :meth:`ScopedRepository.resolve` answers "unknown revision" for a commit (named by a full or
  short id, a reflog entry or a detached HEAD) that no visible ref reaches, exactly as for a commit that
  does not exist, so a guessed id tells nothing;
* object ids taken from a request (the sync protocol's wants and haves, annotation tiles by commit):
  :meth:`ScopedRepository.check_commit` and :meth:`ScopedRepository.readable`.
"""

from __future__ import annotations

import builtins
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from .errors import ExactError, NotFound
from .refs import ReflogEntry, RefStore
from .repo import Repository


class ScopedRefs(RefStore):
    """``inner`` with only the refs ``visible`` allows. ``where``, when given, says where visible refs can
    be (prefixes ending in "/" and exact names), so listing them need not read every ref."""

    def __init__(self, inner: RefStore, visible: Callable[[str], bool], where: Sequence[str] = ()) -> None:
        self.inner = inner
        self.visible = visible
        self.where = tuple(where)
        self._all: dict[str, bytes] | None = None

    def read(self, name: str) -> bytes | None:
        return self.inner.read(name) if self.visible(name) else None

    def cas(self, name: str, old: bytes | None, new: bytes | None, who: str = "", message: str = "") -> None:
        if not self.visible(name):
            raise NotFound(f"no ref {name!r}")
        self._all = None
        self.inner.cas(name, old, new, who, message)

    def cas_many(self, updates: Sequence[tuple[str, bytes | None, bytes | None]], who: str = "",
                 message: str = "") -> None:
        """The inner store's (one transaction where it has them), for visible refs only."""
        for name, _old, _new in updates:
            if not self.visible(name):
                raise NotFound(f"no ref {name!r}")
        self._all = None
        self.inner.cas_many(updates, who, message)

    def list(self, prefix: str = "") -> dict[str, bytes]:
        return {k: v for k, v in self.inner.list(prefix).items() if self.visible(k)}

    def snapshot(self) -> dict[str, bytes]:
        """Every visible ref, read once per view (a view lives for one request) until it moves one."""
        if getattr(self, "_all", None) is None:
            if not self.where:
                self._all = self.list()
            else:
                got: dict[str, bytes] = {}
                for w in self.where:
                    if w.endswith("/"):
                        got.update(self.list(w))
                    elif self.visible(w):
                        oid = self.inner.read(w)
                        if oid is not None:
                            got[w] = oid
                self._all = dict(sorted(got.items()))
        assert self._all is not None
        return self._all

    def read_head(self) -> str:
        return self.inner.read_head()

    def write_head(self, value: str, who: str = "", message: str = "") -> None:
        self.inner.write_head(value, who, message)

    def reflog(self, name: str) -> builtins.list[ReflogEntry]:
        return self.inner.reflog(name) if name != "HEAD" and self.visible(name) else []


class _Reach:
    """Commits reachable from a set of tips, remembered per (store, tips): most requests of a study ask
    again with the same refs, and a commit's ancestry never changes."""

    def __init__(self, size: int = 64) -> None:
        self._d: OrderedDict[tuple[int, frozenset[bytes]], tuple[frozenset[bytes], frozenset[bytes]]] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, repo: Repository, tips: frozenset[bytes]) -> tuple[frozenset[bytes], frozenset[bytes]]:
        """(the commits, their snapshots)."""
        key = (id(repo.store), tips)
        with self._lock:
            hit = self._d.get(key)
            if hit is not None:
                self._d.move_to_end(key)
                return hit
        seen: set[bytes] = set()
        roots: set[bytes] = set()
        stack = list(tips)
        while stack:
            c = stack.pop()
            if c in seen:
                continue
            seen.add(c)
            obj = repo.commit_object(c)
            roots.add(obj.root)
            stack.extend(p for p in obj.parents if p not in seen)
        out = (frozenset(seen), frozenset(roots))
        with self._lock:
            self._d[key] = out
            while len(self._d) > self.size:
                self._d.popitem(last=False)
        return out


_reach = _Reach()


class ScopedRepository(Repository):
    """``repo`` as a caller who may see only some refs sees it: same objects and folder, fewer refs, and
    only the commits those refs reach."""

    def __init__(self, base: Repository, visible: Callable[[str], bool], where: Sequence[str] = ()) -> None:
        super().__init__(base.store, ScopedRefs(base.refs, visible, where), base.path)
        self.visible_ref = visible
        self._memo: tuple[dict[str, bytes], tuple[frozenset[bytes], frozenset[bytes]]] | None = None

    def tips(self) -> dict[str, bytes]:
        """Visible ref -> the object it names (commit, tag, run, artefact)."""
        assert isinstance(self.refs, ScopedRefs)
        return self.refs.snapshot()

    def _reached(self) -> tuple[frozenset[bytes], frozenset[bytes]]:
        refs = self.tips()
        memo = self._memo
        if memo is not None and memo[0] is refs:  # the refs have not moved in this view
            return memo[1]
        tips: set[bytes] = set()
        for oid in refs.values():
            try:
                tips.add(Repository._peel(self, oid))
            except ExactError:  # a ref naming no commit reaches none
                continue
        got = _reach.get(self, frozenset(tips))
        self._memo = (refs, got)
        return got

    def visible_commits(self) -> frozenset[bytes]:
        return self._reached()[0]

    def readable(self, oid: bytes) -> bool:
        """May the caller name object ``oid``: a commit a visible ref reaches, its snapshot, or what a visible
        ref names? (The objects below a snapshot have ids only its reader learns.)"""
        commits, roots = self._reached()
        return oid in commits or oid in roots or oid in self.tips().values()

    def check_commit(self, oid: bytes) -> bytes:
        if oid not in self.visible_commits():
            raise NotFound(f"no commit {oid.hex()}")
        return oid

    # --- revisions: a commit no visible ref reaches is answered as unknown ---------------------------
    def _resolve_base(self, rev: str) -> bytes:
        unknown = NotFound(f"unknown revision {rev[:100]!r}" + ("..." if len(rev) > 100 else ""))
        low = rev.strip().lower()
        if len(low) == 64 and all(c in "0123456789abcdef" for c in low) and not self.readable(bytes.fromhex(low)) \
                and not any(self.refs.read(f"{k}/{rev}") for k in ("tags", "heads")):
            raise unknown  # any object the view does not reach (a commit, a tree) is "unknown", as a missing one
        oid = super()._resolve_base(rev)
        if oid not in self.visible_commits():
            raise unknown
        return oid

    def head_commit(self) -> bytes | None:
        oid = super().head_commit()
        return oid if oid is None or oid in self.visible_commits() else None

    def reflog_commits(self) -> list[bytes]:
        return []  # the HEAD reflog may name anyone's commits

    def _prefix_matches(self, prefix: str) -> list[bytes]:
        return [c for c in self.visible_commits() if c.hex().startswith(prefix)]


def scoped(repo: Repository, visible: Callable[[str], bool], where: Sequence[str] = ()) -> Repository:
    """``repo`` with only the refs ``visible`` allows (same objects, same folder); ``where``: see
    :class:`ScopedRefs`."""
    return ScopedRepository(repo, visible, where)


def ref_visible_in(repo: Any, ref: str) -> bool:
    """Is ``ref`` visible in this view (always, in an unscoped repository)?"""
    return not isinstance(repo, ScopedRepository) or bool(repo.visible_ref(ref))


def is_scoped(repo: Any) -> bool:
    """Does ``repo`` hide some refs from its caller (a blind-mode annotator's view)?"""
    return isinstance(repo, ScopedRepository)
