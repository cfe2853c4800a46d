"""HistomicsUI / DSA annotation JSON: the three file shapes, elements, colours, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exactvc import geometry, porcelain
from exactvc.errors import InvalidInput, UsageError
from exactvc.formats.common import parse_color
from exactvc.formats.registry import detect

from .formats_util import differences, export_bytes, repo_for, round_trip, sample, state

SAMPLE = sample("histomicsui/histomicsui_sample.anot")
LARGE_IMAGE = sample("histomicsui/large_image_sample_annotation.json")
DUMP = sample("histomicsui/histomicstk_TCGA-A2-A0YE_MergePolygons_annotations.json")


@pytest.mark.parametrize("path", [SAMPLE, LARGE_IMAGE, DUMP], ids=lambda p: p.name)
def test_sample_imports_and_round_trips(tmp_path: Path, path: Path) -> None:
    assert detect(path) == "histomicsui"
    repo = repo_for(tmp_path / "r", ["slide"])
    res = porcelain.import_(repo, None, str(path), create_labels=True)  # the only image
    assert res["features"] > 0
    before = state(repo)
    r2, data = round_trip(tmp_path, repo, "histomicsui", ".json")
    assert differences(state(r2), before) == []
    assert export_bytes(r2, "histomicsui") == data


def test_elements_map_to_kinds(tmp_path: Path) -> None:
    repo = repo_for(tmp_path / "r", ["slide"])
    porcelain.import_(repo, "slide", str(LARGE_IMAGE), create_labels=True)
    anns = list(state(repo)["slide"].values())
    (box,) = [a for a in anns if a[1] == "box"]
    assert geometry.bounds("box", box[2]) == pytest.approx((86609.34 - 3780.74 / 2, 15840.20 - 2452.37 / 2,
                                                            86609.34 + 3780.74 / 2, 15840.20 + 2452.37 / 2), abs=1e-3)
    assert box[3]["histomicsui"]["fillColor"] == "rgba(0, 0, 0, 0.5)"
    assert box[3]["histomicsui"]["annotation"] == {"name": "Sample"}
    repo2 = repo_for(tmp_path / "r2", ["slide"])
    porcelain.import_(repo2, "slide", str(SAMPLE), create_labels=True)
    kinds = sorted(a[1] for a in state(repo2)["slide"].values())
    assert kinds == ["point", "polygon"]


def test_server_dump_with_repeated_first_vertex(tmp_path: Path) -> None:
    repo = repo_for(tmp_path / "r", ["slide"])
    res = porcelain.import_(repo, "slide", str(DUMP), create_labels=True)
    doc = json.loads(DUMP.read_text())
    n = sum(len(d["annotation"]["elements"]) for d in doc)
    assert res["features"] == n
    labels = {a[0] for a in state(repo)["slide"].values()}
    assert labels == {e["group"] for d in doc for e in d["annotation"]["elements"]}
    ids = {a[3]["histomicsui"]["annotation"]["_id"] for a in state(repo)["slide"].values()}
    assert ids == {d["_id"] for d in doc if d["annotation"]["elements"]}
    # HistomicsTK's merged polygons touch themselves: made valid, and marked
    assert any(a[3].get("geometry_repaired") for a in state(repo)["slide"].values())


def test_rotated_rectangle_holes_open_lines_and_z(tmp_path: Path) -> None:
    doc = {"name": "t", "elements": [
        {"type": "rectangle", "center": [50, 50, 0], "width": 20, "height": 10, "rotation": 1.5707963267948966,
         "group": "r"},
        {"type": "polyline", "closed": True, "group": "p", "points": [[0, 0, 2], [40, 0, 2], [40, 40, 2], [0, 40, 2]],
         "holes": [[[10, 10, 2], [20, 10, 2], [20, 20, 2]]]},
        {"type": "polyline", "closed": False, "group": "l", "points": [[0, 0, 0], [5, 5, 0], [9, 0, 0]]},
        {"type": "polyline", "closed": True, "group": "l", "points": [[1, 1, 0], [2, 2, 0]]},
        {"type": "circle", "center": [70, 70, 0], "radius": 5, "group": "c", "lineColor": "#0F0"},
        {"type": "heatmap", "points": []},
    ]}
    f = tmp_path / "t.json"
    f.write_text(json.dumps(doc))
    repo = repo_for(tmp_path / "r", ["slide"], 200, 200)
    res = porcelain.import_(repo, "slide", str(f), create_labels=True)
    assert res["skipped"] == {"heatmap elements": 1}
    anns = {}
    for a in state(repo)["slide"].values():
        anns.setdefault(a[0], []).append(a)
    assert geometry.bounds(anns["r"][0][1], anns["r"][0][2]) == (45, 40, 55, 60)  # rotated a quarter turn
    poly = anns["p"][0]
    assert poly[1] == "polygon" and len(poly[2][1]) == 2 and poly[4] == (2, 0)  # a hole; z 2 is the plane
    assert sorted(a[1] for a in anns["l"]) == ["line", "line"]  # open, and a degenerate closed one
    assert anns["c"][0][1] == "ellipse" and repo.labels(None).get("c").color == "#00ff00"
    r2, _ = round_trip(tmp_path, repo, "histomicsui", ".json")
    assert differences(state(r2), state(repo)) == []


def test_colours() -> None:
    assert parse_color("rgb(255,0,0)") == "#ff0000"
    assert parse_color("rgba(0, 128, 255, 0.5)") == "#0080ff"
    assert parse_color("#ABC") == "#aabbcc" and parse_color("#AABBCCDD") == "#aabbcc"
    assert parse_color("teal") is None


def test_problems_are_named_and_change_nothing(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"elements": [{"type": "point", "center": [1, 1, 0]},
                                          {"type": "point", "id": "a" * 24, "center": [1, "x", 0]}]}))
    repo = repo_for(tmp_path / "r", ["slide"])
    before = repo.working()
    with pytest.raises(InvalidInput) as e:
        porcelain.import_(repo, "slide", str(f), create_labels=True)
    assert str(e.value).startswith(str(f)) and f"element 1 (id {'a' * 24})" in str(e.value)
    assert repo.working() == before
    paged = tmp_path / "paged.json"
    paged.write_text(json.dumps([{"_id": "x", "annotation": {"elements": []},
                                  "_elementQuery": {"count": 10, "returned": 5}}]))
    with pytest.raises(InvalidInput, match="5 of 10 elements"):
        porcelain.import_(repo, "slide", str(paged))
    two = repo_for(tmp_path / "two", ["a", "b"])
    with pytest.raises(UsageError, match="--image"):
        porcelain.import_(two, None, str(SAMPLE))
