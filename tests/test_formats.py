"""QuPath GeoJSON import/export and CSV export, on real repositories."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import shapely

from exactvc import geometry
from exactvc.errors import InvalidGeometry, InvalidInput, UnknownLabel, UsageError
from exactvc.formats import export, import_file, read_features
from exactvc.formats.csvfmt import HEADER
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

W, H = 50_000, 40_000


def uid(n: int) -> str:
    return str(uuid.UUID(int=(0x5A17 << 112) | (n * 7919 + 12345), version=4))


def square(x: float, y: float, s: float) -> list[list[float]]:
    return [[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]


def qupath_features() -> list[dict[str, Any]]:
    """One feature for each shape of QuPath output this module claims to read."""
    ell = geometry.ellipse_ring(100, 200, 300, 260)
    return [
        {  # v0.4+: UUID id, measurements map (with QuPath's bare NaN), locked, name, object colour, metadata
            "type": "Feature", "id": uid(1),
            "geometry": {"type": "Polygon", "coordinates": [square(1000.5, 2000.25, 50)]},
            "properties": {
                "objectType": "annotation", "name": "first", "color": [1, 2, 3],
                "classification": {"name": "Tumor", "color": [200, 0, 0]}, "isLocked": True,
                "measurements": {"Area µm^2": 12.5, "Perimeter": 14.0, "Broken": math.nan},
                "metadata": {"source": "model-7"},
            },
        },
        {  # v0.2: the object type as id, colorRGB, measurements as a list, a polygon with a hole
            "type": "Feature", "id": "PathAnnotationObject",
            "geometry": {"type": "Polygon", "coordinates": [square(3000, 3000, 100), square(3020, 3020, 10)]},
            "properties": {
                "classification": {"name": "Stroma", "colorRGB": -16744448}, "isLocked": False,
                "measurements": [{"name": "A", "value": 1}, {"name": "B", "value": 2.25}],
            },
        },
        {  # derived class as names; MultiPolygon
            "type": "Feature", "id": uid(2),
            "geometry": {"type": "MultiPolygon", "coordinates": [[square(10, 10, 5)], [square(40, 40, 5)]]},
            "properties": {"objectType": "annotation",
                           "classification": {"names": ["Tumor", "Positive"], "color": [255, 0, 0]}},
        },
        {  # point set
            "type": "Feature", "id": uid(3),
            "geometry": {"type": "MultiPoint", "coordinates": [[5, 5], [7.5, 9], [100, 3]]},
            "properties": {"objectType": "annotation", "classification": {"name": "Cells", "color": [0, 0, 255]}},
        },
        {  # ellipse and plane on the geometry, where QuPath writes them
            "type": "Feature", "id": uid(4),
            "geometry": {"type": "Polygon", "coordinates": [ell], "plane": {"c": -1, "z": 2, "t": 1},
                         "isEllipse": True},
            "properties": {"objectType": "annotation", "classification": {"name": "Ellipse", "color": [9, 9, 9]}},
        },
        {  # ellipse and plane in the properties
            "type": "Feature", "id": uid(5),
            "geometry": {"type": "Polygon", "coordinates": [geometry.ellipse_ring(500, 500, 520, 530)]},
            "properties": {"isEllipse": True, "plane": {"c": 0, "z": 1, "t": 0},
                           "classification": {"name": "Ellipse"}},
        },
        {
            "type": "Feature", "id": uid(6),
            "geometry": {"type": "LineString", "coordinates": [[1, 1], [20.125, 30], [40, 2]]},
            "properties": {"objectType": "annotation", "classification": {"name": "Line", "color": [0, 128, 0]}},
        },
        {  # no classification
            "type": "Feature", "id": uid(7),
            "geometry": {"type": "Point", "coordinates": [123.456, 789]},
            "properties": {"objectType": "annotation"},
        },
        {  # a detection (kept as objectType), with a nucleus
            "type": "Feature", "id": uid(8),
            "geometry": {"type": "Polygon", "coordinates": [square(7000, 7000, 30)]},
            "nucleusGeometry": {"type": "Polygon", "coordinates": [square(7010, 7010, 5)]},
            "properties": {"objectType": "detection", "classification": {"name": "Tumor", "color": [200, 0, 0]}},
        },
        {  # v0.2 detection
            "type": "Feature", "id": "PathDetectionObject",
            "geometry": {"type": "Point", "coordinates": [42, 43]},
            "properties": {"classification": {"name": "Cells", "colorRGB": -16776961}},
        },
        {  # text that looks like structure
            "type": "Feature", "id": uid(9),
            "geometry": {"type": "Polygon", "coordinates": [square(9000, 100, 20)]},
            "properties": {"name": 'a "quoted" },{ name ] \\', "classification": {"name": "Other"}},
        },
    ]


def write_collection(path: Path, features: list[dict[str, Any]], pretty: bool = False) -> Path:
    # json (not orjson): it writes NaN as QuPath does
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, indent=2 if pretty else None))
    return path


def new_repo(path: Path, images: tuple[str, ...] = ("img",)) -> Repository:
    repo = Repository.init(path)
    for name in images:
        repo.add_image_record(ImageRecord(name, (name.encode().hex() * 64)[:64], W, H))
    return repo


def snapshot(repo: Repository, image: str = "img", rev: str | None = "HEAD") -> dict[str, Any]:
    return {a.id: (a.label, a.kind, a.geom, a.properties, a.plane) for a in repo.annotations(image, rev)}


def export_bytes(repo: Repository, fmt: str = "geojson", image: str | None = "img", rev: str = "HEAD") -> bytes:
    buf = io.BytesIO()
    export(repo, rev, image, fmt, buf)
    return buf.getvalue()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    feats = qupath_features()
    single = {
        "type": "Feature", "id": uid(20),
        "geometry": {"type": "Polygon", "coordinates": [square(20000, 20000, 12)]},
        "properties": {"objectType": "annotation", "classification": {"name": "Stroma", "colorRGB": -16744448}},
    }
    array = [
        {"type": "Feature", "id": uid(21), "geometry": {"type": "Point", "coordinates": [30000, 30000]},
         "properties": {"classification": {"name": "Cells"}}},
        {"type": "Feature", "id": uid(22), "geometry": {"type": "Point", "coordinates": [30001, 30000]},
         "properties": {"classification": {"name": "Cells"}, "measurements": {"n": 3}}},
    ]
    (tmp_path / "single.geojson").write_text(json.dumps(single, indent=2))
    (tmp_path / "array.geojson").write_text(json.dumps(array, indent=4))
    return {
        "collection": write_collection(tmp_path / "qupath.geojson", feats),
        "pretty": write_collection(tmp_path / "pretty.geojson", feats, pretty=True),
        "single": tmp_path / "single.geojson",
        "array": tmp_path / "array.geojson",
    }


# --- reading ------------------------------------------------------------------------------------


def test_read_features_maps_qupath_fields(files: dict[str, Path]) -> None:
    feats = list(read_features(files["collection"]))
    assert [f.index for f in feats] == list(range(11))
    f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10 = feats
    assert f0.id == uuid.UUID(uid(1)).bytes and f0.label == "Tumor" and f0.color == "#c80000" and f0.locked
    assert f0.properties == {
        "name": "first", "color": [1, 2, 3], "isLocked": True,
        "measurements": {"Area µm^2": 12.5, "Perimeter": 14.0}, "metadata": {"source": "model-7"},
    }
    assert f1.id is None and f1.label == "Stroma" and f1.color == "#008000" and not f1.locked
    assert f1.properties == {"measurements": {"A": 1, "B": 2.25}}
    assert f2.label == "Tumor: Positive" and f2.geometry["type"] == "MultiPolygon"
    assert f3.geometry["type"] == "MultiPoint"
    assert f4.geometry["isEllipse"] is True and f4.plane == (2, 1)
    assert f5.geometry["isEllipse"] is True and f5.plane == (1, 0) and f5.properties == {}
    assert f6.geometry["type"] == "LineString" and f6.color == "#008000"
    assert f7.label is None and f7.properties == {}
    assert f8.object_type == "detection" and f8.properties["objectType"] == "detection"
    assert f8.properties["nucleusGeometry"]["type"] == "Polygon"
    assert f9.id is None and f9.object_type == "detection" and f9.color == "#0000ff"
    assert f10.properties["name"] == 'a "quoted" },{ name ] \\'


def test_reading_is_independent_of_layout_and_chunking(files: dict[str, Path]) -> None:
    ref = list(read_features(files["collection"]))
    assert list(read_features(files["pretty"])) == ref
    for chunk in (1, 7, 64, 333):
        assert list(read_features(files["pretty"], chunk_size=chunk)) == ref
        assert list(read_features(files["collection"], chunk_size=chunk)) == ref
    single = list(read_features(files["single"], chunk_size=5))
    assert len(single) == 1 and single[0].label == "Stroma"
    arr = list(read_features(files["array"], chunk_size=5))
    assert [f.index for f in arr] == [0, 1] and arr[1].properties == {"measurements": {"n": 3}}
    seen: list[tuple[int, int]] = []
    list(read_features(files["collection"], progress=lambda d, t: seen.append((d, t)), chunk_size=1000))
    size = files["collection"].stat().st_size
    assert seen[-1] == (size, size)


@pytest.mark.parametrize(
    "text, problem",
    [
        ('{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point",'
         '"coordinates":[1,2]}} {"type":"Feature"}]}', "expected ',' or ']'"),
        ('{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point"', "end of file"),
        ('{"type":"FeatureCollection","features":[]} trailing', "around the features array"),
        ('{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point",'
         '"coordinates":[1,2,]}}]}', "malformed JSON"),
        ("", "empty"),
        ("nope", "expected a GeoJSON object or array"),
    ],
)
def test_malformed_json_is_named(tmp_path: Path, text: str, problem: str) -> None:
    p = tmp_path / "bad.geojson"
    p.write_text(text)
    with pytest.raises(InvalidInput) as ei:
        list(read_features(p))
    assert str(ei.value).startswith(f"malformed JSON in {p}")
    assert problem in str(ei.value)


# --- import / export round trip ------------------------------------------------------------------


def test_round_trip_through_export(tmp_path: Path, files: dict[str, Path]) -> None:
    repo = new_repo(tmp_path / "one")
    res = import_file(repo, "img", files["collection"], create_labels=True)
    assert (res.features, res.added, res.replaced) == (11, 11, 0)
    assert res.labels_created == ["Cells", "Ellipse", "Line", "Other", "Stroma", "Tumor", "Tumor: Positive",
                                  "unclassified"]
    labels = {lb.name: lb for lb in repo.labels(None).labels}
    assert (labels["Tumor"].shape, labels["Tumor"].color) == ("polygon", "#c80000")
    assert (labels["Stroma"].color, labels["Cells"].shape, labels["Ellipse"].shape) == ("#008000", "point", "ellipse")
    assert (labels["Line"].shape, labels["Tumor: Positive"].shape) == ("line", "polygon")
    for name in ("single", "array"):
        import_file(repo, "img", files[name], create_labels=True)
    repo.commit("import from QuPath")
    anns = snapshot(repo)
    assert len(anns) == 14
    first = anns[uid(1)]
    assert first[3] == {"color": [1, 2, 3], "isLocked": True, "measurements": {"Area µm^2": 12.5, "Perimeter": 14},
                        "metadata": {"source": "model-7"}, "name": "first"}
    assert anns[uid(4)][1] == "ellipse" and geometry.bounds("ellipse", anns[uid(4)][2]) == (100, 200, 300, 260)
    assert anns[uid(4)][4] == (2, 1) and anns[uid(5)][4] == (1, 0)
    assert anns[uid(8)][3]["objectType"] == "detection"

    data = export_bytes(repo)
    assert data == export_bytes(repo)
    doc = orjson.loads(data)
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 14
    assert [f["id"] for f in doc["features"]] == sorted(anns)
    assert data.count(b"\n") == 16  # header line, one line a feature, closing line
    by_id = {f["id"]: f for f in doc["features"]}
    f1 = by_id[uid(1)]
    assert list(f1) == ["type", "id", "geometry", "properties"]
    assert list(f1["properties"])[:2] == ["objectType", "classification"]
    assert f1["properties"]["classification"] == {"name": "Tumor", "color": [200, 0, 0]}
    assert by_id[uid(4)]["geometry"]["isEllipse"] is True
    assert by_id[uid(4)]["geometry"]["plane"] == {"c": -1, "z": 2, "t": 1}
    assert "classification" not in by_id[uid(7)]["properties"]  # unclassified, as QuPath writes it
    assert by_id[uid(8)]["nucleusGeometry"]["type"] == "Polygon"
    assert by_id[uid(8)]["properties"]["objectType"] == "detection"
    assert all("image" not in f["properties"] for f in doc["features"])

    exported = tmp_path / "export.geojson"
    exported.write_bytes(data)
    other = new_repo(tmp_path / "two")
    res2 = import_file(other, "img", exported, create_labels=True)
    assert (res2.features, res2.added) == (14, 14)
    other.commit("from the export")
    assert snapshot(other) == anns
    assert export_bytes(other) == data
    assert export_bytes(other, "csv") == export_bytes(repo, "csv")

    # importing the export back changes nothing
    res3 = import_file(repo, "img", exported)
    assert (res3.added, res3.replaced, res3.labels_created) == (0, 14, [])
    assert not repo.is_dirty()


def test_csv_export(tmp_path: Path, files: dict[str, Path]) -> None:
    repo = new_repo(tmp_path / "r", images=("img", "b-img"))
    import_file(repo, "img", files["collection"], create_labels=True)
    import_file(repo, "b-img", files["array"], create_labels=True)
    repo.commit("two images")
    data = export_bytes(repo, "csv", image=None)
    assert data == export_bytes(repo, "csv", image=None)
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows[0] == HEADER and len(rows) == 14
    assert [(r[0], r[1]) for r in rows[1:]] == sorted((r[0], r[1]) for r in rows[1:])
    assert {r[0] for r in rows[1:]} == {"img", "b-img"}
    for r in rows[1:]:
        g = shapely.from_wkt(r[10])
        x0, y0, x1, y1 = (float(v) for v in r[4:8])
        if r[3] == "ellipse":
            assert g.bounds == pytest.approx((x0, y0, x1, y1))
        else:
            assert g.bounds == (x0, y0, x1, y1)
        assert json.loads(r[11]) is not None
    by_id = {r[1]: r for r in rows[1:]}
    assert by_id[uid(4)][8:10] == ["2", "1"]
    assert by_id[uid(1)][10] == "POLYGON ((1000.5 2000.25, 1050.5 2000.25, 1050.5 2050.25, 1000.5 2050.25, 1000.5 2000.25))"
    assert by_id[uid(1)][11].startswith('{"color":[1,2,3],"isLocked":true,')
    # every image at once in GeoJSON: features name their image
    doc = orjson.loads(export_bytes(repo, image=None))
    assert {f["properties"]["image"] for f in doc["features"]} == {"img", "b-img"}
    assert export_bytes(repo, image="b-img").count(b'"image"') == 0
    with pytest.raises(UsageError):
        export_bytes(repo, "shapefile")


# --- all or nothing ------------------------------------------------------------------------------


def _bad_file(tmp_path: Path, bad: dict[str, Any], n_good: int = 40) -> Path:
    feats = [
        {"type": "Feature", "id": uid(100 + i),
         "geometry": {"type": "Polygon", "coordinates": [square(100 + 50 * i, 100, 20)]},
         "properties": {"classification": {"name": "Tumor"}}}
        for i in range(n_good)
    ]
    feats.append(bad)
    return write_collection(tmp_path / "bad.geojson", feats)


@pytest.mark.parametrize(
    "bad, error, words",
    [
        ({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 20], [0, 0]]]},
          "properties": {"classification": {"name": "Tumor"}}}, InvalidGeometry, ["feature 40", "Self-intersection"]),
        ({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square(49990, 10, 20)]},
          "properties": {"classification": {"name": "Tumor"}}}, InvalidGeometry, ["feature 40", "outside the image"]),
        ({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square(-0.5, 5, 5)]},
          "properties": {"classification": {"name": "Tumor"}}}, InvalidGeometry, ["feature 40", "outside the image"]),
        ({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square(5, 5, 5)]},
          "properties": {"classification": {"name": "Mystery"}}}, UnknownLabel, ["feature 40", "'Mystery'", "--create-labels"]),
        ({"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[5, 5], [6, 6]]},
          "properties": {"classification": {"name": "Tumor"}}}, InvalidGeometry, ["feature 40", "takes polygon shapes"]),
        ({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[1, 1], [2, 2]]]},
          "properties": {"classification": {"name": "Tumor"}}}, InvalidGeometry, ["feature 40", "fewer than 3"]),
    ],
)
def test_bad_feature_leaves_working_state_unchanged(
    tmp_path: Path, bad: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    repo = new_repo(tmp_path / "r")
    repo.add_label("Tumor", "polygon", "#ff0000")
    ok = write_collection(tmp_path / "ok.geojson", [
        {"type": "Feature", "id": uid(1), "geometry": {"type": "Polygon", "coordinates": [square(5, 5, 5)]},
         "properties": {"classification": {"name": "Tumor"}}}])
    import_file(repo, "img", ok)
    before = repo.working()
    for batch in (7, 50_000):  # with batches written (and spilled) before the bad feature, and without
        with pytest.raises(error) as ei:
            import_file(repo, "img", _bad_file(tmp_path, bad), batch=batch)
        for w in words:
            assert w in str(ei.value)
        assert repo.working() == before
        assert [lb.name for lb in repo.labels(None).labels] == ["Tumor"]


def test_first_bad_feature_is_reported_and_labels_are_rolled_back(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "r")
    before = repo.working()
    bowtie = {"type": "Feature", "geometry": {"type": "Polygon",
                                             "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 20], [0, 0]]]},
              "properties": {"classification": {"name": "New"}}}
    outside = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-5, 1]},
               "properties": {"classification": {"name": "New"}}}
    p = write_collection(tmp_path / "f.geojson", [bowtie, outside])
    with pytest.raises(InvalidGeometry, match="feature 0: invalid polygon: Self-intersection"):
        import_file(repo, "img", p, create_labels=True)
    assert repo.working() == before and repo.labels(None).labels == ()
    write_collection(p, [outside, bowtie])
    with pytest.raises(InvalidGeometry, match=r"feature 0: coordinates outside the image 'img' \(50000x40000\)"):
        import_file(repo, "img", p, create_labels=True)
    assert repo.working() == before and repo.labels(None).labels == ()
    p.write_text('{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point",'
                 '"coordinates":[1,1]},"properties":{"classification":{"name":"New"}}},{"type":')
    with pytest.raises(InvalidInput, match="malformed JSON"):
        import_file(repo, "img", p, create_labels=True)
    assert repo.working() == before and repo.labels(None).labels == ()


# --- determinism -----------------------------------------------------------------------------------


def _random_cells(n: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        x, y = rnd.uniform(100, W - 200), rnd.uniform(100, H - 200)
        ring = [[round(x + 10 * math.cos(t / 8 * math.tau), 2), round(y + 7 * math.sin(t / 8 * math.tau), 2)]
                for t in range(8)]
        out.append({
            "type": "Feature", "id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
            "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
            "properties": {"objectType": "annotation", "classification": {"name": ["Tumor", "Stroma"][i % 2]},
                           "measurements": {"i": i}},
        })
    return out


def test_same_annotations_in_any_order_give_the_same_commit(tmp_path: Path) -> None:
    feats = _random_cells(600, seed=3)
    roots = []
    for k, (order, batch) in enumerate([(feats, 50_000), (feats[::-1], 64), (random.Random(1).sample(feats, 600), 25)]):
        repo = new_repo(tmp_path / f"r{k}")
        repo.add_label("Stroma", "polygon", "#00ff00")
        repo.add_label("Tumor", "polygon", "#ff0000")
        res = import_file(repo, "img", write_collection(tmp_path / f"f{k}.geojson", order), batch=batch)
        assert (res.added, res.replaced) == (600, 0)
        repo.commit("import")
        roots.append(repo.commit_object(repo.resolve("HEAD")).root)
    assert roots[0] == roots[1] == roots[2]


def test_sorted_then_unsorted_ids_and_duplicates(tmp_path: Path) -> None:
    feats = _random_cells(300, seed=5)
    feats[:150] = sorted(feats[:150], key=lambda f: f["id"])  # applied straight, then spilled runs
    dup = dict(feats[10], properties={"classification": {"name": "Tumor"}, "name": "later"})
    feats.append(dup)
    results = []
    for k, batch in enumerate((16, 50_000)):
        repo = new_repo(tmp_path / f"r{k}")
        before = repo.working()
        # two features with one id: refused, naming both (whether the first went straight into the tree or not)
        with pytest.raises(InvalidInput, match=f"features 10 and 300 have the same id {dup['id']}"):
            import_file(repo, "img", write_collection(tmp_path / "f.geojson", feats), create_labels=True, batch=batch)
        assert repo.working() == before
        res = import_file(repo, "img", write_collection(tmp_path / "f.geojson", feats[:300]), create_labels=True,
                          batch=batch)
        assert (res.features, res.added, res.replaced) == (300, 300, 0)
        results.append(repo.working()[1])
    assert results[0] == results[1]
    # features without ids get new (time-ordered) ids, straight into the tree
    no_ids = [{k: v for k, v in f.items() if k != "id"} for f in feats[:100]]
    repo = new_repo(tmp_path / "r-new")
    res = import_file(repo, "img", write_collection(tmp_path / "n.geojson", no_ids), create_labels=True, batch=9)
    assert (res.added, repo.count("img", None)) == (100, 100)


def test_worker_processes_give_the_same_result_and_errors(tmp_path: Path) -> None:
    feats = _random_cells(3000, seed=11)  # two worker tasks
    for f in feats[::7]:
        del f["id"]  # some new ids too
    src = write_collection(tmp_path / "cells.geojson", feats)
    results = []
    for workers in (1, 2):
        repo = new_repo(tmp_path / f"w{workers}")
        res = import_file(repo, "img", src, create_labels=True, workers=workers, batch=1500)
        assert (res.features, res.added, res.labels_created) == (3000, 3000, ["Stroma", "Tumor"])
        results.append({a.id: a for a in repo.annotations("img", None)})
    assert len(results[0]) == len(results[1]) == 3000
    with_ids = {f["id"] for f in feats if "id" in f}
    for aid in with_ids:
        assert results[0][aid] == results[1][aid]
    # the first bad feature is reported, whichever process found it
    bowtie = {"type": "Feature", "geometry": {"type": "Polygon",
                                             "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 20], [0, 0]]]},
              "properties": {"classification": {"name": "Tumor"}}}
    outside = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square(-5, 5, 5)]},
               "properties": {"classification": {"name": "Tumor"}}}
    bad = write_collection(tmp_path / "bad.geojson", [*feats[:2500], bowtie, *feats[2500:2900], outside])
    for workers in (1, 2):
        repo = new_repo(tmp_path / f"e{workers}")
        before = repo.working()
        with pytest.raises(InvalidGeometry, match="^feature 2500: invalid polygon: Self-intersection"):
            import_file(repo, "img", bad, create_labels=True, workers=workers)
        assert repo.working() == before and repo.labels(None).labels == ()
    text = (tmp_path / "cells.geojson").read_text()
    (tmp_path / "cut.geojson").write_text(text[: len(text) // 2])
    with pytest.raises(InvalidInput, match="malformed JSON"):
        import_file(new_repo(tmp_path / "cut"), "img", tmp_path / "cut.geojson", create_labels=True, workers=2)


@pytest.mark.parametrize("pretty", [False, True])
def test_worker_blocks_give_what_one_process_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   pretty: bool) -> None:
    from exactvc.formats import importer

    monkeypatch.setattr(importer, "PARALLEL_BLOCK", 2048)  # many blocks, cut between features
    feats = _random_cells(400, seed=13)
    variants = qupath_features()  # NaN measurements, {name, value} lists ("},{" inside a feature), v0.2 ids
    for k, f in enumerate(variants):
        feats.insert(37 * k + 5, f)
    # a nested object that looks like a feature start: a cut there leaves blocks that do not parse, and
    # the import starts again feature by feature
    for f in feats[280:300]:
        f["properties"]["links"] = [{"a": 1}, {"type": "Feature", "b": [1, {"c": "]}"}]}]
    dup = dict(feats[7], properties={"classification": {"name": "Tumor"}, "name": "later"})  # same id
    dup_src = write_collection(tmp_path / "dup.geojson", [*feats, dup], pretty=pretty)
    src = write_collection(tmp_path / "mix.geojson", feats, pretty=pretty)
    with_ids = {f["id"] for f in feats if len(str(f.get("id"))) == 36}
    got = []
    for workers in (1, 2):
        repo = new_repo(tmp_path / f"w{workers}")
        with pytest.raises(InvalidInput, match=f"features 7 and {len(feats)} have the same id {dup['id']}"):
            import_file(repo, "img", dup_src, create_labels=True, workers=workers, batch=100)
        res = import_file(repo, "img", src, create_labels=True, workers=workers, batch=100)
        anns = snapshot(repo, rev=None)
        got.append((res.features, res.added, res.replaced, res.labels_created, len(anns),
                    {k: v for k, v in anns.items() if k in with_ids}))
    assert got[0][0] == len(feats) and got[0][2] == 0 and len(got[0][5]) == len(with_ids)
    assert got[0] == got[1]
    # the file without the look-alike and without id-less features: the very same snapshot either way
    for f in feats[280:300]:
        del f["properties"]["links"]
    src = write_collection(tmp_path / "clean.geojson", [f for f in feats if f.get("id") in with_ids], pretty=pretty)
    roots = []
    for workers in (1, 2):
        repo = new_repo(tmp_path / f"c{workers}")
        import_file(repo, "img", src, create_labels=True, workers=workers, batch=100)
        roots.append(repo.working()[1])
    assert roots[0] == roots[1]


def test_huge_coordinates_and_missing_file(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "r")
    repo.add_label("Tumor", "polygon")
    for coord in (1e12, 1e20):
        p = write_collection(tmp_path / "huge.geojson", [
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square(5, 5, 5)]},
             "properties": {"classification": {"name": "Tumor"}}},
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square(coord, coord, coord)]},
             "properties": {"classification": {"name": "Tumor"}}},
        ])
        with pytest.raises(InvalidGeometry, match="^feature 1: coordinates outside the image"):
            import_file(repo, "img", p)
    with pytest.raises(Exception, match="no such file"):
        import_file(repo, "img", tmp_path / "missing.geojson")
    assert repo.count("img", None) == 0


def test_plain_features_read_the_same_by_the_short_path() -> None:
    """The short path for the usual QuPath object gives exactly what the general reading gives."""
    from exactvc.formats.qupath import _feature, _plain_feature, feature_from_json

    rnd = random.Random(4)
    cases: list[dict[str, Any]] = [json.loads(json.dumps(f)) for f in qupath_features()]
    for f in _random_cells(300, 6):
        f["properties"].pop("measurements")
        r = rnd.random()
        if r < 0.15:
            f["properties"]["objectType"] = "detection"
        elif r < 0.3:
            f["properties"].pop("objectType")
        elif r < 0.4:
            f["properties"]["classification"]["color"] = [rnd.randint(0, 300) for _ in range(3)]
        elif r < 0.5:
            f["id"] = rnd.choice(["PathDetectionObject", "not-a-uuid", 7])
        elif r < 0.6:
            f.pop("id")
        elif r < 0.7:
            f["properties"]["classification"]["name"] = rnd.choice(["", None, "B"])
        elif r < 0.75:
            f["geometry"]["plane"] = {"z": 1}
        elif r < 0.8:
            f["properties"]["objectType"] = rnd.choice(["", 3])
        cases.append(f)
    short = 0
    for i, f in enumerate(cases):
        got = feature_from_json(i, json.loads(json.dumps(f)))
        assert got == _feature(i, json.loads(json.dumps(f)))
        short += _plain_feature(i, f) is not None
    assert short > 100


def test_features_without_type_first_fall_back_with_bounded_memory(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Features written with "id" first offer no cut point: the import reads them one by one instead of
    holding the whole file, and gives what one process gives."""
    from exactvc.formats import importer, jsonstream

    monkeypatch.setattr(importer, "PARALLEL_BLOCK", 2048)
    monkeypatch.setattr(jsonstream, "BLOCK_SPAN_MAX", 64 * 1024)
    feats = [{"id": f["id"], "type": f["type"], "geometry": f["geometry"], "properties": f["properties"]}
             for f in _random_cells(1500, seed=21)]
    src = write_collection(tmp_path / "idfirst.geojson", feats)
    assert src.stat().st_size > 4 * 64 * 1024
    modes: list[bool] = []
    real = importer._convert_parallel

    def watch(*args: Any) -> Any:  # the real function, with its mode noted
        modes.append(args[-1])
        return real(*args)

    monkeypatch.setattr(importer, "_convert_parallel", watch)
    roots = []
    for workers in (1, 2):
        repo = new_repo(tmp_path / f"w{workers}")
        res = import_file(repo, "img", src, create_labels=True, workers=workers)
        assert res.features == 1500
        roots.append(repo.working()[1])
    assert roots[0] == roots[1]
    assert modes == [True, False]  # blocks tried, then feature by feature
