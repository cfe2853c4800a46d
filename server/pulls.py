"""REST routes of pull requests and of the diff view (docs/api.md, docs/review.md): thin adapters over
exactvc.pulls. Role matrix: read views and comments; annotate opens pull requests and updates their own;
maintain reviews, decides, merges and overrides checks; admin changes settings (server/api.py)."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, current_app, jsonify, request

from exactvc import bundle, received, transfer
from exactvc.access import RANK
from exactvc.errors import InvalidInput, NotFound
from exactvc.ids import parse_id
from exactvc.pulls import review, service
from exactvc.pulls.store import STATES, Pulls

from . import pixels
from .context import access, current_user, int_param, prebuild, repos, require
from .context import json_body as _body
from .errors import Unauthorized

pulls = Blueprint("pulls", __name__, url_prefix="/api/v1/repos/<name>")


def store() -> Pulls:
    s: Pulls = current_app.extensions["exact_pulls"]
    return s


def _user() -> str:
    u = current_user()
    if u is None:
        raise Unauthorized("authentication required (Authorization: Bearer TOKEN)")
    return u.name




def _number(n: str) -> int:
    if not (n.isascii() and n.isdigit()) or len(n) > 9:
        raise NotFound(f"no pull request {n[:20]!r}")
    return int(n)


def _box() -> tuple[float, float, float, float] | None:
    if "bbox" not in request.args:
        return None
    from .api import _bbox

    return _bbox(request.args["bbox"])


def _show(name: str, pr: dict[str, Any]) -> dict[str, Any]:
    s = store()
    repo = repos().get(name)
    pc = service.changes(repo, pr)
    return {**pr, "revisions": s.revisions(name, pr["number"]), "summary": pc.summary(),
            "approvals": service.approvals(s, name, pr),
            "required_approvals": service.required_approvals(access().settings(name), pr)}


@pulls.get("/pulls")
def list_pulls(name: str) -> Response:
    require(name, "read")
    state = request.args.get("state")
    if state is not None and state not in (*STATES, "all"):
        raise InvalidInput(f"state must be one of {', '.join(STATES)} or all")
    repo = repos().get(name)
    out = service.listing(repo, store(), name)
    if state not in (None, "all"):
        out = [pr for pr in out if pr["state"] == state]
    settings = access().settings(name)
    return jsonify({"pulls": [service.list_entry(repo, store(), name, pr, settings) for pr in out]})


@pulls.post("/pulls")
def create_pull(name: str) -> Response:
    require(name, "annotate")
    user = _user()
    b = _body({"title", "body", "source", "target", "draft"})
    repo = repos().get(name)
    pr = service.create(repo, store(), name, user, b.get("title"), b.get("body"), b.get("source"),
                        b.get("target", "main"), b.get("draft", False))
    resp = jsonify(_show(name, pr))
    resp.status_code = 201
    return resp


@pulls.get("/pulls/<n>")
def show_pull(name: str, n: str) -> Response:
    require(name, "read")
    pr = service.get(repos().get(name), store(), name, _number(n))
    return jsonify(_show(name, pr))


@pulls.patch("/pulls/<n>")
def update_pull(name: str, n: str) -> Response:
    role = require(name, "annotate")
    user = _user()
    b = _body({"title", "body", "state"})
    if not b:
        raise InvalidInput("name something to change: title, body or state")
    pr = service.update(repos().get(name), store(), name, _number(n), user, RANK[role] >= RANK["maintain"], b)
    return jsonify(_show(name, pr))


@pulls.get("/pulls/<n>/changes")
def pull_changes(name: str, n: str) -> Response:
    """The changes of the pull request (merge base -> head), one page at a time, with live decisions."""
    require(name, "read")
    repo = repos().get(name)
    pr = service.get(repo, store(), name, _number(n))
    pc = service.changes(repo, pr)
    live = review.live_decisions(pc, store().decisions(name, pr["number"]))
    return _fast_json(_page(repo, pc, live, base=pr["base"], head=pr["head"]))


def _fast_json(data: Any) -> Response:
    """Pages of changes are large (two geometries each): encoded by orjson, not the stdlib."""
    return Response(orjson.dumps(data), mimetype="application/json")


def _page(repo: Any, pc: review.PullChanges, live: dict[tuple[str, str], str] | None, **extra: Any) -> dict[str, Any]:
    limit = int_param("limit", 500, 1, 5000)
    kind = request.args.get("kind")
    if kind is not None and kind not in ("added", "modified", "deleted"):
        raise InvalidInput("kind must be added, modified or deleted")
    cursor = request.args.get("cursor")
    if cursor is not None:
        try:
            parse_id(cursor.rpartition(":")[2])
        except Exception:  # noqa: BLE001
            raise InvalidInput("cursor must be the next_cursor of the previous page") from None
    page, nxt = review.page(pc, limit, cursor, _box(), request.args.get("label"), kind, request.args.get("image"))
    out = [review.change_json(repo, ch, (live or {}).get((ch.image, ch.id), "undecided") if live is not None
                              else None) for ch in page]
    return {**extra, **pc.summary(), "changes": out, "next_cursor": nxt}


@pulls.get("/images/<image>/changes")
def image_changes(name: str, image: str) -> Response:
    """Changes of one image between two revisions, spatially filtered or paged (the browser's diff view)."""
    require(name, "read")
    repo = repos().get(name)
    old, new = request.args.get("old"), request.args.get("new")
    if not old or not new:
        raise InvalidInput("changes needs old and new revisions")
    a, b = repo.resolve(old), repo.resolve(new)
    repo.image(image, new)  # 404 for an image the new revision lacks
    img = repo.image(image, new).name
    pc = review.changes_between(repo, a, b, img)
    return _fast_json(_page(repo, pc, None, image=img, old=a.hex(), new=b.hex()))


@pulls.get("/images/<image>/compare")
def image_compare(name: str, image: str) -> Response:
    """Geometric comparison of two revisions that share no ids (exactvc.match): matched / only in A /
    only in B, precision, recall and F1 per label."""
    from exactvc import match

    require(name, "read")
    repo = repos().get(name)
    a, b = request.args.get("a"), request.args.get("b")
    if not a or not b:
        raise InvalidInput("compare needs revisions a and b")
    spec = match.parse_spec(request.args.get("match", "iou=0.5"))
    img = repo.image(image, a).name
    res = match.match(repo, img, a, b, spec, details=True)
    ids_a = {x.id for x in repo.annotations(img, a)}
    ids_b = {x.id for x in repo.annotations(img, b)}
    pa = {p["a"] for p in res["pairs"]}
    pb = {p["b"] for p in res["pairs"]}
    limit = int_param("limit", 5000, 1, 100000)
    res["only_in_a"] = sorted(ids_a - pa)[:limit]
    res["only_in_b"] = sorted(ids_b - pb)[:limit]
    res["matched"] = res.pop("pairs")[:limit]
    return jsonify(res)


@pulls.get("/images/<image>/matches")
def image_matches(name: str, image: str) -> Response:
    """The geometric comparison for the browser: the figures of ``compare`` (per label and in total) and
    one page of its entries (matched pairs with both geometries, only in A, only in B), spatially
    filtered (``bbox``), by ``label`` and ``status``; ``next_cursor`` leads to the next page."""
    from exactvc import match
    from exactvc.pulls import compare

    require(name, "read")
    repo = repos().get(name)
    a, b = request.args.get("a"), request.args.get("b")
    if not a or not b:
        raise InvalidInput("matches needs revisions a and b")
    spec = match.parse_spec(request.args.get("match", "iou=0.5"))
    status = request.args.get("status")
    if status is not None and status not in compare.STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(compare.STATUSES)}")
    raw = request.args.get("cursor") or "0"
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise InvalidInput("cursor must be the next_cursor of the previous page")
    img = repo.image(image, a).name
    repo.image(image, b)
    ca, cb = repo.resolve(a), repo.resolve(b)
    cmp = compare.compare(repo, img, ca.hex(), cb.hex(), spec)
    limit = int_param("limit", 500, 1, 5000)
    page, nxt = compare.page(cmp, limit, int(raw), _box(), request.args.get("label"), status)
    return _fast_json({"image": img, "a": ca.hex(), "b": cb.hex(), "match": cmp.spec, "labels": cmp.labels,
                       "total": cmp.total, "counts": cmp.counts(),
                       "items": [compare.entry_json(cmp, e) for e in page],
                       "next_cursor": str(nxt) if nxt is not None else None})


@pulls.get("/pulls/<n>/reviews")
def list_reviews(name: str, n: str) -> Response:
    require(name, "read")
    pr = service.get(repos().get(name), store(), name, _number(n))
    return jsonify({"reviews": store().reviews(name, pr["number"]), "approvals": service.approvals(store(), name, pr)})


@pulls.post("/pulls/<n>/reviews")
def add_review(name: str, n: str) -> Response:
    role = require(name, "read")
    user = _user()
    b = _body({"kind", "body"})
    r = service.add_review(repos().get(name), store(), name, _number(n), user, b.get("kind"), b.get("body"),
                           RANK[role] >= RANK["maintain"])
    resp = jsonify(r)
    resp.status_code = 201
    return resp


@pulls.get("/pulls/<n>/comments")
def list_comments(name: str, n: str) -> Response:
    require(name, "read")
    return jsonify({"comments": service.comments(repos().get(name), store(), name, _number(n))})


@pulls.post("/pulls/<n>/comments")
def add_comment(name: str, n: str) -> Response:
    require(name, "read")
    user = _user()
    b = _body({"body", "annotation", "image", "viewport", "reply_to"})
    c = service.add_comment(repos().get(name), store(), name, _number(n), user, b.get("body"), b.get("annotation"),
                            b.get("image"), b.get("viewport"), b.get("reply_to"))
    resp = jsonify(c)
    resp.status_code = 201
    return resp


@pulls.patch("/pulls/<n>/comments/<cid>")
def resolve_comment(name: str, n: str, cid: str) -> Response:
    require(name, "read")
    _user()
    b = _body({"resolved"})
    number = _number(n)
    if not (cid.isascii() and cid.isdigit()) or len(cid) > 12:
        raise NotFound(f"no comment {cid[:20]!r}")
    service.resolve_thread(repos().get(name), store(), name, number, int(cid), b.get("resolved"))
    return jsonify({"comments": service.comments(repos().get(name), store(), name, number)})


@pulls.get("/pulls/<n>/decisions")
def list_decisions(name: str, n: str) -> Response:
    require(name, "read")
    repo = repos().get(name)
    pr = service.get(repo, store(), name, _number(n))
    return jsonify(service.decisions_summary(repo, store(), name, pr))


@pulls.post("/pulls/<n>/decisions")
def decide(name: str, n: str) -> Response:
    require(name, "maintain")
    user = _user()
    b = _body({"decision", "ids", "label", "bbox", "image"})
    return jsonify(service.decide(repos().get(name), store(), name, _number(n), user, b.get("decision"),
                                  b.get("ids"), b.get("label"), b.get("bbox"), b.get("image")))


@pulls.get("/pulls/<n>/checks")
def checks(name: str, n: str) -> Response:
    require(name, "read")
    repo = repos().get(name)
    pr = service.get(repo, store(), name, _number(n))
    return jsonify(service.checks(repo, store(), name, pr))


@pulls.get("/pulls/<n>/merge")
def merge_preview(name: str, n: str) -> Response:
    require(name, "read")
    repo = repos().get(name)
    pr = service.get(repo, store(), name, _number(n))
    return jsonify(service.preview(repo, store(), name, pr, access().settings(name)))


@pulls.post("/pulls/<n>/merge")
def merge(name: str, n: str) -> Response:
    require(name, "maintain")
    user = _user()
    b = _body({"override_checks", "resolutions", "message"})
    out = service.merge(repos().get(name), store(), name, _number(n), user, access().settings(name),
                        b.get("override_checks", False), b.get("resolutions"), b.get("message"))
    prebuild(name, bytes.fromhex(out["merge_commit"]))
    return jsonify(out)


@pulls.get("/pulls/<n>/conflicts")
def conflicts(name: str, n: str) -> Response:
    """The conflicts of merging the pull request into its target now (rejections undone first, as the
    merge does), with base / ours (the target) / theirs (the pull request) per annotation, one page at a
    time: ``limit``, ``cursor`` (the ``next_cursor`` of the previous page), ``bbox``, ``label``, ``image``."""
    require(name, "read")
    repo = repos().get(name)
    pr = service.get(repo, store(), name, _number(n))
    if pr["state"] not in ("draft", "open"):
        raise InvalidInput(f"pull request #{pr['number']} is {pr['state']}: it has no merge to preview")
    plan = service.merge_plan(repo, store(), name, pr, reuse=True)
    limit = int_param("limit", 500, 1, 5000)
    cursor = request.args.get("cursor") or None
    if cursor is not None and len(cursor) > 400:
        raise InvalidInput("cursor must be the next_cursor of the previous page")
    m = plan.merged
    page, nxt = (review.conflict_page(m, limit, cursor, _box(), request.args.get("label"), request.args.get("image"))
                 if m is not None else ([], None))
    return _fast_json({"head": pr["head"], "target": plan.target.hex() if plan.target else None,
                       "total": len(m.conflicts) if m else 0,
                       "conflicts": [review.conflict_json(c, repo) for c in page], "next_cursor": nxt})


@pulls.get("/pulls/<n>/agreement")
def agreement(name: str, n: str) -> Response:
    require(name, "read")
    repo = repos().get(name)
    pr = service.get(repo, store(), name, _number(n))
    return jsonify(service.agreement(repo, store(), name, pr))


@pulls.post("/bundles")
def upload_bundle(name: str) -> Response:
    """A maintainer uploads a bundle (exact bundle create): it is verified object by object like a push,
    its objects stored, its branch created as ``branch`` (default bundles/BRANCH) and, with ``title``, a
    pull request opened from it into ``target``."""
    require(name, "maintain")
    user = current_user()
    if user is None:
        raise Unauthorized("authentication required")
    repo = repos().get(name)
    max_bytes = int(request.max_content_length or 1 << 34)
    b = bundle.read(repo, request.stream, max_bytes)
    transfer.verify_closure(repo, b.items)
    received.refuse_invalid(repo, b.items, b.tips())
    fps: set[str] = set()
    for oid, _ref in b.tips():
        fps |= received.tip_fingerprints(repo, b.items, oid)
    pixels.check_pushed_images(name, user, fps)
    if not b.refs:
        raise InvalidInput("the bundle carries no branch (only tags): bundle a branch to open a pull request")
    want = request.args.get("ref")
    if want is not None and want not in b.refs:
        raise InvalidInput(f"the bundle has no branch {want[:80]!r} (it has {', '.join(sorted(b.refs))})")
    ref = want or sorted(b.refs)[0]
    branch = request.args.get("branch") or f"bundles/{ref}"
    new = [p for p in b.items if not repo.store.has(p.oid)]
    from exactvc.refs import check_new_branch, check_new_tag, check_short_name

    check_short_name(branch, "branch")
    cur = repo.refs.read("heads/" + branch)
    if cur is None:
        check_new_branch(repo.refs, branch)
    tags_new, tags_kept = {}, {}
    for tag, oid in sorted(b.tags.items()):  # new tags are created; one that exists here is kept
        cur_tag = repo.refs.read("tags/" + tag)
        if cur_tag is None:
            check_new_tag(repo.refs, tag)  # before anything is stored: a refusal changes nothing
            tags_new[tag] = oid.hex()
        elif cur_tag != oid:
            tags_kept[tag] = oid.hex()
    if new:
        repo.store.write(new)
    tip = b.refs[ref]
    if cur != tip:
        u = transfer.RefUpdate("heads/" + branch, cur, tip)
        why = transfer.check_update(repo, u)
        if why is not None:
            from exactvc.errors import Conflict

            raise Conflict(why.message)
        transfer.apply_update(repo, u, user.name, f"bundle uploaded by {user.name}")
    for tag, hexid in tags_new.items():
        transfer.apply_update(repo, transfer.RefUpdate("tags/" + tag, None, bytes.fromhex(hexid)), user.name,
                              f"bundle uploaded by {user.name}")
    out: dict[str, Any] = {"branch": branch, "head": tip.hex(), "objects": len(b.items), "new": len(new),
                           "refs": {k: v.hex() for k, v in b.refs.items()},
                           "tags": {k: v.hex() for k, v in b.tags.items()}, "tags_created": tags_new,
                           "tags_kept": tags_kept}
    title = request.args.get("title")
    if title is not None:
        pr = service.create(repo, store(), name, user.name, title, request.args.get("body", ""), branch,
                            request.args.get("target", "main"), False, origin="bundle")
        out["pull"] = _show(name, pr)
    resp = jsonify(out)
    resp.status_code = 201
    return resp
