"""Annotation maps (exactvc/annomap.py, server/maps.py) and media upload (server/media.py) on a real server
with the real CMU slide: the layout is deterministic, a map tile shows the source slide's pixels, access is
checked on every route, and an upload is one commit on the uploader's branch."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from exactvc import annomap
from exactvc.errors import InvalidInput
from exactvc.images import fingerprint_file
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

from .conftest import REAL_SLIDE
from .server_fixtures import AUTHOR, ThreadServer, admin, request, thread_server

POINTS = [(300 + 97 * i % 1700, 250 + 53 * i % 2500) for i in range(37)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("maps")
    root, folder = base / "root", base / "slides"
    root.mkdir()
    folder.mkdir()
    shutil.copy(REAL_SLIDE, folder / "cmu.svs")
    fp = fingerprint_file(REAL_SLIDE)
    admin(root, "repo", "add", "proj")
    repo = Repository.open(root / "proj")
    repo.add_image_record(ImageRecord("cmu", fp, 2220, 2967, 1, 0.499, "aperio"))
    repo.add_label("mitosis", shape="point", color="#00ff00")
    repo.add_label("cell", shape="polygon", color="#ff0000")
    with repo.edit("cmu") as ed:
        ids = [ed.add("mitosis", {"type": "Point", "coordinates": [x, y]}, {"grade": i % 3})
               for i, (x, y) in enumerate(POINTS)]
        ed.add("cell", {"type": "Polygon", "coordinates": [[[10, 10], [60, 10], [60, 60], [10, 10]]]})
    repo.commit("seed", author=AUTHOR)
    toks = {who: admin(root, "user", "add", who) for who in ("reader", "annotator", "outsider")}
    admin(root, "grant", "reader", "read", "proj")
    admin(root, "grant", "annotator", "annotate", "proj")
    with thread_server(root, slide_folders=[str(folder)], media_max_bytes=200_000) as srv:
        yield {"srv": srv, "fp": fp, "tok": toks, "root": root, "ids": ids}


def call(site: dict[str, Any], method: str, path: str, who: str | None = "reader", body: Any = None,
         **kw: Any) -> Any:
    srv: ThreadServer = site["srv"]
    return request(method, srv.url + path, body, token=site["tok"][who] if who else None, **kw)


def test_layout_is_deterministic_and_follows_the_spec(site: dict[str, Any]) -> None:
    repo = Repository.open(site["root"] / "proj")
    spec = annomap.parse_spec({"label": "mitosis", "patch": "32", "per_row": "5", "scale": "2"})
    a, b = annomap.build_layout(repo, "proj", "HEAD", spec), annomap.build_layout(repo, "proj", "HEAD", spec)
    assert a.map_id == b.map_id and [p.key for p in a.patches] == [p.key for p in b.patches]
    assert [p.id for p in a.patches] == sorted(site["ids"])  # order=id: annotation id order
    assert (a.width, a.height, a.rows) == (160, 32 * 8, 8)
    x, y = POINTS[site["ids"].index(a.patches[6].id)]
    assert a.cell(6) == (32, 32) and a.index_at(40, 40) == 6 and a.index_at(160, 0) is None
    assert a.patches[6].origin == ((x // 2 - 16) * 2, (y // 2 - 16) * 2)  # centred, on the scale grid
    pos = annomap.build_layout(repo, "proj", "HEAD", annomap.parse_spec({"label": "mitosis", "order": "position",
                                                                          "patch": "32", "scale": "2"}))
    bands = [int(p.bounds[1] // 64) for p in pos.patches]
    assert bands == sorted(bands) and pos.map_id != a.map_id
    graded = annomap.build_layout(repo, "proj", "HEAD", annomap.parse_spec({"label": "mitosis", "prop": "grade=2"}))
    assert len(graded.patches) == sum(1 for i in range(len(POINTS)) if i % 3 == 2)
    for bad in ({"label": ""}, {"label": "m", "scale": "3"}, {"label": "m", "patch": "2"},
                {"label": "m", "order": "random"}, {"label": "m", "prop": "novalue"}, {"label": "m", "per_row": "-1"}):
        with pytest.raises(InvalidInput):
            annomap.parse_spec(bad)


def _jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def test_a_map_tile_shows_the_source_regions(site: dict[str, Any]) -> None:
    q = "/api/v1/repos/proj/maps?label=mitosis&patch=64&per_row=4&limit=3"
    r = call(site, "GET", q)
    assert r.status == 200, r.body[:300]
    m = r.json()
    assert m["count"] == len(POINTS) and (m["width"], m["height"]) == (256, 64 * 10)
    assert len(m["patches"]) == 3 and m["next_offset"] == 3 and m["dzi"] == f"/maps/{m['map']}.dzi"
    assert call(site, "GET", q).json()["map"] == m["map"]  # the same annotations and spec: the same map
    dzi = call(site, "GET", m["dzi"])
    assert dzi.status == 200 and b'TileSize="256"' in dzi.body and b'Width="256" Height="640"' in dzi.body
    t = call(site, "GET", f"/maps/{m['map']}_files/{m['max_level']}/0_0.jpeg")
    assert t.status == 200 and t.headers["content-type"] == "image/jpeg"
    tile = _jpeg(t.body)
    for p in m["patches"]:  # each patch is the slide's region around its annotation
        cx, cy, side = p["cell"]
        sx, sy, _w, _h = p["source"]
        ref = call(site, "GET", f"/slides/{site['fp']}/region?x={sx}&y={sy}&w={side}&h={side}&level=12")
        assert ref.status == 200
        diff = np.abs(tile[cy:cy + side, cx:cx + side] - _jpeg(ref.body)).mean()
        assert diff < 6, (p, diff)  # two JPEG encodings of the same pixels
    page = call(site, "GET", f"/api/v1/repos/proj/maps/{m['map']}/patches?offset=36&limit=10").json()
    assert [p["index"] for p in page["patches"]] == [36] and page["next_offset"] is None
    low = call(site, "GET", f"/maps/{m['map']}_files/0/0_0.jpeg")  # the smallest level: built, not refused
    assert low.status == 200 and _jpeg(low.body).shape[:2] == (1, 1)


def test_map_access_and_bad_input(site: dict[str, Any]) -> None:
    m = call(site, "GET", "/api/v1/repos/proj/maps?label=mitosis").json()
    tile = f"/maps/{m['map']}_files/{m['max_level']}/0_0.jpeg"
    assert call(site, "GET", tile, who=None).status == 401
    assert call(site, "GET", tile, who="outsider").status == 404
    assert call(site, "GET", "/api/v1/repos/proj/maps?label=mitosis", who="outsider").status == 404
    assert call(site, "GET", f"/api/v1/repos/proj/maps/{m['map']}/patches", who=None).status == 401
    for q, kind in (("label=mitosis&scale=3", "invalid_input"), ("patch=64", "invalid_input"),
                    ("label=mitosis&image=nope", "not_found"), ("label=mitosis&rev=nope", "not_found")):
        r = call(site, "GET", f"/api/v1/repos/proj/maps?{q}")
        assert r.status in (404, 422) and r.error()["type"] == kind, (q, r.body[:200])
    assert call(site, "GET", "/maps/" + "0" * 32 + ".dzi").status == 404
    assert call(site, "GET", f"/maps/{m['map']}_files/{m['max_level']}/99_0.jpeg").status == 404
    empty = call(site, "GET", "/api/v1/repos/proj/maps?label=nothing-labelled").json()
    assert empty["count"] == 0 and call(site, "GET", f"/maps/{empty['map']}_files/0/0_0.jpeg").status == 200


def _wav(n: int = 4000) -> bytes:
    import struct
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", (i * 37) % 2000 - 1000) for i in range(n)))
    return buf.getvalue()


def test_media_upload_is_one_commit_on_the_users_branch(site: dict[str, Any]) -> None:
    aid = site["ids"][0]
    path = f"/api/v1/repos/proj/images/cmu/annotations/{aid}/media"
    data = _wav()
    assert call(site, "POST", path + "?filename=a.wav", who="reader", body=data).status == 403
    assert call(site, "POST", path + "?filename=a.wav", who=None, body=data).status == 401
    assert call(site, "POST", path + "?filename=notes.txt", who="annotator", body=b"hi").error()["type"] == \
        "invalid_input"
    big = call(site, "POST", path + "?filename=big.wav", who="annotator", body=_wav(120_000))
    assert big.status == 413 and big.error()["type"] == "too_large"
    repo = Repository.open(site["root"] / "proj")
    head = repo.resolve("main")
    assert repo.refs.read("heads/users/annotator/edits") is None  # nothing refused left a trace on a branch
    r = call(site, "POST", path + "?filename=call.wav", who="annotator", body=data,
             headers={"Content-Type": "audio/wav"})
    assert r.status == 201, r.body[:300]
    out = r.json()
    assert out["branch"] == "users/annotator/edits" and out["media"]["type"].startswith("audio/")
    c = call(site, "GET", f"/api/v1/repos/proj/commits/{out['commit']}").json()
    assert c["parents"] == [head.hex()]
    ann = repo.annotation("cmu", aid, out["commit"])
    assert ann.properties["media"] == [out["media"]] and ann.properties["grade"] == 0
    got = call(site, "GET", f"/api/v1/repos/proj/artefacts/{out['media']['artefact']}")
    assert got.status == 200 and got.body == data
    stale = call(site, "POST", path + f"?filename=b.wav&expected_parent={head.hex()}", who="annotator", body=data)
    assert stale.status == 409  # the branch moved on: reload, retry


def test_build_layout_needs_no_geometry_blobs(tmp_path: Path) -> None:
    """A big polygon's geometry is split out of its record: the layout uses the record's bounds."""
    repo = Repository.init(tmp_path / "r")
    repo.add_image_record(ImageRecord("big", "ab" * 32, 100000, 100000))
    repo.add_label("region", shape="polygon", color="#0000ff")
    ring = [[1000 + 500 * np.cos(t), 2000 + 300 * np.sin(t)] for t in np.linspace(0, 2 * np.pi, 800)[:-1]]
    ring = [[round(x), round(y)] for x, y in ring]
    with repo.edit("big") as ed:
        ed.add("region", {"type": "Polygon", "coordinates": [[*ring, ring[0]]]})
    repo.commit("one region", author=AUTHOR)
    lay = annomap.build_layout(repo, "r", "HEAD", annomap.parse_spec({"label": "region", "patch": "100",
                                                                      "scale": "16"}))
    (p,) = lay.patches
    assert p.bounds == (500.0, 1700.0, 1500.0, 2300.0)
    assert p.origin == ((1000 // 16 - 50) * 16, (2000 // 16 - 50) * 16)


def test_blind_mode_a_raters_map_stays_theirs(site: dict[str, Any]) -> None:
    from exactvc.access import AccessStore

    acc = AccessStore(site["root"])
    r = call(site, "POST", "/api/v1/repos/proj/edits", who="annotator", body={
        "branch": "users/annotator/blind", "expected_parent": None, "from": "main", "image": "cmu",
        "message": "a rater's mitosis", "create": [{"label": "mitosis", "geometry": {"type": "Point",
                                                                                     "coordinates": [900, 900]}}]})
    assert r.status == 201, r.body[:300]
    acc.set_settings("proj", mode="blind")
    try:
        q = "/api/v1/repos/proj/maps?label=mitosis&rev=users/annotator/blind"
        mine = call(site, "GET", q, who="annotator")
        assert mine.status == 200 and mine.json()["count"] == len(POINTS) + 1
        mid = mine.json()["map"]
        assert call(site, "GET", f"/maps/{mid}.dzi", who="annotator").status == 200
        assert call(site, "GET", q, who="reader").status == 404  # another rater's branch: no map of it
        for path in (f"/maps/{mid}.dzi", f"/maps/{mid}_files/0/0_0.jpeg", f"/api/v1/repos/proj/maps/{mid}/patches"):
            got = call(site, "GET", path, who="reader")  # nor its tiles or layout, even by its id
            assert got.status == 404 and b"annotator" not in got.body, (path, got.body[:200])
        assert call(site, "GET", "/api/v1/repos/proj/maps?label=mitosis", who="reader").status == 200  # main: shared
    finally:
        acc.set_settings("proj", mode="cooperative")
