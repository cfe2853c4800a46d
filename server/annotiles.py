"""Annotation tiles for the viewer (docs/viewer-tiles.md): resolve a revision, then the immutable manifest,
tiles and records of one image at one commit. Thin adapters over ``exactvc.annotiles``.

A viewer asks for tiles by the hundred while it pans. Once the Flask route has served a caller a tile of
an image at a commit (with the full authentication and role checks), the same caller's (same
Authorization and Cookie headers) further tiles of that image and commit are answered for ``GRANT_TTL``
seconds by :class:`AnnotileFastPath`, a plain-WSGI layer in front of Flask (as server/fastpath.py does
for slide tiles): a dict lookup and a slice of the mapped tile file. Anything else goes to Flask.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from exactvc import annotiles as at
from exactvc.errors import UsageError
from exactvc.repo import Repository

from .context import prebuilder, repos, require

annotiles = Blueprint("annotiles", __name__, url_prefix="/api/v1")
IMMUTABLE = "private, max-age=31536000, immutable"
_COMMIT = re.compile(r"^[0-9a-f]{64}$")
TILE_PATH = re.compile(r"^/api/v1/repos/([^/]+)/images/([^/]+)/annotiles/([0-9a-f]{64})(?:/f(\d{1,5}))?/([gdi])/"
                       r"(\d{1,2})/(\d{1,9})/(\d{1,9})\.bin$")
GRANT_TTL = 2.0


class TileGrants:
    """(Authorization, Cookie, repository, image, commit) -> (expiry, pyramid), filled by the checked route."""

    def __init__(self) -> None:
        self._d: dict[tuple[str, ...], tuple[float, at.Pyramid]] = {}
        self._lock = threading.Lock()

    def allow(self, key: tuple[str, ...], p: at.Pyramid) -> None:
        with self._lock:
            if len(self._d) > 20000:
                self._d.clear()
            self._d[key] = (time.monotonic() + GRANT_TTL, p)

    def get(self, key: tuple[str, ...]) -> at.Pyramid | None:
        hit = self._d.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


def _grant_key(environ: dict[str, Any], m: re.Match[str]) -> tuple[str, ...]:
    return (environ.get("HTTP_AUTHORIZATION", ""), environ.get("HTTP_COOKIE", ""), m.group(1), m.group(2),
            m.group(3), m.group(4) or "0")


class AnnotileFastPath:
    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], grants: TileGrants) -> None:
        self.next = wsgi_app
        self.grants = grants

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        m = TILE_PATH.match(environ.get("PATH_INFO", ""))
        if m is None or environ.get("QUERY_STRING") or environ.get("REQUEST_METHOD") != "GET":
            return self.next(environ, start_response)
        p = self.grants.get(_grant_key(environ, m))
        if p is None:
            return self.next(environ, start_response)
        kind, z, x, y = m.group(5), int(m.group(6)), int(m.group(7)), int(m.group(8))
        try:
            data = p.tile_gz(kind, z, x, y)
        except at.InvalidInput:
            return self.next(environ, start_response)  # Flask words the error
        etag = f'"{p.tag}-{kind}{z}-{x}-{y}"'
        headers = [("ETag", etag), ("Cache-Control", IMMUTABLE), ("Vary", "Accept-Encoding")]
        if etag in [t.strip() for t in environ.get("HTTP_IF_NONE_MATCH", "").split(",")]:
            start_response("304 NOT MODIFIED", headers)
            return [b""]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            headers.append(("Content-Encoding", "gzip"))
        else:
            data = at.gunzip(data)
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(data))),
                                  *headers])
        return [data]


def install_prebuild(app: Any) -> None:
    """Build annotation tiles in the background when a branch moves (exactvc/prebuild.py), unless the
    ``annotile_prebuild`` setting is false."""
    if app.config["EXACT"].get("annotile_prebuild", True):
        from exactvc.prebuild import Prebuilder

        app.extensions["exact_annotile_prebuilder"] = Prebuilder()


def pyramid_of(repo: Repository, image: str, cid: bytes, frame: int | None = 0) -> tuple[at.Pyramid, str, bytes | None]:
    """``at.for_commit``, after waiting (bounded) for a background build of this commit that is running."""
    pb = prebuilder()
    if pb is not None and repo.exact_dir is not None:
        pb.wait_running(repo.exact_dir.parent, cid, 300.0)
    return at.for_commit(repo, image, cid, frame)


def install_fast_path(app: Any) -> None:
    """Put :class:`AnnotileFastPath` in front of the app."""
    grants = TileGrants()
    app.extensions["exact_annotile_grants"] = grants
    app.wsgi_app = AnnotileFastPath(app.wsgi_app, grants)


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
    # a commit of this repository that the caller may read (a blind-mode annotator: one their refs reach)
    return repo.check_commit(bytes.fromhex(commit))


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
@annotiles.get("/repos/<name>/images/<image>/annotiles/<commit>/f<frame>/manifest.json")
def manifest(name: str, image: str, commit: str, frame: str = "0") -> Response:
    require(name, "read")
    repo = repos().get(name)
    cid = _commit(repo, commit)
    p, img, root = pyramid_of(repo, image, cid, _coord("frame", frame))
    body = json.dumps({**p.manifest, "commit": commit, "tree": root.hex() if root else None, "image": img},
                      separators=(",", ":"), sort_keys=True).encode()
    return _immutable(body, f'"{p.tag}-{commit[:16]}-manifest"', "application/json")


def _coord(name: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise UsageError(f"tile {name} must be a non-negative integer, not {text[:20]!r}")
    return int(text)


@annotiles.get("/repos/<name>/images/<image>/annotiles/<commit>/<kind>/<z>/<x>/<y>.bin")
@annotiles.get("/repos/<name>/images/<image>/annotiles/<commit>/f<frame>/<kind>/<z>/<x>/<y>.bin")
def tile(name: str, image: str, commit: str, kind: str, z: str, x: str, y: str, frame: str = "0") -> Response:
    require(name, "read")
    repo = repos().get(name)
    zi, xi, yi = _coord("level", z), _coord("x", x), _coord("y", y)
    p, _img, _root = pyramid_of(repo, image, _commit(repo, commit), _coord("frame", frame))
    data = p.tile_gz(kind, zi, xi, yi)
    m = TILE_PATH.match(request.environ.get("PATH_INFO", ""))
    grants: TileGrants | None = current_app.extensions.get("exact_annotile_grants")
    if m is not None and grants is not None:  # this caller may read this image at this commit
        grants.allow(_grant_key(request.environ, m), p)
    return _immutable(data, f'"{p.tag}-{kind}{zi}-{xi}-{yi}"', "application/octet-stream", gzipped=True)


@annotiles.get("/repos/<name>/images/<image>/annotiles/<commit>/records/<aid>")
def record(name: str, image: str, commit: str, aid: str) -> Response:
    require(name, "read")
    repo = repos().get(name)
    cid = _commit(repo, commit)
    try:
        a = repo.annotation(image, aid, cid.hex())
    except ValueError:
        raise UsageError(f"{aid!r} is not an annotation id") from None
    d = a.to_dict()
    d.setdefault("properties", {})
    d.setdefault("plane", None)
    body = json.dumps(d, separators=(",", ":"), sort_keys=True).encode()
    return _immutable(body, f'"{commit[:16]}-{a.id}"', "application/json")
