"""One function per CLI verb: data in, data out (dicts and lists ready for JSON).

The CLI (``exactvc.cli``) only parses arguments, calls these and formats the
result; the server calls the same functions.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import Any, BinaryIO

from . import tree
from .errors import Conflict, DirtyWorkingState, InvalidInput, NotFound, UsageError
from .history import NothingToCommit  # noqa: F401 - re-exported for callers
from .objects import Snapshot, Tag
from .refs import check_new_branch, check_new_tag, check_ref_name
from .repo import Repository

Progress = Callable[[int, int], None] | None


def init(path: str | os.PathLike[str], hooks: bool = False, product: str = "default") -> dict[str, Any]:
    repo = Repository.init(path, hooks=hooks, product=product)
    return {"path": str(repo.path), "branch": "main", "hooks": hooks}


# --- images and labels ---------------------------------------------------------------------


def image_add(repo: Repository, file: str, name: str | None = None, progress: Progress = None,
              origin: str | None = None) -> dict[str, Any]:
    before = {r.fingerprint for r in repo.images(None)}
    rec = repo.add_image(file, name=name, progress=progress, origin=origin)
    out = rec.to_dict()
    out["linked"] = rec.fingerprint in before
    if out["linked"] and name is not None and name != rec.name:
        out["name_not_used"] = name  # the recorded image keeps its name
    return out


def image_ls(repo: Repository, rev: str | None = None) -> list[dict[str, Any]]:
    snap = repo.snapshot_at(rev)
    out = []
    for _name, e in sorted(snap.images.items()):
        d = repo.image_record(e).to_dict()
        d["annotations"] = e.count
        out.append(d)
    return out


def label_add(repo: Repository, name: str, shape: str | None = None, color: str | None = None,
              key: str | None = None, size: tuple[int, int] | None = None, order: int | None = None,
              force: bool = False, must_exist: bool = False) -> dict[str, Any]:
    """Add a label, or change one: what is not given keeps its value (``must_exist``: change only).

    A new shape kind that annotations of the label (in the working state) do not have is refused,
    naming them, unless ``force``; the result then lists them under ``misfits``.
    """
    old = repo.labels(None).get(name)
    misfits: list[dict[str, Any]] = []
    if old is None:
        if must_exist:
            raise NotFound(f"no label named {name!r} (exact label add {name} --shape KIND)")
        if shape is None:
            raise UsageError(f"a new label needs a shape: exact label add {name!r} --shape KIND")
        lb = repo.add_label(name, shape=shape, color=color or "#ffcc00", key=key, size=size, order=order)
    else:
        shape = shape if shape is not None else old.shape
        if shape != old.shape:
            misfits = label_misfits(repo, name, shape)
            if misfits and not force:
                first = misfits[0]
                raise Conflict(f"{len(misfits)} annotation(s) of label {name!r} are not {shape} shapes (first: "
                               f"{first['image']}:{first['id']}, a {first['kind']}); relabel or delete them, "
                               "or use --force")
        lb = repo.add_label(name, shape=shape, color=color if color is not None else old.color,
                            key=key if key is not None else old.key, size=size if size is not None else old.size,
                            order=order if order is not None else old.order, example=old.example)
    out = lb.to_body()
    if misfits:
        out["misfits"] = misfits
    return out


def label_misfits(repo: Repository, name: str, shape: str) -> list[dict[str, Any]]:
    """Annotations of label ``name`` in the working state whose kind a ``shape`` label does not take."""
    from .edit import COMPATIBLE
    from .ids import format_id

    if shape == "any":
        return []
    takes = COMPATIBLE.get(shape, {shape})
    snap = repo.snapshot_object(repo.working()[1])
    out = []
    for image, entry in sorted(snap.images.items()):
        for k, rec in tree.items(repo.store, entry.tree):
            if rec.get("l") == name and rec.get("k") not in takes:
                out.append({"image": image, "id": format_id(k), "kind": rec.get("k")})
    return out


def label_ls(repo: Repository, rev: str | None = None) -> dict[str, Any]:
    ls = repo.labels(rev)
    return {"product": ls.product, "labels": [lb.to_body() for lb in ls.ordered()]}


# --- import / export ----------------------------------------------------------------------


def import_(repo: Repository, image: str | None, file: str, create_labels: bool = False,
            progress: Progress = None, fmt: str | None = None, source_image: str | None = None,
            bbox: str = "auto") -> dict[str, Any]:
    """Import an annotation file (format from ``fmt`` or detected from the content); all or nothing.

    ``image``: the repository image (None: the file's images are matched to the repository's by name);
    ``source_image``: which of the file's images to import; ``bbox``: COCO box layout (auto, xywh, xyxy).
    """
    from pathlib import Path

    from .formats.registry import canonical_name, detect, module

    p = Path(file)
    if not p.is_file():
        raise NotFound(f"no such file: {file}")
    if fmt is None or canonical_name(fmt) == "qupath":
        _refuse_csv(file)
    f = canonical_name(fmt) if fmt is not None else detect(p)
    if f == "csv":
        raise InvalidInput(f"{file}: CSV import is not supported; import QuPath GeoJSON "
                           "(QuPath: File > Export objects as GeoJSON)")
    if f == "qupath":
        from .formats.importer import import_file

        if image is None:
            names = [r.name for r in repo.images(None)]
            if len(names) != 1:
                raise UsageError(f"{file}: QuPath GeoJSON does not name its image; say which with --image")
            image = names[0]
        res = import_file(repo, image, file, create_labels=create_labels, progress=progress)
        name = repo.image(image, None).name
        return {"format": f, "image": name, "images": [name], "features": res.features, "added": res.added,
                "replaced": res.replaced, "labels_created": res.labels_created, "skipped": {}}
    from .formats.common import import_sources

    mod = module(f)
    gc_on = gc.isenabled()
    gc.disable()  # a record per annotation and no cycles: full collections would walk them again and again
    try:
        read = mod.read(p, bbox=bbox) if f == "coco" else mod.read(p)
    finally:
        if gc_on:
            gc.enable()
    out = import_sources(repo, file, read, image=image, source_image=source_image, create_labels=create_labels)
    return {"format": f, "image": out["images"][0] if len(out["images"]) == 1 else None, **out}


def _refuse_csv(file: str) -> None:
    """CSV (what `export --format csv` writes) is not an import format: say so, rather than "bad JSON"."""
    try:
        with open(file, "rb") as f:
            head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return  # the importer reports it
    first_line = head.split(b"\n", 1)[0]
    if head[:1] == b"<" or head.startswith(b"SQLite format 3") or b"|" in first_line:
        return  # XML, SQLite or EXACT's text: other formats
    if file.lower().endswith((".csv", ".tsv")) or (head[:1] not in (b"{", b"[", b"") and
                                                   (b"," in first_line or b"\t" in first_line)):
        raise InvalidInput(f"{file}: CSV import is not supported; import QuPath GeoJSON "
                           "(QuPath: File > Export objects as GeoJSON)")


def export(repo: Repository, rev: str, image: str | None, fmt: str, out: BinaryIO, min_verifications: int = 0) -> int:
    """Write the annotations of ``rev`` as ``fmt``; with ``min_verifications`` N only those verified "yes"
    by at least N distinct users (second opinion, exactvc.verification)."""
    from .formats.registry import EXPORT_FORMATS, canonical_name
    from .formats.registry import export as _export
    from .verification import export_filter

    try:
        f = canonical_name(fmt)
    except UsageError:
        raise UsageError(f"unknown export format {fmt!r} ({', '.join(EXPORT_FORMATS)})") from None
    with export_filter(min_verifications):
        return _export(repo, rev, image, f, out)


def verify(repo: Repository, image: str, aid: str, yes: bool, comment: str | None = None,
           author: str | None = None) -> dict[str, Any]:
    """The configured user's verification of one annotation, committed on the current branch."""
    from .verification import verify as run

    return run(repo, image, aid, yes, comment, author)


# --- status / commit / log / show -------------------------------------------------------------


def snapshot_changes(repo: Repository, old: Snapshot, new: Snapshot) -> dict[str, dict[str, int]]:
    """Per image: added / modified / deleted counts, walking only the parts of trees that differ."""
    out: dict[str, dict[str, int]] = {}
    for name in sorted(set(old.images) | set(new.images)):
        a, b = old.images.get(name), new.images.get(name)
        if a == b:
            continue
        counts = {"added": 0, "modified": 0, "deleted": 0}
        for _k, x, y in tree.diff(repo.store, a.tree if a else None, b.tree if b else None):
            counts["added" if x is None else "deleted" if y is None else "modified"] += 1
        if a is None:
            counts["image"] = 1  # image added
        elif b is None:
            counts["image"] = -1  # image removed
        out[name] = counts
    return out


def status(repo: Repository) -> dict[str, Any]:
    base, snap_id = repo.working()
    new = repo.snapshot_object(snap_id)
    old = repo.snapshot_object(repo.commit_object(base).root) if base else Snapshot()
    images = snapshot_changes(repo, old, new)
    labels_changed = old.labels != new.labels
    out: dict[str, Any] = {
        "branch": repo.current_branch(),
        "head": base.hex() if base else None,
        "images": images,
        "labels_changed": labels_changed,
        "clean": not images and not labels_changed,
    }
    merge = merge_state(repo)
    if merge is not None:
        out["merging"] = merge
    if out["branch"]:
        from .remote import ahead_behind

        ab = ahead_behind(repo, out["branch"])
        if ab is not None:
            out["upstream"] = ab
    return out


def merge_state(repo: Repository) -> dict[str, Any] | None:
    from .merge import load_state

    st = load_state(repo)
    if st is None:
        return None
    return {"ours": st["ours"], "theirs": st["theirs"], "message": st["message"],
            "conflicts": len(st["conflicts"])}


def refuse_while_merging(repo: Repository, what: str) -> None:
    """Commands that would record or carry away a half-done merge wait until it is continued or aborted."""
    from .merge import MergeInProgress, load_state

    if load_state(repo) is not None:
        raise MergeInProgress(f"cannot {what} while a merge is in progress: resolve it and "
                              "`exact merge --continue`, or `exact merge --abort`")


def commit(repo: Repository, message: str, author: str | None = None, allow_empty: bool = False) -> dict[str, Any]:
    refuse_while_merging(repo, "commit")
    cid = repo.commit(message, author=author, allow_empty=allow_empty)
    c = repo.commit_object(bytes.fromhex(cid))
    return {"id": cid, "branch": repo.current_branch(), "message": c.message, "root": c.root.hex()}


def log(repo: Repository, rev: str = "HEAD", n: int | None = None, image: str | None = None) -> list[dict[str, Any]]:
    if n is not None and n < 0:
        raise UsageError("-n must not be negative")
    if image is not None:
        image = repo.image(image, None if rev == "HEAD" else rev).name
    return [e.to_dict() for e in repo.log(rev, n=n, image=image)]


def show(repo: Repository, rev: str = "HEAD") -> dict[str, Any]:
    cid = repo.resolve(rev)
    c = repo.commit_object(cid)
    snap = repo.snapshot_object(c.root)
    parent = repo.snapshot_object(repo.commit_object(c.parents[0]).root) if c.parents else Snapshot()
    out: dict[str, Any] = {
        "id": cid.hex(),
        "root": c.root.hex(),
        "parents": [p.hex() for p in c.parents],
        "author": c.author,
        "committer": c.committer,
        "time": c.time,
        "tz": c.tz,
        "message": c.message,
        "images": {name: {"annotations": e.count, "tree": e.tree.hex() if e.tree else None}
                   for name, e in sorted(snap.images.items())},
        "changes": snapshot_changes(repo, parent, snap),
        "labels_changed": parent.labels != snap.labels,
    }
    tags = [n[5:] for n, oid in repo.refs.list("tags/").items() if _peel_safe(repo, oid) == cid]
    if tags:
        out["tags"] = tags
    return out


def reflog(repo: Repository, ref: str = "HEAD", n: int | None = None) -> list[dict[str, Any]]:
    """Moves of HEAD (or a branch), newest first, each named ``REF@{N}``."""
    if n is not None and n < 0:
        raise UsageError("-n must not be negative")
    name = "HEAD" if ref == "HEAD" else f"heads/{ref}"
    if name != "HEAD" and repo.refs.read(name) is None and not repo.refs.reflog(name):
        raise NotFound(f"no branch named {ref!r}")
    zero = "0" * 64
    out = []
    for i, e in enumerate(reversed(repo.refs.reflog(name))):
        if n is not None and i >= n:
            break
        out.append({"name": f"{ref}@{{{i}}}", "old": None if e.old == zero else e.old,
                    "new": None if e.new == zero else e.new, "time": e.time, "who": e.who, "message": e.message})
    return out


def _peel_safe(repo: Repository, oid: bytes) -> bytes | None:
    try:
        return repo._peel(oid)
    except NotFound:
        return None


# --- branches, tags, switching ---------------------------------------------------------------


def branches(repo: Repository) -> list[dict[str, Any]]:
    cur = repo.current_branch()
    return [{"name": n[6:], "commit": oid.hex(), "current": n[6:] == cur}
            for n, oid in repo.refs.list("heads/").items()]


def branch_create(repo: Repository, name: str, rev: str = "HEAD", force: bool = False) -> dict[str, Any]:
    check_new_branch(repo.refs, name)
    target = repo.resolve(rev)
    ref = f"heads/{name}"
    old = repo.refs.read(ref)
    if old is not None and not force:
        raise Conflict(f"branch {name!r} already exists")
    repo.refs.cas(ref, old, target, _who(repo), f"branch: created from {rev}")
    return {"name": name, "commit": target.hex()}


def branch_delete(repo: Repository, name: str, force: bool = False) -> dict[str, Any]:
    ref = f"heads/{name}"
    old = repo.refs.read(ref)
    if old is None:
        raise NotFound(f"no branch named {name!r}")
    if name == repo.current_branch():
        raise Conflict(f"cannot delete the current branch {name!r}")
    if not force and not _merged_anywhere(repo, old, exclude=ref):
        raise Conflict(f"branch {name!r} has commits on no other branch; use --force to delete it")
    repo.refs.cas(ref, old, None, _who(repo), "branch: deleted")
    return {"name": name, "commit": old.hex(), "deleted": True}


def _merged_anywhere(repo: Repository, oid: bytes, exclude: str) -> bool:
    from .graph import is_ancestor

    for n, other in repo.refs.list("heads/").items():
        if n != exclude and is_ancestor(repo, oid, other):
            return True
    return False


def _who(repo: Repository) -> str:
    from .repo import default_author

    return str(repo.config().get("user") or default_author())


def switch(repo: Repository, branch: str, create: bool = False, force: bool = False,
           start: str = "HEAD") -> dict[str, Any]:
    """Make ``branch`` current. Uncommitted edits stay when ``create`` makes it at HEAD's commit;
    otherwise they are refused unless ``force`` discards them."""
    if create:
        check_new_branch(repo.refs, branch)
    else:
        check_ref_name(branch)
    ref = f"heads/{branch}"
    exists = repo.refs.read(ref) is not None
    if create and exists:
        raise Conflict(f"branch {branch!r} already exists")
    if not create and not exists:
        raise NotFound(f"no branch named {branch!r} (use -c to create it)")
    refuse_while_merging(repo, "switch branches")
    with repo.lock():
        before = _head_name(repo)
        head = repo.head_commit()
        if create:
            target = repo.resolve(start) if head is not None or start != "HEAD" else None
        else:
            target = repo.refs.read(ref)
        keep = create and target == head and not force  # a new branch at HEAD: the edits come along
        if not keep:
            _refuse_dirty(repo, force)
        left = _left_behind(repo, target)
        if create and target is not None:
            repo.refs.cas(ref, None, target, _who(repo), f"branch: created from {start}")
        repo.refs.write_head(f"ref: {ref}", _who(repo), f"switch: moving from {before} to {branch}")
        if not keep:
            _reset_working(repo)
    out: dict[str, Any] = {"branch": branch, "commit": (repo.head_commit() or b"").hex() or None}
    if left:
        out["left_behind"] = left
    return out


def checkout(repo: Repository, rev: str, force: bool = False) -> dict[str, Any]:
    if rev == "HEAD" and repo.current_branch() is not None:  # stays on the branch (-f: discards edits)
        return switch(repo, str(repo.current_branch()), force=force)
    try:
        is_branch = repo.refs.read(f"heads/{rev}") is not None
    except InvalidInput:  # not a valid branch name: a revision expression
        is_branch = False
    if is_branch:
        return switch(repo, rev, force=force)
    target = repo.resolve(rev)
    refuse_while_merging(repo, "check out another commit")
    with repo.lock():
        before = _head_name(repo)
        keep = target == repo.head_commit() and not force
        if not keep:
            _refuse_dirty(repo, force)
        left = _left_behind(repo, target)
        repo.refs.write_head(target.hex(), _who(repo), f"checkout: moving from {before} to {rev}")
        if not keep:
            _reset_working(repo)
    out: dict[str, Any] = {"branch": None, "commit": target.hex(), "detached": True}
    if left:
        out["left_behind"] = left
    return out


def _head_name(repo: Repository) -> str:
    branch = repo.current_branch()
    if branch is not None:
        return branch
    head = repo.head_commit()
    return head.hex()[:12] if head else "nothing"


def _left_behind(repo: Repository, new: bytes | None) -> list[str]:
    """Commits of a detached HEAD that no branch, tag or remote-tracking branch (nor ``new``) reaches:
    leaving them, they are found only through the HEAD reflog (``exact reflog``)."""
    from .graph import only_in

    branch_ref, old = repo.refs.head()
    if branch_ref is not None or old is None or old == new:
        return []
    tips = [t for t in (_peel_safe(repo, oid) for oid in repo.refs.list().values()) if t is not None]
    if new is not None:
        tips.append(new)
    return [c.hex() for c in only_in(repo, [old], tips)]


def _refuse_dirty(repo: Repository, force: bool) -> None:
    if not force and repo.is_dirty():
        raise DirtyWorkingState("uncommitted edits would be lost; commit them or use --force")


def _reset_working(repo: Repository) -> None:
    if repo.exact_dir is not None:
        try:
            (repo.exact_dir / "WORKING").unlink()
        except FileNotFoundError:
            pass
    else:
        repo._mem_working = None


def tags(repo: Repository) -> list[dict[str, Any]]:
    out = []
    for n, oid in repo.refs.list("tags/").items():
        t, _ = repo.store.get(oid)
        d: dict[str, Any] = {"name": n[5:], "object": oid.hex(), "annotated": t == "tag"}
        d["commit"] = repo._peel(oid).hex()
        if t == "tag":
            tag = Tag.from_body(repo.read_body(oid, "tag"))
            d.update(tagger=tag.tagger, time=tag.time, message=tag.message)
        out.append(d)
    return out


def tag_create(repo: Repository, name: str, rev: str = "HEAD", message: str | None = None,
               force: bool = False) -> dict[str, Any]:
    import time

    check_new_tag(repo.refs, name)
    target = repo.resolve(rev)
    ref = f"tags/{name}"
    old = repo.refs.read(ref)
    if old is not None and not force:
        raise Conflict(f"tag {name!r} already exists")
    obj = target
    if message:
        obj = repo.put("tag", Tag(target, name, _who(repo), int(time.time()), message).to_body())
    repo.refs.cas(ref, old, obj, _who(repo), f"tag: {name}")
    return {"name": name, "commit": target.hex(), "annotated": bool(message)}


def tag_delete(repo: Repository, name: str) -> dict[str, Any]:
    ref = f"tags/{name}"
    old = repo.refs.read(ref)
    if old is None:
        raise NotFound(f"no tag named {name!r}")
    repo.refs.cas(ref, old, None, _who(repo), "tag: deleted")
    return {"name": name, "deleted": True}


def parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        w, _, h = text.lower().partition("x")
        size = (int(w), int(h or w))
    except ValueError:
        raise InvalidInput(f"invalid size {text!r} (expected WxH, e.g. 50x50)") from None
    if size[0] <= 0 or size[1] <= 0:
        raise InvalidInput(f"invalid size {text!r}: must be positive")
    return size


# --- diff, merge, conflicts, blame (issue: diff/merge) -------------------------------------------


def _snap_for(repo: Repository, rev: str | None) -> Snapshot:
    if rev is None:
        return repo.snapshot_object(repo.working()[1])
    return repo.snapshot_object(repo.commit_object(repo.resolve(rev)).root)


def diff_revs(args: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(old, new) revisions for `exact diff [A [B]]`; None is the working state."""
    if len(args) == 0:
        return "HEAD", None
    if len(args) == 1:
        return args[0], None
    if len(args) == 2:
        return args[0], args[1]
    raise UsageError("usage: exact diff [A [B]]")


def diff(repo: Repository, old: str | None, new: str | None, image: str | None = None,
         fmt: str = "json", stat: bool = False) -> dict[str, Any]:
    from . import diff as d

    if repo.head_commit() is None and old == "HEAD":
        a = Snapshot()
    else:
        a = _snap_for(repo, old)
    b = _snap_for(repo, new)
    if image is not None:
        image = repo.image(image, new).name if image not in a.images else image
    res = d.diff_snapshots(repo, a, b, image)
    if fmt == "geojson":
        return d.to_geojson(repo, res)
    return d.to_json(repo, res, old or "WORKING", new or "WORKING", stat=stat)


def match(repo: Repository, old: str | None, new: str | None, spec: str, image: str | None = None,
          details: bool = False) -> dict[str, Any]:
    from .match import match as run_match
    from .match import parse_spec

    parsed = parse_spec(spec)
    snap = _snap_for(repo, new)
    if image is None:
        if len(snap.images) != 1:
            raise UsageError("--match compares one image: add --image NAME")
        image = next(iter(snap.images))
    return run_match(repo, image, old, new, parsed, details=details)


def merge(repo: Repository, rev: str, no_ff: bool = False, message: str | None = None,
          author: str | None = None, duplicates: str = "warn") -> dict[str, Any]:
    from .merge import merge as run_merge

    return run_merge(repo, rev, no_ff=no_ff, message=message, author=author, duplicates=duplicates).to_dict()


def merge_continue(repo: Repository, message: str | None = None, author: str | None = None) -> dict[str, Any]:
    from .merge import merge_continue as cont

    return {"commit": cont(repo, message, author), "status": "merged"}


def merge_abort(repo: Repository) -> dict[str, Any]:
    from .merge import merge_abort as abort

    abort(repo)
    return {"status": "aborted"}


def conflicts(repo: Repository, fmt: str = "json") -> dict[str, Any]:
    from . import geometry
    from .annotation import Annotation
    from .merge import conflicts as load
    from .merge import load_state

    cs = load(repo)
    st = load_state(repo) or {}
    if fmt == "geojson":
        feats = []
        for c in cs:
            for side in ("ours", "theirs"):
                rec = getattr(c, side)
                if c.image is None or rec is None:
                    continue
                rec = tree.join_record(repo.store, rec)
                feats.append({"type": "Feature", "id": f"{c.id}:{side}",
                              "geometry": geometry.to_geojson(rec["k"], rec["g"]),
                              "properties": {"image": c.image, "annotation": c.id, "side": side, "kind": c.kind,
                                             "fields": c.fields, "label": rec["l"]}})
        return {"type": "FeatureCollection", "features": feats}

    def show(c: Any, rec: dict[str, Any] | None) -> Any:
        if rec is None or c.image is None:
            return rec
        from .ids import parse_id

        return Annotation.from_record(parse_id(c.id), tree.join_record(repo.store, rec)).to_dict()

    return {"ours": st.get("ours"), "theirs": st.get("theirs"), "base": st.get("base"),
            "conflicts": [{"address": c.address, "image": c.image, "id": c.id, "kind": c.kind, "fields": c.fields,
                           "base": show(c, c.base), "ours": show(c, c.ours), "theirs": show(c, c.theirs),
                           **({"other": c.other} if c.other else {})} for c in cs],
            "duplicates": st.get("duplicates", [])}


def resolve(repo: Repository, address: str | None, side: str | None, fields: dict[str, str] | None = None,
            image: str | None = None, label: str | None = None) -> dict[str, Any]:
    from .merge import load_state
    from .merge import resolve as run

    done = run(repo, address, side, fields, image=image, label=label)
    st = load_state(repo) or {"conflicts": []}
    return {"resolved": done, "remaining": len(st["conflicts"])}


def blame(repo: Repository, image: str, aid: str | None = None, rev: str = "HEAD") -> list[dict[str, Any]]:
    from .blame import blame as run

    return run(repo, image, aid, rev)


def annotation_log(repo: Repository, aid: str, image: str | None = None, rev: str = "HEAD") -> list[dict[str, Any]]:
    from .blame import annotation_log as run

    return run(repo, aid, image, rev)


def revert(repo: Repository, rev: str, author: str | None = None) -> dict[str, Any]:
    from .blame import revert as run

    refuse_while_merging(repo, "revert")
    target = repo.resolve(rev).hex()  # before the revert moves HEAD (HEAD~1 names another commit after)
    return {"commit": run(repo, rev, author=author), "reverted": target}


def config_set(repo: Repository, key: str, value: str) -> dict[str, Any]:
    allowed = {"merge.policy": ("field", "annotation"), "user": None, "product": None}
    if key not in allowed:
        raise UsageError(f"unknown setting {key!r} (one of {', '.join(allowed)})")
    choices = allowed[key]
    if choices is not None and value not in choices:
        raise InvalidInput(f"{key} must be one of {', '.join(choices)}")
    repo.set_config(key, value)
    return {key: value}
