"""Making commits and walking history."""

from __future__ import annotations

import heapq
import time
from typing import TYPE_CHECKING, Any

from .errors import AlreadyExists, ExactError, InvalidInput, NotFound, UsageError
from .hooks import run_hook
from .ids import format_id, parse_id
from .objects import Commit

if TYPE_CHECKING:
    from .repo import LogEntry, Repository


class NothingToCommit(ExactError):
    exit_code = 1
    http_status = 409
    kind = "nothing_to_commit"


def _tz_minutes() -> int:
    return -(time.altzone if time.daylight and time.localtime().tm_isdst else time.timezone) // 60


def write_commit(repo: Repository, root: bytes, parents: list[bytes], message: str, author: str,
                 committer: str | None = None, when: int | None = None) -> bytes:
    gen = 1 + max((repo.commit_object(p).generation for p in parents), default=0)
    c = Commit(root, tuple(parents), author, committer or author, int(when if when is not None else time.time()),
               _tz_minutes(), message, gen)
    return repo.put("commit", c.to_body())


def advance_head(repo: Repository, old: bytes | None, new: bytes, who: str, message: str) -> None:
    """Move the current branch (or a detached HEAD) from ``old`` to ``new`` by compare-and-swap."""
    branch_ref, _ = repo.refs.head()
    if branch_ref is None:
        repo.refs.write_head(new.hex(), who, message)
    else:
        repo.refs.cas(branch_ref, old, new, who, message)


def make_commit(repo: Repository, message: str, author: str | None = None, allow_empty: bool = False,
                run_hooks: bool = True, extra_parents: list[bytes] | None = None) -> str:
    from .repo import default_author

    if not message or not message.strip():
        raise UsageError("empty commit message")
    who = author or repo.config().get("user") or default_author()
    if run_hooks:
        run_hook(repo.exact_dir, "pre-commit")
    with repo.lock():
        base, snap_id = repo.working()
        if not allow_empty and not extra_parents:
            if (base is not None and repo.commit_object(base).root == snap_id) or (
                base is None and snap_id == repo.empty_snapshot_id()
            ):
                raise NothingToCommit("nothing to commit (the working state equals HEAD)")
        parents = ([base] if base else []) + list(extra_parents or [])
        cid = write_commit(repo, snap_id, parents, message.strip(), who)
        advance_head(repo, base, cid, who, "commit: " + message.strip().splitlines()[0])
        repo.set_working(cid, snap_id)
        consolidate = getattr(repo.store, "consolidate", None)
        if consolidate is not None:
            consolidate()  # keep lookups fast: a handful of packs, not one per edit
    return cid.hex()


def log(repo: Repository, rev: str = "HEAD", n: int | None = None, image: str | None = None) -> list[LogEntry]:
    from .repo import LogEntry

    try:
        start = repo.resolve(rev)
    except NotFound:
        if rev == "HEAD" and repo.head_commit() is None:
            return []
        raise
    out: list[LogEntry] = []
    seen = {start}
    c0 = repo.commit_object(start)
    heap: list[tuple[int, int, bytes, Commit]] = [(-c0.time, -c0.generation, start, c0)]
    while heap and (n is None or len(out) < n):
        _, _, oid, c = heapq.heappop(heap)
        if image is None or _touches(repo, c, image):
            out.append(LogEntry(oid.hex(), c))
        for p in c.parents:
            if p not in seen:
                seen.add(p)
                pc = repo.commit_object(p)
                heapq.heappush(heap, (-pc.time, -pc.generation, p, pc))
    return out


def _touches(repo: Repository, c: Commit, image: str) -> bool:
    snap = repo.snapshot_object(c.root)
    mine = snap.images.get(image)
    if not c.parents:
        return mine is not None
    for p in c.parents[:1]:
        ps = repo.snapshot_object(repo.commit_object(p).root)
        if ps.images.get(image) != mine:
            return True
    return False


def commit_changes(
    repo: Repository, branch: str, expected_parent: bytes | None, image: str, message: str, author: str,
    create: list[dict[str, Any]] | None = None, update: list[dict[str, Any]] | None = None,
    delete: list[str] | None = None, start: str | None = None,
) -> tuple[bytes, list[str]]:
    """Commit annotation edits straight onto ``branch`` (no working state): the browser-editing path.

    ``expected_parent`` must be the branch's current tip (None: the branch must not
    exist yet and starts at ``start``); otherwise RefConflict, so two tabs cannot
    silently overwrite each other. Returns (commit id, ids of created annotations).
    """
    from .edit import Editor
    from .errors import RefConflict
    from .refs import check_new_branch, check_short_name

    ref = "heads/" + check_short_name(branch)
    cur = repo.refs.read(ref)
    if cur is None:
        check_new_branch(repo.refs, branch)
    if cur != expected_parent:
        raise RefConflict(f"branch {branch} is at {cur.hex()[:12] if cur else 'nothing'}, "
                          f"not {expected_parent.hex()[:12] if expected_parent else 'nothing'}: reload and retry")
    parent = cur if cur is not None else (repo.resolve(start) if start else repo.head_commit())
    if not message.strip():
        raise UsageError("empty commit message")
    snap = repo.snapshot_object(repo.commit_object(parent).root) if parent else None
    if snap is None:
        raise NotFound("nothing to start the branch from")
    if not (create or update or delete):
        raise InvalidInput("an edit needs at least one of create, update, delete")
    ed = Editor(repo, image, snapshot=snap)
    created = []
    for c in create or []:
        if c.get("id") is not None:  # a given id must be new: changing an annotation goes through update
            key = parse_id(c["id"])
            if ed.has(key):
                raise AlreadyExists(f"annotation {format_id(key)} already exists on image {ed.image!r} "
                                    "(create takes new ids; use update to change it)")
        created.append(ed.add(c["label"], c["geometry"], c.get("properties"), c.get("plane"), c.get("id")))
    for u in update or []:
        ed.update(u["id"], label=u.get("label"), geometry=u.get("geometry"), properties=u.get("properties"),
                  plane=u.get("plane"))
    for d in delete or []:
        ed.delete(d)
    sid = ed.apply_to(snap)
    if parent is not None and sid == repo.commit_object(parent).root:
        raise NothingToCommit("the edit changes nothing (every update equals the annotation as it is)")
    cid = write_commit(repo, sid, [parent] if parent else [], message.strip(), author)
    repo.refs.cas(ref, cur, cid, author, "edit: " + message.strip().splitlines()[0])
    return cid, created
