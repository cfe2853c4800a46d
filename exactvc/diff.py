"""Differences between two states of an image set, annotation by annotation and field by field.

Only the parts of trees whose ids differ are read (see ``tree.diff``), so the
cost follows the size of the change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import tree
from .annotation import Annotation
from .ids import format_id
from .objects import LabelSet, Snapshot

if TYPE_CHECKING:
    from .repo import Repository

# the parts of a record a change can touch; "geometry" covers the shape kind and the shape
FIELDS: dict[str, tuple[str, ...]] = {
    "geometry": ("k", "g", "G", "b"),
    "label": ("l",),
    "properties": ("p",),
    "plane": ("z",),
    "verifications": ("v",),  # exactvc.verification; merged per user, never a conflict
}


def field_values(rec: dict[str, Any]) -> dict[str, Any]:
    return {f: tuple(rec.get(k) for k in keys) for f, keys in FIELDS.items()}


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = field_values(old), field_values(new)
    return [f for f in FIELDS if a[f] != b[f]]


def with_fields(base: dict[str, Any], src: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """``base`` with the given fields taken from ``src``."""
    out = dict(base)
    for f in fields:
        for k in FIELDS[f]:
            if k in src:
                out[k] = src[k]
            else:
                out.pop(k, None)
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class Change:
    image: str
    key: bytes
    old: dict[str, Any] | None
    new: dict[str, Any] | None

    @property
    def kind(self) -> str:
        return "added" if self.old is None else "deleted" if self.new is None else "modified"

    @property
    def fields(self) -> list[str]:
        if self.old is None or self.new is None:
            return list(FIELDS)
        return changed_fields(self.old, self.new)

    @property
    def id(self) -> str:
        return format_id(self.key)

    @property
    def label(self) -> str:
        rec = self.new if self.new is not None else self.old
        assert rec is not None
        return str(rec["l"])


@dataclass
class ImageDiff:
    image: str
    changes: list[Change] = field(default_factory=list)
    image_change: str | None = None  # "added" / "removed" / None

    def counts(self) -> dict[str, int]:
        c = Counter(ch.kind for ch in self.changes)
        return {"added": c["added"], "modified": c["modified"], "deleted": c["deleted"]}

    def by_label(self) -> dict[str, dict[str, int]]:
        out: dict[str, Counter[str]] = {}
        for ch in self.changes:
            out.setdefault(ch.label, Counter())[ch.kind] += 1
            if ch.kind == "modified" and ch.old and ch.new and ch.old["l"] != ch.new["l"]:
                out.setdefault(ch.old["l"], Counter())["relabelled away"] += 1
        return {k: dict(v) for k, v in sorted(out.items())}


@dataclass
class Diff:
    images: list[ImageDiff]
    labels: dict[str, dict[str, Any]]  # label name -> {"old": body|None, "new": body|None}

    @property
    def empty(self) -> bool:
        return not self.labels and all(not d.changes and d.image_change is None for d in self.images)


def iter_image_changes(repo: Repository, image: str, a: bytes | None, b: bytes | None) -> Iterator[Change]:
    for k, old, new in tree.diff(repo.store, a, b):
        yield Change(image, k, old, new)


def diff_snapshots(repo: Repository, old: Snapshot, new: Snapshot, image: str | None = None) -> Diff:
    names = sorted(set(old.images) | set(new.images))
    if image is not None:
        names = [n for n in names if n == image]
    images = []
    for name in names:
        a, b = old.images.get(name), new.images.get(name)
        if a == b:
            continue
        d = ImageDiff(name, image_change="added" if a is None else "removed" if b is None else None)
        d.changes = list(iter_image_changes(repo, name, a.tree if a else None, b.tree if b else None))
        if d.changes or d.image_change:
            images.append(d)
    return Diff(images, diff_labels(repo, old, new))


def label_set(repo: Repository, snap: Snapshot) -> LabelSet:
    if snap.labels is None:
        return LabelSet()
    return LabelSet.from_body(repo.read_body(snap.labels, "labels"))


def diff_labels(repo: Repository, old: Snapshot, new: Snapshot) -> dict[str, dict[str, Any]]:
    if old.labels == new.labels:
        return {}
    a = {lb.name: lb.to_body() for lb in label_set(repo, old).labels}
    b = {lb.name: lb.to_body() for lb in label_set(repo, new).labels}
    return {n: {"old": a.get(n), "new": b.get(n)} for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)}


# --- output shapes ------------------------------------------------------------------------------


def _ann(repo: Repository, key: bytes, rec: dict[str, Any] | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    return Annotation.from_record(key, tree.join_record(repo.store, rec)).to_dict()


def to_json(repo: Repository, d: Diff, old_rev: str, new_rev: str, stat: bool = False) -> dict[str, Any]:
    images: dict[str, Any] = {}
    for img in d.images:
        entry: dict[str, Any] = {"counts": img.counts(), "labels": img.by_label()}
        if img.image_change:
            entry["image"] = img.image_change
        if not stat:
            entry["changes"] = [
                {"id": ch.id, "change": ch.kind, "fields": ch.fields,
                 "old": _ann(repo, ch.key, ch.old), "new": _ann(repo, ch.key, ch.new)}
                for ch in img.changes
            ]
        images[img.image] = entry
    return {"old": old_rev, "new": new_rev, "images": images, "labels": d.labels}


def to_geojson(repo: Repository, d: Diff) -> dict[str, Any]:
    """A FeatureCollection to draw as layers: each feature is one changed annotation."""
    feats = []
    for img in d.images:
        for ch in img.changes:
            cur = ch.new if ch.new is not None else ch.old
            assert cur is not None
            a = Annotation.from_record(ch.key, tree.join_record(repo.store, cur))
            props: dict[str, Any] = {"image": img.image, "change": ch.kind, "fields": ch.fields, "label": a.label}
            if ch.kind == "modified":
                props["old"] = _ann(repo, ch.key, ch.old)
            feats.append({"type": "Feature", "id": ch.id, "geometry": a.geojson, "properties": props})
    return {"type": "FeatureCollection", "features": feats}
