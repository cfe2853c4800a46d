"""EXACT's write routes. Each request is one commit on the caller's working branch ``users/NAME/edits``
(created from the read branch, as ``POST /edits`` does), after EXACT's checks (a vector of the shape its
annotation type takes) and ours (label, geometry inside the image, role, branch rules)."""

from __future__ import annotations

import functools
import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from flask import Response, jsonify, request, send_file

from exactvc.access import User, may_push
from exactvc.errors import AlreadyExists, ExactError, InvalidInput, NotFound
from exactvc.exact_compat import (
    ImageEdits,
    commit_request,
    from_vector,
    parse_unique_identifier,
    shape_for_vector_type,
    working_branch,
)
from exactvc.ids import format_id, new_annotation_id
from exactvc.objects import ImageRecord, Label

from ..context import access, current_user
from ..errors import Forbidden, Unauthorized
from . import query as q
from .blueprint import exact_compat
from .reads import annotation_at, render_annotations
from .resources import Ctx, View

MAX_ITEMS = 10000
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def serialized(fn: Callable[..., Response]) -> Callable[..., Response]:
    """One write at a time per user in this process: a client's parallel requests (SlideRunner sends
    creates from a thread pool) become consecutive commits on the user's branch instead of 409s."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        user = current_user()
        if user is None:
            return fn(*args, **kwargs)
        with _locks_guard:
            lock = _locks.setdefault(user.name, threading.Lock())
        with lock:
            return fn(*args, **kwargs)

    return wrapper
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def _body() -> Any:
    ctype = request.content_type or ""
    if "form" in ctype:
        return {k: v for k, v in request.form.items()}
    try:
        return orjson.loads(request.get_data())
    except orjson.JSONDecodeError:
        raise InvalidInput("request body is not valid JSON") from None


def _user() -> User:
    user = current_user()
    if user is None:
        raise Unauthorized("authentication required to change anything (Basic or Bearer)")
    return user


def _writable(ctx: Ctx, repo: str) -> View:
    """The caller's view of ``repo`` for writing: annotate role, and their working branch may take pushes."""
    user = _user()
    v = ctx.view(repo, "annotate")
    why = may_push(v.role, user, "heads/" + working_branch(user.name),
                   list(access().settings(repo)["protected"]), False, False)
    if why is not None:
        raise Forbidden(why)
    return v


def _commit(v: View, message: str, **changes: Any) -> bytes:
    user = _user()
    return commit_request(v.repo, working_branch(user.name), v.commit, f"{user.name} <{user.name}@exactvc>",
                          message, **changes)


def _int_field(body: dict[str, Any], name: str, required: bool = True) -> int | None:
    v = body.get(name)
    if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) <= 15:
        v = int(v)
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InvalidInput(f"{name} must be an id (a whole number), not {v!r}")
    return v


def _properties(body: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any] | None:
    """description and meta_data as our properties (None: unchanged)."""
    if "description" not in body and "meta_data" not in body:
        return None
    props = dict(old or {})
    if "meta_data" in body:
        meta = body["meta_data"]
        if meta is not None and not isinstance(meta, dict):
            raise InvalidInput("meta_data must be a JSON object or null")
        desc = props.get("description")
        props = dict(meta or {})
        if desc is not None:
            props["description"] = desc
    if "description" in body:
        d = body["description"]
        if d is not None and not isinstance(d, str):
            raise InvalidInput("description must be a string")
        if d:
            props["description"] = d
        else:
            props.pop("description", None)
    return props


def _label_of(ctx: Ctx, v: View, type_id: int) -> Label:
    parts = ctx.lookup("annotation_type", type_id)
    if parts[0] != v.name:
        raise InvalidInput(f"annotation type {type_id} belongs to another image set than the image")
    lb = v.labels.get(parts[1])
    if lb is None:
        raise NotFound(f"no annotation type {type_id}")
    return lb


# --- annotations --------------------------------------------------------------------------------------


@exact_compat.post("/api/v1/annotations/annotations/", strict_slashes=False)
@serialized
def create_annotations() -> Response:
    """One annotation or a list; an item whose (image, unique_identifier) exists updates it (upsert)."""
    body = _body()
    many = isinstance(body, list)
    items = body if many else [body]
    if not items or len(items) > MAX_ITEMS or not all(isinstance(x, dict) for x in items):
        raise InvalidInput(f"the body must be an annotation object or a list of 1 to {MAX_ITEMS} of them")
    ctx = Ctx()
    _user()
    targets = []
    for it in items:
        num = _int_field(it, "image")
        assert num is not None
        repo, image = ctx.lookup("image", num)[:2]
        targets.append((repo, image))
    repos_ = {r for r, _ in targets}
    if len(repos_) != 1:
        raise InvalidInput("one request changes one image set: these annotations are on images of several")
    v = _writable(ctx, repos_.pop())
    edits: dict[str, ImageEdits] = {}
    order: list[tuple[str, bytes]] = []
    seen: set[tuple[str, bytes]] = set()
    from exactvc import tree

    for it, (_, image) in zip(items, targets, strict=True):
        if image not in v.snap.images:
            raise NotFound(f"no image {image!r} on the branch you write")
        t = _int_field(it, "annotation_type")
        assert t is not None
        lb = _label_of(ctx, v, t)
        key = parse_unique_identifier(it["unique_identifier"]) if it.get("unique_identifier") else new_annotation_id()
        if (image, key) in seen:
            raise InvalidInput(f"unique_identifier {format_id(key)} appears twice in the request")
        seen.add((image, key))
        rec = tree.get(v.repo.store, v.snap.images[image].tree, key)
        old = tree.join_record(v.repo.store, rec) if rec is not None else None
        ed = edits.setdefault(image, ImageEdits())
        if it.get("deleted") is True:
            if old is not None:
                ed.delete.append(format_id(key))
            continue
        if "vector" not in it or it["vector"] is None:
            if old is None:
                raise InvalidInput("a new annotation needs a vector")
            geo, kind, plane = None, None, None
        else:
            geo, kind, plane = from_vector(lb.shape, it["vector"])
        props = _properties(it, old.get("p") if old else None)
        if old is None:
            ed.create.append({"id": format_id(key), "label": lb.name, "geometry": geo, "kind": kind,
                              "properties": props, "plane": plane})
        else:
            ed.update.append({"id": format_id(key), "label": lb.name, "geometry": geo, "kind": kind,
                              "properties": props, "plane": plane})
        order.append((image, key))
    n = sum(len(e.create) + len(e.update) + len(e.delete) for e in edits.values())
    _commit_lenient(v, f"EXACT API: {n} annotation change{'s' if n != 1 else ''}", images=edits)
    out = _rendered(v.name, order)
    resp = jsonify(out if many else (out[0] if out else {}))
    resp.status_code = 201
    return resp


def _commit_lenient(v: View, message: str, **changes: Any) -> None:
    """Commit, unless the request changes nothing (EXACT answers an unchanged write with success)."""
    from exactvc.history import NothingToCommit

    try:
        _commit(v, message, **changes)
    except NothingToCommit:
        pass


def _rendered(repo: str, order: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    from exactvc import tree
    from exactvc.annotation import Annotation

    ctx = Ctx()  # after the commit: the caller now reads their branch
    v = ctx.view(repo)
    hits = []
    for image, key in order:
        rec = tree.get(v.repo.store, v.snap.images[image].tree, key)
        if rec is not None:
            hits.append((v, image, Annotation.from_record(key, tree.join_record(v.repo.store, rec))))
    return render_annotations(ctx, hits, q.Shape([], [], []))


def _change(id: str, replace: bool) -> Response:  # noqa: A002
    body = _body()
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    ctx = Ctx()
    _user()
    num = q.path_id(id, "annotation")
    v0, image, ann = annotation_at(ctx, num)
    v = _writable(ctx, v0.name)
    if replace and ("annotation_type" not in body or "image" not in body):
        raise InvalidInput("PUT needs annotation_type and image (PATCH changes single fields)")
    if "image" in body and _int_field(body, "image") != ctx.image_id(v.name, image):
        raise InvalidInput("an annotation cannot move to another image")
    if body.get("unique_identifier") and parse_unique_identifier(body["unique_identifier"]) != ann.key:
        raise InvalidInput("unique_identifier is the annotation's id and cannot change")
    ed = ImageEdits()
    if body.get("deleted") is True:
        ed.delete.append(ann.id)
    else:
        t = _int_field(body, "annotation_type", required=False)
        lb = _label_of(ctx, v, t) if t is not None else v.labels.get(ann.label)
        if lb is None:
            raise NotFound(f"annotation type of annotation {num} is gone")
        geo, kind, plane = (None, None, None)
        if body.get("vector") is not None:
            geo, kind, plane = from_vector(lb.shape, body["vector"])
        ed.update.append({"id": ann.id, "label": lb.name, "geometry": geo, "kind": kind,
                          "properties": _properties(body, ann.properties), "plane": plane})
    _commit_lenient(v, f"EXACT API: {'delete' if ed.delete else 'update'} annotation {ann.id}",
                    images={image: ed})
    if ed.delete:
        return jsonify({})
    return jsonify(_rendered(v.name, [(image, ann.key)])[0])


@exact_compat.patch("/api/v1/annotations/annotations/<id>/", strict_slashes=False)
@serialized
def partial_update_annotation(id: str) -> Response:  # noqa: A002
    return _change(id, replace=False)


@exact_compat.put("/api/v1/annotations/annotations/<id>/", strict_slashes=False)
@serialized
def update_annotation(id: str) -> Response:  # noqa: A002
    return _change(id, replace=True)


def _delete(nums: list[int]) -> int:
    ctx = Ctx()
    _user()
    hits = [annotation_at(ctx, n) for n in nums]
    repos_ = {v.name for v, _, _ in hits}
    if len(repos_) != 1:
        raise InvalidInput("one request changes one image set: these annotations are in several")
    v = _writable(ctx, repos_.pop())
    edits: dict[str, ImageEdits] = {}
    for _, image, ann in hits:
        ids = edits.setdefault(image, ImageEdits()).delete
        if ann.id not in ids:
            ids.append(ann.id)
    n = sum(len(e.delete) for e in edits.values())
    _commit(v, f"EXACT API: delete {n} annotation{'s' if n != 1 else ''}", images=edits)
    return n


@exact_compat.delete("/api/v1/annotations/annotations/<id>/", strict_slashes=False)
@serialized
def destroy_annotation(id: str) -> Response:  # noqa: A002
    _delete([q.path_id(id, "annotation")])
    return Response(status=204)


@exact_compat.delete("/api/v1/annotations/annotations/multiple_delete/", strict_slashes=False)
@serialized
def multiple_delete() -> Response:
    nums = q.ints("id__in")
    if not nums:
        raise InvalidInput("multiple_delete needs id__in=ID,ID,...")
    if len(nums) > MAX_ITEMS:
        raise InvalidInput(f"at most {MAX_ITEMS} ids per request")
    n = _delete(sorted(set(nums)))
    return jsonify({"deleted": n})


# --- annotation types ---------------------------------------------------------------------------------


@exact_compat.post("/api/v1/annotations/annotation_types/", strict_slashes=False)
@serialized
def create_annotation_type() -> Response:
    """A new label in the product's repository (a commit adding it to the label set)."""
    body = _body()
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    ctx = Ctx()
    _user()
    product = _int_field(body, "product")
    assert product is not None
    repo = ctx.lookup("product", product)[0]
    v = _writable(ctx, repo)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput("name must be a non-empty string of at most 200 characters")
    if v.labels.get(name) is not None:
        raise AlreadyExists(f"annotation type {name!r} exists in {repo} (id {ctx.type_id(repo, name)})")
    shape = shape_for_vector_type(body.get("vector_type", 1))
    color = body.get("color_code", "#ffcc00")
    if not isinstance(color, str) or not _COLOR.match(color):
        raise InvalidInput(f"color_code must be #rrggbb, not {color!r}")
    size = None
    w, h = body.get("default_width"), body.get("default_height")
    if w is not None or h is not None:
        if not all(isinstance(x, int) and not isinstance(x, bool) and 0 < x < 100000 for x in (w or 50, h or 50)):
            raise InvalidInput("default_width and default_height must be positive whole numbers")
        size = (int(w or 50), int(h or 50))
    order = body.get("sort_order", len(v.labels.labels))
    if isinstance(order, bool) or not isinstance(order, int):
        raise InvalidInput("sort_order must be a whole number")
    _commit(v, f"EXACT API: add annotation type {name}", new_labels=[Label(name, shape, color.lower(), None, size,
                                                                           order)])
    ctx2 = Ctx()
    v2 = ctx2.view(repo)
    lb = v2.labels.get(name)
    assert lb is not None
    resp = jsonify(ctx2.annotation_type(v2, lb))
    resp.status_code = 201
    return resp


# --- images: upload, legacy download ------------------------------------------------------------------


@exact_compat.post("/api/v1/images/images/", strict_slashes=False)
@serialized
def create_image() -> Response:
    """Multipart upload (``file_path``, ``image_set``, ``image_type``): the pixels are stored by fingerprint
    and a commit adds the image record to the image set."""
    from exactvc.images import read_image_info

    from ..tiles import _ext

    ctx = Ctx()
    _user()
    set_id = _int_field(dict(request.form), "image_set")
    assert set_id is not None
    repo = ctx.lookup("image_set", set_id)[0]
    v = _writable(ctx, repo)
    files = list(request.files.values())
    if len(files) != 1 or not files[0].filename:
        raise InvalidInput("upload one file (multipart field file_path)")
    f = files[0]
    name = Path(str(f.filename)).name
    if not name or name.startswith(".") or len(name) > 200:
        raise InvalidInput(f"invalid file name {name!r}")
    store = _ext()["exact_slides"]
    existing = None
    tmp_dir = store.dir / "uploads"
    with tempfile.NamedTemporaryFile(dir=tmp_dir, suffix=Path(name).suffix[:12], delete=False) as tmp:
        f.save(tmp)
        tmp_path = Path(tmp.name)
    try:
        try:
            info = read_image_info(tmp_path)
        except ExactError:
            raise
        except Exception:
            raise InvalidInput(f"{name} is not an image this server can read") from None
        existing = v.snap.images.get(name)
        if existing is not None:
            rec = v.repo.image_record(existing)
            if rec.fingerprint != info.fingerprint:
                raise AlreadyExists(f"an image named {name!r} with other pixels exists in {repo}")
        dest = store.dir / "files" / f"{info.fingerprint}{Path(name).suffix.lower()[:12]}"
        if not store.has(info.fingerprint):
            tmp_path.replace(dest)
            try:
                store.register(dest, fingerprint=info.fingerprint, source="upload")
            except Exception:  # the reader's own message names the server's files: say what happened
                dest.unlink(missing_ok=True)
                raise InvalidInput(f"{name} is not an image this server can read: discarded") from None
    finally:
        tmp_path.unlink(missing_ok=True)
    if existing is None:
        rec = ImageRecord(name, info.fingerprint, info.width, info.height, info.levels, info.mpp, info.vendor,
                          info.frames)
        _commit(v, f"EXACT API: add image {name}", new_images=[rec])
    ctx2 = Ctx()
    out = ctx2.image(ctx2.view(repo), name, with_annotations=False)
    resp = jsonify({"count": 1, "next": None, "previous": None, "results": [out]})
    resp.status_code = 201 if existing is None else 200
    return resp


@exact_compat.get("/images/api/image/download/<id>/", strict_slashes=False)
def download_image(id: str) -> Response:  # noqa: A002
    """The legacy download URL: the image's file as the server holds it."""
    from ..tiles import _ext

    ctx = Ctx()
    repo, image = ctx.lookup("image", q.path_id(id, "image"))[:2]
    v = ctx.view(repo)
    rec = ctx.image_record(v, image)
    path = Path(_ext()["exact_slides"].get(rec.fingerprint)["path"])
    download = rec.name if Path(rec.name).suffix.lower() == path.suffix.lower() else rec.name + path.suffix
    return send_file(path, as_attachment=True, download_name=download, conditional=False)
