"""The sync protocol (see docs/protocol.md): ref advertisement, negotiation, fetch and push."""

from __future__ import annotations

import struct
import time
from typing import Any

import orjson
from flask import Blueprint, Response, jsonify, request

from exactvc import received, transfer
from exactvc.access import RANK, may_push
from exactvc.errors import ExactError, InvalidInput, RefConflict
from exactvc.hooks import run_hook
from exactvc.refs import check_pushed_ref

from . import pixels
from .context import access, current_user, error_response, prebuild, repos, require
from .errors import Forbidden

sync = Blueprint("sync", __name__)
MAX_NEGOTIATE = 4096


def _json() -> Any:
    try:
        return orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError:
        raise InvalidInput("request body is not valid JSON") from None


def _ids(v: Any, what: str) -> list[bytes]:
    if not isinstance(v, list) or len(v) > MAX_NEGOTIATE:
        raise InvalidInput(f"{what} must be a list of at most {MAX_NEGOTIATE} ids")
    out = []
    for x in v:
        b = transfer._opt_hex(x)
        if b is None:
            raise InvalidInput(f"{what} holds a null id")
        out.append(b)
    return out


@sync.get("/<name>/info/refs")
def info_refs(name: str) -> Response:
    require(name, "read")
    repo = repos().get(name)
    head = repo.refs.read_head()
    return jsonify({"refs": {k: v.hex() for k, v in repo.refs.list().items() if not k.startswith("remotes/")},
                    "head": head[5:] if head.startswith("ref: ") else head,
                    "settings": access().settings(name)})


@sync.post("/<name>/negotiate")
def negotiate(name: str) -> Response:
    """Which of the given commit ids the server has (the client sends its history in rounds)."""
    require(name, "read")
    repo = repos().get(name)
    body = _json()
    ids = _ids(body.get("ids") if isinstance(body, dict) else None, "ids")
    # a commit the caller may not see is answered as one the server lacks (exactvc/visibility.py)
    have = [i.hex() for i in ids if repo.store.has(i) and repo.readable(i)]
    return jsonify({"have": have})


@sync.post("/<name>/fetch")
def fetch(name: str) -> Response:
    require(name, "read")
    repo = repos().get(name)
    body = _json()
    if not isinstance(body, dict):
        raise InvalidInput("fetch body must be an object with wants and haves")
    wants = _ids(body.get("wants"), "wants")
    # what the caller may not see is treated as unknown: a hidden have is ignored, a hidden want refused
    # with the words of a missing one (exactvc/visibility.py)
    haves = [h for h in _ids(body.get("haves", []), "haves") if repo.readable(h)]
    for h in haves:
        if repo.store.has_now(h) and repo.store.get(h)[0] != "commit":
            raise InvalidInput(f"have {h.hex()} is not a commit")
    for w in wants:
        if not repo.store.has_now(w) or not repo.readable(w):
            raise InvalidInput(f"unknown object {w.hex()}")
        if repo.store.get(w)[0] not in ("commit", "tag", "run", "artefact"):
            raise InvalidInput(f"{w.hex()} is not a commit, tag, run or artefact")
    known = _ids(body.get("known", []), "known")  # runs' artefacts and chunks the client has
    known = [k for k in known if repo.readable(k)]
    oids = list(transfer.objects_with_bases(repo, wants, haves, known))
    data = transfer.stream_bytes(repo, oids)
    return Response(data, mimetype="application/x-exactvc-stream",
                    headers={"X-Exact-Objects": str(len(oids))})


@sync.post("/<name>/push")
def push(name: str) -> Response:
    role = require(name, "read")
    user = current_user()
    if user is None:
        from .errors import Unauthorized

        raise Unauthorized("authentication required to push")
    if RANK[role] < RANK["annotate"]:
        raise Forbidden(f"role {role!r} cannot push to {name}")
    repo = repos().get(name)
    stream = request.stream
    head = stream.read(4)
    if len(head) != 4:
        raise InvalidInput("push body is truncated")
    (hlen,) = struct.unpack("<I", head)
    if hlen > 1 << 20:
        raise InvalidInput("push header too large")
    header = stream.read(hlen)
    try:
        meta = orjson.loads(header)
    except orjson.JSONDecodeError:
        raise InvalidInput("push header is not valid JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("updates", []), list):
        raise InvalidInput("push header must be an object with a list of updates")
    updates = [transfer.RefUpdate.from_json(u) for u in (meta.get("updates") or [])]
    if not updates:
        raise InvalidInput("push names no ref updates")
    settings = access().settings(name)
    protected = list(settings["protected"])  # type: ignore[arg-type]
    for u in updates:
        check_pushed_ref(repo.refs, u.ref)
        refused = may_push(role, user, u.ref, protected, u.force, u.new is None)
        if refused is not None:
            raise Forbidden(refused)
    # read and verify everything (as fsck would) before anything is stored or any ref moves
    t_read = time.perf_counter()
    max_bytes = int(request.max_content_length or 1 << 34)
    items = transfer.read_stream(repo, stream, max_bytes)
    transfer.verify_closure(repo, items)
    tips = [(u.new, u.ref) for u in updates if u.new is not None]
    sent = {p.oid for p in items}
    for oid, _ref in tips:  # a ref may name only what was sent or what the pusher may read
        if oid not in sent and not repo.readable(oid):
            raise transfer.MissingReference(f"update of {_ref} names {oid.hex()}, which is neither sent nor stored")
    received.refuse_invalid(repo, items, tips)
    fps: set[str] = set()
    for oid, _ref in tips:
        fps |= received.tip_fingerprints(repo, items, oid)
    pixels.check_pushed_images(name, user, fps)
    t_store = time.perf_counter()
    new = [p for p in items if not repo.store.has(p.oid)]
    if new:
        repo.store.write(new)
    t_hook = time.perf_counter()
    # the repository's pre-receive hook may refuse the whole push (objects are stored, refs not moved)
    run_hook(repo.exact_dir, "pre-receive", env_extra={"EXACT_PUSHER": user.name},
             stdin=orjson.dumps({"user": user.name, "updates": [x.to_json() for x in updates]}))
    # atomic: every update is checked, then all refs move together (one transaction where the ref
    # backend has them) or none does
    t_refs = time.perf_counter()
    checks = [(u, transfer.check_update(repo, u)) for u in updates]
    failed = [why for _u, why in checks if why is not None]
    results: list[dict[str, Any]] = []
    if not failed:
        moves = [u for u in updates if repo.refs.read(u.ref) != u.new]
        try:
            transfer.apply_updates(repo, moves, user.name, f"push by {user.name}")
        except RefConflict:  # a concurrent push won a compare-and-swap: nothing moved
            failed.append(transfer.Refusal("non_fast_forward", 409,
                                           "a ref moved during the push; fetch and merge first (non-fast-forward)"))
        except (OSError, ExactError):
            failed.append(transfer.Refusal("ref_name_conflict", 409,
                                           "the refs could not be updated (a ref name conflicts with an existing one)"))
    for u, why in checks:
        if failed and why is None:
            why = failed[0] if len(updates) == 1 else transfer.Refusal(
                failed[0].kind, failed[0].status, f"not applied: the push is atomic and {failed[0].message}")
        if why is None:
            results.append({"ref": u.ref, "status": "ok"})
        else:
            results.append({"ref": u.ref, "status": "rejected", "type": why.kind, "reason": why.message})
    # where the time went (the standard Server-Timing header; bench/scale.py adds these up)
    t_end = time.perf_counter()
    timing = ", ".join(f"{k};dur={1000 * v:.1f}" for k, v in (
        ("read", t_store - t_read), ("store", t_hook - t_store), ("hook", t_refs - t_hook), ("refs", t_end - t_refs)))
    if failed:
        resp = error_response(failed[0].kind, failed[0].message, failed[0].status, results=results,
                              objects=len(items))
    else:
        resp = jsonify({"results": results, "objects": len(items), "new": len(new)})
        for u in moves:
            if u.ref.startswith("heads/"):  # branches: what viewers open (a tag names a fixed commit anyway)
                prebuild(name, u.new)
    resp.headers["Server-Timing"] = timing
    return resp
