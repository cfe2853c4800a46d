"""What a pull request changes, and what review does with it: decisions, checks, merge preview, the
merge itself (rejections first, as a commit on the source), and agreement figures.

Everything works on commits and trees, never on a working state (the server has none): the changes
of a pull request are ``tree.diff`` of its merge base and its head, so the cost follows the size of
the change, not of the slide.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import blake3

from .. import tree
from ..annotation import Annotation
from ..diff import FIELDS, Change, changed_fields, diff_snapshots, label_set
from ..errors import Conflict, InvalidInput
from ..ids import format_id, parse_id
from ..merge import MergeConflict, _resolution, merge_bases, merge_labels, merge_tree
from ..objects import ImageEntry, LabelSet, Snapshot
from ..store import Pending

if TYPE_CHECKING:
    from ..repo import Repository

Box = tuple[float, float, float, float]


class NotMergeable(Conflict):
    """A pull request cannot be merged yet: approvals missing, a check failing, unresolved conflicts,
    or it is not open."""

    kind = "not_mergeable"
SIDES = ("ours", "theirs", "base", "delete")


# --- the changes of a pull request -------------------------------------------------------------------------


@dataclass(frozen=True)
class PullChanges:
    base: bytes
    head: bytes
    changes: list[Change]  # every image, in (image, id) order
    index: dict[tuple[str, str], Change]
    memo: dict[str, Any] = field(default_factory=dict)  # summary, sort keys, bounds: computed once

    def summary(self) -> dict[str, Any]:
        if "summary" not in self.memo:
            self.memo["summary"] = summary(self.changes)
        got: dict[str, Any] = self.memo["summary"]
        return got

    def order(self) -> list[tuple[str, bytes]]:
        if "order" not in self.memo:
            self.memo["order"] = [(ch.image, ch.key) for ch in self.changes]
        got: list[tuple[str, bytes]] = self.memo["order"]
        return got

    def boxes(self) -> Any:
        """(n, 8) float array: old bounds then new bounds of each change (NaN where a side is missing)."""
        if "boxes" not in self.memo:
            import numpy as np

            arr = np.full((len(self.changes), 8), np.nan)
            for i, ch in enumerate(self.changes):
                for j, rec in ((0, ch.old), (4, ch.new)):
                    b = _bounds(rec)
                    if b is not None:
                        arr[i, j:j + 4] = b
            self.memo["boxes"] = arr
        return self.memo["boxes"]


_CACHE: OrderedDict[tuple[bytes, bytes, str | None], PullChanges] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def changes_between(repo: Repository, base: bytes, head: bytes, image: str | None = None) -> PullChanges:
    """Changes from commit ``base`` to commit ``head`` (cached by the two snapshots: immutable)."""
    ra, rb = repo.commit_object(base).root, repo.commit_object(head).root
    key = (ra, rb, image)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    d = diff_snapshots(repo, repo.snapshot_object(ra), repo.snapshot_object(rb), image)
    chs = [ch for img in d.images for ch in img.changes]
    pc = PullChanges(base, head, chs, {(ch.image, ch.id): ch for ch in chs})
    with _CACHE_LOCK:
        _CACHE[key] = pc
        while len(_CACHE) > 32:
            _CACHE.popitem(last=False)
    return pc


def version(ch: Change) -> str:
    """What a decision is tied to: the proposed version of the annotation (a later push that changes the
    annotation again makes the decision void; one that leaves it alone keeps it)."""
    if ch.new is None:
        return "deleted"
    return blake3.blake3(tree.encode_record(ch.new)).hexdigest()[:32]


def _bounds(rec: dict[str, Any] | None) -> Box | None:
    if rec is None:
        return None
    from ..spatial import record_bounds

    return record_bounds(rec)


def _meets(b: Box | None, q: Box) -> bool:
    return b is not None and b[0] <= q[2] and q[0] <= b[2] and b[1] <= q[3] and q[1] <= b[3]


def change_meets(ch: Change, q: Box) -> bool:
    return _meets(_bounds(ch.old), q) or _meets(_bounds(ch.new), q)


def _ann(repo: Repository, key: bytes, rec: dict[str, Any] | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    return Annotation.from_record(key, tree.join_record(repo.store, rec)).to_dict()


def change_json(repo: Repository, ch: Change, decision: str | None = None) -> dict[str, Any]:
    fields = ch.fields
    out: dict[str, Any] = {
        "image": ch.image, "id": ch.id, "change": ch.kind, "fields": fields,
        "property_only": ch.kind == "modified" and fields == ["properties"],
        "label": {"old": ch.old["l"] if ch.old else None, "new": ch.new["l"] if ch.new else None},
        "old": _ann(repo, ch.key, ch.old), "new": _ann(repo, ch.key, ch.new)}
    if decision is not None:
        out["decision"] = decision
    return out


def summary(chs: list[Change]) -> dict[str, Any]:
    kinds: Counter[str] = Counter()
    labels: dict[str, Counter[str]] = {}
    relabels: Counter[tuple[str, str]] = Counter()
    for ch in chs:
        k = ch.kind
        if k == "modified" and ch.fields == ["properties"]:
            kinds["property_only"] += 1
        kinds[k] += 1
        labels.setdefault(ch.label, Counter())[k] += 1
        if ch.old is not None and ch.new is not None and ch.old["l"] != ch.new["l"]:
            relabels[(ch.old["l"], ch.new["l"])] += 1
    return {"total": len(chs),
            "counts": {"added": kinds["added"], "modified": kinds["modified"], "deleted": kinds["deleted"],
                       "property_only": kinds["property_only"]},
            "labels": {lb: dict(c) for lb, c in sorted(labels.items())},
            "relabels": [{"old": a, "new": b, "count": n} for (a, b), n in sorted(relabels.items())]}


def page(pc: PullChanges, limit: int, cursor: str | None = None, bbox: Box | None = None,
         label: str | None = None, kind: str | None = None, image: str | None = None) -> tuple[list[Change], str | None]:
    """One page of changes in (image, id) order after ``cursor`` (``IMAGE:ID`` of the last one seen);
    the cursor is found by bisection and a window by one vectorised test over the changes' bounds."""
    import bisect

    import numpy as np

    start = 0
    if cursor:
        img, _, aid = cursor.rpartition(":")
        start = bisect.bisect_right(pc.order(), (img, parse_id(aid)))
    chs = pc.changes
    cand: Any = range(start, len(chs))
    if bbox is not None:
        bx = pc.boxes()[start:]
        x0, y0, x1, y1 = bbox
        with np.errstate(invalid="ignore"):
            hit = np.zeros(len(bx), dtype=bool)
            for j in (0, 4):
                hit |= (bx[:, j] <= x1) & (x0 <= bx[:, j + 2]) & (bx[:, j + 1] <= y1) & (y0 <= bx[:, j + 3])
        cand = (np.nonzero(hit)[0] + start).tolist()
    out: list[Change] = []
    for i in cand:
        ch = chs[i]
        if image is not None and ch.image != image:
            continue
        if kind is not None and ch.kind != kind:
            continue
        if label is not None and (ch.old or {}).get("l") != label and (ch.new or {}).get("l") != label:
            continue
        if len(out) == limit:
            last = out[-1]
            return out, f"{last.image}:{last.id}"
        out.append(ch)
    return out, None


def select(pc: PullChanges, ids: list[str] | None = None, label: str | None = None, bbox: Box | None = None,
           image: str | None = None) -> list[Change]:
    """The changes named by ``ids`` (``ID`` or ``IMAGE:ID``; each must be a change of the pull request), or
    all of ``label`` / inside ``bbox`` / of ``image``."""
    if ids:
        out = []
        for raw in ids:
            if not isinstance(raw, str):
                raise InvalidInput("ids must be annotation id strings")
            img, _, aid = raw.rpartition(":")
            try:
                aid = format_id(parse_id(aid))
            except Exception:  # noqa: BLE001 - any malformed id is the caller's mistake
                raise InvalidInput(f"not an annotation id: {raw[:80]!r}") from None
            hits = [ch for (i, a), ch in pc.index.items() if a == aid and (not img or i == img)
                    and (image is None or i == image)]
            if not hits:
                raise InvalidInput(f"annotation {aid} is not changed by this pull request")
            out.extend(hits)
        return out
    if label is None and bbox is None and image is None:
        raise InvalidInput("name the annotations: ids, a label, a bbox or an image")
    out = [ch for ch in pc.changes if (image is None or ch.image == image)
           and (label is None or (ch.old or {}).get("l") == label or (ch.new or {}).get("l") == label)
           and (bbox is None or change_meets(ch, bbox))]
    if not out:
        raise InvalidInput("no change of this pull request matches that selection")
    return out


def live_decisions(pc: PullChanges, stored: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], str]:
    """Decisions that still apply: the annotation is still changed, to the version decided on."""
    out = {}
    for key, d in stored.items():
        ch = pc.index.get(key)
        if ch is not None and version(ch) == d["version"]:
            out[key] = str(d["decision"])
    return out


# --- checks ------------------------------------------------------------------------------------------------


def run_checks(repo: Repository, pc: PullChanges, limit: int = 1000) -> dict[str, Any]:
    """The pre-receive-style validation of every added or changed annotation (label exists, shape kind
    allowed, geometry valid, inside the image) and the duplicate check (annotations added that are the
    same object as an existing one of the same label, by merge's duplicate rules)."""
    from .. import geometry
    from ..edit import COMPATIBLE

    head_snap = repo.snapshot_object(repo.commit_object(pc.head).root)
    labels = label_set(repo, head_snap)
    by_name = {lb.name: lb for lb in labels.labels}
    problems: list[dict[str, Any]] = []
    polys: list[tuple[Change, tuple[str, Any]]] = []
    dims: dict[str, tuple[int, int]] = {}
    for ch in pc.changes:
        if ch.new is None:
            continue
        if ch.image not in dims:
            rec = repo.image_record(head_snap.images[ch.image])
            dims[ch.image] = (rec.width, rec.height)
        new = ch.new
        lb = by_name.get(new["l"])
        if lb is None:
            problems.append({"image": ch.image, "id": ch.id, "message": f"unknown label {new['l']!r}"})
            continue
        if lb.shape != "any" and new["k"] not in COMPATIBLE.get(lb.shape, {new["k"]}):
            problems.append({"image": ch.image, "id": ch.id,
                             "message": f"label {lb.name!r} takes {lb.shape} shapes, not a {new['k']}"})
        if "geometry" not in ch.fields:
            continue
        x0, y0, x1, y1 = _bounds(new) or (0, 0, 0, 0)
        w, h = dims[ch.image]
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            problems.append({"image": ch.image, "id": ch.id,
                             "message": f"outside the image ({w}x{h}): bounds {x0:g},{y0:g},{x1:g},{y1:g}"})
        if new["k"] in ("polygon", "multipolygon"):
            full = tree.join_record(repo.store, new)
            polys.append((ch, (full["k"], full["g"])))
    rest = polys
    while rest:
        bad = geometry.first_invalid([g for _c, g in rest])
        if bad is None:
            break
        i, why = bad
        problems.append({"image": rest[i][0].image, "id": rest[i][0].id, "message": why})
        rest = rest[i + 1:]
    dups = _duplicates(repo, pc, labels)
    checks = [
        {"name": "validation", "status": "failed" if problems else "passed", "count": len(problems),
         "problems": problems[:limit]},
        {"name": "duplicates", "status": "failed" if dups else "passed", "count": len(dups), "problems": dups[:limit]},
    ]
    return {"head": pc.head.hex(), "status": "failed" if problems or dups else "passed", "checks": checks}


def _duplicates(repo: Repository, pc: PullChanges, labels: LabelSet) -> list[dict[str, Any]]:
    from .. import spatial
    from ..match import MatchSpec, label_radius, match_items
    from ..merge import DUPLICATE_PX

    base_snap = repo.snapshot_object(repo.commit_object(pc.base).root)
    radii: dict[str, float | None] = {lb.name: label_radius(lb.size) or DUPLICATE_PX for lb in labels.labels}
    out: list[dict[str, Any]] = []
    by_image: dict[str, list[Change]] = {}
    for ch in pc.changes:
        if ch.kind == "added":
            by_image.setdefault(ch.image, []).append(ch)
    changed = {(ch.image, ch.key) for ch in pc.changes}
    for image, added in by_image.items():
        e = base_snap.images.get(image)
        if e is None or e.tree is None:
            continue
        cache = repo.exact_dir / "cache" / "rtree" if repo.exact_dir else None
        idx = spatial.open_or_build(repo.store, e.tree, cache)
        cand: dict[bytes, dict[str, Any]] = {}
        items_a = []
        for ch in added:
            assert ch.new is not None
            rec = tree.join_record(repo.store, ch.new)
            items_a.append((rec["l"], rec["k"], rec["g"], rec.get("z")))
            b = _bounds(rec) or (0.0, 0.0, 0.0, 0.0)
            pad = float(radii.get(rec["l"]) or DUPLICATE_PX)
            for k, r in idx.entries_in((b[0] - pad, b[1] - pad, b[2] + pad, b[3] + pad)):
                if r["l"] == rec["l"] and (image, k) not in changed:
                    cand[k] = r
        if not cand:
            continue
        keys = sorted(cand)
        items_b = []
        for k in keys:
            r = tree.join_record(repo.store, cand[k]) if "G" in cand[k] else cand[k]
            items_b.append((r["l"], r["k"], r["g"], r.get("z")))
        res = match_items(items_a, items_b, MatchSpec(iou=0.5), radii)
        for x, y, label, _by, score in res["pairs"]:
            out.append({"image": image, "id": added[x].id, "existing": format_id(keys[y]), "label": label,
                        "score": round(score, 4),
                        "message": f"probably the same {label} as the existing {format_id(keys[y])}"})
    out.sort(key=lambda d: (d["image"], d["id"]))
    return out


# --- merging without a working state -------------------------------------------------------------------------


@dataclass
class Merged:
    snapshot: Snapshot
    conflicts: list[MergeConflict]
    base: bytes | None


def three_way(repo: Repository, ours: bytes, theirs: bytes, policy: str = "field",
              theirs_snap: Snapshot | None = None) -> Merged:
    """Merge commit ``theirs`` into commit ``ours`` (annotation by annotation, as ``exact merge``); the
    merged trees are stored, the snapshot is returned with the conflicts (ours kept where they are).
    ``theirs_snap``: merge this snapshot instead of ``theirs``'s own (the head with the rejections undone,
    a commit on top of ``theirs`` that is not written yet: the merge base is the same)."""
    bases = merge_bases(repo, ours, theirs)
    base = bases[0] if bases else None
    bs = repo.snapshot_object(repo.commit_object(base).root) if base else Snapshot()
    os_ = repo.snapshot_object(repo.commit_object(ours).root)
    ts = theirs_snap if theirs_snap is not None else repo.snapshot_object(repo.commit_object(theirs).root)
    out: list[Pending] = []
    images: dict[str, ImageEntry] = {}
    labels_id, conflicts = merge_labels(repo, bs, os_, ts)
    for name in sorted(set(os_.images) | set(ts.images)):
        b, o, t = bs.images.get(name), os_.images.get(name), ts.images.get(name)
        if o is None or t is None:
            keep = o if o is not None else (t if b is None else None)
            if keep is not None:
                images[name] = keep
            continue
        if b is not None and o.tree == b.tree:  # only theirs changed it (the usual pull request): theirs
            images[name] = t if t.record == o.record else ImageEntry(o.record, t.tree, t.count)
            continue
        if b is not None and t.tree == b.tree:
            images[name] = o
            continue
        root, cf, _stats, _ao, _at = merge_tree(repo, name, b.tree if b else None, o.tree, t.tree, policy, out)
        repo.store.write(out)
        out.clear()
        conflicts.extend(cf)
        images[name] = ImageEntry(o.record, root, tree.count(repo.store, root)) if root != o.tree else o
    return Merged(Snapshot(images, labels_id), conflicts, base)


def conflict_json(c: MergeConflict, repo: Repository | None = None) -> dict[str, Any]:
    """A conflict's address, kind, conflicting fields and label; given ``repo``, also its three values
    (``base``, ``ours`` = the target, ``theirs`` = the pull request) as annotations (``null`` where that
    side has none) or, for a label-set conflict, as label definitions."""
    from ..merge import _label_of

    out: dict[str, Any] = {"address": c.address, "image": c.image, "id": c.id, "kind": c.kind, "fields": c.fields,
                           "label": _label_of(c)}
    if repo is not None:
        key = parse_id(c.id) if c.image is not None else b""
        for side, rec in (("base", c.base), ("ours", c.ours), ("theirs", c.theirs)):
            out[side] = _ann(repo, key, rec) if c.image is not None else rec
        if c.other is not None:
            out["other"] = c.other
    return out


def conflict_bounds(c: MergeConflict) -> Box | None:
    """The union of the bounds of a conflict's three values (None for a label-set conflict)."""
    bs = [b for r in (c.base, c.ours, c.theirs) if r is not None and "k" in r and (b := _bounds(r)) is not None]
    if not bs:
        return None
    return min(b[0] for b in bs), min(b[1] for b in bs), max(b[2] for b in bs), max(b[3] for b in bs)


def conflict_page(m: Merged, limit: int, cursor: str | None = None, bbox: Box | None = None,
                  label: str | None = None, image: str | None = None) -> tuple[list[MergeConflict], str | None]:
    """One page of the conflicts of ``m`` in address order after ``cursor`` (the address of the last one
    seen), optionally only those of ``image`` / ``label`` / meeting ``bbox``."""
    from ..merge import _label_of

    out: list[MergeConflict] = []
    for c in sorted(m.conflicts, key=lambda c: c.address):
        if cursor is not None and c.address <= cursor:
            continue
        if image is not None and c.image != image:
            continue
        if label is not None and _label_of(c) != label:
            continue
        if bbox is not None and not _conflict_meets(c, bbox):
            continue
        if len(out) == limit:
            return out, out[-1].address
        out.append(c)
    return out, None


def _conflict_meets(c: MergeConflict, q: Box) -> bool:
    return any(_meets(_bounds(r), q) for r in (c.ours, c.theirs, c.base) if r is not None and "k" in r)


def resolve_all(repo: Repository, m: Merged, resolutions: list[dict[str, Any]]) -> Snapshot:
    """Apply ``resolutions`` (each ``{"side", "ids"? | "label"? | "bbox"? | "image"?, "fields"?, "value"?}``;
    first match wins) to every conflict of ``m``; a conflict no resolution covers raises :class:`Conflict`.
    ``fields`` takes single fields from other sides (``{"label": "theirs"}`` on top of ``side``); side
    ``edit`` puts ``value`` (an annotation: label, geometry, properties?) in place, checked as an edit."""
    picks: list[tuple[MergeConflict, dict[str, Any]]] = []
    left = []
    for c in m.conflicts:
        pick = None
        for r in resolutions:
            if _res_matches(r, c):
                pick = r
                break
        if pick is None:
            left.append(c)
        else:
            picks.append((c, pick))
    if left:
        raise NotMergeable(f"{len(left)} conflict{'s' if len(left) != 1 else ''} with the target left unresolved "
                       f"(first: {left[0].address}, {left[0].kind}): resolve them (ours/theirs/base/delete)")
    snap = m.snapshot
    per_image: dict[str, dict[bytes, bytes | None]] = {}
    blobs: list[Pending] = []
    for c, r in picks:
        if r["side"] == "edit":
            if c.image is None:
                raise InvalidInput(f"{c.address}: a label-set conflict takes ours, theirs, base or delete, not edit")
            rec: dict[str, Any] | None = tree.split_record(edited_record(repo, snap, c.image, r["value"]), blobs)
        else:
            rec = _resolution(c, r["side"], r.get("fields"))
        if c.image is None:
            body: dict[str, Any] = LabelSet.from_body(repo.read_body(snap.labels, "labels")).to_body() if snap.labels else {
                "product": "default", "labels": []}
            names = {b["name"]: b for b in body["labels"]}
            if rec is None:
                names.pop(c.id, None)
            else:
                names[c.id] = rec
            body["labels"] = [names[n] for n in sorted(names)]
            snap = Snapshot(snap.images, repo.put("labels", body))
            continue
        per_image.setdefault(c.image, {})[parse_id(c.id)] = None if rec is None else tree.encode_record(rec)
    out: list[Pending] = list(blobs)
    for name, edits in per_image.items():
        root = tree.apply(repo.store, snap.images[name].tree, edits, out)
        repo.store.write(out)
        out.clear()
        snap = snap.with_tree(name, root, tree.count(repo.store, root))
    if out:
        repo.store.write(out)
    return snap


def edited_record(repo: Repository, snap: Snapshot, image: str, value: dict[str, Any]) -> dict[str, Any]:
    """The record of an edited resolution, checked as an edit is: the label exists in the merged label
    set and takes this kind of shape, the shape lies inside the image, a polygon is valid."""
    from .. import geometry
    from ..annotation import make_record, normalize_plane
    from ..edit import COMPATIBLE

    labels = LabelSet.from_body(repo.read_body(snap.labels, "labels")) if snap.labels else LabelSet()
    lb = next((x for x in labels.labels if x.name == value["label"]), None)
    if lb is None:
        raise InvalidInput(f"edited value: unknown label {value['label'][:80]!r}")
    kind = value.get("kind")
    if kind is None and lb.shape in ("box", "ellipse"):
        kind = lb.shape
    k, enc = geometry.canonical(value["geometry"], kind)
    if lb.shape != "any" and k not in COMPATIBLE.get(lb.shape, {k}):
        raise InvalidInput(f"edited value: label {lb.name!r} takes {lb.shape} shapes, not a {k}")
    rec_img = repo.image_record(snap.images[image])
    x0, y0, x1, y1 = geometry.bounds(k, enc)
    if x0 < 0 or y0 < 0 or x1 > rec_img.width or y1 > rec_img.height:
        raise InvalidInput(f"edited value: outside the image ({rec_img.width}x{rec_img.height}): "
                           f"bounds {x0:g},{y0:g},{x1:g},{y1:g}")
    geometry.validate(k, enc)
    return make_record(k, enc, lb.name, value.get("properties"), normalize_plane(value.get("plane")))


_RES_KEYS = {"side", "ids", "label", "bbox", "image", "fields", "value"}


def check_resolutions(resolutions: Any) -> list[dict[str, Any]]:
    if resolutions is None:
        return []
    if not isinstance(resolutions, list) or len(resolutions) > 10000:
        raise InvalidInput("resolutions must be a list of {side, ids?|label?|bbox?|image?, fields?, value?}")
    for r in resolutions:
        if not isinstance(r, dict) or set(r) - _RES_KEYS:
            raise InvalidInput("a resolution is {side, ids?, label?, bbox?, image?, fields?, value?}")
        if r.get("side") not in (*SIDES, "edit"):
            raise InvalidInput(f"a resolution's side is one of {', '.join(SIDES)} or edit")
        if "ids" in r and (not isinstance(r["ids"], list) or not all(isinstance(i, str) for i in r["ids"])):
            raise InvalidInput("ids must be a list of strings")
        if "label" in r and not isinstance(r["label"], str):
            raise InvalidInput("label must be a string")
        if "image" in r and not isinstance(r["image"], str):
            raise InvalidInput("image must be a string")
        if "bbox" in r:
            r["bbox"] = check_box(r["bbox"])
        if "fields" in r:
            f = r["fields"]
            if (not isinstance(f, dict) or r["side"] in ("delete", "edit")
                    or not all(k in FIELDS and v in ("ours", "theirs", "base") for k, v in f.items())):
                raise InvalidInput("fields maps a field (" + ", ".join(FIELDS) + ") to ours, theirs or base, "
                                   "on top of side ours, theirs or base")
        if (r["side"] == "edit") != ("value" in r):
            raise InvalidInput("side edit takes a value (and a value needs side edit)")
        if "value" in r:
            v = r["value"]
            if not isinstance(r.get("ids"), list) or len(r["ids"]) != 1:
                raise InvalidInput("an edited value resolves one conflict: give exactly one id")
            if (not isinstance(v, dict) or set(v) - {"label", "geometry", "properties", "kind", "plane"}
                    or not isinstance(v.get("label"), str) or not isinstance(v.get("geometry"), dict)
                    or not isinstance(v.get("properties", {}), dict)
                    or not isinstance(v.get("kind", ""), str)):
                raise InvalidInput("an edited value is {label, geometry (GeoJSON), properties?, kind?, plane?}")
    return resolutions


def check_box(v: Any) -> Box:
    import math

    if not (isinstance(v, list) and len(v) == 4 and all(isinstance(x, int | float) and not isinstance(x, bool)
                                                        and math.isfinite(x) for x in v)):
        raise InvalidInput("bbox must be four finite numbers [x0, y0, x1, y1]")
    x0, y0, x1, y1 = (float(x) for x in v)
    if x0 > x1 or y0 > y1:
        raise InvalidInput("bbox is inverted: x0 <= x1 and y0 <= y1 are required")
    return x0, y0, x1, y1


def _res_matches(r: dict[str, Any], c: MergeConflict) -> bool:
    from ..merge import _label_of

    if "ids" in r and not any(i in (c.id, c.address) for i in r["ids"]):
        return False
    if "label" in r and _label_of(c) != r["label"]:
        return False
    if "image" in r and c.image != r["image"]:
        return False
    return not ("bbox" in r and not _conflict_meets(c, r["bbox"]))


def rejection_snapshot(repo: Repository, pc: PullChanges, rejected: list[Change]) -> Snapshot:
    """The head's snapshot with every rejected change undone (the base's version put back)."""
    snap = repo.snapshot_object(repo.commit_object(pc.head).root)
    per_image: dict[str, dict[bytes, bytes | None]] = {}
    for ch in rejected:
        per_image.setdefault(ch.image, {})[ch.key] = None if ch.old is None else tree.encode_record(ch.old)
    out: list[Pending] = []
    for name, edits in per_image.items():
        root = tree.apply(repo.store, snap.images[name].tree, edits, out)
        repo.store.write(out)
        out.clear()
        snap = snap.with_tree(name, root, tree.count(repo.store, root))
    return snap


# --- agreement ---------------------------------------------------------------------------------------------


def agreement(repo: Repository, first: PullChanges, pc: PullChanges, decisions: dict[tuple[str, str], str],
              merged_snap: Snapshot | None = None) -> dict[str, Any]:
    """Share of proposed changes accepted (undecided ones merge as proposed), the confusion matrix of
    relabels (old label -> proposed label, with how many were rejected), and the IoU between the geometry
    first proposed and the geometry as it ended up (the head, or the merge commit) for annotations whose
    outline changed after the first revision (the annotator's or the reviewer's corrections)."""
    from .. import geometry

    n = len(pc.changes)
    rejected = sum(1 for k in pc.index if decisions.get(k) == "reject")
    accepted = sum(1 for k in pc.index if decisions.get(k) == "accept")
    confusion: dict[str, dict[str, dict[str, int]]] = {}
    for ch in pc.changes:
        if ch.old is not None and ch.new is not None and ch.old["l"] != ch.new["l"]:
            cell = confusion.setdefault(ch.old["l"], {}).setdefault(ch.new["l"], {"proposed": 0, "rejected": 0})
            cell["proposed"] += 1
            if decisions.get((ch.image, ch.id)) == "reject":
                cell["rejected"] += 1
    ious: list[dict[str, Any]] = []
    final = merged_snap or repo.snapshot_object(repo.commit_object(pc.head).root)
    for ch in first.changes:
        if ch.new is None:
            continue
        e = final.images.get(ch.image)
        now = tree.get(repo.store, e.tree, ch.key) if e is not None else None
        if now is None or "geometry" not in changed_fields(ch.new, now):
            continue
        a, b = tree.join_record(repo.store, ch.new), tree.join_record(repo.store, now)
        ga, gb = geometry.to_shapely(a["k"], a["g"]), geometry.to_shapely(b["k"], b["g"])
        union = ga.union(gb).area
        iou = round(ga.intersection(gb).area / union, 4) if union else 1.0
        ious.append({"image": ch.image, "id": ch.id, "iou": iou})
    mean = round(sum(x["iou"] for x in ious) / len(ious), 4) if ious else None
    return {"changes": n, "accepted": accepted, "rejected": rejected, "undecided": n - accepted - rejected,
            "accepted_share": round((n - rejected) / n, 4) if n else None,
            "relabel_confusion": confusion, "corrected_geometry": {"count": len(ious), "mean_iou": mean,
                                                                   "annotations": ious[:1000]}}


__all__ = ["FIELDS", "PullChanges", "changes_between", "version", "change_json", "summary", "page", "select",
           "live_decisions", "run_checks", "three_way", "resolve_all", "rejection_snapshot", "agreement",
           "conflict_json", "conflict_bounds", "conflict_page", "edited_record", "check_resolutions", "check_box"]
