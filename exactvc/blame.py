"""Who changed what: blame, the history of one annotation, revert."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import tree, verification
from .diff import changed_fields
from .errors import Conflict, NotFound
from .ids import format_id, parse_id
from .objects import Commit, ImageEntry, Snapshot
from .store import Pending

if TYPE_CHECKING:
    from .repo import Repository


def _walk(repo: Repository, start: bytes) -> Iterator[tuple[bytes, Commit]]:
    """Every commit reachable from ``start``, newest first (by generation, then time)."""
    c0 = repo.commit_object(start)
    heap = [(-c0.generation, -c0.time, start)]
    seen = {start}
    while heap:
        _, _, oid = heapq.heappop(heap)
        c = repo.commit_object(oid)
        yield oid, c
        for p in c.parents:
            if p not in seen:
                seen.add(p)
                pc = repo.commit_object(p)
                heapq.heappush(heap, (-pc.generation, -pc.time, p))


def _tree(repo: Repository, commit: Commit, image: str) -> bytes | None:
    e = repo.snapshot_object(commit.root).images.get(image)
    return e.tree if e else None


def _info(oid: bytes, c: Commit) -> dict[str, Any]:
    return {"commit": oid.hex(), "author": c.author, "time": c.time, "tz": c.tz, "message": c.message}


def blame(repo: Repository, image: str, aid: str | None = None, rev: str = "HEAD") -> list[dict[str, Any]]:
    """For each annotation (or one), the commit that last changed it and, for each of its verifications,
    the commit that made it (a commit that only verified is not blamed for the annotation itself)."""
    start = repo.resolve(rev)
    name = repo.image(image, rev).name
    head_tree = _tree(repo, repo.commit_object(start), name)
    if aid is not None:
        key = parse_id(aid)
        rec = tree.get(repo.store, head_tree, key)
        if rec is None:
            raise NotFound(f"no annotation {aid} on image {name!r} at {rev}")
        target = {key: rec}
    else:
        target = dict(tree.items(repo.store, head_tree))
    bare = {k: _bare(r) for k, r in target.items()}
    wanted = {(k, e["u"]): e for k, r in target.items() for e in verification.entries(r)}
    verified = {k for k, _u in wanted}
    found: dict[bytes, dict[str, Any]] = {}
    found_v: dict[tuple[bytes, str], dict[str, Any]] = {}
    for oid, c in _walk(repo, start):
        if len(found) == len(target) and len(found_v) == len(wanted):
            break
        mine = _tree(repo, c, name)
        parent = _tree(repo, repo.commit_object(c.parents[0]), name) if c.parents else None
        second = [_tree(repo, repo.commit_object(p), name) for p in c.parents[1:]]
        for k, old, new in tree.diff(repo.store, parent, mine):
            if k not in target or new is None:
                continue
            if k not in verified:  # the plain rule: the commit that made the record as it is now
                if k not in found and new == target[k] and not any(tree.get(repo.store, t, k) == new
                                                                   for t in second):
                    found[k] = _info(oid, c)  # (else it came in from a merged branch: blame that branch's commit)
                continue
            others = [tree.get(repo.store, t, k) for t in second]
            b_new = _bare(new)
            if k not in found and b_new == bare[k] and (old is None or _bare(old) != b_new) \
                    and not any(o is not None and _bare(o) == b_new for o in others):
                found[k] = _info(oid, c)
            before = verification.entries(old)
            for e in verification.entries(new):
                vk = (k, e["u"])
                if vk in found_v or wanted.get(vk) != e or e in before:
                    continue
                if any(e in verification.entries(o) for o in others):
                    continue
                found_v[vk] = _info(oid, c)
    out = []
    for k in sorted(target):
        row: dict[str, Any] = {"id": format_id(k), "label": target[k]["l"], **found.get(k, {})}
        es = verification.entries(target[k])
        if es:
            row["verifications"] = [
                {**v, **{f: found_v[(k, e["u"])][f] for f in ("commit", "author") if (k, e["u"]) in found_v}}
                for e, v in zip(es, verification.to_json(es), strict=True)]
        out.append(row)
    return out


def _bare(rec: dict[str, Any]) -> dict[str, Any]:
    """A record without its verifications: what "changing the annotation" compares."""
    return {k: v for k, v in rec.items() if k != verification.FIELD} if verification.FIELD in rec else rec


def annotation_log(repo: Repository, aid: str, image: str | None = None, rev: str = "HEAD") -> list[dict[str, Any]]:
    """Every commit that changed one annotation, newest first, with what changed."""
    key = parse_id(aid)
    start = repo.resolve(rev)
    snap = repo.snapshot_at(rev)
    if image is None:
        names = [n for n, e in snap.images.items() if tree.get(repo.store, e.tree, key) is not None]
        if not names:
            names = sorted(snap.images)  # it may have been deleted: look everywhere
    else:
        names = [repo.image(image, rev).name]
    out = []
    for oid, c in _walk(repo, start):
        for name in names:
            now = tree.get(repo.store, _tree(repo, c, name), key)
            before = tree.get(repo.store, _tree(repo, repo.commit_object(c.parents[0]), name), key) \
                if c.parents else None
            if now == before:
                continue
            if len(c.parents) > 1 and any(
                tree.get(repo.store, _tree(repo, repo.commit_object(p), name), key) == now for p in c.parents[1:]
            ):
                continue  # brought in by the merge: the branch's own commit is listed
            change = "added" if before is None else "deleted" if now is None else "modified"
            fields = changed_fields(before, now) if before is not None and now is not None else []
            out.append({**_info(oid, c), "image": name, "change": change, "fields": fields})
    if not out:
        raise NotFound(f"annotation {aid} never appears in the history of {rev}")
    return out


def revert(repo: Repository, rev: str, author: str | None = None, message: str | None = None) -> str:
    """A new commit undoing ``rev`` (three-way: base = rev, ours = HEAD, theirs = rev's parent)."""
    from .history import advance_head, write_commit
    from .merge import merge_labels, merge_tree
    from .repo import default_author

    target = repo.resolve(rev)
    c = repo.commit_object(target)
    if len(c.parents) > 1:
        raise Conflict("reverting a merge commit is not supported; revert the branch's commits instead")
    if repo.is_dirty():
        raise Conflict("uncommitted edits: commit them first, then revert")
    head = repo.head_commit()
    assert head is not None
    base = repo.snapshot_object(c.root)
    ours = repo.snapshot_object(repo.commit_object(head).root)
    theirs = repo.snapshot_object(repo.commit_object(c.parents[0]).root) if c.parents else Snapshot()
    labels_id, lconf = merge_labels(repo, base, ours, theirs)
    out: list[Pending] = []
    images: dict[str, ImageEntry] = dict(ours.images)
    n_conf = len(lconf)
    for name in sorted(set(base.images) | set(theirs.images)):
        b, o, t = base.images.get(name), ours.images.get(name), theirs.images.get(name)
        if o is None:
            continue
        if t is None and b is not None and b == o:
            del images[name]
            continue
        root, cf, _st, _a, _b = merge_tree(repo, name, b.tree if b else None, o.tree, t.tree if t else None,
                                           "field", out)
        n_conf += len(cf)
        repo.store.write(out)
        out.clear()
        images[name] = ImageEntry(o.record, root, tree.count(repo.store, root))
    if n_conf:
        raise Conflict(f"cannot revert {rev}: {n_conf} annotation(s) were changed again since; edit them by hand")
    who = author or str(repo.config().get("user") or default_author())
    sid = repo.put("snapshot", Snapshot(images, labels_id).to_body())
    if sid == repo.commit_object(head).root:
        from .history import NothingToCommit

        raise NothingToCommit(f"nothing to revert: HEAD has none of the changes of {rev} ({target.hex()[:12]})")
    msg = message or f'Revert "{c.message.splitlines()[0]}"\n\nThis reverts commit {target.hex()}.'
    with repo.lock():
        cid = write_commit(repo, sid, [head], msg, who)
        advance_head(repo, head, cid, who, f"revert {target.hex()[:12]}")
        repo.set_working(cid, sid)
    return cid.hex()
