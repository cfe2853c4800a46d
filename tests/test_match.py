"""Geometric matching: rules per shape kind, the assignment, and what diff --match / merge make of them."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exactvc import geometry, porcelain
from exactvc.errors import UsageError
from exactvc.formats import import_file
from exactvc.match import Item, MatchSpec, match_items, parse_spec
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

from .conftest import run_exact
from .test_formats import files, new_repo, qupath_features, write_collection  # noqa: F401  (fixture)

KINDS = geometry.KINDS
EXAMPLES = int(os.environ.get("EXACT_HYPOTHESIS_EXAMPLES", "60"))
DIST = 6.0  # px: the distance tolerance of the property tests
AREA_JITTER = 1.0  # px each coordinate at most: areas >= 20 px across keep IoU > 0.6


def shape(kind: str, x: float, y: float, r: float, rng: random.Random) -> dict[str, Any]:
    """A GeoJSON geometry of ``kind`` around (x, y), about ``r`` px in radius (r >= 10; areas twice that)."""
    if kind in ("box", "ellipse", "polygon", "multipolygon"):
        r *= 2
    if kind == "point":
        return {"type": "Point", "coordinates": [x, y]}
    if kind == "multipoint":
        return {"type": "MultiPoint", "coordinates": [[x + rng.uniform(-r, r), y + rng.uniform(-r, r)]
                                                       for _ in range(rng.randint(2, 5))]}
    if kind in ("box", "ellipse"):
        w, h = rng.uniform(r, 2 * r), rng.uniform(r, 2 * r)
        return {"type": "Polygon", "coordinates": [[[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]]}
    if kind == "line":
        return {"type": "LineString", "coordinates": [[x + i * r, y + rng.uniform(-r, r)]
                                                       for i in range(rng.randint(2, 5))]}
    ring = star(x, y, r, rng)
    if kind == "polygon":
        return {"type": "Polygon", "coordinates": [ring]}
    return {"type": "MultiPolygon", "coordinates": [[ring], [star(x + 3 * r, y, r, rng)]]}


def star(x: float, y: float, r: float, rng: random.Random) -> list[list[float]]:
    n = rng.randint(5, 9)
    pts = [[x + rng.uniform(0.85, 1) * r * math.cos(2 * math.pi * i / n),
            y + rng.uniform(0.85, 1) * r * math.sin(2 * math.pi * i / n)] for i in range(n)]
    return [*pts, pts[0]]


def jitter(kind: str, g: dict[str, Any], amount: float, rng: random.Random) -> dict[str, Any]:
    """Every coordinate moved by less than ``amount`` (boxes and ellipses: their corners)."""
    def move(c: Any) -> Any:
        if isinstance(c[0], (int, float)):
            return [c[0] + rng.uniform(-amount, amount) * 0.999, c[1] + rng.uniform(-amount, amount) * 0.999]
        return [move(p) for p in c]

    if kind in ("box", "ellipse"):
        x0, y0, x1, y1 = geometry.bounds(*geometry.canonical(g, kind))
        (x0, y0), (x1, y1) = move([[x0, y0], [x1, y1]])
        return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
    if g["type"] in ("Polygon", "MultiPolygon"):  # rings stay closed
        def ring(r: list[list[float]]) -> list[list[float]]:
            moved = move(r[:-1])
            return [*moved, moved[0]]
        if g["type"] == "Polygon":
            return {"type": "Polygon", "coordinates": [ring(r) for r in g["coordinates"]]}
        return {"type": "MultiPolygon", "coordinates": [[ring(r) for r in p] for p in g["coordinates"]]}
    return {"type": g["type"], "coordinates": move(g["coordinates"])}


def item(label: str, kind: str, g: dict[str, Any], plane: Any) -> Item:
    k, enc = geometry.canonical(g, kind)
    assert k == kind
    return (label, k, enc, plane)


one_shape = st.tuples(st.sampled_from(KINDS), st.floats(0, 400), st.floats(0, 400), st.floats(10, 25),
                      st.sampled_from(["cell", "mitosis", "tumor"]), st.sampled_from([None, [1, 0]]))
specs = st.sampled_from([MatchSpec(iou=0.5, dist=DIST), MatchSpec(dist=DIST), MatchSpec(iou=0.5),
                         MatchSpec(iou=0.5, dist=DIST, any_kind=True), MatchSpec(dist=DIST, any_kind=True)])
RADII = {"cell": DIST, "mitosis": DIST, "tumor": DIST}  # half the labels' default size, for iou= alone


def build(shapes: list[Any], seed: int) -> tuple[list[Item], list[tuple[str, dict[str, Any], Any]]]:
    rng = random.Random(seed)
    raw = [(kind, shape(kind, x, y, r, rng), label, plane) for kind, x, y, r, label, plane in shapes]
    return [item(label, kind, g, plane) for kind, g, label, plane in raw], raw  # type: ignore[misc]


def same_geometry(a: Item, b: Item) -> bool:
    return a[1:] == b[1:]


def all_perfect(res: dict[str, Any]) -> None:
    for label, r in res["labels"].items():
        assert (r["precision"], r["recall"], r["f1"]) == (1.0, 1.0, 1.0), (label, r)
        assert r["only_a"] == r["only_b"] == 0
    assert res["total"]["f1"] == 1.0


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(one_shape, min_size=1, max_size=40), st.integers(0, 2**32), specs)
def test_a_set_matched_with_itself_pairs_every_annotation_with_itself(shapes: list[Any], seed: int,
                                                                       spec: MatchSpec) -> None:
    a, _ = build(shapes, seed)
    res = match_items(a, list(a), spec, RADII)
    all_perfect(res)
    # never a wrong partner: every pair is an annotation and its own copy (or an identical shape)
    for x, y, _label, _by, score in res["pairs"]:
        assert same_geometry(a[x], a[y]), (a[x], a[y])
        assert score == pytest.approx(1.0 if _by == "iou" else 0.0, abs=1e-9)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(one_shape, min_size=1, max_size=40), st.integers(0, 2**32), specs)
def test_jitter_below_the_tolerance_still_matches_everything(shapes: list[Any], seed: int, spec: MatchSpec) -> None:
    a, raw = build(shapes, seed)
    rng = random.Random(seed + 1)
    b = []
    for kind, g, label, plane in raw:
        # areas by IoU: corners moved by < 1 px on shapes >= 20 px across; points, lines: < DIST / 3 in x
        # and in y, so vertices (and centres) move by < DIST; areas by centre distance: < DIST / 4 (an area
        # centroid moves about as much as the vertices, a little more on uneven outlines)
        area = kind in ("box", "ellipse", "polygon", "multipolygon")
        amount = (AREA_JITTER if spec.iou else DIST / 4) if area else DIST / 3
        b.append(item(label, kind, jitter(kind, g, amount, rng), plane))
    all_perfect(match_items(a, b, spec, RADII))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(one_shape, min_size=1, max_size=40), st.integers(0, 2**32), specs, st.data())
def test_removing_a_subset_leaves_exactly_that_subset_unmatched(shapes: list[Any], seed: int, spec: MatchSpec,
                                                                data: st.DataObject) -> None:
    a, _ = build(shapes, seed)
    removed = set(data.draw(st.sets(st.integers(0, len(a) - 1), max_size=len(a))))
    b = [it for i, it in enumerate(a) if i not in removed]
    res = match_items(a, b, spec, RADII)
    for label, r in res["labels"].items():
        gone = sum(1 for i in removed if a[i][0] == label)
        assert r["only_a"] == gone and r["only_b"] == 0 and r["matched"] == r["a"] - gone, (label, r)
    assert res["total"]["only_a"] == len(removed) and res["total"]["matched"] == len(b)
    kept = [i for i in range(len(a)) if i not in removed]
    for x, y, *_ in res["pairs"]:
        assert same_geometry(a[x], b[y])
        # the unmatched annotations of A are the removed ones, up to identical copies
        assert x == kept[y] or same_geometry(a[x], a[kept[y]])


def test_overlapping_polygons_at_distance_zero_pair_with_themselves(tmp_path: Path) -> None:
    """Hardening 24: overlapping shapes are all at distance 0 from each other; ties used to pair wrong partners
    (a revision against itself scored 91-97 % with dist=)."""
    rng = random.Random(3)
    r = Repository.init(tmp_path / "o")
    r.add_image_record(ImageRecord("img", "ab" * 32, 10000, 10000))
    r.add_label("cell", shape="any")
    with r.edit("img") as ed:
        for _ in range(1000):  # crowded, overlapping cells
            ed.add("cell", {"type": "Polygon", "coordinates": [
                star(rng.uniform(50, 650), rng.uniform(50, 650), rng.uniform(5, 15), rng)]})
        for i in range(20):  # concentric ellipses: the same centre, told apart by IoU
            c = 30 + 30 * i
            for s in (5, 9, 14):
                ed.add("cell", {"type": "Polygon", "coordinates": [[[c - s, 700 - s], [c + s, 700 - s],
                                                                    [c + s, 700 + s], [c - s, 700 + s],
                                                                    [c - s, 700 - s]]], "isEllipse": True})
    r.commit("crowd")
    for spec in ("dist=10", "dist=0", "iou=0.5", "dist=30,kinds=any", "iou=0.9,dist=1"):
        res = porcelain.match(r, "HEAD", "HEAD", spec, details=True)
        assert res["total"]["f1"] == 1.0 and res["total"]["matched"] == 1060, spec
        assert all(p["a"] == p["b"] for p in res["pairs"]), spec
    items = [("cell", ann.kind, ann.geom, None) for ann in r.annotations("img")]
    order = list(range(len(items)))
    rng.shuffle(order)
    shuffled = [items[i] for i in order]
    res = match_items(items, shuffled, MatchSpec(dist=5))
    assert res["total"]["f1"] == 1.0 and all(x == order[y] for x, y, *_ in res["pairs"])


def test_point_sets_around_one_centre_pair_with_themselves() -> None:
    m1 = item("c", "multipoint", {"type": "MultiPoint", "coordinates": [[0, 10], [10, 0]]}, None)
    m2 = item("c", "multipoint", {"type": "MultiPoint", "coordinates": [[0, 0], [10, 10]]}, None)
    m3 = item("c", "multipoint", {"type": "MultiPoint", "coordinates": [[0, 0], [5, 5], [10, 10]]}, None)
    res = match_items([m1, m2, m3], [m3, m2, m1], MatchSpec(dist=1))
    assert sorted((x, y) for x, y, *_ in res["pairs"]) == [(0, 2), (1, 1), (2, 0)]


def test_points_alone_need_a_distance_or_a_label_size() -> None:
    pts = [item("mitosis", "point", {"type": "Point", "coordinates": [10 * i, 5]}, None) for i in range(5)]
    with pytest.raises(UsageError, match="dist="):
        match_items(pts, pts, MatchSpec(iou=0.5))
    res = match_items(pts, pts, MatchSpec(iou=0.5), {"mitosis": 20.0})
    all_perfect(res)
    assert res["labels"]["mitosis"]["rules"] == {
        "point": {"by": "centre_distance", "max_px": 20.0, "from": "label size"}}
    lines = [item("edge", "line", {"type": "LineString", "coordinates": [[0, 0], [50, 3]]}, None)]
    with pytest.raises(UsageError, match="lines"):
        match_items(lines, lines, MatchSpec(iou=0.5))
    assert match_items(lines, lines, MatchSpec(dist=1))["labels"]["edge"]["rules"] == {
        "line": {"by": "hausdorff_distance", "max_px": 1.0, "from": "--match"}}


def test_kinds_and_planes_do_not_mix_unless_asked() -> None:
    box = item("cell", "box", {"type": "Polygon", "coordinates": [[[0, 0], [20, 0], [20, 20], [0, 20], [0, 0]]]}, None)
    poly = item("cell", "polygon", {"type": "Polygon", "coordinates": [[[0, 0], [20, 0], [20, 20], [0, 20], [0, 0]]]},
                None)
    pt = item("cell", "point", {"type": "Point", "coordinates": [10, 10]}, None)
    assert match_items([box], [poly], MatchSpec(iou=0.5))["total"]["matched"] == 0
    mixed = match_items([box], [poly], MatchSpec(iou=0.5, any_kind=True))
    assert mixed["total"]["matched"] == 1 and mixed["labels"]["cell"]["rules"]["box+polygon"]["by"] == "iou"
    assert match_items([pt], [box], MatchSpec(iou=0.5, dist=5))["total"]["matched"] == 0
    assert match_items([pt], [box], MatchSpec(iou=0.5, dist=5, any_kind=True))["total"]["matched"] == 1  # centres
    other_plane = (*box[:3], [2, 0])
    assert match_items([box], [other_plane], MatchSpec(iou=0.5))["total"]["matched"] == 0
    other_label = ("tumor", *box[1:])
    assert match_items([box], [other_label], MatchSpec(iou=0.5, any_kind=True))["total"]["matched"] == 0


def test_the_most_pairs_are_made_where_best_first_is_not_enough() -> None:
    """a2-b1 is the closest pair, but taking it leaves a1 and b2 unpaired: two pairs exist."""
    def p(x: float) -> Item:
        return item("m", "point", {"type": "Point", "coordinates": [x, 0]}, None)

    res = match_items([p(0), p(15)], [p(9.9), p(24.9)], MatchSpec(dist=10))
    assert res["total"]["matched"] == 2
    assert sorted((x, y) for x, y, *_ in res["pairs"]) == [(0, 0), (1, 1)]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.lists(st.tuples(st.integers(0, 29), st.integers(0, 29),
                                                                  st.floats(0, 1)), max_size=120))
def test_assign_makes_a_maximum_matching(na: int, nb: int, edges: list[tuple[int, int, float]]) -> None:
    """On any candidate graph the pairing is one to one, uses only candidate pairs and pairs as many as a plain
    maximum matching (Kuhn, a fresh search per vertex)."""
    import numpy as np

    from exactvc.match import assign

    from .test_diff import max_matching_size

    edges = [(x % na, y % nb, c) for x, y, c in edges]
    ia = np.array([e[0] for e in edges], dtype=np.int64)
    ib = np.array([e[1] for e in edges], dtype=np.int64)
    cost = np.array([e[2] for e in edges], dtype=np.float64)
    chosen = assign(na, nb, ia, ib, cost, np.zeros(len(edges)))
    pairs = [(int(ia[e]), int(ib[e])) for e in chosen]
    assert len({x for x, _ in pairs}) == len({y for _, y in pairs}) == len(pairs)
    assert len(pairs) == max_matching_size(na, {(x, y) for x, y, _ in edges})


@pytest.mark.parametrize("text, want", [
    ("iou=0.5", MatchSpec(iou=0.5)), ("dist=10", MatchSpec(dist=10.0)),
    ("iou=0.5,dist=10", MatchSpec(0.5, 10.0)), (" dist = 3 , iou=1 ,kinds=any", MatchSpec(1.0, 3.0, True)),
])
def test_parse_spec(text: str, want: MatchSpec) -> None:
    assert parse_spec(text) == want


@pytest.mark.parametrize("text", ["iou=0", "iou=2", "dist=-1", "dist=nan", "iou=0.5,iou=0.6", "kinds=any", "x=1",
                                  "iou", "", "iou=0.5,kinds=some"])
def test_parse_spec_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="--match"):
        parse_spec(text)


# --- repositories: QuPath files, the CLI, merge --------------------------------------------------------


def test_qupath_variants_compared_with_themselves_score_100(tmp_path: Path, files: dict[str, Path]) -> None:  # noqa: F811
    """Issue 10: points, multipoints, lines, polygons, ellipses compared with themselves used to score 62.5 %."""
    repo = new_repo(tmp_path / "q")
    for name in ("collection", "single", "array"):
        import_file(repo, "img", files[name], create_labels=True)
    repo.commit("import from QuPath")
    kinds = {a.kind for a in repo.annotations("img", "HEAD")}
    assert {"point", "multipoint", "line", "polygon", "multipolygon", "ellipse"} <= kinds
    res = porcelain.match(repo, "HEAD", "HEAD", "iou=0.5,dist=10", "img", details=True)
    for label, r in res["labels"].items():
        assert r["f1"] == 1.0 and r["a"] == r["matched"], (label, r)
        assert r["rules"]
    assert res["labels"]["Cells"]["rules"]["point"] == {"by": "centre_distance", "max_px": 10.0, "from": "--match"}
    assert res["labels"]["Line"]["rules"]["line"]["by"] == "hausdorff_distance"
    assert res["labels"]["Ellipse"]["rules"]["ellipse"] == {"by": "iou", "min": 0.5, "from": "--match"}
    assert all(p["a"] == p["b"] for p in res["pairs"])
    assert {p["by"] for p in res["pairs"]} == {"iou", "centre_distance", "hausdorff_distance"}
    assert porcelain.match(repo, "HEAD", "HEAD", "dist=5", "img")["total"]["f1"] == 1.0

    # iou= alone: points without a default size are an error naming the way out, not silent misses
    out = run_exact("-C", str(repo.path), "diff", "HEAD", "HEAD", "--match", "iou=0.5")
    assert out.returncode == 2 and "dist=" in out.stderr and out.stdout == ""
    out = run_exact("-C", str(repo.path), "diff", "HEAD", "HEAD", "--match", "iou=0.5,dist=10", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    (body,) = doc.values()  # {"exactvc.match/N": {...}}
    assert body["total"]["f1"] == 1.0 and body["match"] == {"iou": 0.5, "dist": 10.0, "kinds": "same"}
    assert body["labels"]["Cells"]["rules"]["point"]["by"] == "centre_distance"
    out = run_exact("-C", str(repo.path), "diff", "HEAD", "HEAD", "--match", "iou=0.5,dist=10")
    assert out.returncode == 0 and "100.0%" in out.stdout and "centre distance <= 10 px" in out.stdout


def test_point_repository_with_label_sizes_matches_by_iou_alone(tmp_path: Path) -> None:
    """A repository of points (mitosis counting) compared with itself used to score 0 %."""
    r = Repository.init(tmp_path / "p")
    r.add_image_record(ImageRecord("img", "cd" * 32, 10000, 10000))
    r.add_label("mitosis", shape="point", size=(40, 40))
    r.add_label("lookalike", shape="point")
    rng = random.Random(7)
    with r.edit("img") as ed:
        for _ in range(300):
            ed.add("mitosis", {"type": "Point", "coordinates": [rng.uniform(0, 9999), rng.uniform(0, 9999)]})
    r.commit("points")
    res = porcelain.match(r, "HEAD", "HEAD", "iou=0.5")
    assert res["labels"]["mitosis"]["f1"] == 1.0
    assert res["labels"]["mitosis"]["rules"]["point"] == {"by": "centre_distance", "max_px": 20.0,
                                                          "from": "label size"}
    with r.edit("img") as ed:
        ed.add("lookalike", {"type": "Point", "coordinates": [5, 5]})
    r.commit("a point of a label without a size")
    with pytest.raises(UsageError, match="'lookalike'.*dist="):
        porcelain.match(r, "HEAD", "HEAD", "iou=0.5")
    assert porcelain.match(r, "HEAD", "HEAD", "iou=0.5,dist=3")["total"]["f1"] == 1.0


def test_merge_finds_duplicate_points_and_lines_in_labels_that_mix_kinds(tmp_path: Path) -> None:
    """Merge's duplicates use the same rules: a label holding polygons and points used to compare the points by
    IoU (never duplicates)."""
    r = Repository.init(tmp_path / "m")
    r.add_image_record(ImageRecord("img", "ef" * 32, 10000, 10000))
    r.add_label("mixed", shape="any")
    with r.edit("img") as ed:
        ed.add("mixed", {"type": "Point", "coordinates": [1, 1]})
    r.commit("base")
    porcelain.branch_create(r, "y")
    sq = {"type": "Polygon", "coordinates": [[[100, 100], [140, 100], [140, 140], [100, 140], [100, 100]]]}
    with r.edit("img") as ed:
        ed.add("mixed", sq)
        ed.add("mixed", {"type": "Point", "coordinates": [500, 500]})
        ed.add("mixed", {"type": "LineString", "coordinates": [[0, 900], [300, 905]]})
    r.commit("ours")
    porcelain.switch(r, "y")
    with r.edit("img") as ed:
        ed.add("mixed", {"type": "Polygon", "coordinates": [[[101, 100], [141, 100], [141, 141], [101, 141],
                                                             [101, 100]]]})
        ed.add("mixed", {"type": "Point", "coordinates": [503, 504]})  # within the 10 px without a label size
        ed.add("mixed", {"type": "LineString", "coordinates": [[1, 902], [299, 906]]})
        ed.add("mixed", {"type": "Point", "coordinates": [520, 500]})  # too far
    r.commit("theirs")
    porcelain.switch(r, "main")
    res = porcelain.merge(r, "y", no_ff=True)
    assert res["status"] == "merged"
    assert len(res["duplicates"]) == 3, res["duplicates"]
    # IoU of the squares (39 x 40 / 1680), Hausdorff distance of the lines, distance of the points
    assert sorted(d["score"] for d in res["duplicates"]) == [pytest.approx(1560 / 1680, abs=1e-4),
                                                             pytest.approx(math.hypot(1, 2), abs=1e-4),
                                                             pytest.approx(5.0, abs=1e-4)]


def test_match_of_collections_written_by_qupath_in_any_order(tmp_path: Path) -> None:
    """The same QuPath objects imported as predictions (new ids, reversed order) match the truth one to one."""
    feats = qupath_features()
    repo = new_repo(tmp_path / "o")
    import_file(repo, "img", write_collection(tmp_path / "a.geojson", feats), create_labels=True)
    repo.commit("truth")
    with repo.edit("img") as ed:
        for a in [x.id for x in repo.annotations("img")]:
            ed.delete(a)
    renamed = [{**f, "id": f"{i:08d}-0000-4000-8000-000000000000"} for i, f in enumerate(reversed(feats))]
    import_file(repo, "img", write_collection(tmp_path / "b.geojson", renamed), create_labels=True)
    repo.commit("predictions")
    res = porcelain.match(repo, "HEAD~1", "HEAD", "iou=0.5,dist=2", "img")
    assert res["total"]["matched"] == len(feats) and res["total"]["f1"] == 1.0
