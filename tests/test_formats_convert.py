"""Conversions between formats through exactvc keep what both sides model; the CLI around them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exactvc import porcelain
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

from .conftest import run_exact
from .formats_util import export_bytes, repo_with_images_of, sample, state

MIDOG_DB = sample("sliderunner/midog_MIDOG_HamamatsuXR.sqlite")
SUFFIX = {"coco": ".json", "asap": ".xml", "sliderunner": ".sqlite", "cvat": ".xml", "histomicsui": ".json",
          "exact": ".txt", "geojson": ".geojson"}


def _fresh(tmp: Path, like: Repository) -> Repository:
    r = Repository.init(tmp)
    for rec in like.images(None):
        r.add_image_record(rec)
    return r


def _via(tmp: Path, repo: Repository, fmt: str, image: str | None = None) -> Repository:
    tmp.mkdir()
    f = tmp / f"x{SUFFIX[fmt]}"
    f.write_bytes(export_bytes(repo, fmt, image))
    r = _fresh(tmp / "repo", repo)
    porcelain.import_(r, image, str(f), create_labels=True)
    return r


def _core(s: dict) -> dict:
    return {img: {i: (a[0], a[1], a[2], a[4]) for i, a in anns.items()} for img, anns in s.items()}


def test_sliderunner_to_coco_to_qupath(tmp_path: Path) -> None:
    repo = repo_with_images_of(tmp_path / "r", "sliderunner", MIDOG_DB)
    porcelain.import_(repo, None, str(MIDOG_DB), create_labels=True)
    coco = _via(tmp_path / "c", repo, "coco")
    assert _core(state(coco)) == _core(state(repo))  # ids, labels, points
    img = next(n for n, a in state(coco).items() if a)
    qupath = _via(tmp_path / "q", coco, "geojson", img)
    assert _core(state(qupath))[img] == _core(state(repo))[img]
    # the raters' votes ride along as properties through COCO and QuPath
    assert state(qupath)[img] == {i: a for i, a in state(coco)[img].items()}


W = 1000


@pytest.fixture
def shapes(tmp_path: Path) -> Repository:
    r = Repository.init(tmp_path / "src")
    r.add_image_record(ImageRecord("slide.svs", "cd" * 32, W, W))
    for name, shape in (("spot", "point"), ("area", "box"), ("region", "polygon"), ("path", "line")):
        r.add_label(name, shape=shape, color="#123456")
    with r.edit("slide.svs") as ed:
        ed.add("spot", {"type": "Point", "coordinates": [10, 20]})
        ed.add("area", {"type": "Polygon", "coordinates": [[[100, 100], [200, 100], [200, 150], [100, 150], [100, 100]]]},
               kind="box")
        ed.add("region", {"type": "Polygon", "coordinates": [[[300, 300], [400, 310], [350, 420], [300, 300]]]})
        ed.add("path", {"type": "LineString", "coordinates": [[10, 500], [60, 550]]})
    return r


# which of the four shapes each format models, and whether it keeps exactvc's ids
MODELS = {
    "coco": ({"spot", "area", "region"}, True),
    "asap": ({"spot", "area", "region", "path"}, True),
    "sliderunner": ({"spot", "area", "region"}, True),
    "cvat": ({"spot", "area", "region", "path"}, False),
    "histomicsui": ({"spot", "area", "region", "path"}, True),
    "exact": ({"spot", "area", "region", "path"}, True),  # a vector is a line when its label takes lines
    "geojson": ({"spot", "area", "region", "path"}, True),
}


@pytest.mark.parametrize("fmt", sorted(MODELS))
def test_each_format_keeps_what_it_models(tmp_path: Path, shapes: Repository, fmt: str) -> None:
    modelled, ids = MODELS[fmt]
    src = state(shapes)["slide.svs"]
    r = Repository.init(tmp_path / "dst")
    r.add_image_record(ImageRecord("slide.svs", "cd" * 32, W, W))
    for lb in shapes.labels(None).labels:
        r.add_label(lb.name, shape=lb.shape, color=lb.color)
    f = tmp_path / f"x{SUFFIX[fmt]}"
    f.write_bytes(export_bytes(shapes, fmt, "slide.svs"))
    porcelain.import_(r, "slide.svs", str(f))
    got = state(r)["slide.svs"]
    want = {i: a for i, a in src.items() if a[0] in modelled}
    if ids:
        assert {i: a[:3] for i, a in got.items()} == {i: a[:3] for i, a in want.items()}
    else:
        assert sorted(a[:3] for a in got.values()) == sorted(a[:3] for a in want.values())


def test_cli_detects_formats_and_reports_errors_in_one_line(tmp_path: Path) -> None:
    d = str(tmp_path / "repo")
    assert run_exact("init", d).returncode == 0
    repo = Repository.open(d) if hasattr(Repository, "open") else Repository(Path(d))
    for name in ("b.jpg",):
        repo.add_image_record(ImageRecord(name, "ef" * 32, 100, 100))
    coco = sample("coco/datumaro_instances_val.json")
    r = run_exact("-C", d, "import", str(coco), "--create-labels", "--json")
    assert r.returncode == 0, r.stderr
    (out,) = json.loads(r.stdout).values()
    assert out["format"] == "coco" and out["added"] == 2 and out["images"] == ["b.jpg"]
    bad = tmp_path / "bad.json"
    doc = json.loads(coco.read_text())
    doc["annotations"][0]["segmentation"] = [[0, 0, 1]]
    bad.write_text(json.dumps(doc))
    r = run_exact("-C", d, "import", str(bad))
    assert r.returncode == 5 and str(bad) in r.stderr and "annotation 0 (id 1)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run_exact("-C", d, "export", "--rev", "WORKING", "--format", "coco", "-o", str(tmp_path / "out.json"))
    assert r.returncode == 0, r.stderr
    assert len(json.loads((tmp_path / "out.json").read_text())["annotations"]) == 2
    r = run_exact("-C", d, "import", str(sample("cvat/datumaro_export_task_train.xml")), "--format", "asap")
    assert r.returncode == 5 and "not an ASAP file" in r.stderr
