"""EXACT's read routes: image sets, images, annotation types, annotations, products, teams, users."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, jsonify, request

from exactvc import tree
from exactvc.annotation import Annotation
from exactvc.errors import InvalidInput, NotFound
from exactvc.exact_compat import SHAPE_VECTOR, annotation_key, key_of
from exactvc.ids import parse_id

from ..context import access
from ..errors import Unauthorized
from . import query as q
from .blueprint import exact_compat
from .resources import Ctx, View


def _page(kind: str, ctx: Ctx, objs: list[dict[str, Any]]) -> Response:
    limit, offset = q.limits()
    shape = q.Shape.from_request()
    sl = [ctx.shaped(kind, o, shape) for o in objs[offset:offset + limit]]
    return jsonify(q.paged(len(objs), sl, limit, offset))


def _one(kind: str, ctx: Ctx, obj: dict[str, Any]) -> Response:
    return jsonify(ctx.shaped(kind, obj, q.Shape.from_request()))


def _signed_in(ctx: Ctx) -> None:
    if ctx.user is None and not ctx.readable():
        raise Unauthorized("authentication required (Basic or Bearer)")


def _eq(x: Any) -> Callable[[Any], bool]:
    return lambda v: bool(v == x)


def _in(xs: set[Any]) -> Callable[[Any], bool]:
    return lambda v: v in xs


def _contains(text: str) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and text in v


def _has(x: Any) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list) and x in v


def _keep(obj: dict[str, Any], checks: list[tuple[str, Callable[[Any], bool]]]) -> bool:
    return all(fn(obj.get(field)) for field, fn in checks)


def _common_filters() -> list[tuple[str, Callable[[Any], bool]]]:
    checks: list[tuple[str, Callable[[Any], bool]]] = []
    one = q.one_int("id")
    if one is not None:
        checks.append(("id", _eq(one)))
    many = q.ints("id__in")
    if many is not None:
        s = set(many)
        checks.append(("id", _in(s)))
    name = q.text("name")
    if name is not None:
        checks.append(("name", _eq(name)))
    contains = q.text("name__contains")
    if contains is not None:
        checks.append(("name", _contains(contains)))
    name_in = q.names("name__in") if "name__in" in request.args else None
    if name_in is not None:
        ns = set(name_in)
        checks.append(("name", _in(ns)))
    return checks


# --- image sets ---------------------------------------------------------------------------------------


def _image_sets(ctx: Ctx) -> list[dict[str, Any]]:
    checks = _common_filters()
    team = q.one_int("team")
    if team is not None:
        checks.append(("team", _eq(team)))
    product = q.one_int("product")
    if product is not None:
        checks.append(("product_set", _has(product)))
    out = [ctx.image_set(ctx.view(n)) for n in ctx.readable()]
    return [o for o in out if _keep(o, checks)]


@exact_compat.get("/api/v1/images/image_sets/", strict_slashes=False)
def list_image_sets() -> Response:
    ctx = Ctx()
    _signed_in(ctx)
    return _page("image_set", ctx, _image_sets(ctx))


@exact_compat.get("/api/v1/images/image_sets/<id>/", strict_slashes=False)
def retrieve_image_set(id: str) -> Response:  # noqa: A002 - EXACT's name
    ctx = Ctx()
    name = ctx.lookup("image_set", q.path_id(id, "image set"))[0]
    return _one("image_set", ctx, ctx.image_set(ctx.view(name)))


# --- images -------------------------------------------------------------------------------------------


def _images(ctx: Ctx) -> list[dict[str, Any]]:
    checks = _common_filters()
    set_id = q.one_int("image_set")
    repos_ = ctx.readable()
    if set_id is not None:
        key = ctx.ids.key("image_set", set_id)
        repos_ = [key] if key in repos_ else []
    with_anns = "annotations" not in q.names("omit") and (not q.names("fields") or "annotations" in q.names("fields"))
    out = []
    for n in repos_:
        v = ctx.view(n)
        for image in sorted(v.snap.images):
            out.append(ctx.image(v, image, with_annotations=with_anns))
    return [o for o in out if _keep(o, checks)]


@exact_compat.get("/api/v1/images/images/", strict_slashes=False)
def list_images() -> Response:
    ctx = Ctx()
    _signed_in(ctx)
    return _page("image", ctx, _images(ctx))


@exact_compat.get("/api/v1/images/images/<id>/", strict_slashes=False)
def retrieve_image(id: str) -> Response:  # noqa: A002
    ctx = Ctx()
    repo, image = ctx.lookup("image", q.path_id(id, "image"))[:2]
    v = ctx.view(repo)
    with_anns = "annotations" not in q.names("omit")
    return _one("image", ctx, ctx.image(v, image, with_annotations=with_anns))


# --- annotation types ---------------------------------------------------------------------------------


def _annotation_types(ctx: Ctx) -> list[dict[str, Any]]:
    checks = _common_filters()
    product = q.one_int("product")
    if product is not None:
        checks.append(("product", _eq(product)))
    vt = q.one_int("vector_type")
    if vt is not None:
        checks.append(("vector_type", _eq(vt)))
    active = q.boolean("active")
    if active is False:
        return []
    out = []
    for n in ctx.readable():
        v = ctx.view(n)
        out += [ctx.annotation_type(v, lb) for lb in v.labels.ordered()]
    return [o for o in out if _keep(o, checks)]


@exact_compat.get("/api/v1/annotations/annotation_types/", strict_slashes=False)
def list_annotation_types() -> Response:
    ctx = Ctx()
    _signed_in(ctx)
    return _page("annotation_type", ctx, _annotation_types(ctx))


@exact_compat.get("/api/v1/annotations/annotation_types/<id>/", strict_slashes=False)
def retrieve_annotation_type(id: str) -> Response:  # noqa: A002
    ctx = Ctx()
    num = q.path_id(id, "annotation type")
    repo, label = ctx.lookup("annotation_type", num)[:2]
    v = ctx.view(repo)
    lb = v.labels.get(label)
    if lb is None:
        raise NotFound(f"no annotation type {num}")
    return _one("annotation_type", ctx, ctx.annotation_type(v, lb))


# --- annotations --------------------------------------------------------------------------------------


class AnnotationFilter:
    """EXACT's annotation filters that we can answer; ``deleted=true`` matches nothing (we keep no deleted
    annotations: a deletion is a commit)."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.image = q.one_int("image")
        self.image_in = q.ints("image__in")
        self.types = [t for t in [q.one_int("annotation_type")] if t is not None] + (q.ints("annotation_type__in") or [])
        self.uid = q.text("unique_identifier")
        self.uid_in = q.names("unique_identifier__in") if "unique_identifier__in" in request.args else None
        self.uid_contains = q.text("unique_identifier__contains")
        self.description = q.text("description")
        self.description_contains = q.text("description__contains")
        self.id = q.one_int("id")
        self.id_in = q.ints("id__in")
        self.vector_type = q.one_int("vector_type")
        self.deleted = q.boolean("deleted")
        self.nothing = self.deleted is True

    def sources(self) -> list[tuple[View, str]]:
        wanted = None
        if self.image is not None or self.image_in is not None:
            wanted = set(([self.image] if self.image is not None else []) + (self.image_in or []))
        out = []
        if wanted is not None:
            found = self.ctx.ids.keys("image", sorted(wanted))
            for num in sorted(wanted):
                key = found.get(num)
                if key is None:
                    continue
                repo, image = key.split("\0", 1)
                if access().role(repo, self.ctx.user) is None:
                    continue
                v = self.ctx.view(repo)
                if image in v.snap.images:
                    out.append((v, image))
            return out
        for n in self.ctx.readable():
            v = self.ctx.view(n)
            out += [(v, image) for image in sorted(v.snap.images)]
        return out

    def labels_of(self, v: View) -> set[str] | None:
        """Label names the type filters allow in ``v`` (None: all)."""
        if not self.types and self.vector_type is None:
            return None
        names = {lb.name for lb in v.labels.labels}
        if self.types:
            found = self.ctx.ids.keys("annotation_type", self.types)
            names &= {k.split("\0", 1)[1] for k in found.values() if k.split("\0", 1)[0] == v.name}
        if self.vector_type is not None:
            names = {n for n in names if SHAPE_VECTOR.get(getattr(v.labels.get(n), "shape", ""), 5)
                     == self.vector_type}
        return names

    def simple(self) -> bool:
        return not (self.types or self.uid or self.uid_in is not None or self.uid_contains or self.description
                    or self.description_contains or self.id is not None or self.id_in is not None
                    or self.vector_type is not None)

    def matches(self, ann: Annotation, labels: set[str] | None) -> bool:
        if labels is not None and ann.label not in labels:
            return False
        if self.uid is not None and ann.id != self.uid.strip().lower():
            return False
        if self.uid_in is not None and ann.id not in {u.lower() for u in self.uid_in}:
            return False
        if self.uid_contains is not None and self.uid_contains.lower() not in ann.id:
            return False
        desc = ann.properties.get("description", "")
        if self.description is not None and desc != self.description:
            return False
        return not (self.description_contains is not None
                    and not (isinstance(desc, str) and self.description_contains in desc))


def _iter(v: View, image: str, start: int = 0) -> Iterator[Annotation]:
    root = v.snap.images[image].tree
    for i, (k, rec) in enumerate(tree.items(v.repo.store, root)):
        if i < start:
            continue
        yield Annotation.from_record(k, tree.join_record(v.repo.store, rec))


def _by_ids(ctx: Ctx, f: AnnotationFilter) -> list[tuple[View, str, Annotation]]:
    nums = sorted(set(([f.id] if f.id is not None else []) + (f.id_in or [])))
    if f.id is not None and f.id_in is not None and f.id not in f.id_in:
        return []
    out = []
    keys = ctx.ids.keys("annotation", nums)
    allowed = {(v.name, image) for v, image in f.sources()}
    for num in nums:
        key = keys.get(num)
        if key is None:
            continue
        repo, image, aid = key.split("\0")
        if (repo, image) not in allowed:
            continue
        v = ctx.view(repo)
        rec = tree.get(v.repo.store, v.snap.images[image].tree, parse_id(aid))
        if rec is not None:
            out.append((v, image, Annotation.from_record(parse_id(aid), tree.join_record(v.repo.store, rec))))
    return out


def _annotations(ctx: Ctx, f: AnnotationFilter, limit: int, offset: int) -> tuple[int, list[tuple[View, str, Annotation]]]:
    """(count, the page) of the annotations the filter keeps, ordered by image set, image and annotation id."""
    if f.nothing:
        return 0, []
    if f.id is not None or f.id_in is not None:
        hits = [h for h in _by_ids(ctx, f) if f.matches(h[2], f.labels_of(h[0]))]
        return len(hits), hits[offset:offset + limit]
    sources = f.sources()
    page: list[tuple[View, str, Annotation]] = []
    if f.simple():  # counts from the snapshots; only the page's records are decoded
        count = sum(v.snap.images[image].count for v, image in sources)
        skip = offset
        for v, image in sources:
            n = v.snap.images[image].count
            if skip >= n:
                skip -= n
                continue
            for ann in _iter(v, image, skip):
                if len(page) == limit:
                    break
                page.append((v, image, ann))
            skip = 0
            if len(page) == limit:
                break
        return count, page
    count = 0
    if f.uid is not None:  # one annotation id: a direct lookup per image
        try:
            key = parse_id(f.uid)
        except InvalidInput:
            return 0, []
        for v, image in sources:
            rec = tree.get(v.repo.store, v.snap.images[image].tree, key)
            if rec is None:
                continue
            ann = Annotation.from_record(key, tree.join_record(v.repo.store, rec))
            if f.matches(ann, f.labels_of(v)):
                if offset <= count < offset + limit:
                    page.append((v, image, ann))
                count += 1
        return count, page
    for v, image in sources:
        labels = f.labels_of(v)
        if labels is not None and not labels:
            continue
        for ann in _iter(v, image):
            if f.matches(ann, labels):
                if offset <= count < offset + limit:
                    page.append((v, image, ann))
                count += 1
    return count, page


def render_annotations(ctx: Ctx, hits: list[tuple[View, str, Annotation]], shape: q.Shape) -> list[dict[str, Any]]:
    keys = [annotation_key(v.name, image, a.key) for v, image, a in hits]
    nums = ctx.ids.ids("annotation", keys)
    img_keys = sorted({key_of(v.name, image) for v, image, _ in hits})
    img_nums = dict(zip(img_keys, ctx.ids.ids("image", img_keys), strict=True))
    return [ctx.shaped("annotation", ctx.annotation(v, image, a, num, img_nums[key_of(v.name, image)]), shape)
            for (v, image, a), num in zip(hits, nums, strict=True)]


@exact_compat.get("/api/v1/annotations/annotations/", strict_slashes=False)
def list_annotations() -> Response:
    ctx = Ctx()
    _signed_in(ctx)
    limit, offset = q.limits()
    f = AnnotationFilter(ctx)
    count, hits = _annotations(ctx, f, limit, offset)
    return jsonify(q.paged(count, render_annotations(ctx, hits, q.Shape.from_request()), limit, offset))


def annotation_at(ctx: Ctx, num: int, role: str = "read") -> tuple[View, str, Annotation]:
    repo, image, aid = ctx.lookup("annotation", num)[:3]
    v = ctx.view(repo, role)
    e = v.snap.images.get(image)
    rec = tree.get(v.repo.store, e.tree, parse_id(aid)) if e is not None else None
    if rec is None:
        raise NotFound(f"no annotation {num} (deleted, or not on the branch you read)")
    return v, image, Annotation.from_record(parse_id(aid), tree.join_record(v.repo.store, rec))


@exact_compat.get("/api/v1/annotations/annotations/<id>/", strict_slashes=False)
def retrieve_annotation(id: str) -> Response:  # noqa: A002
    ctx = Ctx()
    hit = annotation_at(ctx, q.path_id(id, "annotation"))
    return jsonify(render_annotations(ctx, [hit], q.Shape.from_request())[0])


# --- products, teams, users ---------------------------------------------------------------------------


@exact_compat.get("/api/v1/administration/products/", strict_slashes=False)
def list_products() -> Response:
    ctx = Ctx()
    _signed_in(ctx)
    checks = _common_filters()
    team = q.one_int("team")
    if team is not None:
        checks.append(("team", _eq(team)))
    imagesets = q.one_int("imagesets")
    if imagesets is not None:
        checks.append(("imagesets", _has(imagesets)))
    objs = [ctx.product(ctx.view(n)) for n in ctx.readable()]
    return _page("product", ctx, [o for o in objs if _keep(o, checks)])


@exact_compat.get("/api/v1/administration/products/<id>/", strict_slashes=False)
def retrieve_product(id: str) -> Response:  # noqa: A002
    ctx = Ctx()
    repo = ctx.lookup("product", q.path_id(id, "product"))[0]
    return _one("product", ctx, ctx.product(ctx.view(repo)))


@exact_compat.get("/api/v1/users/teams/", strict_slashes=False)
def list_teams() -> Response:
    ctx = Ctx()
    _signed_in(ctx)
    objs = [ctx.team(ctx.view(n)) for n in ctx.readable()]
    return _page("team", ctx, [o for o in objs if _keep(o, _common_filters())])


@exact_compat.get("/api/v1/users/teams/<id>/", strict_slashes=False)
def retrieve_team(id: str) -> Response:  # noqa: A002
    ctx = Ctx()
    repo = ctx.lookup("team", q.path_id(id, "team"))[0]
    return _one("team", ctx, ctx.team(ctx.view(repo)))


@exact_compat.get("/api/v1/users/users/", strict_slashes=False)
def list_users() -> Response:
    ctx = Ctx()
    if ctx.user is None:
        raise Unauthorized("authentication required (Basic or Bearer)")
    objs = [ctx.user_obj(u) for u in access().users() if u["active"]]
    checks = _common_filters()
    for param in ("username",):
        val = q.text(param)
        if val is not None:
            checks.append(("username", _eq(val)))
    contains = q.text("username__contains")
    if contains is not None:
        checks.append(("username", _contains(contains)))
    return _page("user", ctx, [o for o in objs if _keep(o, checks)])


@exact_compat.get("/api/v1/users/users/<id>/", strict_slashes=False)
def retrieve_user(id: str) -> Response:  # noqa: A002
    ctx = Ctx()
    if ctx.user is None:
        raise Unauthorized("authentication required (Basic or Bearer)")
    return jsonify(ctx.by_id("user", q.path_id(id, "user"), q.Shape.from_request()))

