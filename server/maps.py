"""Annotation maps (exactvc/annomap.py): open a map of a label, page through its layout, fetch its DeepZoom
descriptor and tiles. Thin adapters.

- ``GET /api/v1/repos/NAME/maps?label=&image=&patch=&per_row=&scale=&order=&prop=&rev=&limit=`` (read) opens
  the map (its layout is built once per annotation trees and spec and kept), answers its id, DZI url, size
  and the first page of patches
- ``GET /api/v1/repos/NAME/maps/MAP/patches?offset=&limit=`` a page of the layout (read)
- ``GET``/``PUT /api/v1/repos/NAME/maps/MAP/screening``: the caller's screening progress on the map (the
  screening store, keyed ``map:MAP`` where an image's name would be)
- ``GET /maps/MAP.dzi`` and ``/maps/MAP_files/L/C_R.jpeg``: the same DeepZoom scheme as a slide's; a tile is
  built on first request from the source slides and cached (read on the map's repository, checked each time)

Any server process answers for a map another one opened: opening records the map's repository, commit and
spec (and who opened it) in the server's map store (exactvc/mapstore.py: SQLite under ROOT, or the shared
PostgreSQL), and a process that does not hold the map rebuilds its layout from that record.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, jsonify, request

from exactvc import annomap
from exactvc.access import RANK
from exactvc.errors import InvalidInput, NotFound
from exactvc.mapstore import MapRecord, MapStore
from exactvc.screening import checked_state, fields
from exactvc.tiles import Slide
from exactvc.visibility import unscoped

from . import pixels
from .context import access, current_user, int_param, repos, require
from .errors import Forbidden
from .screening import screening_user, store
from .tiles import ONE_YEAR, TileCache, _ext

maps_api = Blueprint("maps_api", __name__)
PAGE = 1000


def _state() -> tuple[annomap.MapCache, annomap.SourceTiles, TileCache]:
    ext: dict[str, Any] = current_app.extensions
    if "exact_maps" not in ext:
        slides = _ext()

        def open_slide(fp: str) -> Slide:
            cache = slides["exact_slide_cache"]
            hit = cache.peek(f"{fp}:0")
            if hit is not None:
                return hit  # type: ignore[no-any-return]
            info = slides["exact_slides"].get(fp)
            return cache.get(f"{fp}:0", info["path"], info["companion"])  # type: ignore[no-any-return]

        cfg = current_app.config["EXACT"]
        ext["exact_maps"] = (annomap.MapCache(int(cfg.get("open_maps", 64))),
                             annomap.SourceTiles(open_slide, int(cfg.get("map_source_tiles", 384))),
                             slides["exact_tile_cache"])
    return ext["exact_maps"]  # type: ignore[no-any-return]


def _store() -> MapStore:
    ext: dict[str, Any] = current_app.extensions
    if "exact_map_store" not in ext:
        ext["exact_map_store"] = repos().backends.map_store(repos().root)
    s: MapStore = ext["exact_map_store"]
    return s


def _page(r: annomap.MapRenderer, offset: int, limit: int) -> dict[str, Any]:
    n = len(r.layout.patches)
    end = min(n, offset + limit)
    return {"offset": offset, "patches": [r.layout.describe(i) for i in range(offset, end)],
            "next_offset": end if end < n else None}


def _describe(r: annomap.MapRenderer, name: str, rev: str, commit: str, limit: int) -> dict[str, Any]:
    lay = r.layout
    return {"map": lay.map_id, "repo": name, "rev": rev, "commit": commit, "spec": lay.spec.key(),
            "dzi": f"/maps/{lay.map_id}.dzi", "width": r.width, "height": r.height, "tile_size": r.tile,
            "max_level": r.max_level, "count": len(lay.patches), "rows": lay.rows, "trees": lay.trees,
            **_page(r, 0, limit)}


@maps_api.get("/api/v1/repos/<name>/maps")
def open_map(name: str) -> Response:
    require(name, "read")
    repo = repos().get(name)
    rev = request.args.get("rev", "HEAD")
    commit = repo.resolve(rev).hex()
    spec = annomap.parse_spec(request.args, request.args.getlist("image"))
    limit = int_param("limit", 200, 0, PAGE)
    cache, sources, _tiles = _state()
    srcs = annomap.map_sources(repo, commit, spec)
    for _n, fp, _root, _w, _h in srcs:
        if not pixels.may_read(fp, current_user()):
            raise Forbidden("no repository you can read references an image of this map")
    mid = annomap.map_id(name, spec, srcs)
    r = cache.get(mid)
    if r is None:
        r = cache.put(annomap.MapRenderer(annomap.build_layout(repo, name, commit, spec, srcs), sources))
    user = current_user()
    who = user.name if user else None
    with _openers_lock:
        known = who in r.openers
    if not known:  # recorded once per map and caller in this process: the other processes look it up
        _store().put(MapRecord(mid, name, commit, spec), who)
        with _openers_lock:
            r.openers.add(who)
    return jsonify(_describe(r, name, rev, commit, limit))


_openers_lock = threading.Lock()


def _may_see(repo: str, mid: str, r: annomap.MapRenderer | None) -> None:
    """In a blind-mode repository a map built from one rater's branch is theirs: below maintain, only those
    who opened it themselves (so their revision was checked), on any server process, get its layout and
    tiles."""
    if access().settings(repo)["mode"] != "blind":
        return
    role = access().role(repo, current_user())
    if role is not None and RANK[role] >= RANK["maintain"]:
        return
    user = current_user()
    who = user.name if user else None
    if r is not None:
        with _openers_lock:
            if who in r.openers:
                return
    if not _store().opened_by(mid, who):
        raise NotFound(f"map {mid} is not open (open it again: GET /api/v1/repos/NAME/maps)")
    if r is not None:
        with _openers_lock:
            r.openers.add(who)


def _map(mid: str) -> annomap.MapRenderer:
    if len(mid) != 32 or any(c not in "0123456789abcdef" for c in mid):
        raise NotFound(f"no map {mid[:40]!r}")
    cache, sources, _tiles = _state()
    r = cache.get(mid)
    if r is not None:
        require(r.layout.repo, "read")
        _may_see(r.layout.repo, mid, r)
        return r
    rec = _store().get(mid)  # opened by another process (or evicted here): rebuild it from its record
    if rec is None:
        raise NotFound(f"map {mid} is not open (open it: GET /api/v1/repos/NAME/maps)")
    require(rec.repo, "read")
    _may_see(rec.repo, mid, None)
    repo = repos().get(rec.repo)
    # the access decision is made above, the same on every process; the layout is read from the recorded
    # commit as it was when the map was opened (a blind-mode view may no longer reach it)
    base = unscoped(repo)
    srcs = annomap.map_sources(base, rec.commit, rec.spec)
    if annomap.map_id(rec.repo, rec.spec, srcs) != mid:
        raise NotFound(f"map {mid} does not match its record (open it again)")
    r = cache.put(annomap.MapRenderer(annomap.build_layout(base, rec.repo, rec.commit, rec.spec, srcs), sources))
    user = current_user()
    with _openers_lock:
        r.openers.add(user.name if user else None)  # they passed _may_see above
    return r


@maps_api.get("/api/v1/repos/<name>/maps/<mid>/patches")
def patches(name: str, mid: str) -> Response:
    require(name, "read")
    r = _map(mid)
    if r.layout.repo != name:
        raise NotFound(f"no map {mid} in {name}")
    offset = int_param("offset", 0, 0, max(0, len(r.layout.patches)))
    return jsonify({"map": mid, "count": len(r.layout.patches), **_page(r, offset, int_param("limit", PAGE, 1, PAGE))})


@maps_api.get("/maps/<mid>.dzi")
def dzi(mid: str) -> Response:
    return Response(_map(mid).dzi(), mimetype="application/xml")


@maps_api.get("/maps/<mid>_files/<int(signed=True):level>/<int(signed=True):col>_<int(signed=True):row>.jpeg")
def tile(mid: str, level: int, col: int, row: int) -> Response:
    r = _map(mid)
    r.check_tile(level, col, row)
    etag = f'"map-{mid}-{level}-{col}-{row}"'
    if request.headers.get("If-None-Match") == etag:
        resp = Response(status=304)
    else:
        tiles: TileCache = _state()[2]
        key = ("map", mid, level, col, row)
        data = tiles.get(key)
        if data is None:
            data = r.tile_jpeg(level, col, row)
            tiles.put(key, data)
        resp = Response(data, mimetype="image/jpeg")
    resp.headers["ETag"] = etag
    # a map id names its annotations and spec: its pixels never change
    resp.headers["Cache-Control"] = f"private, max-age={ONE_YEAR}, immutable"
    return resp



# --- screening a map (issue 15): the slide's screening mode over the map's pixels, kept per user and map ---


def _screening_key(mid: str) -> str:
    return f"map:{mid}"  # not an image name (those never hold ":"), so it never collides with an image's


def _screener(name: str, mid: str) -> tuple[annomap.MapRenderer, str]:
    require(name, "read")
    r = _map(mid)
    if r.layout.repo != name:
        raise NotFound(f"no map {mid} in {name}")
    return r, screening_user()


@maps_api.get("/api/v1/repos/<name>/maps/<mid>/screening")
def get_screening(name: str, mid: str) -> Response:
    r, user = _screener(name, mid)
    st = store().get(name, _screening_key(mid), user)
    return jsonify({"map": mid, "state": st, "fields": fields(r.width, r.height, *st["field"]) if st else None})


@maps_api.put("/api/v1/repos/<name>/maps/<mid>/screening")
def put_screening(name: str, mid: str) -> Response:
    r, user = _screener(name, mid)
    try:
        body = orjson.loads(request.get_data() or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidInput("request body is not valid JSON") from None
    st = checked_state(body, r.width, r.height)
    store().put(name, _screening_key(mid), user, st)
    return jsonify({"map": mid, "state": st})
