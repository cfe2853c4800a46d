"""EXACT's resources as views of ours: an image set is a repository, an image an image record, an annotation
type a label, a product a repository's label set, a team the people with a role on a repository.

One :class:`Ctx` per request: it resolves EXACT's integer ids (``exactvc.exact_compat.CompatIds``), checks
the caller's access the way our own routes do (``server.context.require``), reads each repository at the
caller's base commit once and renders resources as EXACT's serializers do, with the fields we do not model
at the fixed values of docs/exact-compat.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flask import current_app

from exactvc.access import RANK, User
from exactvc.errors import NotFound
from exactvc.exact_compat import SHAPE_VECTOR, CompatIds, base_commit, key_of, parts_of, to_vector
from exactvc.objects import ImageRecord, Label, LabelSet, Snapshot
from exactvc.repo import Repository

from ..context import access, current_user, repos, require
from ..errors import Unauthorized
from .query import Shape

EXPANDABLE: dict[str, dict[str, str]] = {
    "image_set": {"images": "image", "product_set": "product", "team": "team", "main_annotation_type":
                  "annotation_type", "creator": "user"},
    "image": {"image_set": "image_set", "annotations": "annotation"},
    "annotation_type": {"product": "product"},
    "annotation": {"annotation_type": "annotation_type", "image": "image", "user": "user", "last_editor": "user"},
    "product": {"team": "team", "imagesets": "image_set", "annotationtype_set": "annotation_type",
                "creator": "user"},
    "team": {"members": "user", "image_sets": "image_set", "product_set": "product"},
    "user": {"team_set": "team"},
}


def ids() -> CompatIds:
    store: CompatIds | None = current_app.extensions.get("exact_compat_ids")
    if store is None:
        store = repos().backends.id_store(repos().root)
        current_app.extensions["exact_compat_ids"] = store
    return store


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".000000"


@dataclass
class View:
    """A repository as the caller sees it: the commit read, its snapshot and label set."""

    name: str
    repo: Repository
    role: str
    commit: bytes | None
    snap: Snapshot
    labels: LabelSet
    time: float


class Ctx:
    def __init__(self) -> None:
        self.user: User | None = current_user()
        self.ids = ids()
        self._views: dict[str, View] = {}
        self._cache: dict[tuple[str, int], Any] = {}

    # --- access ---
    def readable(self) -> list[str]:
        """Repositories the caller can read (anonymous: those with anonymous read)."""
        out = []
        for name in repos().names():
            if access().role(name, self.user) is not None:
                out.append(name)
        return out

    def view(self, name: str, role: str = "read") -> View:
        have = require(name, role)
        v = self._views.get(name)
        if v is None:
            repo = repos().get(name)
            commit = base_commit(repo, self.ids.read_branch(name), self.user.name if self.user else None)
            if commit is None:
                snap, when = Snapshot(), 0.0
            else:
                c = repo.commit_object(commit)
                snap, when = repo.snapshot_object(c.root), float(c.time)
            labels = (LabelSet.from_body(repo.read_body(snap.labels, "labels")) if snap.labels
                      else LabelSet(product=str(repo.config().get("product", "default"))))
            v = View(name, repo, have, commit, snap, labels, when)
            self._views[name] = v
        elif RANK[v.role] < RANK[role]:
            require(name, role)
        return v

    def lookup(self, kind: str, num: int) -> list[str]:
        """The key parts of an id the caller may see: 404 for ids never handed out and for those of a
        repository the caller cannot read (its existence is not revealed), 401 for anonymous callers."""
        key = self.ids.key(kind, num)
        if key is None:
            if self.user is None:
                raise Unauthorized("authentication required (Basic or Bearer)")
            raise NotFound(f"no {kind.replace('_', ' ')} {num}")
        parts = parts_of(key)
        if kind == "user":
            return parts
        if access().role(parts[0], self.user) is None:
            if self.user is None:
                raise Unauthorized("authentication required (Basic or Bearer)")
            raise NotFound(f"no {kind.replace('_', ' ')} {num}")
        return parts

    # --- ids ---
    def set_id(self, name: str) -> int:
        return self.ids.id("image_set", name)

    def image_id(self, repo: str, image: str) -> int:
        return self.ids.id("image", key_of(repo, image))

    def type_id(self, repo: str, label: str) -> int:
        return self.ids.id("annotation_type", key_of(repo, label))

    def product_id(self, repo: str) -> int:
        return self.ids.id("product", repo)

    def team_id(self, repo: str) -> int:
        return self.ids.id("team", repo)

    def user_id(self, name: str) -> int:
        return self.ids.id("user", name)

    # --- resources ---
    def image_record(self, v: View, image: str) -> ImageRecord:
        e = v.snap.images.get(image)
        if e is None:
            raise NotFound(f"no image {image!r} in {v.name}")
        return v.repo.image_record(e)

    def image_set(self, v: View) -> dict[str, Any]:
        names = sorted(v.snap.images)
        img_ids = self.ids.ids("image", [key_of(v.name, n) for n in names])
        return {"id": self.set_id(v.name), "name": v.name, "path": v.name, "location": "", "description": "",
                "time": iso(v.time), "images": img_ids, "product_set": [self.product_id(v.name)],
                "main_annotation_type": None, "set_tags": [], "team": self.team_id(v.name), "creator": None,
                "public": bool(access().settings(v.name)["anonymous_read"]), "priority": 0, "zip_state": 0,
                "collaboration_type": 0}

    def image(self, v: View, image: str, with_annotations: bool = True) -> dict[str, Any]:
        rec = self.image_record(v, image)
        out: dict[str, Any] = {"id": self.image_id(v.name, image), "name": rec.name, "filename": rec.name,
                               "time": iso(v.time), "height": rec.height, "width": rec.width, "mpp": rec.mpp,
                               "objectivePower": None, "image_type": 0, "image_set": self.set_id(v.name),
                               "depth": 1, "frames": rec.frames, "channels": 3}
        if with_annotations:
            from exactvc import tree
            from exactvc.exact_compat import annotation_key

            root = v.snap.images[image].tree
            keys = [annotation_key(v.name, image, k) for k, _ in tree.items(v.repo.store, root)]
            out["annotations"] = self.ids.ids("annotation", keys)
        return out

    def annotation_type(self, v: View, label: Label) -> dict[str, Any]:
        size = label.size or (50, 50)
        return {"id": self.type_id(v.name, label.name), "name": label.name,
                "vector_type": SHAPE_VECTOR.get(label.shape, 5), "node_count": 0, "enable_concealed": False,
                "enable_blurred": False, "color_code": label.color, "default_width": size[0],
                "default_height": size[1], "sort_order": label.order, "closed": label.shape != "line",
                "area_hit_test": True, "product": self.product_id(v.name), "active": True}

    def product(self, v: View) -> dict[str, Any]:
        return {"id": self.product_id(v.name), "name": v.labels.product, "description": "",
                "team": self.team_id(v.name), "creator": None, "imagesets": [self.set_id(v.name)],
                "annotationtype_set": [self.type_id(v.name, lb.name) for lb in v.labels.ordered()]}

    def members(self, repo: str) -> list[str]:
        return sorted({r["who"] for r in access().roles(repo) if r["kind"] == "user"})

    def team(self, v: View) -> dict[str, Any]:
        return {"id": self.team_id(v.name), "name": v.name,
                "members": [self.user_id(u) for u in self.members(v.name)],
                "image_sets": [self.set_id(v.name)], "product_set": [self.product_id(v.name)]}

    def user_obj(self, u: dict[str, Any]) -> dict[str, Any]:
        name = str(u["name"])
        teams = [self.team_id(r) for r in self.readable() if name in self.members(r)]
        return {"id": self.user_id(name), "username": name, "is_superuser": bool(u["site_admin"]),
                "is_staff": bool(u["site_admin"]), "is_active": bool(u["active"]), "last_login": None,
                "team_set": teams}

    def annotation(self, v: View, image: str, ann: Any, num: int, image_num: int) -> dict[str, Any]:
        label = v.labels.get(ann.label)
        props = dict(ann.properties)
        desc = props.pop("description", "")
        me = self.user.name if self.user is not None else None
        vs = ann.verifications
        return {"id": num, "annotation_type": self.type_id(v.name, ann.label),
                "vector": to_vector(label, ann.kind, ann.geojson, ann.plane),
                "verified_by_user": any(e["u"] == me for e in vs),
                "is_verified": any(e["y"] for e in vs), "image": image_num, "concealed": False, "blurred": False,
                "last_editor": None, "user": None, "time": iso(v.time), "last_edit_time": iso(v.time),
                "generated": False, "deleted": False, "description": desc if isinstance(desc, str) else str(desc),
                "unique_identifier": ann.id, "uploaded_media_files": [], "annotationversion_set": [],
                "meta_data": props or None}

    # --- by id, for expansion ---
    def by_id(self, kind: str, num: int, shape: Shape) -> Any:
        hit = self._cache.get((kind, num))
        if hit is None:
            hit = self._load(kind, num)
            self._cache[(kind, num)] = hit
        return self.shaped(kind, hit, shape)

    def _load(self, kind: str, num: int) -> dict[str, Any]:
        parts = self.lookup(kind, num)
        if kind == "user":
            for u in access().users():
                if u["name"] == parts[0]:
                    return self.user_obj(u)
            raise NotFound(f"no user {num}")
        v = self.view(parts[0])
        if kind == "image_set":
            return self.image_set(v)
        if kind == "product":
            return self.product(v)
        if kind == "team":
            return self.team(v)
        if kind == "image":
            return self.image(v, parts[1], with_annotations=False)
        if kind == "annotation_type":
            lb = v.labels.get(parts[1])
            if lb is None:
                raise NotFound(f"no annotation type {num}")
            return self.annotation_type(v, lb)
        if kind == "annotation":
            from exactvc.ids import parse_id

            if parts[1] not in v.snap.images:
                raise NotFound(f"no annotation {num}")
            ann = v.repo.annotation(parts[1], parts[2], v.commit.hex()) if v.commit else None
            if ann is None:
                raise NotFound(f"no annotation {num}")
            parse_id(parts[2])
            return self.annotation(v, parts[1], ann, num, self.image_id(v.name, parts[1]))
        raise NotFound(f"no {kind} {num}")

    def render(self, kind: str, value: Any, shape: Shape) -> Any:
        """A reference expanded; one the caller may not follow (or that is gone) is null, or left out of a
        list."""
        if isinstance(value, list):
            out = [self._follow(kind, x, shape) for x in value]
            return [x for x in out if x is not None]
        return self._follow(kind, value, shape)

    def _follow(self, kind: str, num: Any, shape: Shape) -> Any:
        try:
            return self.by_id(kind, num, shape)
        except (NotFound, Unauthorized):
            return None

    def shaped(self, kind: str, obj: dict[str, Any], shape: Shape) -> dict[str, Any]:
        return shape.apply(obj, EXPANDABLE.get(kind, {}), self.render)
