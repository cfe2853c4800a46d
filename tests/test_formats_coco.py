"""COCO instances JSON: the real samples, their traps, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapely

from exactvc import porcelain
from exactvc.errors import InvalidInput, NotFound
from exactvc.formats import masks
from exactvc.formats.registry import detect

from .formats_util import export_bytes, repo_for, repo_with_images_of, round_trip, sample, state

COCOAPI = sample("coco/cocoapi_instances_val2017_1img-sample.json")
DATUMARO = sample("coco/datumaro_instances_val.json")
MIDOG = sample("coco/midog_MIDOG_HamamatsuXR.json")


@pytest.mark.parametrize("path", [COCOAPI, DATUMARO, MIDOG], ids=lambda p: p.name)
def test_sample_imports_and_round_trips(tmp_path: Path, path: Path) -> None:
    assert detect(path) == "coco"
    repo = repo_with_images_of(tmp_path / "r", "coco", path)
    res = porcelain.import_(repo, None, str(path), create_labels=True)
    doc = json.loads(path.read_text())
    assert res["features"] == len(doc["annotations"]) == res["added"]
    before = state(repo)
    r2, data = round_trip(tmp_path, repo, "coco", ".json")
    after = state(r2)
    assert after.keys() == before.keys()
    for img, anns in before.items():
        assert after[img].keys() == anns.keys()
        for aid, (label, kind, geom, props, plane) in anns.items():
            l2, k2, g2, p2, pl2 = after[img][aid]
            assert (l2, k2, g2, pl2) == (label, kind, geom, plane)
            for k, v in props["coco"].items():  # what the file had survives (our export adds area where missing)
                assert p2["coco"][k] == v, (aid, k)
    assert export_bytes(r2, "coco") == data  # exports are byte-identical


def test_ids_above_2_32_category_gaps_and_uncompressed_rle(tmp_path: Path) -> None:
    repo = repo_with_images_of(tmp_path / "r", "coco", COCOAPI)
    porcelain.import_(repo, None, str(COCOAPI), create_labels=True)
    anns = next(iter(state(repo).values()))
    by_coco = {p["coco"]["id"]: (label, kind, geom, p) for label, kind, geom, p, _ in anns.values()}
    assert 900100448263 in by_coco
    doc = json.loads(COCOAPI.read_text())
    crowd = next(a for a in doc["annotations"] if a["iscrowd"])
    label, kind, geom, p = by_coco[crowd["id"]]
    assert p["coco"]["iscrowd"] == 1 and kind in ("polygon", "multipolygon")
    # the polygon covers exactly the mask's pixels
    h, w = crowd["segmentation"]["size"]
    m = masks.runs_to_mask(crowd["segmentation"]["counts"], h, w, column_major=True)
    from exactvc import geometry
    assert shapely.area(geometry.to_shapely(kind, geom)) == pytest.approx(m.sum())
    # category ids with gaps are kept and written back
    out = json.loads(export_bytes(repo, "coco"))
    names = {c["id"]: c["name"] for c in out["categories"]}
    orig = {c["id"]: c["name"] for c in doc["categories"]}
    assert all(orig[i] == n for i, n in names.items())
    rle = next(a for a in out["annotations"] if a["iscrowd"])
    assert rle["segmentation"] == crowd["segmentation"]  # the very same runs


def test_several_rings_are_several_parts(tmp_path: Path) -> None:
    doc = {"images": [{"id": 1, "file_name": "img", "width": 100, "height": 100}],
           "categories": [{"id": 3, "name": "cell"}],
           "annotations": [{"id": 7, "image_id": 1, "category_id": 3, "iscrowd": 0, "area": 2, "bbox": [0, 0, 1, 1],
                            "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10], [20, 20, 30, 20, 30, 30]]}]}
    f = tmp_path / "two.json"
    f.write_text(json.dumps(doc))
    repo = repo_with_images_of(tmp_path / "r", "coco", f)
    porcelain.import_(repo, None, str(f), create_labels=True)
    ((_l, kind, geom, _p, _z),) = state(repo)["img"].values()
    assert kind == "multipolygon" and len(geom[1]) == 2


def test_midog_xyxy_boxes_are_detected_and_can_be_forced(tmp_path: Path) -> None:
    repo = repo_with_images_of(tmp_path / "r", "coco", MIDOG)
    porcelain.import_(repo, None, str(MIDOG), create_labels=True)
    from exactvc import geometry
    boxes = [geometry.bounds(k, g) for img in state(repo).values() for (_l, k, g, _p, _z) in img.values()]
    # every spot is 50 px square, but for those clipped at the image's top or left border
    assert boxes and all((x1 - x0 == 50 or x0 == 0) and (y1 - y0 == 50 or y0 == 0) for x0, y0, x1, y1 in boxes)
    clipped = [p["coco"]["unclipped"] for img in state(repo).values() for (_l, _k, _g, p, _z) in img.values()
               if "unclipped" in p["coco"]]
    assert clipped and all(x1 - x0 == 50 and y1 - y0 == 50 and min(x0, y0) < 0 for x0, y0, x1, y1 in clipped)
    # forced xywh reads the same numbers as width/height: boxes 50 px from the origin grow to x2
    r3 = repo_with_images_of(tmp_path / "r3", "coco", MIDOG)
    porcelain.import_(r3, None, str(MIDOG), create_labels=True, bbox="xywh")
    wide = [geometry.bounds(k, g) for img in state(r3).values() for (_l, k, g, _p, _z) in img.values()]
    assert any(x1 - x0 != 50 for x0, y0, x1, y1 in wide)


def test_extra_attributes_kept_and_rle_bbox_not_trusted(tmp_path: Path) -> None:
    repo = repo_with_images_of(tmp_path / "r", "coco", DATUMARO)
    porcelain.import_(repo, None, str(DATUMARO), create_labels=True)
    anns = state(repo)["b.jpg"]
    attrs = [p["coco"].get("attributes") for (_l, _k, _g, p, _z) in anns.values()]
    assert {"x": 1, "y": "hello"} in attrs
    from exactvc import geometry
    rle = next((k, g) for (_l, k, g, p, _z) in anns.values() if p["coco"].get("iscrowd"))
    assert geometry.bounds(*rle) == (0, 0, 2, 10)  # from the mask, not the file's bbox [0, 0, 1, 9]


def test_compressed_counts_round_trip() -> None:
    import numpy as np
    rng = np.random.default_rng(5)
    m = rng.random((37, 23)) > 0.6
    runs = masks.mask_runs(m, column_major=True)
    s = masks.coco_counts_string(runs)
    assert masks.coco_counts(s) == runs
    assert (masks.runs_to_mask(masks.coco_counts(s), 37, 23, True) == m).all()
    # pycocotools' documented sample: counts [0, 20, 30] is 20 set pixels then 30 unset
    assert masks.coco_counts(masks.coco_counts_string([0, 20, 30])) == [0, 20, 30]


def test_bad_record_names_file_and_record_and_changes_nothing(tmp_path: Path) -> None:
    doc = json.loads(DATUMARO.read_text())
    doc["annotations"][1]["segmentation"]["counts"] = [0, 20, 29]  # does not sum to h*w
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(doc))
    repo = repo_with_images_of(tmp_path / "r", "coco", DATUMARO)
    before = repo.working()
    with pytest.raises(InvalidInput) as e:
        porcelain.import_(repo, None, str(f), create_labels=True)
    msg = str(e.value)
    assert str(f) in msg and "annotation 1 (id 2)" in msg and "sum" in msg and "\n" not in msg
    assert repo.working() == before and not repo.labels(None).labels


def test_geometry_outside_the_image_is_refused_with_the_record(tmp_path: Path) -> None:
    from .formats_util import repo_for
    repo = repo_for(tmp_path / "r", ["b.jpg"], w=1, h=1)
    before = repo.working()
    with pytest.raises(InvalidInput, match=r"datumaro_instances_val.json \(image 'b.jpg'\): annotation 0 \(id 1\): coordinates outside"):
        porcelain.import_(repo, None, str(DATUMARO), create_labels=True)
    assert repo.working() == before


def test_unmatched_image_is_named(tmp_path: Path) -> None:
    from .formats_util import repo_for
    repo = repo_for(tmp_path / "r", ["other.tif", "another.tif"])
    with pytest.raises(NotFound, match="b.jpg"):
        porcelain.import_(repo, None, str(DATUMARO), create_labels=True)
    porcelain.import_(repo, "other.tif", str(DATUMARO), create_labels=True)  # or say which
    assert len(state(repo)["other.tif"]) == 2


def test_reimport_changes_nothing(tmp_path: Path) -> None:
    repo = repo_with_images_of(tmp_path / "r", "coco", MIDOG)
    porcelain.import_(repo, None, str(MIDOG), create_labels=True)
    s1 = repo.working()
    res = porcelain.import_(repo, None, str(MIDOG))
    assert res["added"] == 0 and res["replaced"] == 1175
    assert repo.working()[1] == s1[1]


def test_streamed_export_is_the_whole_document_serialised(tmp_path: Path) -> None:
    """The export writes annotations one by one over several flushes; the bytes are exactly orjson's
    serialisation of the whole document (what the in-memory export wrote), ids and categories kept, and
    importing them back gives the same annotations."""
    import orjson

    from exactvc.formats import coco

    repo = repo_for(tmp_path / "r", ["slide"])
    repo.add_label("cell", shape="any", color="#00ff00")
    repo.add_label("tumor", shape="any", color="#ff0000")
    n = coco.FLUSH * 2 + 5
    with repo.edit("slide") as ed:
        for i in range(n):
            x, y = 10 + (i % 300) * 40, 10 + (i // 300) * 40
            label = "cell" if i % 2 else "tumor"
            if i % 5 == 0:
                ed.add(label, {"type": "LineString", "coordinates": [[x, y], [x + 9, y + 9]]})  # dropped
            else:
                ed.add(label, {"type": "Polygon", "coordinates": [[[x, y], [x + 30, y], [x + 15, y + 25], [x, y]]]})
    repo.commit("many", author="t <t@example.org>")
    data = export_bytes(repo, "coco", "slide")
    doc = orjson.loads(data)
    assert data == orjson.dumps(doc) + b"\n"
    assert len(doc["annotations"]) == n - len(range(0, n, 5))
    assert [a["id"] for a in doc["annotations"]] == list(range(1, len(doc["annotations"]) + 1))
    assert {c["name"] for c in doc["categories"]} == {"cell", "tumor"}
    f = tmp_path / "out.json"
    f.write_bytes(data)
    r2 = repo_for(tmp_path / "r2", ["slide"])
    r2.add_label("cell", shape="any", color="#00ff00")
    r2.add_label("tumor", shape="any", color="#ff0000")
    porcelain.import_(r2, "slide", str(f))
    assert export_bytes(r2, "coco", "slide") == data


def _reordered(tmp: Path, src: Path, keys: list[str], name: str) -> Path:
    doc = json.loads(src.read_text())
    f = tmp / name
    f.write_text(json.dumps({k: doc[k] for k in keys if k in doc}))
    return f


def test_streamed_read_whatever_the_order_of_the_sections(tmp_path: Path) -> None:
    """The annotations array is streamed (no record held by the reader); images and categories are found
    before it or, when the file puts them after it, by a first pass: the same annotations either way."""
    from exactvc.formats import coco

    read = coco.read(COCOAPI)
    assert read.stream is not None and all(not s.records for s in read.images) and read.images[0].has_records
    repo = repo_with_images_of(tmp_path / "r", "coco", COCOAPI)
    porcelain.import_(repo, None, str(COCOAPI), create_labels=True)
    want = state(repo)
    for k, keys in enumerate((["annotations", "categories", "images", "info"], ["images", "annotations", "categories"],
                              ["categories", "annotations", "licenses", "images"])):
        f = _reordered(tmp_path, COCOAPI, keys, f"order{k}.json")
        r = repo_with_images_of(tmp_path / f"r{k}", "coco", f)
        porcelain.import_(r, None, str(f), create_labels=True)
        assert state(r) == want, keys


def test_images_without_annotations_and_the_box_layout_over_the_whole_file(tmp_path: Path) -> None:
    # several images, annotations for one only (after them in the file): that one is imported, by name or --image
    doc = {"annotations": [{"id": i + 1, "image_id": 2, "category_id": 1, "bbox": [10 * i, 5, 10 * i + 8, 9]}
                           for i in range(40)],
           "images": [{"id": 1, "file_name": "empty.tif"}, {"id": 2, "file_name": "spots.tif"}],
           "categories": [{"id": 1, "name": "mitosis"}]}
    f = tmp_path / "spots.json"
    f.write_text(json.dumps(doc))
    from .formats_util import repo_for
    repo = repo_for(tmp_path / "r", ["spots.tif"])
    res = porcelain.import_(repo, None, str(f), create_labels=True)
    assert res["images"] == ["spots.tif"] and res["features"] == 40
    from exactvc import geometry
    boxes = sorted(geometry.bounds(k, g) for (_l, k, g, _p, _z) in state(repo)["spots.tif"].values())
    assert boxes[3] == (30, 5, 38, 9)  # corners: every box could be [x1, y1, x2, y2] and nothing says otherwise
    r2 = repo_for(tmp_path / "r2", ["slide"])
    assert porcelain.import_(r2, "slide", str(f), create_labels=True)["features"] == 40
    # one image, the layout settled only by the last annotation: the first one is read as width/height too
    doc["annotations"].append({"id": 99, "image_id": 2, "category_id": 1, "bbox": [50, 50, 4, 4]})
    doc["images"] = doc["images"][1:]
    g = tmp_path / "late.json"
    g.write_text(json.dumps({k: doc[k] for k in ("images", "categories", "annotations")}))
    r3 = repo_for(tmp_path / "r3", ["spots.tif"])
    porcelain.import_(r3, None, str(g), create_labels=True)
    boxes = sorted(geometry.bounds(k, g) for (_l, k, g, _p, _z) in state(r3)["spots.tif"].values())
    assert (30, 5, 68, 14) in boxes


def test_a_results_list_and_a_file_without_annotations(tmp_path: Path) -> None:
    from .formats_util import repo_for
    f = tmp_path / "results.json"
    f.write_text(json.dumps([{"category_id": 2, "bbox": [1, 2, 3, 4], "score": 0.9, "id": 1}]))
    repo = repo_for(tmp_path / "r", ["slide"])
    res = porcelain.import_(repo, "slide", str(f), create_labels=True, fmt="coco")
    assert res["features"] == 1
    ((label, _k, _g, p, _z),) = state(repo)["slide"].values()
    assert label == "2" and p["coco"]["score"] == 0.9
    e = tmp_path / "empty.json"
    e.write_text(json.dumps({"images": [{"id": 1, "file_name": "slide"}], "categories": []}))
    assert porcelain.import_(repo, None, str(e), fmt="coco")["features"] == 0
    bad = tmp_path / "cut.json"
    bad.write_text(json.dumps({"images": [], "annotations": [{"id": 1, "bbox": [1, 2, 3, 4]}]})[:-5])
    with pytest.raises(InvalidInput, match="cut.json: malformed JSON"):
        porcelain.import_(repo, "slide", str(bad), fmt="coco")


def test_runs_converted_by_workers_as_in_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One image's annotations are cut into runs that forked workers parse and check: the same annotations
    as in one process; a run cut in the wrong place (inside a string) or a bad annotation makes the import
    read the file again in this process, so the error names the annotation as the serial import does."""
    from exactvc.formats import coco
    from exactvc.formats.common import import_sources

    from .formats_util import repo_for
    monkeypatch.setattr(coco, "PARALLEL_BLOCK", 4096)

    def parses(run: bytes) -> bool:
        try:
            json.loads(b"[" + run + b"]")
            return True
        except ValueError:
            return False

    for tricky in (False, True):
        anns = [{"id": i + 1, "image_id": 1, "category_id": 1 + i % 2, "iscrowd": 0, "area": 1.0,
                 "bbox": [0, 0, 1, 1], "segmentation": [[10 + i, 10, 20 + i, 10, 15 + i, 30]],
                 "attributes": {"note": "ends like a cut },{" if tricky and i % 50 == 7 else "plain"}}
                for i in range(1500)]
        doc = {"images": [{"id": 1, "file_name": "slide"}],
               "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], "annotations": anns}
        f = tmp_path / "many.json"
        f.write_bytes(json.dumps(doc, separators=(",", ":")).encode())
        runs = list(coco.read(f).parts())  # type: ignore[misc]
        assert len(runs) > 20 and all(map(parses, runs)) == (not tricky)  # tricky: some cut inside a string
        from exactvc.formats.importer import _workers
        assert _workers(f, 2) == 2  # forked workers can run here (one thread, Linux)
        got = []
        for workers in (1, 2):
            repo = repo_for(tmp_path / f"w{workers}{tricky}", ["slide"])
            res = import_sources(repo, str(f), coco.read(f), create_labels=True, workers=workers)
            assert res["features"] == res["added"] == 1500
            got.append(state(repo))
        assert got[0] == got[1]
    anns[1200]["segmentation"] = [[1, 2, 3]]
    f.write_bytes(json.dumps(doc, separators=(",", ":")).encode())
    repo = repo_for(tmp_path / "bad", ["slide"])
    before = repo.working()
    with pytest.raises(InvalidInput, match=r"many.json: annotation 1200 \(id 1201\): a segmentation polygon"):
        import_sources(repo, str(f), coco.read(f), create_labels=True, workers=2)
    assert repo.working() == before and not repo.labels(None).labels


# a 9x7 mask and its RLE as pycocotools 2.0.11 writes it (mask.encode of the Fortran-ordered array)
PYCOCO_MASK = [[1, 1, 1, 0, 0, 1, 0], [1, 1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0], [0, 1, 0, 0, 1, 0, 1],
               [1, 1, 0, 0, 0, 0, 1], [0, 0, 0, 1, 0, 0, 1], [1, 1, 1, 1, 0, 1, 1], [1, 0, 1, 0, 0, 0, 0],
               [1, 0, 1, 1, 1, 1, 1]]
PYCOCO_COUNTS = "031N070I10O022ON01OO1120MO20N023NM"


def test_compressed_counts_are_pycocotools_own(tmp_path: Path) -> None:
    """The compressed ``counts`` string is the one pycocotools writes (a string it made, not one of ours):
    decoded to the same mask, imported as its exact outline, exported as the very same string."""
    import numpy as np

    from .formats_util import repo_for
    m = np.array(PYCOCO_MASK, dtype=bool)
    assert masks.coco_counts_string(masks.mask_runs(m, column_major=True)) == PYCOCO_COUNTS
    assert (masks.runs_to_mask(masks.coco_counts(PYCOCO_COUNTS), 9, 7, True) == m).all()
    doc = {"images": [{"id": 1, "file_name": "slide", "width": 7, "height": 9}], "categories": [{"id": 1, "name": "m"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": int(m.sum()),
                            "bbox": [0, 0, 7, 9], "segmentation": {"size": [9, 7], "counts": PYCOCO_COUNTS}}]}
    f = tmp_path / "rle.json"
    f.write_text(json.dumps(doc))
    repo = repo_for(tmp_path / "r", ["slide"], 7, 9)
    porcelain.import_(repo, None, str(f), create_labels=True)
    ((_l, kind, geom, _p, _z),) = state(repo)["slide"].values()
    from exactvc import geometry
    assert shapely.area(geometry.to_shapely(kind, geom)) == m.sum()
    out = json.loads(export_bytes(repo, "coco"))
    assert out["annotations"][0]["segmentation"] == {"size": [9, 7], "counts": PYCOCO_COUNTS}
