"""Three-way merges of annotation sets, field by field, with conflicts that survive restarts.

Rules (see docs/merge.md): per annotation, a change made on one side is taken;
identical changes converge; changes to different fields of one annotation
combine (one side relabels, the other redraws: both kept); the same field
changed differently, or delete against modify, is a conflict. With
``merge.policy = annotation`` any different concurrent edit of one annotation
is a conflict. Label sets merge the same way, label by label.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from . import tree, verification
from .diff import FIELDS, changed_fields, field_values, label_set, with_fields
from .errors import Conflict, ExactError, NotFound, UsageError
from .fsutil import atomic_write
from .ids import format_id, parse_id
from .objects import ImageEntry, LabelSet, Snapshot
from .store import Pending

if TYPE_CHECKING:
    from .repo import Repository

STATE = "MERGE_STATE"
POLICIES = ("field", "annotation")
DUPLICATE_PX = 10.0  # points and lines of a label without a default size: duplicates within this distance


class MergeInProgress(ExactError):
    exit_code = 6
    http_status = 409
    kind = "merge_in_progress"


# --- the commit graph ---------------------------------------------------------------------------


def merge_bases(repo: Repository, a: bytes, b: bytes) -> list[bytes]:
    """Best common ancestors of ``a`` and ``b`` (highest generation first).

    Walks both histories together, newest generation first, and stops as soon
    as everything left to visit is below a common ancestor already found, so
    long shared histories cost little.
    """
    if a == b:
        return [a]
    flags: dict[bytes, int] = {a: 1, b: 2}
    heap: list[tuple[int, bytes]] = [(-repo.commit_object(a).generation, a), (-repo.commit_object(b).generation, b)]
    heapq.heapify(heap)
    stale = 4
    found: list[bytes] = []
    while heap:
        if all(flags[c] & stale for _, c in heap):
            break
        _, c = heapq.heappop(heap)
        f = flags[c]
        if f & 3 == 3 and not f & stale:
            found.append(c)
            f |= stale
            flags[c] = f
        for p in repo.commit_object(c).parents:
            old = flags.get(p, 0)
            new = old | f
            if new != old:
                if old == 0:
                    heapq.heappush(heap, (-repo.commit_object(p).generation, p))
                flags[p] = new
    # drop bases that are ancestors of other bases
    from .graph import is_ancestor

    best = [x for x in found if not any(y != x and is_ancestor(repo, x, y) for y in found)]
    best.sort(key=lambda x: -repo.commit_object(x).generation)
    return best


# --- conflicts -------------------------------------------------------------------------------------


@dataclass
class MergeConflict:
    image: str | None  # None for a label-set conflict
    id: str  # annotation id, or the label name for label conflicts
    kind: str  # modify/modify, delete/modify, modify/delete, add/add, duplicate, label
    fields: list[str]
    base: dict[str, Any] | None
    ours: dict[str, Any] | None
    theirs: dict[str, Any] | None
    other: str | None = None  # for duplicates: the id of our probable duplicate

    @property
    def address(self) -> str:
        return f"{self.image}:{self.id}" if self.image is not None else f"label:{self.id}"

    def to_state(self) -> dict[str, Any]:
        return {"image": self.image, "id": self.id, "kind": self.kind, "fields": self.fields,
                "base": _j(self.base), "ours": _j(self.ours), "theirs": _j(self.theirs), "other": self.other}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> MergeConflict:
        return cls(d["image"], d["id"], d["kind"], d["fields"], _unj(d["base"]), _unj(d["ours"]),
                   _unj(d["theirs"]), d.get("other"))


def _j(rec: dict[str, Any] | None) -> Any:
    if rec is None:
        return None
    return {k: ({"$bin": v.hex()} if isinstance(v, bytes) else v) for k, v in rec.items()}


def _unj(rec: Any) -> dict[str, Any] | None:
    if rec is None:
        return None
    return {k: (bytes.fromhex(v["$bin"]) if isinstance(v, dict) and "$bin" in v else v) for k, v in rec.items()}


@dataclass
class Duplicate:
    image: str
    ours: str
    theirs: str
    label: str
    score: float


@dataclass
class MergeResult:
    status: str  # up-to-date, fast-forward, merged, conflicts
    commit: str | None
    base: str | None
    ours: str
    theirs: str
    conflicts: list[MergeConflict] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "commit": self.commit, "base": self.base, "ours": self.ours,
            "theirs": self.theirs,
            "conflicts": [{"address": c.address, "kind": c.kind, "fields": c.fields} for c in self.conflicts],
            "duplicates": [d.__dict__ for d in self.duplicates],
            "stats": self.stats,
        }


# --- merging trees ----------------------------------------------------------------------------------


def merge_records(
    base: dict[str, Any] | None, ours: dict[str, Any] | None, theirs: dict[str, Any] | None, policy: str
) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """Merge one annotation changed on both sides: (result, conflict kind or None, conflicting fields).

    On conflict the result is what the working state holds meanwhile: ours, plus
    every field of theirs that does not conflict (a deleted side keeps the other
    side's version, so nothing is lost before the conflict is resolved).
    """
    if ours == theirs:
        return ours, None, []
    if ours is None or theirs is None:
        kind = "delete/modify" if ours is None else "modify/delete"
        return (theirs if ours is None else ours), kind, list(FIELDS)
    if any(r is not None and verification.FIELD in r for r in (base, ours, theirs)):
        # verifications merge per user (exactvc.verification.merge3); the other fields by the rules here
        res, why, which = merge_records(_unverified(base), _unverified(ours), _unverified(theirs), policy)
        if res is not None:
            res = verification.with_entries(res, verification.merge3(base, ours, theirs))
        return res, why, which
    if base is None:
        fields = changed_fields(ours, theirs)
        return ours, "add/add", fields
    fo = set(changed_fields(base, ours))
    ft = changed_fields(base, theirs)
    vo, vt = field_values(ours), field_values(theirs)
    clash = [f for f in ft if f in fo and vo[f] != vt[f]]
    take = [f for f in ft if f not in fo]
    merged = with_fields(ours, theirs, take)
    if policy == "annotation" and fo and ft and ours != theirs:
        return ours, "modify/modify", sorted(set(ft) | fo)
    if clash:
        return merged, "modify/modify", clash
    return merged, None, []


def _unverified(rec: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if rec is None else {k: v for k, v in rec.items() if k != verification.FIELD}


def merge_tree(
    repo: Repository, image: str, base: bytes | None, ours: bytes | None, theirs: bytes | None, policy: str,
    out: list[Pending],
) -> tuple[bytes | None, list[MergeConflict], dict[str, int], list[tuple[bytes, dict[str, Any]]],
           list[tuple[bytes, dict[str, Any]]]]:
    """Merge one image's trees; returns (root, conflicts, stats, added by us, added by them).

    Only the two diffs against the base are walked, and only nodes on the paths
    of the keys theirs changed are rewritten: untouched subtrees are reused.
    """
    stats = {"taken": 0, "combined": 0, "converged": 0, "conflicts": 0}
    if ours == theirs or theirs == base:
        return ours, [], stats, [], []
    if ours == base:
        n = sum(1 for _ in tree.diff(repo.store, base, theirs))
        stats["taken"] = n
        return theirs, [], stats, [], []
    d_ours = {k: (o, n) for k, o, n in tree.diff(repo.store, base, ours)}
    edits: dict[bytes, bytes | None] = {}
    conflicts: list[MergeConflict] = []
    added_theirs: list[tuple[bytes, dict[str, Any]]] = []
    for k, b_rec, t_rec in tree.diff(repo.store, base, theirs):
        if b_rec is None and t_rec is not None and k not in d_ours:
            added_theirs.append((k, t_rec))
        if k not in d_ours:
            edits[k] = None if t_rec is None else tree.encode_record(t_rec)
            stats["taken"] += 1
            continue
        o_rec = d_ours[k][1]
        res, kind, fields = merge_records(b_rec, o_rec, t_rec, policy)
        if kind is None:
            if res == o_rec:
                stats["converged"] += 1
            else:
                stats["combined"] += 1
        else:
            stats["conflicts"] += 1
            conflicts.append(MergeConflict(image, format_id(k), kind, fields, b_rec, o_rec, t_rec))
        if res != o_rec:
            edits[k] = None if res is None else tree.encode_record(res)
    added_ours = [(k, n) for k, (o, n) in d_ours.items() if o is None and n is not None]
    root = tree.apply(repo.store, ours, edits, out) if edits else ours
    return root, conflicts, stats, added_ours, added_theirs


def find_duplicates(
    repo: Repository, image: str, ours_added: list[tuple[bytes, dict[str, Any]]],
    theirs_added: list[tuple[bytes, dict[str, Any]]], labels: LabelSet, iou: float = 0.5,
) -> list[Duplicate]:
    """Annotations both sides added with the same label that are the same object (docs/matching.md).

    The rules of ``exact diff --match`` with ``iou`` for areas and, for points and
    lines, half the label's default size (``DUPLICATE_PX`` without one).
    """
    if not ours_added or not theirs_added:
        return []
    from .ids import format_id
    from .match import MatchSpec, label_radius, match_items

    sides: list[list[tuple[str, str, Any, Any]]] = [[], []]
    keys: list[list[bytes]] = [[], []]
    for side, added in ((0, ours_added), (1, theirs_added)):
        for k, rec in added:
            rec = tree.join_record(repo.store, rec)
            sides[side].append((rec["l"], rec["k"], rec["g"], rec.get("z")))
            keys[side].append(k)
    radii = {lb.name: label_radius(lb.size) or DUPLICATE_PX for lb in labels.labels}
    for label, _kind, _g, _z in (*sides[0], *sides[1]):
        radii.setdefault(label, DUPLICATE_PX)
    res = match_items(sides[0], sides[1], MatchSpec(iou=iou), radii)
    out = [Duplicate(image, format_id(keys[0][x]), format_id(keys[1][y]), label, round(s, 4))
           for x, y, label, _by, s in res["pairs"]]
    out.sort(key=lambda d: (d.label, d.ours, d.theirs))
    return out


def merge_labels(
    repo: Repository, base: Snapshot, ours: Snapshot, theirs: Snapshot
) -> tuple[bytes | None, list[MergeConflict]]:
    if ours.labels == theirs.labels or theirs.labels == base.labels:
        return ours.labels, []
    if ours.labels == base.labels:
        return theirs.labels, []
    b = {lb.name: lb.to_body() for lb in label_set(repo, base).labels}
    o = {lb.name: lb.to_body() for lb in label_set(repo, ours).labels}
    t = {lb.name: lb.to_body() for lb in label_set(repo, theirs).labels}
    result = dict(o)
    conflicts = []
    for name in sorted(set(b) | set(o) | set(t)):
        bv, ov, tv = b.get(name), o.get(name), t.get(name)
        if ov == tv or tv == bv:
            continue
        if ov == bv:
            if tv is None:
                result.pop(name, None)
            else:
                result[name] = tv
            continue
        conflicts.append(MergeConflict(None, name, "label", ["label"], bv, ov, tv))
    ls = label_set(repo, ours)
    body = {"product": ls.product, "labels": [result[n] for n in sorted(result)]}
    return repo.put("labels", body), conflicts


# --- state on disk -----------------------------------------------------------------------------------


def load_state(repo: Repository) -> dict[str, Any] | None:
    if repo.exact_dir is None:
        st: dict[str, Any] | None = getattr(repo, "_mem_merge", None)
        return st
    p = repo.exact_dir / STATE
    if not p.exists():
        return None
    data: dict[str, Any] = orjson.loads(p.read_bytes())
    return data


def save_state(repo: Repository, state: dict[str, Any] | None) -> None:
    if repo.exact_dir is None:
        repo._mem_merge = state  # type: ignore[attr-defined]
        return
    p = repo.exact_dir / STATE
    if state is None:
        p.unlink(missing_ok=True)
    else:
        atomic_write(p, orjson.dumps(state, option=orjson.OPT_INDENT_2))


def conflicts(repo: Repository) -> list[MergeConflict]:
    st = load_state(repo)
    if st is None:
        raise NotFound("no merge in progress")
    return [MergeConflict.from_state(c) for c in st["conflicts"]]


# --- the merge command -----------------------------------------------------------------------------


def merge(
    repo: Repository, theirs_rev: str, no_ff: bool = False, message: str | None = None, author: str | None = None,
    duplicates: str = "warn", policy: str | None = None,
) -> MergeResult:
    from .history import advance_head, write_commit
    from .repo import default_author

    theirs = repo.resolve(theirs_rev)  # an unknown branch is named first
    if load_state(repo) is not None:
        raise MergeInProgress("a merge is in progress: resolve it and `exact merge --continue`, or `--abort`")
    if duplicates not in ("warn", "conflict"):
        raise UsageError("--duplicates takes warn or conflict")
    policy = policy or str(repo.config().get("merge.policy", "field"))
    if policy not in POLICIES:
        raise UsageError(f"merge.policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    ours = repo.head_commit()
    who = author or str(repo.config().get("user") or default_author())
    if repo.is_dirty():
        raise Conflict("uncommitted edits: commit them first, then merge")
    if ours is None:
        raise NotFound("the current branch has no commits to merge into")
    bases = merge_bases(repo, ours, theirs)
    base = bases[0] if bases else None
    res = MergeResult("merged", None, base.hex() if base else None, ours.hex(), theirs.hex())
    if base == theirs:
        res.status = "up-to-date"
        return res
    if base == ours and not no_ff:
        with repo.lock():
            advance_head(repo, ours, theirs, who, f"merge {theirs_rev}: fast-forward")
            repo.set_working(theirs, repo.commit_object(theirs).root)
        res.status, res.commit = "fast-forward", theirs.hex()
        return res
    bs = repo.snapshot_object(repo.commit_object(base).root) if base else Snapshot()
    os_ = repo.snapshot_object(repo.commit_object(ours).root)
    ts = repo.snapshot_object(repo.commit_object(theirs).root)
    out: list[Pending] = []
    images: dict[str, ImageEntry] = {}
    all_conflicts: list[MergeConflict] = []
    labels_id, label_conflicts = merge_labels(repo, bs, os_, ts)
    all_conflicts.extend(label_conflicts)
    merged_labels = LabelSet.from_body(repo.read_body(labels_id, "labels")) if labels_id else LabelSet()
    for name in sorted(set(os_.images) | set(ts.images)):
        b, o, t = bs.images.get(name), os_.images.get(name), ts.images.get(name)
        if o is None or t is None:
            keep = o if o is not None else (t if b is None else None)  # added on one side / removed on one
            if keep is not None:
                images[name] = keep
            continue
        root, cf, stats, add_o, add_t = merge_tree(repo, name, b.tree if b else None, o.tree, t.tree, policy, out)
        repo.store.write(out)  # the merged tree first: duplicate conflicts read their side from it
        out.clear()
        dups = find_duplicates(repo, name, add_o, add_t, merged_labels)
        res.duplicates.extend(dups)
        if duplicates == "conflict":
            for d in dups:
                k = parse_id(d.theirs)
                cf.append(MergeConflict(name, d.theirs, "duplicate", ["geometry"], None, None,
                                        dict(tree.get(repo.store, root, k) or {}), other=d.ours))
        all_conflicts.extend(cf)
        if any(stats.values()):
            res.stats[name] = stats
        repo.store.write(out)
        out.clear()
        images[name] = ImageEntry(o.record, root, tree.count(repo.store, root))
    snap = Snapshot(images, labels_id)
    sid = repo.put("snapshot", snap.to_body())
    msg = message or f"Merge {theirs_rev} into {repo.current_branch() or ours.hex()[:12]}"
    res.conflicts = all_conflicts
    if all_conflicts:
        with repo.lock():
            repo.set_working(ours, sid)
            save_state(repo, {"ours": ours.hex(), "theirs": theirs.hex(), "base": res.base, "message": msg,
                              "policy": policy, "conflicts": [c.to_state() for c in all_conflicts],
                              "duplicates": [d.__dict__ for d in res.duplicates]})
        res.status = "conflicts"
        return res
    with repo.lock():
        cid = write_commit(repo, sid, [ours, theirs], msg, who)
        advance_head(repo, ours, cid, who, f"merge {theirs_rev}")
        repo.set_working(cid, sid)
    res.commit = cid.hex()
    return res


def resolve(
    repo: Repository, address: str | None = None, side: str | None = None, fields: dict[str, str] | None = None,
    image: str | None = None, label: str | None = None,
) -> list[str]:
    """Resolve conflicts: one (``IMAGE:ID``, ``ID`` or ``label:NAME``) or all matching ``image``/``label``.

    ``side`` is ours, theirs, base or delete (both for duplicates); ``fields``
    maps field names to a side (``{"label": "ours", "geometry": "theirs"}``).
    """
    st = load_state(repo)
    if st is None:
        raise NotFound("no merge in progress")
    if side is None and not fields:
        raise UsageError("say how to resolve: --ours, --theirs, --base, --delete or --field NAME=SIDE")
    if side is not None and side not in ("ours", "theirs", "base", "delete", "both"):
        raise UsageError(f"unknown resolution {side!r}")
    for f, s in (fields or {}).items():
        if f not in FIELDS or s not in ("ours", "theirs", "base"):
            raise UsageError(f"--field takes NAME=SIDE with NAME in {', '.join(FIELDS)} and SIDE ours/theirs/base")
    all_c = [MergeConflict.from_state(c) for c in st["conflicts"]]
    if address is not None:
        pick = [c for c in all_c if _matches(c, address)]
        if not pick:
            raise NotFound(f"{address} is not in conflict")
    else:
        if image is None and label is None:
            raise UsageError("name a conflict (IMAGE:ID) or select by --image / --label")
        pick = [c for c in all_c if (image is None or c.image == image)
                and (label is None or _label_of(c) == label)]
        if not pick:
            raise NotFound("no conflicts match that selection")
    with repo.lock():
        base_commit, snap_id = repo.working()
        snap = repo.snapshot_object(snap_id)
        per_image: dict[str, dict[bytes, bytes | None]] = {}
        labels_body = None
        for c in pick:
            rec = _resolution(c, side, fields)
            if c.image is None:
                ls = repo.labels(None)
                body = ls.to_body()
                names = {b["name"]: b for b in body["labels"]}
                if rec is None:
                    names.pop(c.id, None)
                else:
                    names[c.id] = rec
                body["labels"] = [names[n] for n in sorted(names)]
                labels_body = body
                snap = Snapshot(snap.images, repo.put("labels", body))
                continue
            key = parse_id(c.id)
            edits = per_image.setdefault(c.image, {})
            if c.kind == "duplicate":
                other = parse_id(c.other or c.id)
                if side == "ours":
                    edits[key] = None
                elif side == "theirs":
                    edits[other] = None
                elif side == "delete":
                    edits[key] = None
                    edits[other] = None
                continue
            edits[key] = None if rec is None else tree.encode_record(rec)
        out: list[Pending] = []
        for name, edits in per_image.items():
            root = tree.apply(repo.store, snap.images[name].tree, edits, out)
            repo.store.write(out)
            out.clear()
            snap = snap.with_tree(name, root, tree.count(repo.store, root))
        sid = repo.put("snapshot", snap.to_body())
        repo.set_working(base_commit, sid)
        done = {c.address for c in pick}
        st["conflicts"] = [c for c in st["conflicts"] if MergeConflict.from_state(c).address not in done]
        save_state(repo, st)
    del labels_body
    return sorted(done)


def _label_of(c: MergeConflict) -> str | None:
    for r in (c.theirs, c.ours, c.base):
        if r is not None:
            return str(r.get("l", r.get("name")))
    return None


def _matches(c: MergeConflict, address: str) -> bool:
    return address in (c.address, c.id) or (address.startswith("label:") and c.image is None and
                                             address[6:] == c.id)


def _resolution(c: MergeConflict, side: str | None, fields: dict[str, str] | None) -> dict[str, Any] | None:
    sides = {"ours": c.ours, "theirs": c.theirs, "base": c.base}
    if side == "delete":
        return None
    if side in ("ours", "theirs", "base") and not fields:
        return sides[side]
    if c.image is None:
        raise UsageError("label conflicts resolve with --ours, --theirs, --base or --delete")
    undecided = [f for f in c.fields if f not in (fields or {})]
    if side is None and undecided:  # resolved only when every conflicting field is decided
        raise UsageError(f"{c.address}: the conflicting field{'s' if len(undecided) > 1 else ''} "
                         f"{', '.join(undecided)} {'are' if len(undecided) > 1 else 'is'} not decided: add "
                         + " ".join(f"--field {f}=SIDE" for f in undecided) + " (or --ours/--theirs for the rest)")
    start = sides[side] if side in sides else (c.ours if c.ours is not None else c.theirs)
    if start is None:
        raise UsageError(f"{c.address}: that side deleted the annotation; use --ours/--theirs/--delete")
    rec = dict(start)
    for f, s in (fields or {}).items():
        src = sides[s]
        if src is None:
            raise UsageError(f"{c.address}: {s} deleted the annotation, its {f} cannot be taken")
        rec = with_fields(rec, src, [f])
    return rec


def merge_continue(repo: Repository, message: str | None = None, author: str | None = None) -> str:
    from .history import advance_head, write_commit
    from .repo import default_author

    st = load_state(repo)
    if st is None:
        raise NotFound("no merge in progress")
    if st["conflicts"]:
        n = len(st["conflicts"])
        raise Conflict(f"{n} conflict{'s' if n != 1 else ''} left: resolve them first (exact conflicts)")
    who = author or str(repo.config().get("user") or default_author())
    ours, theirs = bytes.fromhex(st["ours"]), bytes.fromhex(st["theirs"])
    with repo.lock():
        base, sid = repo.working()
        if base != ours:
            raise Conflict("HEAD moved since the merge started; abort it and merge again")
        cid = write_commit(repo, sid, [ours, theirs], message or st["message"], who)
        advance_head(repo, ours, cid, who, "merge: continue")
        repo.set_working(cid, sid)
        save_state(repo, None)
    return cid.hex()


def merge_abort(repo: Repository) -> None:
    st = load_state(repo)
    if st is None:
        raise NotFound("no merge in progress")
    with repo.lock():
        head = repo.head_commit()
        if head is not None:
            repo.set_working(head, repo.commit_object(head).root)
        save_state(repo, None)
