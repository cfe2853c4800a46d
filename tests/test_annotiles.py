"""Annotation tiles (docs/viewer-tiles.md): the encoder against the repository's own annotations, and the
server routes (access, immutability, bad parameters) on a real server."""

from __future__ import annotations

import gzip
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exactvc import annotiles as at
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

from .conftest import square
from .server_fixtures import Reply, ThreadServer, make_repo, request, thread_server, users

IMAGE = "slide-1"
W, H = 30000, 20000


def _shapes(rng: random.Random, n: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` random cells plus one of every other kind, a holed polygon, a multipolygon and big regions."""
    out: list[tuple[str, dict[str, Any]]] = []
    for _ in range(n):
        x, y, r = rng.uniform(20, W - 20), rng.uniform(20, H - 20), rng.uniform(3, 12)
        ring = [[round(x + r * math.cos(2 * math.pi * k / 9), 2), round(y + r * math.sin(2 * math.pi * k / 9), 2)]
                for k in range(9)]
        out.append((rng.choice(["cell", "tumor"]), {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}))
    out.append(("mitosis", {"type": "Point", "coordinates": [123.5, 456.25]}))
    out.append(("mitosis", {"type": "MultiPoint", "coordinates": [[1000, 1000], [1010, 1020], [29990, 19990]]}))
    out.append(("cell", {"type": "LineString", "coordinates": [[100, 100], [5000, 300], [7000, 9000]]}))
    out.append(("cell", {"type": "Polygon", "coordinates": [[[2000, 2000], [2600, 2000], [2600, 2600], [2000, 2600],
                                                              [2000, 2000]],
                                                             [[2100, 2100], [2100, 2200], [2200, 2200], [2200, 2100],
                                                              [2100, 2100]]]}))
    out.append(("tumor", {"type": "MultiPolygon", "coordinates": [
        [[[10, 10], [50, 10], [50, 50], [10, 10]]], [[[60, 60], [90, 60], [90, 90], [60, 60]]]]}))
    out.append(("tumor", square(3000, 1000, 18000)))  # a region bigger than most of the slide
    out.append(("cell", {"type": "Polygon", "coordinates": [[[500, 500], [900, 500], [900, 700], [500, 700],
                                                              [500, 500]]]}))  # stored as a box
    out.append(("cell", {"type": "Polygon", "isEllipse": True,
                         "coordinates": [[[8000 + 300 * math.cos(t / 20 * 2 * math.pi),
                                           9000 + 200 * math.sin(t / 20 * 2 * math.pi)] for t in range(21)]]}))
    return out


def _make(path: Path, shapes: list[tuple[str, dict[str, Any]]]) -> Repository:
    r = Repository.init(path)
    r.add_image_record(ImageRecord(IMAGE, "ab" * 32, W, H, levels=4, mpp=0.25))
    r.add_label("cell", shape="any", color="#ff0000")
    r.add_label("mitosis", shape="any", color="#00ff00")
    r.add_label("tumor", shape="any", color="#0000ff")
    with r.edit(IMAGE) as ed:
        for label, g in shapes:
            ed.add(label, g)
    r.commit("seed", author="T <t@example.org>")
    return r


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Repository, at.Pyramid]:
    repo = _make(tmp_path_factory.mktemp("at") / "repo", _shapes(random.Random(7), 3000))
    head = repo.head_commit()
    assert head is not None
    p, _name, _root = at.for_commit(repo, IMAGE, head)
    return repo, p


def _expected_rings(a: Any) -> list[list[tuple[float, float]]]:
    gj = a.geojson
    t, c = gj["type"], gj["coordinates"]
    if t == "Point":
        return [[tuple(c)]]
    if t == "MultiPoint":
        return [[tuple(p)] for p in c]
    if t == "LineString":
        return [[tuple(p) for p in c]]
    polys = [c] if t == "Polygon" else c
    return [[tuple(p) for p in ring[:-1]] for poly in polys for ring in poly]


def _decoded(p: at.Pyramid) -> dict[str, tuple[int, int, int, dict[str, Any], int]]:
    """Every annotation found in the geometry tiles: id -> (z, x, y, tile, position in the tile)."""
    from exactvc.ids import format_id

    found: dict[str, tuple[int, int, int, dict[str, Any], int]] = {}
    for lv in p.manifest["geometry"]:
        for x, y, count in lv["tiles"]:
            g = at.decode_geometry(p.tile("g", lv["z"], x, y))
            ids = p.tile("i", lv["z"], x, y)
            assert g["n"] == count == len(ids) // 16
            for j in range(count):
                aid = format_id(ids[16 * j:16 * j + 16])
                assert aid not in found, "an annotation in two geometry tiles"
                found[aid] = (lv["z"], x, y, g, j)
    return found


def test_round_trip_geometry_labels_and_every_annotation_once(built: tuple[Repository, at.Pyramid]) -> None:
    repo, p = built
    anns = {a.id: a for a in repo.annotations(IMAGE)}
    labels = [lb.name for lb in repo.labels().ordered()]
    assert p.manifest["labels"][:len(labels)] == labels
    assert p.manifest["count"] == len(anns)
    found = _decoded(p)
    assert set(found) == set(anns)
    kinds = {"point": 0, "multipoint": 0, "line": 1}
    for aid, (z, x, y, g, j) in found.items():
        a = anns[aid]
        assert p.manifest["labels"][g["label"][j]] == a.label
        assert g["kind"][j] == kinds.get(a.kind, 2)
        rings = range(g["ring_start"][j], g["ring_start"][j + 1])
        got = [g["xy"][g["vert_start"][r]:g["vert_start"][r + 1]] for r in rings]
        tol = g["unit"] / 2 + 1e-9
        if a.kind == "ellipse":  # drawn as a 64-gon: same box
            v = got[0]
            b = a.bounds
            assert np.allclose([v[:, 0].min(), v[:, 1].min(), v[:, 0].max(), v[:, 1].max()], b, atol=tol)
        else:
            want = _expected_rings(a)
            assert len(got) == len(want), a.kind
            for gr, wr in zip(got, want, strict=True):
                assert np.abs(gr - np.array(wr)).max() <= tol
        flags = [int(g["ring_flag"][r]) for r in rings]
        if a.kind == "polygon":
            assert flags == [1] + [0] * (len(flags) - 1)
        # the loose quadtree: centre in the tile, larger side at most the tile side
        b = a.bounds
        size = p.manifest["extent"] >> z
        assert max(b[2] - b[0], b[3] - b[1]) <= size
        assert x * size <= (b[0] + b[2]) / 2 < (x + 1) * size and y * size <= (b[1] + b[3]) / 2 < (y + 1) * size
    # the big region lives at a coarse level, cells at the last one
    levels = {found[aid][0] for aid, a in anns.items() if a.bounds[2] - a.bounds[0] > 15000}
    assert levels and max(levels) < p.manifest["levels"] - 1
    assert p.manifest["geometry"][-1]["tiles"]


def test_density_counts_every_annotation_at_every_level(built: tuple[Repository, at.Pyramid]) -> None:
    repo, p = built
    names = p.manifest["labels"]
    want: dict[str, int] = {}
    centres = []
    for a in repo.annotations(IMAGE):
        want[a.label] = want.get(a.label, 0) + 1
        b = a.bounds
        centres.append(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, a.label))
    assert len(p.manifest["density"]) == p.manifest["levels"]
    for lv in p.manifest["density"]:
        per: dict[str, int] = {}
        total = 0
        for x, y, count in lv["tiles"]:
            d = at.decode_density(p.tile("d", lv["z"], x, y))
            assert d["counts"].sum() == d["total"] == count
            for li, plane in zip(d["labels"], d["counts"], strict=True):
                per[names[li]] = per.get(names[li], 0) + int(plane.sum())
            total += count
        assert total == sum(want.values())
        assert per == want
    # one cell, checked by hand at the last level: the count of centres inside it
    lv = p.manifest["density"][-1]
    cx, cy, label = centres[0]
    size = lv["size"]
    d = at.decode_density(p.tile("d", lv["z"], int(cx // size), int(cy // size)))
    cell = d["cell"]
    col, row = int((cx - d["x0"]) // cell), int((cy - d["y0"]) // cell)
    li = names.index(label)
    expect = sum(1 for x, y, lb in centres if lb == label and int(x // cell) == int(cx // cell)
                 and int(y // cell) == int(cy // cell))
    assert d["counts"][list(d["labels"]).index(li), row, col] == expect


def test_deterministic_whatever_the_insertion_order_and_cache(tmp_path: Path) -> None:
    shapes = _shapes(random.Random(11), 400)
    a = _make(tmp_path / "a", shapes)
    from exactvc.edit import Editor

    # the same annotations (same ids) added in the reverse order, in one block

    c = Repository.init(tmp_path / "c")
    c.add_image_record(ImageRecord(IMAGE, "ab" * 32, W, H, levels=4, mpp=0.25))
    for name, col in (("cell", "#ff0000"), ("mitosis", "#00ff00"), ("tumor", "#0000ff")):
        c.add_label(name, shape="any", color=col)
    anns = list(a.annotations(IMAGE))
    ed = Editor(c, IMAGE)
    ed.add_many([(x.label, x.geojson, None, None, x.id) for x in reversed(anns)])
    ed.flush()
    c.commit("same annotations, other order", author="T <t@example.org>")
    pa, _, ra = at.for_commit(a, IMAGE, a.head_commit() or b"")
    pc, _, rc = at.for_commit(c, IMAGE, c.head_commit() or b"")
    assert ra == rc
    assert pa.manifest == pc.manifest
    for lv in pa.manifest["geometry"] + pa.manifest["density"]:
        for x, y, _n in lv["tiles"]:
            for kind in ("g", "i", "d"):
                assert pa.tile_gz(kind, lv["z"], x, y) == pc.tile_gz(kind, lv["z"], x, y)
    # a fresh process's view of the cache file: the same bytes as a build in memory
    flat, names = at.flatten(a.store, ra, [lb.name for lb in a.labels().ordered()])
    manifest, tiles = at.build(flat, names, W, H)
    assert manifest == pa.manifest
    assert all(pa.tile(*k) == v for k, v in tiles.items())
    assert list((tmp_path / "a" / ".exact" / "cache" / "annotiles").glob("*.atl"))


def test_empty_tree_and_addresses(tmp_path: Path) -> None:
    r = Repository.init(tmp_path / "e")
    r.add_image_record(ImageRecord(IMAGE, "ab" * 32, 5000, 3000, levels=1))
    r.commit("empty image", author="T <t@example.org>", allow_empty=True)
    p, _, root = at.for_commit(r, IMAGE, r.head_commit() or b"")
    assert p.manifest["count"] == 0 and p.manifest["levels"] == 3 and p.manifest["extent"] == 8192
    assert at.decode_geometry(p.tile("g", 2, 3, 3))["n"] == 0
    assert at.decode_density(p.tile("d", 0, 0, 0))["total"] == 0
    from exactvc.errors import InvalidInput

    for bad in (("g", 3, 0, 0), ("g", 1, 2, 0), ("x", 0, 0, 0), ("d", -1, 0, 0)):
        with pytest.raises(InvalidInput):
            p.tile_gz(*bad)


# --- the server -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadServer, dict[str, str], Repository]]:
    root = tmp_path_factory.mktemp("ats") / "srv"
    root.mkdir()
    repo = make_repo(root / "proj", IMAGE, n=250)
    make_repo(root / "other", IMAGE, n=1)
    tok = users(root, {"rita": "read", "olga": None}, "proj")
    with thread_server(root) as s:
        yield s, tok, repo


def _get(s: ThreadServer, path: str, token: str | None = None, **headers: str) -> Reply:
    return request("GET", s.url + "/api/v1/repos/" + path, token=token, headers=headers)


def test_server_resolve_manifest_tiles_records(srv: tuple[ThreadServer, dict[str, str], Repository]) -> None:
    s, tok, repo = srv
    head = (repo.head_commit() or b"").hex()
    r = _get(s, "proj/resolve?rev=main", tok["rita"])
    assert r.status == 200 and r.json()["commit"] == head
    assert _get(s, f"proj/resolve?rev={head[:10]}", tok["rita"]).json()["commit"] == head
    base = f"proj/images/{IMAGE}/annotiles/{head}"
    m = _get(s, base + "/manifest.json", tok["rita"])
    assert m.status == 200, m.body
    man = m.json()
    assert man["commit"] == head and man["count"] == 250 and man["image"] == IMAGE
    assert man["tree"] == (repo.tree_of(IMAGE)[1] or b"").hex()
    assert "immutable" in m.headers["cache-control"] and m.headers["etag"]
    lv = man["geometry"][-1]
    x, y, n = lv["tiles"][0]
    path = f"{base}/g/{lv['z']}/{x}/{y}.bin"
    gz = _get(s, path, tok["rita"], **{"Accept-Encoding": "gzip"})
    plain = _get(s, path, tok["rita"])
    assert gz.headers.get("content-encoding") == "gzip" and "content-encoding" not in plain.headers
    assert gzip.decompress(gz.body) == plain.body
    assert at.decode_geometry(plain.body)["n"] == n
    assert "immutable" in plain.headers["cache-control"]
    again = _get(s, path, tok["rita"], **{"If-None-Match": plain.headers["etag"]})
    assert again.status == 304 and again.body == b""
    ids = _get(s, f"{base}/i/{lv['z']}/{x}/{y}.bin", tok["rita"]).body
    from exactvc.ids import format_id

    aid = format_id(ids[:16])
    rec = _get(s, f"{base}/records/{aid}", tok["rita"])
    assert rec.status == 200
    assert rec.json() == {**repo.annotation(IMAGE, aid).to_dict(), "properties": {}, "plane": None}
    # a new commit: a new manifest, the old commit's tiles unchanged
    from .server_fixtures import add_squares

    add_squares(repo, IMAGE, 5, y0=9000)
    new = repo.commit("more", author="T <t@example.org>")
    assert _get(s, "proj/resolve?rev=main", tok["rita"]).json()["commit"] == new
    assert _get(s, path, tok["rita"]).body == plain.body
    m2 = _get(s, f"proj/images/{IMAGE}/annotiles/{new}/manifest.json", tok["rita"]).json()
    assert m2["count"] == 255 and m2["tree"] != man["tree"]


def test_server_access_and_bad_parameters(srv: tuple[ThreadServer, dict[str, str], Repository]) -> None:
    s, tok, repo = srv
    head = (repo.head_commit() or b"").hex()
    base = f"proj/images/{IMAGE}/annotiles/{head}"
    for path in ("proj/resolve?rev=main", base + "/manifest.json", base + "/g/0/0/0.bin"):
        assert _get(s, path).status == 401, path
        assert _get(s, path, tok["olga"]).status == 404, path  # no role: not even told the repository exists
        assert _get(s, path.replace("proj", "nope", 1), tok["rita"]).status == 404
        _get(s, path).error()
    other = Repository.open(s.root / "other").head_commit() or b""
    cases = {
        f"proj/images/{IMAGE}/annotiles/main/manifest.json": 422,  # a branch where a commit id belongs
        f"proj/images/{IMAGE}/annotiles/{head[:20]}/g/0/0/0.bin": 422,
        f"proj/images/{IMAGE}/annotiles/{other.hex()}/manifest.json": 404,  # another repository's commit
        f"proj/images/{IMAGE}/annotiles/{'0' * 64}/manifest.json": 404,
        f"proj/images/nope/annotiles/{head}/manifest.json": 404,
        base + "/q/0/0/0.bin": 422,
        base + "/g/40/0/0.bin": 422,
        base + "/d/1/2/0.bin": 422,
        base + "/records/not-an-id": 422,
        base + "/records/00000000-0000-7000-8000-000000000000": 404,
        "proj/resolve?rev=no-such-branch": 404,
    }
    for path, status in cases.items():
        r = _get(s, path, tok["rita"])
        assert r.status == status, (path, r.status, r.body[:200])
        r.error()
    # a tree id of the commit, not a commit
    tree_id = repo.commit_object(bytes.fromhex(head)).root.hex()
    assert _get(s, f"proj/images/{IMAGE}/annotiles/{tree_id}/manifest.json", tok["rita"]).status == 404


def test_fast_path_serves_only_the_checked_caller_and_forgets_it(
        srv: tuple[ThreadServer, dict[str, str], Repository]) -> None:
    import time

    from exactvc.access import AccessStore
    from server.annotiles import GRANT_TTL

    s, tok, repo = srv
    acc = AccessStore(s.root)
    brief = acc.add_user("brief")
    acc.grant("proj", "brief", "read")
    head = (repo.head_commit() or b"").hex()
    man = _get(s, f"proj/images/{IMAGE}/annotiles/{head}/manifest.json", brief).json()
    lv = man["geometry"][-1]
    x, y, _n = lv["tiles"][0]
    path = f"proj/images/{IMAGE}/annotiles/{head}/g/{lv['z']}/{x}/{y}.bin"
    first = _get(s, path, brief, **{"Accept-Encoding": "gzip"})
    assert first.status == 200
    again = _get(s, path, brief, **{"Accept-Encoding": "gzip"})  # the fast path: same answer
    assert again.status == 200 and again.body == first.body
    for h in ("etag", "cache-control", "content-encoding", "content-type"):
        assert again.headers[h] == first.headers[h], h
    assert _get(s, path, brief, **{"If-None-Match": first.headers["etag"]}).status == 304
    assert _get(s, path).status == 401  # the grant is the caller's, not the tile's
    assert _get(s, path, tok["olga"]).status == 404
    bad = _get(s, path.replace(f"/{x}/{y}.bin", "/99999/0.bin"), brief)
    assert bad.status == 422 and bad.error()["type"] == "invalid_input"
    acc.remove_user("brief")
    time.sleep(GRANT_TTL + 0.3)
    assert _get(s, path, brief).status == 401  # a removed user's grant runs out


def test_label_counts_from_the_density_tile_equal_a_count_of_the_records(
        built: tuple[Repository, at.Pyramid]) -> None:
    from collections import Counter

    repo, p = built
    want = Counter(a.label for a in repo.annotations(IMAGE))
    assert p.label_counts() == dict(want) and sum(want.values()) == p.manifest["count"]


def test_a_save_prebuilds_the_new_commit_in_the_background_and_label_counts_use_it(
        srv: tuple[ThreadServer, dict[str, str], Repository]) -> None:
    """After a save the new commit's tiles are built by the background builder (a child process) before
    any viewer asks: the cache file is there, and the first manifest and label counts only load it."""
    from collections import Counter

    from .conftest import square

    s, _tok, repo = srv
    ana = users(s.root, {"ana": "annotate"}, "proj")["ana"]
    pb = s.app.extensions["exact_annotile_prebuilder"]
    done = pb.done
    cache = repo.exact_dir / "cache" / "annotiles"
    before = set(cache.glob("*.atl")) if cache.is_dir() else set()
    r = request("POST", s.url + "/api/v1/repos/proj/edits", token=ana, body={
        "branch": "users/ana/edits", "expected_parent": None, "from": "main", "image": IMAGE, "message": "two",
        "create": [{"label": "mitosis", "geometry": {"type": "Point", "coordinates": [700, 800]}},
                   {"label": "cell", "geometry": square(40000, 40000)}]})
    assert r.status == 201, r.body
    commit = r.json()["commit"]
    assert pb.idle(120), "the background build did not finish in 120 s"
    assert pb.done == done + 1 and pb.failed == 0, pb.last_error
    root = repo.tree_of(IMAGE, commit)[1]
    assert root is not None
    new = set(cache.glob("*.atl")) - before
    assert [f.name.split("-")[0] for f in new] == [root.hex()]  # built ahead of any request for it
    at._by_commit.clear()
    at._open.clear()
    man = _get(s, f"proj/images/{IMAGE}/annotiles/{commit}/manifest.json", ana).json()
    assert man["count"] == repo.count(IMAGE, commit)
    got = request("GET", f"{s.url}/-/label-counts/proj/{IMAGE}?rev=users/ana/edits", token=ana).json()
    want = Counter(a.label for a in repo.annotations(IMAGE, commit))
    assert got["labels"] == dict(want) and got["count"] == sum(want.values()) and want["mitosis"] == 1
    assert set(cache.glob("*.atl")) - before == new  # served from the prebuilt file, nothing built again


def test_frames_of_a_multi_frame_image_have_their_own_tiles(tmp_path: Path) -> None:
    """Each frame's pyramid holds the annotations of that z plane only (no plane: frame 0); the routes
    take /f{frame}/; label counts cover every frame."""
    from collections import Counter

    root = tmp_path / "srv"
    r = Repository.init(root / "proj")
    r.add_image_record(ImageRecord(IMAGE, "ef" * 32, 5000, 4000, levels=1, frames=3))
    r.add_label("cell", shape="any", color="#ff0000")
    r.add_label("mitosis", shape="any", color="#00ff00")
    with r.edit(IMAGE) as ed:
        for i in range(30):
            ed.add("cell" if i % 3 else "mitosis", square(100 + 120 * i, 200), plane=i % 3 or None)
    head = r.commit("three frames", author="T <t@example.org>")
    want = {z: sum(1 for i in range(30) if i % 3 == z) for z in range(3)}
    for z in range(3):
        p, _name, _root = at.for_commit(r, IMAGE, bytes.fromhex(head), z)
        assert p.manifest["count"] == want[z] and p.manifest["frame"] == z
    every = at.for_commit(r, IMAGE, bytes.fromhex(head), None)[0]
    assert every.label_counts() == dict(Counter(a.label for a in r.annotations(IMAGE)))
    tok = users(root, {"rita": "read"}, "proj")["rita"]
    with thread_server(root) as s:
        base = f"proj/images/{IMAGE}/annotiles/{head}"
        m0, m2 = (_get(s, f"{base}{f}/manifest.json", tok).json() for f in ("", "/f2"))
        assert (m0["count"], m2["count"]) == (want[0], want[2]) and m0["tree"] == m2["tree"]
        lv = m2["geometry"][-1]
        x, y, n = lv["tiles"][0]
        got = at.decode_geometry(_get(s, f"{base}/f2/g/{lv['z']}/{x}/{y}.bin", tok).body)
        assert got["n"] == n and n <= want[2]
        for bad, status in (("/f3/manifest.json", 404), ("/f3/g/0/0/0.bin", 404), ("/fx/manifest.json", 422)):
            assert _get(s, base + bad, tok).status == status, bad
        counts = request("GET", f"{s.url}/-/label-counts/proj/{IMAGE}?rev=main", token=tok).json()
        assert counts["labels"] == {"cell": 20, "mitosis": 10}


def test_a_failed_prebuild_is_counted_and_the_worker_goes_idle(tmp_path: Path) -> None:
    from exactvc.prebuild import Prebuilder

    pb = Prebuilder()
    assert pb.submit(tmp_path / "not-a-repository", b"\1" * 32)
    assert pb.idle(120)
    assert (pb.done, pb.failed) == (0, 1) and "not an exactvc repository" in pb.last_error
    pb.close()
    assert not pb.submit(tmp_path, b"\1" * 32)  # closed: nothing more is queued
