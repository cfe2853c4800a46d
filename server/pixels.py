"""Who may see the pixels of an image (its fingerprint), shared by the tile routes and push.

The rule (docs/api.md, "Pixel access"): a caller may read the pixels of fingerprint F if they may
read a repository whose branches or tags reference F. Naming a fingerprint grants nothing, because
references cannot be forged: a push (and nothing else reaches a served repository over HTTP) may
make a branch or tag reference F only if the pusher may already read F that way, or if F is new to
the server (no repository references it and no pixels are stored for it — the pusher then holds the
file, and uploads it). The first repository to reference a slide therefore decides who sees it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import current_app

from exactvc.access import RANK, User
from exactvc.errors import ExactError

from .context import access, repos
from .errors import Forbidden

ALLOW_TTL = 2.0  # a grant seen a moment ago, while roles are unchanged: the tile hot path skips the checks


class ImageIndex:
    """Which repositories reference which fingerprints (recomputed when a repository's refs change)."""

    def __init__(self) -> None:
        # per repository and ref state: a blind-mode annotator's view has refs of its own (exactvc/visibility.py)
        self._cache: dict[tuple[str, tuple[Any, ...]], frozenset[str]] = {}
        self._lock = threading.Lock()

    def fingerprints(self, name: str) -> frozenset[str]:
        repo = repos().get(name)
        refs = repo.refs.list()
        state = tuple(sorted((k, v) for k, v in refs.items()))
        with self._lock:
            hit = self._cache.get((name, state))
            if hit is not None:
                return hit
        fps: set[str] = set()
        seen: set[bytes] = set()
        for oid in refs.values():
            try:
                cid = repo._peel(oid)
            except ExactError:  # a ref that does not peel to a commit references no image
                continue
            root = repo.commit_object(cid).root
            if root in seen:
                continue
            seen.add(root)
            for e in repo.snapshot_object(root).images.values():
                fps.add(repo.image_record(e).fingerprint)
        out = frozenset(fps)
        with self._lock:
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[(name, state)] = out
        return out


def index() -> ImageIndex:
    ext: dict[str, Any] = current_app.extensions
    idx = ext.get("exact_image_index")
    if idx is None:
        idx = ext.setdefault("exact_image_index", ImageIndex())
    assert isinstance(idx, ImageIndex)
    return idx


_allowed_local = threading.local()  # per thread: access versions belong to one database connection


def _holders(fp: str, user: User | None, role: str) -> bool:
    for name in repos().names():
        have = access().role(name, user)
        if have is not None and RANK[have] >= RANK[role] and fp in index().fingerprints(name):
            return True
    return False


def may_read(fp: str, user: User | None) -> bool:
    key = (user.id if user else None, fp)
    ver = access().version()
    allowed: dict[tuple[int | None, str], tuple[int, float]] = _allowed_local.__dict__.setdefault("cache", {})
    hit = allowed.get(key)
    now = time.monotonic()
    if hit is not None and hit[0] == ver and hit[1] > now:
        return True
    if not _holders(fp, user, "read"):
        return False
    if len(allowed) > 100000:
        allowed.clear()
    allowed[key] = (ver, now + ALLOW_TTL)
    return True


def may_upload(fp: str, user: User) -> bool:
    return _holders(fp, user, "annotate")


def referenced_anywhere(fp: str) -> bool:
    return any(fp in index().fingerprints(name) for name in repos().names())


def check_pushed_images(name: str, user: User, fingerprints: set[str]) -> None:
    """Refuse (403) a push whose tips would reference a fingerprint the pusher may not read."""
    from exactvc.slidestore import SlideStore

    mine = index().fingerprints(name)
    store: SlideStore | None = current_app.extensions.get("exact_slides")
    for fp in sorted(fingerprints - mine):
        if may_read(fp, user):
            continue
        if store is None:
            store = SlideStore(repos().root)
        if not referenced_anywhere(fp) and not store.has(fp):
            continue  # a slide new to the server: whoever references it first holds the file
        raise Forbidden(f"an image record of this push names fingerprint {fp[:12]}, whose pixels you may not "
                        "read: records may only name images you can already see (or new ones)")
