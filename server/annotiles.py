"""Annotation tiles for the viewer (docs/viewer-tiles.md): resolve a revision, then the immutable manifest,
tiles and records of one image at one commit. Thin adapters over ``exactvc.annotiles``."""

from __future__ import annotations

import json
import re

from flask import Blueprint, Response, jsonify, request

from exactvc import annotiles as at
from exactvc.errors import NotFound, UsageError
from exactvc.repo import Repository

from .context import repos, require

annotiles = Blueprint("annotiles", __name__, url_prefix="/api/v1")
IMMUTABLE = "private, max-age=31536000, immutable"
_COMMIT = re.compile(r"^[0-9a-f]{64}$")


@annotiles.get("/repos/<name>/resolve")
def resolve(name: str) -> Response:
    require(name, "read")
    rev = request.args.get("rev", "HEAD")
    resp = jsonify({"rev": rev, "commit": repos().get(name).resolve(rev).hex()})
    resp.headers["Cache-Control"] = "no-cache"
    return resp


def _commit(repo: Repository, commit: str) -> bytes:
    if not _COMMIT.match(commit):
        raise UsageError(f"{commit!r} is not a full commit id (64 hex digits): resolve it first with "
                         f"/resolve?rev=")
    return bytes.fromhex(commit)  # whether it is a commit of this repository: at.for_commit


def _immutable(body: bytes, etag: str, mimetype: str, gzipped: bool = False) -> Response:
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        resp = Response(status=304)
    elif gzipped and "gzip" in request.headers.get("Accept-Encoding", ""):
        resp = Response(body, mimetype=mimetype)
        resp.headers["Content-Encoding"] = "gzip"
    else:
        resp = Response(at.gunzip(body) if gzipped else body, mimetype=mimetype)
    resp.headers["ETag"] = etag
    resp.headers["Cache-Control"] = IMMUTABLE
    resp.headers["Vary"] = "Accept-Encoding"
    return resp


@annotiles.get("/repos/<name>/images/<image>/annotiles/<commit>/manifest.json")
def manifest(name: str, image: str, commit: str) -> Response:
    require(name, "read")
    repo = repos().get(name)
    cid = _commit(repo, commit)
    p, img, root = at.for_commit(repo, image, cid)
    body = json.dumps({**p.manifest, "commit": commit, "tree": root.hex() if root else None, "image": img},
                      separators=(",", ":"), sort_keys=True).encode()
    return _immutable(body, f'"{p.tag}-{commit[:16]}-manifest"', "application/json")


@annotiles.get("/repos/<name>/images/<image>/annotiles/<commit>/<kind>/<int:z>/<int:x>/<int:y>.bin")
def tile(name: str, image: str, commit: str, kind: str, z: int, x: int, y: int) -> Response:
    require(name, "read")
    repo = repos().get(name)
    p, _img, _root = at.for_commit(repo, image, _commit(repo, commit))
    data = p.tile_gz(kind, z, x, y)
    return _immutable(data, f'"{p.tag}-{kind}{z}-{x}-{y}"', "application/octet-stream", gzipped=True)


@annotiles.get("/repos/<name>/images/<image>/annotiles/<commit>/records/<aid>")
def record(name: str, image: str, commit: str, aid: str) -> Response:
    require(name, "read")
    repo = repos().get(name)
    cid = _commit(repo, commit)
    if not repo.store.has(cid) or repo.store.get(cid)[0] != "commit":
        raise NotFound(f"no commit {commit}")
    try:
        a = repo.annotation(image, aid, cid.hex())
    except ValueError:
        raise UsageError(f"{aid!r} is not an annotation id") from None
    d = a.to_dict()
    d.setdefault("properties", {})
    d.setdefault("plane", None)
    body = json.dumps(d, separators=(",", ":"), sort_keys=True).encode()
    return _immutable(body, f'"{commit[:16]}-{a.id}"', "application/json")
