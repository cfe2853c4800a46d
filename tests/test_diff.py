"""exact diff: per-field changes, output shapes, geometric matching."""

from __future__ import annotations

import json
import random
from pathlib import Path

from exactvc import porcelain, tree
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

from .conftest import run_exact, square


def make(tmp_path: Path) -> tuple[Repository, list[str]]:
    r = Repository.init(tmp_path / "d")
    r.add_image_record(ImageRecord("img", "ab" * 32, 10000, 10000))
    r.add_label("cell", shape="polygon")
    r.add_label("tumor", shape="polygon")
    r.add_label("mitosis", shape="point")
    with r.edit("img") as ed:
        ids = [ed.add("cell", square(30 * i, 30 * i)) for i in range(20)]
    r.commit("base", author="A <a@x>")
    return r, ids


def test_diff_fields_json_geojson_and_text(tmp_path: Path) -> None:
    r, ids = make(tmp_path)
    with r.edit("img") as ed:
        ed.update(ids[0], label="tumor")
        ed.update(ids[1], geometry=square(31, 31, 12), properties={"area": 144})
        ed.delete(ids[2])
        new = ed.add("mitosis", {"type": "Point", "coordinates": [5, 5]})
    working = porcelain.diff(r, "HEAD", None)
    img = working["images"]["img"]
    assert img["counts"] == {"added": 1, "modified": 2, "deleted": 1}
    by_id = {c["id"]: c for c in img["changes"]}
    assert by_id[ids[0]]["fields"] == ["label"]
    assert by_id[ids[1]]["fields"] == ["geometry", "properties"]
    assert by_id[ids[2]]["change"] == "deleted" and by_id[new]["change"] == "added"
    assert by_id[ids[0]]["old"]["label"] == "cell" and by_id[ids[0]]["new"]["label"] == "tumor"
    r.commit("edits")
    gj = porcelain.diff(r, "HEAD~1", "HEAD", fmt="geojson")
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == 4
    kinds = sorted(f["properties"]["change"] for f in gj["features"])
    assert kinds == ["added", "deleted", "modified", "modified"]
    out = run_exact("-C", str(r.path), "diff", "HEAD~1", "HEAD")
    assert out.returncode == 0 and "img: +1 ~2 -1" in out.stdout and "cell -> tumor" in out.stdout
    js = json.loads(run_exact("-C", str(r.path), "diff", "HEAD~1", "HEAD", "--json").stdout)
    assert js["exactvc.diff/v1"]["images"]["img"]["counts"]["modified"] == 2
    stat = run_exact("-C", str(r.path), "diff", "--stat")
    assert stat.stdout.strip() == "No changes"


def test_diff_reads_only_the_changed_part(tmp_path: Path) -> None:
    r, _ = make(tmp_path)
    rng = random.Random(2)
    with r.edit("img") as ed:
        ed.validate = False
        many = ed.add_many([("cell", square(rng.uniform(0, 9900), rng.uniform(0, 9900)), None, None, None)
                            for _ in range(20000)])
    r.commit("many")
    with r.edit("img") as ed:
        for a in many[5000:5003]:
            ed.update(a, label="tumor")
    r.commit("three")
    loads = []
    orig = tree.load

    def counting(store, oid):  # type: ignore[no-untyped-def]
        loads.append(oid)
        return orig(store, oid)

    tree.load = counting  # count node reads: a 3-change diff must not read the whole tree
    try:
        d = porcelain.diff(r, "HEAD~1", "HEAD")
    finally:
        tree.load = orig
    assert d["images"]["img"]["counts"]["modified"] == 3
    n_nodes = sum(1 for _ in tree.iter_nodes(r.store, r.tree_of("img", "HEAD")[1]))
    assert len(loads) < n_nodes / 10


def test_match_precision_recall(tmp_path: Path) -> None:
    r, _ = make(tmp_path)
    rng = random.Random(4)
    truth = [(rng.uniform(100, 9800), rng.uniform(100, 9800)) for _ in range(300)]
    porcelain.switch(r, "truth", create=True)
    with r.edit("img") as ed:
        for a in [x.id for x in r.annotations("img")]:
            ed.delete(a)
        for x, y in truth:
            ed.add("cell", square(x, y, 20))
    r.commit("truth")
    porcelain.switch(r, "pred", create=True)
    with r.edit("img") as ed:
        for a in [x.id for x in r.annotations("img")]:
            ed.delete(a)
        for x, y in truth[:270]:  # 270 found (shifted 2 px: IoU 0.67), 30 missed
            ed.add("cell", square(x + 2, y + 2, 20))
        for _ in range(30):  # 30 false positives far from any cell
            ed.add("cell", square(rng.uniform(100, 9800), 9950 - rng.uniform(0, 10), 20))
    r.commit("predictions")
    m = porcelain.match(r, "truth", "pred", "iou=0.5", "img")
    cell = m["labels"]["cell"]
    assert cell["matched"] >= 268 and cell["a"] == 300 and cell["b"] == 300
    assert abs(cell["precision"] - cell["matched"] / 300) < 1e-3 and abs(cell["recall"] - cell["matched"] / 300) < 1e-3
    strict = porcelain.match(r, "truth", "pred", "iou=0.9", "img")
    assert strict["labels"]["cell"]["matched"] < 10
    out = run_exact("-C", str(r.path), "diff", "truth", "pred", "--match", "iou=0.5")
    assert out.returncode == 0 and "precision" in out.stdout
    bad = run_exact("-C", str(r.path), "diff", "truth", "pred", "--match", "iou=2")
    assert bad.returncode == 2 and "--match" in bad.stderr


def test_iou_pairs_equal_a_brute_force_over_all_pairs() -> None:
    """The IoU bound that skips exact intersections never drops a pair the plain computation keeps, and the
    assignment pairs as many as a plain maximum matching over all those pairs."""
    import numpy as np
    import shapely

    from exactvc.match import _iou_edges, assign

    rng = np.random.default_rng(5)
    for trial in range(5):
        n = 300
        centres = rng.uniform(0, 400, (n, 2))
        radii = rng.uniform(3, 12, n)
        ga = shapely.buffer(shapely.points(centres), radii, quad_segs=3)
        moved = centres + rng.normal(0, 0.5 + trial, (n, 2))
        gb = shapely.buffer(shapely.points(moved), radii * rng.uniform(0.9, 1.1, n), quad_segs=2)
        for thr in (0.1, 0.5, 0.8):
            ia, ib, cost, tie, iou_got = _iou_edges(ga, gb, thr)
            inter = shapely.area(shapely.intersection(ga[:, None], gb[None, :]))
            union = shapely.area(ga)[:, None] + shapely.area(gb)[None, :] - inter
            iou = inter / union
            want = {(int(i), int(j)) for i, j in zip(*np.nonzero(iou >= thr), strict=True)}
            assert set(zip(ia.tolist(), ib.tolist(), strict=True)) == want
            assert np.allclose(iou_got, iou[ia, ib]) and np.allclose(cost, 1 - iou_got)
            chosen = assign(n, n, ia, ib, cost, tie)
            pairs = [(int(ia[e]), int(ib[e])) for e in chosen]
            assert len({x for x, _ in pairs}) == len({y for _, y in pairs}) == len(pairs)
            assert len(pairs) == max_matching_size(n, want)
            assert pairs  # the data makes pairs at every threshold


def max_matching_size(n: int, edges: set[tuple[int, int]]) -> int:
    """A plain maximum bipartite matching (Kuhn, one fresh search per vertex), for reference."""
    adj: dict[int, list[int]] = {}
    for x, y in sorted(edges):
        adj.setdefault(x, []).append(y)
    mate: dict[int, int] = {}

    def grow(x: int, seen: set[int]) -> bool:
        for y in adj.get(x, []):
            if y not in seen:
                seen.add(y)
                if y not in mate or grow(mate[y], seen):
                    mate[y] = x
                    return True
        return False

    return sum(grow(x, set()) for x in range(n))
