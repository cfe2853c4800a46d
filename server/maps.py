"""Annotation maps (exactvc/annomap.py): open a map of a label, page through its layout, fetch its DeepZoom
descriptor and tiles. Thin adapters.

- ``GET /api/v1/repos/NAME/maps?label=&image=&patch=&per_row=&scale=&order=&prop=&rev=&limit=`` (read) opens
  the map (its layout is built once per annotation trees and spec and kept), answers its id, DZI url, size
  and the first page of patches
- ``GET /api/v1/repos/NAME/maps/MAP/patches?offset=&limit=`` a page of the layout (read)
- ``GET /maps/MAP.dzi`` and ``/maps/MAP_files/L/C_R.jpeg``: the same DeepZoom scheme as a slide's; a tile is
  built on first request from the source slides and cached (read on the map's repository, checked each time)
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from exactvc import annomap
from exactvc.access import RANK
from exactvc.errors import NotFound
from exactvc.tiles import Slide

from . import pixels
from .context import access, current_user, int_param, repos, require
from .errors import Forbidden
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
    with _openers_lock:
        r.openers.add(user.name if user else None)
    return jsonify(_describe(r, name, rev, commit, limit))


_openers_lock = threading.Lock()


def _may_see(r: annomap.MapRenderer) -> None:
    """In a blind-mode repository a map built from one rater's branch is theirs: below maintain, only those
    who opened it themselves (so their revision was checked) get its layout and tiles."""
    name = r.layout.repo
    if access().settings(name)["mode"] != "blind":
        return
    role = access().role(name, current_user())
    if role is not None and RANK[role] >= RANK["maintain"]:
        return
    user = current_user()
    with _openers_lock:
        if (user.name if user else None) not in r.openers:
            raise NotFound(f"map {r.layout.map_id} is not open on this server (open it again)")


def _map(mid: str) -> annomap.MapRenderer:
    if len(mid) != 32 or any(c not in "0123456789abcdef" for c in mid):
        raise NotFound(f"no map {mid[:40]!r}")
    r = _state()[0].get(mid)
    if r is None:
        raise NotFound(f"map {mid} is not open on this server (open it again: GET /api/v1/repos/NAME/maps)")
    require(r.layout.repo, "read")
    _may_see(r)
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

