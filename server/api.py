"""REST API v1: thin adapters over library calls. The OpenAPI document is served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, jsonify, request

from exactvc import porcelain, tree
from exactvc.access import may_push
from exactvc.annotation import Annotation
from exactvc.errors import InvalidInput, UsageError
from exactvc.history import commit_changes
from exactvc.ids import format_id, parse_id
from exactvc.refs import check_ref_name

from .context import access, current_user, repos, require
from .errors import Forbidden, Unauthorized
from .openapi import OPENAPI

api = Blueprint("api", __name__, url_prefix="/api/v1")


def _int(name: str, default: int, lo: int, hi: int) -> int:
    v = request.args.get(name)
    if v is None:
        return default
    try:
        n = int(v)
    except ValueError:
        raise UsageError(f"{name} must be an integer") from None
    if not lo <= n <= hi:
        raise UsageError(f"{name} must be between {lo} and {hi}")
    return n


def _json_body() -> Any:
    try:
        return orjson.loads(request.get_data())
    except orjson.JSONDecodeError:
        raise InvalidInput("request body is not valid JSON") from None


@api.get("/openapi.json")
def openapi() -> Response:
    return jsonify(OPENAPI)


@api.get("/repos")
def list_repos() -> Response:
    user = current_user()
    out = []
    for name in repos().names():
        role = access().role(name, user)
        if role is not None:
            out.append({"name": name, "role": role})
    return jsonify({"repos": out})


@api.get("/repos/<name>")
def repo_info(name: str) -> Response:
    role = require(name, "read")
    repo = repos().get(name)
    return jsonify({"name": name, "role": role, "head": repo.refs.read_head(),
                    "branches": porcelain.branches(repo), "settings": access().settings(name)})


@api.get("/repos/<name>/refs")
def refs(name: str) -> Response:
    require(name, "read")
    repo = repos().get(name)
    return jsonify({"refs": {k: v.hex() for k, v in repo.refs.list().items()}})


@api.get("/repos/<name>/commits/<rev>")
def commit(name: str, rev: str) -> Response:
    require(name, "read")
    return jsonify(porcelain.show(repos().get(name), rev))


@api.get("/repos/<name>/log")
def log(name: str) -> Response:
    require(name, "read")
    n = _int("n", 100, 1, 10000)
    return jsonify({"log": porcelain.log(repos().get(name), request.args.get("rev", "HEAD"), n=n,
                                         image=request.args.get("image"))})


@api.get("/repos/<name>/diff")
def diff(name: str) -> Response:
    require(name, "read")
    old, new = request.args.get("old"), request.args.get("new")
    if not old or not new:
        raise UsageError("diff needs old and new revisions")
    stat = request.args.get("stat") in ("1", "true")
    return jsonify({"exactvc.diff/v1": porcelain.diff(repos().get(name), old, new, request.args.get("image"),
                                                       stat=stat)})


@api.get("/repos/<name>/images")
def images(name: str) -> Response:
    require(name, "read")
    return jsonify({"images": porcelain.image_ls(repos().get(name), request.args.get("rev", "HEAD"))})


@api.get("/repos/<name>/labels")
def labels(name: str) -> Response:
    require(name, "read")
    return jsonify(porcelain.label_ls(repos().get(name), request.args.get("rev", "HEAD")))


def _bbox(text: str) -> tuple[float, float, float, float]:
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        raise UsageError("bbox must be x0,y0,x1,y1") from None
    if len(parts) != 4:
        raise UsageError("bbox must be x0,y0,x1,y1")
    return parts[0], parts[1], parts[2], parts[3]


@api.get("/repos/<name>/images/<image>/annotations")
def list_annotations(name: str, image: str) -> Response:
    """Annotations at a revision, in id order, one page at a time (``cursor`` = last id of the previous page)."""
    require(name, "read")
    repo = repos().get(name)
    rev = request.args.get("rev", "HEAD")
    limit = _int("limit", 500, 1, 5000)
    label = request.args.get("label")
    cursor = request.args.get("cursor")
    after = parse_id(cursor) if cursor else None
    entry, root = repo.tree_of(image, rev)
    out: list[dict[str, Any]] = []
    last: bytes | None = None
    more = False
    if "bbox" in request.args:
        hits = repo.query(image, _bbox(request.args["bbox"]), rev=rev, label=label)
        hits = [a for a in hits if after is None or a.key > after]
        more = len(hits) > limit
        for a in hits[:limit]:
            out.append(a.to_dict())
            last = a.key
    else:
        start = None if after is None else after + b"\0"  # strictly after the cursor
        for k, rec in tree.items(repo.store, root, start=start[:16] if start else None):
            if after is not None and k <= after:
                continue
            if label is not None and rec["l"] != label:
                continue
            if len(out) == limit:
                more = True
                break
            out.append(Annotation.from_record(k, tree.join_record(repo.store, rec)).to_dict())
            last = k
    return jsonify({"image": repo.image(image, rev).name, "rev": rev, "count": entry.count, "annotations": out,
                    "next_cursor": format_id(last) if more and last is not None else None})


@api.post("/repos/<name>/edits")
def edits(name: str) -> Response:
    """Create / update / delete annotations on a branch and commit them, if the branch is still at
    ``expected_parent`` (409 otherwise: reload, then retry)."""
    role = require(name, "read")
    user = current_user()
    if user is None:
        raise Unauthorized("authentication required to edit")
    body = _json_body()
    if not isinstance(body, dict):
        raise InvalidInput("edit body must be a JSON object")
    branch = body.get("branch") or f"users/{user.name}/edits"
    if not isinstance(branch, str):
        raise InvalidInput("branch must be a string")
    why = may_push(role, user, "heads/" + branch, list(access().settings(name)["protected"]),  # type: ignore[arg-type]
                   False, False)
    if why is not None:
        raise Forbidden(why)
    for key in ("create", "update", "delete"):
        if body.get(key) is not None and not isinstance(body[key], list):
            raise InvalidInput(f"{key} must be a list")
    exp = body.get("expected_parent")
    repo = repos().get(name)
    try:
        cid, created = commit_changes(
            repo, branch, bytes.fromhex(exp) if exp else None, str(body.get("image", "")),
            str(body.get("message") or "Edit in the viewer"), f"{user.name} <{user.name}@exactvc>",
            create=body.get("create"), update=body.get("update"), delete=body.get("delete"),
            start=body.get("from"))
    except (KeyError, TypeError) as exc:
        raise InvalidInput(f"malformed edit: missing or wrong field {exc}") from None
    except ValueError:
        raise InvalidInput("expected_parent must be a commit id in hex") from None
    resp = jsonify({"commit": cid.hex(), "branch": branch, "created": created})
    resp.status_code = 201
    return resp


@api.post("/repos/<name>/roles")
def grant(name: str) -> Response:
    require(name, "admin")
    body = _json_body()
    if not isinstance(body, dict) or not isinstance(body.get("who"), str) or not isinstance(body.get("role"), str):
        raise InvalidInput("body must be {who, role, team?}")
    access().grant(name, body["who"], body["role"], team=bool(body.get("team")))
    return jsonify({"roles": access().roles(name)})


@api.get("/repos/<name>/roles")
def roles(name: str) -> Response:
    require(name, "admin")
    return jsonify({"roles": access().roles(name)})


@api.put("/repos/<name>/settings")
def settings(name: str) -> Response:
    require(name, "admin")
    body = _json_body()
    if not isinstance(body, dict):
        raise InvalidInput("body must be an object")
    prot = body.get("protected")
    if prot is not None and (not isinstance(prot, list) or not all(isinstance(p, str) for p in prot)):
        raise InvalidInput("protected must be a list of branch names")
    for p in prot or []:
        check_ref_name(p)
        if "," in p:
            raise InvalidInput(f"invalid branch name {p!r}")
    anon = body.get("anonymous_read")
    access().set_settings(name, anonymous_read=None if anon is None else bool(anon), protected=prot)
    return jsonify(access().settings(name))
