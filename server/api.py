"""REST API v1: thin adapters over library calls. The OpenAPI document is served at /api/v1/openapi.json."""

from __future__ import annotations

import math
from typing import Any

import orjson
from flask import Blueprint, Response, jsonify, request

from exactvc import porcelain, tree
from exactvc.access import may_push
from exactvc.annotation import Annotation
from exactvc.errors import InvalidInput
from exactvc.history import commit_changes
from exactvc.ids import format_id, parse_id
from exactvc.refs import check_short_name

from .context import access, current_user, int_param, prebuild, repos, require
from .errors import Forbidden, Unauthorized
from .openapi import OPENAPI

api = Blueprint("api", __name__, url_prefix="/api/v1")


def _int(name: str, default: int, lo: int, hi: int) -> int:
    return int_param(name, default, lo, hi)


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
        raise InvalidInput("diff needs old and new revisions")
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
    parts = text.split(",")
    try:
        x0, y0, x1, y1 = (float(x) for x in parts)
    except ValueError:
        raise InvalidInput("bbox must be four numbers x0,y0,x1,y1") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise InvalidInput("bbox must be four finite numbers x0,y0,x1,y1")
    if x0 > x1 or y0 > y1:
        raise InvalidInput(f"bbox {text!r} is inverted: x0 <= x1 and y0 <= y1 are required")
    return x0, y0, x1, y1


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


EDIT_FIELDS = {"branch", "expected_parent", "from", "image", "message", "create", "update", "delete"}


@api.post("/repos/<name>/edits")
def edits(name: str) -> Response:
    """Create / update / delete annotations on a branch and commit them, if the branch is still at
    ``expected_parent`` (409 otherwise: reload, then retry)."""
    role = require(name, "read")
    user = current_user()
    if user is None:
        raise Unauthorized("authentication required to edit")
    body = _only_keys(_json_body(), EDIT_FIELDS, "an edit")
    branch = body.get("branch") or f"users/{user.name}/edits"
    if not isinstance(branch, str):
        raise InvalidInput("branch must be a string")
    check_short_name(branch, "branch")
    why = may_push(role, user, "heads/" + branch, list(access().settings(name)["protected"]),  # type: ignore[arg-type]
                   False, False)
    if why is not None:
        raise Forbidden(why)
    for key in ("create", "update", "delete"):
        if body.get(key) is not None and not isinstance(body[key], list):
            raise InvalidInput(f"{key} must be a list")
    for key, item in (("create", dict), ("update", dict), ("delete", str)):
        if not all(isinstance(x, item) for x in body.get(key) or []):
            raise InvalidInput(f"every item of {key} must be " + ("an object" if item is dict else "an id string"))
    for key in ("image", "message", "from"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise InvalidInput(f"{key} must be a string")
    exp = body.get("expected_parent")
    if exp is not None and not (isinstance(exp, str) and len(exp) == 64 and all(c in "0123456789abcdef" for c in exp)):
        raise InvalidInput("expected_parent must be a commit id in hex (64 digits) or null")
    if not any(body.get(k) for k in ("create", "update", "delete")):
        raise InvalidInput("an edit needs at least one of create, update, delete")
    repo = repos().get(name)
    try:
        cid, created = commit_changes(
            repo, branch, bytes.fromhex(exp) if exp else None, str(body.get("image", "")),
            str(body.get("message") or "Edit in the viewer"), f"{user.name} <{user.name}@exactvc>",
            create=body.get("create"), update=body.get("update"), delete=body.get("delete"),
            start=body.get("from"))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"malformed edit: missing or wrong field {exc}") from None
    prebuild(name, cid)
    resp = jsonify({"commit": cid.hex(), "branch": branch, "created": created})
    resp.status_code = 201
    return resp


def _only_keys(body: Any, allowed: set[str], what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidInput(f"{what}: unknown field {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")
    return body


@api.post("/repos/<name>/roles")
def grant(name: str) -> Response:
    require(name, "admin")
    body = _only_keys(_json_body(), {"who", "role", "team"}, "a role grant {who, role, team?}")
    who, role, team = body.get("who"), body.get("role"), body.get("team", False)
    if not isinstance(who, str) or not who:
        raise InvalidInput("who must be a user or team name (a string)")
    if not isinstance(role, str):
        raise InvalidInput("role must be a string (read, annotate, maintain, admin or none)")
    if not isinstance(team, bool):
        raise InvalidInput(f"team must be true or false, not {team!r}")
    access().grant(name, who, role, team=team)
    return jsonify({"roles": access().roles(name)})


@api.get("/repos/<name>/roles")
def roles(name: str) -> Response:
    require(name, "admin")
    return jsonify({"roles": access().roles(name)})


@api.put("/repos/<name>/settings")
def settings(name: str) -> Response:
    require(name, "admin")
    body = _only_keys(_json_body(), {"anonymous_read", "protected", "required_approvals", "mode", "opinions"},
                      "settings")
    anon = body.get("anonymous_read")
    if "anonymous_read" in body and not isinstance(anon, bool):
        raise InvalidInput(f"anonymous_read must be true or false, not {anon!r}")
    prot = body.get("protected")
    if "protected" in body and (not isinstance(prot, list) or not all(isinstance(p, str) for p in prot)):
        raise InvalidInput("protected must be a list of branch names")
    need = body.get("required_approvals")
    if "required_approvals" in body and (not isinstance(need, int) or isinstance(need, bool)):
        raise InvalidInput(f"required_approvals must be a whole number, not {need!r}")
    mode, opinions = body.get("mode"), body.get("opinions")
    if "mode" in body and not isinstance(mode, str):
        raise InvalidInput(f"mode must be a string, not {mode!r}")
    if "opinions" in body and (not isinstance(opinions, int) or isinstance(opinions, bool)):
        raise InvalidInput(f"opinions must be a whole number, not {opinions!r}")
    access().set_settings(name, anonymous_read=anon, protected=prot, required_approvals=need, mode=mode,
                          opinions=opinions)
    return jsonify(access().settings(name))
