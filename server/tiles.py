"""Slides and tiles: DeepZoom descriptor and tiles, info, regions, thumbnails, resumable uploads.

A tile, thumbnail, region or info of an image is served only to a caller with read
access to a repository whose branches or tags reference the image's fingerprint.
Label and macro images (they often show patient names) have no route at all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from exactvc.errors import InvalidInput, NotFound
from exactvc.slidestore import SlideStore
from exactvc.tiles import MAX_REGION_PIXELS, Slide, SlideCache, _encode

from . import pixels
from .context import current_user, int_param, repos
from .errors import Forbidden, Unauthorized
from .fastpath import grant_key
from .session import COOKIE

tiles = Blueprint("tiles", __name__)
ONE_YEAR = 365 * 24 * 3600


class TileCache:
    """LRU of encoded tiles (bytes), bounded by total size."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self._d: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.max_bytes = max_bytes

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key: tuple[Any, ...], value: bytes) -> None:
        with self._lock:
            if key in self._d:
                return
            self._d[key] = value
            self._size += len(value)
            while self._size > self.max_bytes:
                _, old = self._d.popitem(last=False)
                self._size -= len(old)


def _ext() -> dict[str, Any]:
    ext: dict[str, Any] = current_app.extensions
    if "exact_slides" not in ext:
        ext["exact_slides"] = SlideStore(repos().root)
        ext["exact_slide_cache"] = SlideCache(int(current_app.config["EXACT"].get("open_slides", 32)))
        ext["exact_tile_cache"] = TileCache(int(current_app.config["EXACT"].get("tile_cache_bytes", 256 << 20)))
    return ext


def install_fast_path(app: Any) -> None:
    """Put the plain-WSGI tile fast path (server/fastpath.py) in front of the app."""
    from .fastpath import Grants, TileFastPath

    with app.app_context():
        ext = _ext()
    grants = Grants()
    app.extensions["exact_grants"] = grants
    app.wsgi_app = TileFastPath(app.wsgi_app, grants, ext["exact_slide_cache"],
                                app.config["EXACT"].get("cors_origins", "*"))


def _may_read(fp: str) -> None:
    if not pixels.may_read(fp, current_user()):
        if current_user() is None:
            raise Unauthorized("authentication required (Authorization: Bearer TOKEN)")
        raise Forbidden("no repository you can read references this image")


def _slide(fp: str, frame: int = 0) -> Slide:
    _may_read(fp)
    ext = _ext()
    cache: SlideCache = ext["exact_slide_cache"]
    hit = cache.peek(f"{fp}:{frame}")
    if hit is not None:
        return hit  # the hot path: no database, no file system
    info = ext["exact_slides"].get(fp)
    path = info["path"]
    if frame:
        planes = info["planes"]
        if not 0 < frame <= len(planes):
            raise NotFound(f"no frame {frame} (0..{len(planes)})")
        path = planes[frame - 1]
    s = cache.get(f"{fp}:{frame}", path, info["companion"] if frame == 0 else None)
    s.frames = 1 + len(info["planes"])
    return s


def _int(name: str, default: int | None = None, lo: int = 0, hi: int = 1 << 31) -> int:
    return int_param(name, default, lo, hi)


def _jpeg(data: bytes, etag: str) -> Response:
    if request.headers.get("If-None-Match") == etag:
        resp = Response(status=304)
    else:
        resp = Response(data, mimetype="image/jpeg")
    resp.headers["ETag"] = etag
    resp.headers["Cache-Control"] = f"private, max-age={ONE_YEAR}, immutable"  # a fingerprint's pixels never change
    return resp


@tiles.after_request
def cors(resp: Response) -> Response:
    allowed = current_app.config["EXACT"].get("cors_origins", "*")
    origin = request.headers.get("Origin")
    if origin and (allowed == "*" or origin in allowed):
        resp.headers["Access-Control-Allow-Origin"] = origin if allowed != "*" else "*"
        resp.headers["Access-Control-Allow-Headers"] = "Authorization"
        resp.headers["Vary"] = "Origin"
    return resp


@tiles.get("/slides/<fp>.dzi")
def dzi(fp: str) -> Response:
    s = _slide(fp, _int("frame", 0))
    return Response(s.dzi(), mimetype="application/xml")


@tiles.get("/slides/<fp>_files/<int(signed=True):level>/<int(signed=True):col>_<int(signed=True):row>.jpeg")
def tile(fp: str, level: int, col: int, row: int) -> Response:
    frame = _int("frame", 0, 0, 100000)
    s = _slide(fp, frame)
    s.check_tile(level, col, row)
    if frame == 0:  # this caller may read this slide: the WSGI fast path serves its next tiles for a while
        current_app.extensions["exact_grants"].allow(grant_key(request.headers.get("Authorization", ""),
                                                               request.cookies.get(COOKIE, "")), fp)
    etag = f'"{fp[:16]}-{frame}-{level}-{col}-{row}"'
    if request.headers.get("If-None-Match") == etag:
        return _jpeg(b"", etag)
    if level in s.passthrough:
        lv = s.passthrough[level]
        w, h = s.level_size(level)
        if (col + 1) * s.tile <= w and (row + 1) * s.tile <= h:
            return _jpeg(lv.raw(s._fds[lv.path], col, row), etag)  # the fast path: stored bytes
    cache: TileCache = _ext()["exact_tile_cache"]
    key = (fp, frame, level, col, row)
    data = cache.get(key)
    if data is None:
        data = s.tile_jpeg(level, col, row)
        cache.put(key, data)
    return _jpeg(data, etag)


@tiles.get("/slides/<fp>/info.json")
def info(fp: str) -> Response:
    s = _slide(fp, _int("frame", 0))
    return jsonify({"fingerprint": fp, **s.info()})


@tiles.get("/slides/<fp>/thumbnail.jpeg")
def thumbnail(fp: str) -> Response:
    size = _int("size", 512, 16, 2048)
    s = _slide(fp, _int("frame", 0))
    return _jpeg(s.thumbnail(size), f'"{fp[:16]}-thumb-{size}"')


@tiles.get("/slides/<fp>/region")
def region(fp: str) -> Response:
    """A bounded region of a DeepZoom level (for ML patch extraction): x, y, w, h in that level's pixels."""
    frame = _int("frame", 0)
    s = _slide(fp, frame)
    level = _int("level", s.max_level, 0, s.max_level)
    x, y = _int("x"), _int("y")
    w, h = _int("w", None, 1, 8192), _int("h", None, 1, 8192)
    if w * h > MAX_REGION_PIXELS:
        raise InvalidInput(f"region too large: at most {MAX_REGION_PIXELS} pixels")
    lw, lh = s.level_size(level)
    if x >= lw or y >= lh:
        raise InvalidInput(f"region starts outside level {level} ({lw}x{lh})")
    w, h = min(w, lw - x), min(h, lh - y)
    return _jpeg(_encode(s.region(level, x, y, w, h)), f'"{fp[:16]}-{frame}-r{level}-{x}-{y}-{w}-{h}"')


# --- uploads -----------------------------------------------------------------------------------------


def _may_upload(fp: str) -> None:
    user = current_user()
    if user is None:
        raise Unauthorized("authentication required to upload")
    if not pixels.may_upload(fp, user):
        raise Forbidden("upload needs annotate access to a repository that references this image")


@tiles.get("/slides/<fp>/upload")
def upload_status(fp: str) -> Response:
    _may_upload(fp)
    return jsonify(_ext()["exact_slides"].upload_status(fp))


@tiles.put("/slides/<fp>/upload")
def upload_chunk(fp: str) -> Response:
    _may_upload(fp)
    offset = _int("offset")
    received = _ext()["exact_slides"].upload_chunk(fp, offset, request.get_data(cache=False))
    return jsonify({"fingerprint": fp, "received": received})


@tiles.post("/slides/<fp>/upload/complete")
def upload_complete(fp: str) -> Response:
    _may_upload(fp)
    suffix = request.args.get("suffix", ".svs")
    _ext()["exact_slides"].upload_finish(fp, suffix)
    return jsonify({"fingerprint": fp, "complete": True})
