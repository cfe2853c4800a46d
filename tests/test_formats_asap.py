"""ASAP XML: the real samples, their traps (Order, groups, comma decimals), round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from exactvc import porcelain
from exactvc.errors import InvalidInput
from exactvc.formats.registry import detect

from .formats_util import export_bytes, repo_for, round_trip, sample, state

DPLAB = sample("asap/dplabtools_asap1.xml")
CAMELYON = sample("asap/camelyon17_patient_004_node_4.xml")


def _import(tmp: Path, path: Path) -> tuple[object, dict]:
    repo = repo_for(tmp / "r", ["slide"])
    res = porcelain.import_(repo, "slide", str(path), create_labels=True)
    return repo, res


@pytest.mark.parametrize("path", [DPLAB, CAMELYON], ids=lambda p: p.name)
def test_sample_imports_and_round_trips(tmp_path: Path, path: Path) -> None:
    assert detect(path) == "asap"
    repo, res = _import(tmp_path, path)
    assert res["features"] == path.read_text().count("<Annotation ")
    before = state(repo)
    r2, data = round_trip(tmp_path, repo, "asap", ".xml")
    assert state(r2) == before  # ids, labels, geometry and properties
    assert export_bytes(r2, "asap") == data


def test_each_type_maps_to_its_kind(tmp_path: Path) -> None:
    repo, _ = _import(tmp_path, DPLAB)
    kinds = {p["name"]: (k, p["asap"]["type"]) for (_l, k, _g, p, _z) in state(repo)["slide"].values()}
    assert kinds == {"Annotation 0": ("point", "Dot"), "Annotation 1": ("box", "Rectangle"),
                     "Annotation 2": ("polygon", "Polygon"), "Annotation 3": ("polygon", "Spline"),
                     "Annotation 4": ("line", "Measurement")}
    # a spline keeps its 4 control points, not a densified curve
    spline = next(g for (_l, k, g, p, _z) in state(repo)["slide"].values() if p["asap"]["type"] == "Spline")
    assert len(spline[1][0]) == 8
    # float32-style decimals are kept to exactvc's 1/1000 px
    dot = next(g for (_l, k, g, p, _z) in state(repo)["slide"].values() if k == "point")
    assert dot == [3, [4803694, 22946572]]
    # and written back in ASAP's own layout, unclassified as PartOfGroup="None"
    out = export_bytes(repo, "asap").decode()
    assert 'Type="Spline" PartOfGroup="None"' in out and 'X="4803.694" Y="22946.572"' in out


def test_group_is_the_label_with_its_colour(tmp_path: Path) -> None:
    repo, res = _import(tmp_path, CAMELYON)
    assert res["labels_created"] == ["Tumor"]
    assert repo.labels(None).get("Tumor").color == "#ff0000"
    out = export_bytes(repo, "asap").decode()
    assert '<Group Name="Tumor" PartOfGroup="None" Color="#FF0000">' in out


def _xml(body: str, groups: str = "") -> str:
    return (f'<?xml version="1.0"?><ASAP_Annotations><Annotations>{body}</Annotations>'
            f"<AnnotationGroups>{groups}</AnnotationGroups></ASAP_Annotations>")


def _ann(name: str, t: str, coords: list[tuple[str, str, str]], group: str = "None") -> str:
    cs = "".join(f'<Coordinate Order="{o}" X="{x}" Y="{y}"/>' for o, x, y in coords)
    return f'<Annotation Name="{name}" Type="{t}" PartOfGroup="{group}" Color="#F4FA58"><Coordinates>{cs}</Coordinates></Annotation>'


def test_order_attribute_comma_decimals_pointset_nested_groups(tmp_path: Path) -> None:
    body = (_ann("p", "Polygon", [("2", "10,5", "20"), ("0", "0", "0"), ("1", "10,5", "0")], "inner")
            + _ann("s", "PointSet", [("0", "1", "2"), ("1", "3", "4"), ("2", "5", "6")], "outer"))
    groups = ('<Group Name="outer" PartOfGroup="None" Color="#00ff00"><Attributes><Attribute kind="tissue"/></Attributes></Group>'
              '<Group Name="inner" PartOfGroup="outer" Color="#0000FF"><Attributes /></Group>')
    f = tmp_path / "a.xml"
    f.write_text(_xml(body, groups))
    repo, _ = _import(tmp_path, f)
    anns = {p["name"]: (label, k, g, p) for (label, k, g, p, _z) in state(repo)["slide"].values()}
    label, k, g, p = anns["p"]
    assert label == "inner" and k == "polygon"
    assert g == [1, [[0, 0, 105, 0, 0, 200]]]  # (0,0), (10.5,0), (10.5,20): Order, not document order
    assert p["asap"]["groups"]["inner"]["parent"] == "outer"
    assert anns["s"][1] == "multipoint"
    out = export_bytes(repo, "asap").decode()
    assert '<Group Name="inner" PartOfGroup="outer" Color="#0000FF">' in out and 'kind="tissue"' in out
    r2, _ = round_trip(tmp_path, repo, "asap", ".xml")
    assert state(r2) == state(repo)


@pytest.mark.parametrize(("body", "groups", "problem"), [
    (_ann("a", "Polygon", [("0", "0", "0"), ("1", "5", "0"), ("1", "5", "5")]), "", "Order 1 appears twice"),
    (_ann("a", "Polygon", [("0", "0", "0"), ("1", "5", "0"), ("3", "5", "5")]), "", "Order has gaps"),
    (_ann("a", "Polygon", [("0", "0", "0"), ("1", "5", "0"), ("2", "5", "5")], "Ghost"), "",
     "group 'Ghost' is not declared"),
    (_ann("a", "Blob", [("0", "0", "0")]), "", "unknown Type 'Blob'"),
    (_ann("a", "Dot", [("0", "x", "0")]), "", "X='x' is not a number"),
])
def test_problems_are_named_and_change_nothing(tmp_path: Path, body: str, groups: str, problem: str) -> None:
    f = tmp_path / "bad.xml"
    f.write_text(_xml(_ann("ok", "Dot", [("0", "1", "1")]) + body, groups))
    repo = repo_for(tmp_path / "r", ["slide"])
    before = repo.working()
    with pytest.raises(InvalidInput) as e:
        porcelain.import_(repo, "slide", str(f), create_labels=True)
    msg = str(e.value)
    assert msg.startswith(str(f)) and "annotation 1 ('a')" in msg and problem in msg
    assert repo.working() == before


def test_streamed_export_is_byte_identical_to_the_in_memory_one(tmp_path: Path) -> None:
    """The export reads annotations from the store as it writes them (FLUSH at a time); the bytes are
    the same as writing the fully loaded annotation list, over several flushes and every shape kind."""
    import io

    from exactvc.formats import asap
    from exactvc.formats.common import export_images

    repo = repo_for(tmp_path / "r", ["slide"])
    repo.add_label("Tumor", shape="any", color="#ff0000")
    n = asap.FLUSH * 2 + 17
    with repo.edit("slide") as ed:
        for i in range(n):
            x, y = 10 + (i % 300) * 40, 10 + (i // 300) * 40
            if i % 3 == 0:
                ed.add("Tumor", {"type": "Polygon", "coordinates": [[[x, y], [x + 30, y], [x + 15, y + 25], [x, y]]]})
            elif i % 3 == 1:
                ed.add("Tumor", {"type": "Point", "coordinates": [x + 0.5, y + 0.25]})
            else:
                ed.add("Tumor", {"type": "LineString", "coordinates": [[x, y], [x + 20, y + 20]]})
    repo.commit("many", author="t <t@example.org>")
    streamed = export_bytes(repo, "asap", "slide")
    imgs, colors = export_images(repo, "WORKING", "slide")  # everything in memory first
    assert isinstance(imgs[0].annotations, list) and len(imgs[0].annotations) == n
    buf = io.BytesIO()
    assert asap.write(imgs[0], colors, buf) == n
    assert streamed == buf.getvalue()
    assert streamed.count(b"<Annotation ") == n
    # and the streamed file imports back to the same annotations
    f = tmp_path / "out.xml"
    f.write_bytes(streamed)
    r2 = repo_for(tmp_path / "r2", ["slide"])
    r2.add_label("Tumor", shape="any", color="#ff0000")
    porcelain.import_(r2, "slide", str(f))
    assert export_bytes(r2, "asap", "slide") == streamed


def _many(n: int, bad: int | None = None) -> str:
    body = "".join(_ann(f"c{i}" if i % 7 else "dup", "Polygon" if i % 3 else "Dot",
                        [("0", f"{10 + i},5", "20"), ("1", str(30 + i), "20"), ("2", str(20 + i), "40")]
                        if i % 3 else [("0", str(5 + i), "7")], "Tumor" if i % 2 else ("Ghost" if i == bad else "None"))
                   for i in range(n))
    return _xml(body, '<Group Name="Tumor" PartOfGroup="None" Color="#ff0000"><Attributes /></Group>')


def test_fast_scan_and_expat_read_the_same(tmp_path: Path) -> None:
    """Files as ASAP writes them go through the fast block scan; blocks in another form are parsed alone by
    expat, groups may come first, and files the scan does not read (a comment between annotations, another
    encoding) go wholly through expat: the same annotations, ids included, every time."""
    from exactvc.formats import asap

    text = _many(60)
    regular = tmp_path / "regular.xml"
    regular.write_text(text)
    assert asap.read(regular).parts is not None  # the fast scan
    repo, _ = _import(tmp_path / "a", regular)
    want = state(repo)
    assert len(want["slide"]) == 60
    names = [p.get("name") for (_l, _k, _g, p, _z) in want["slide"].values()]
    assert names.count("dup") == 9  # a repeated name gives ids from the place in the file, not the name
    one = text.replace('<Annotation Name="c1" Type="Polygon"', "<Annotation Name='c1' Type=\"Polygon\"", 1)
    one = one.replace('Name="c2"', 'Name="c&#50;"', 1)  # an entity: that block goes through expat
    stray = text.replace("</Coordinates></Annotation>", '</Coordinates><Coordinate Order="9" X="1" Y="1"/></Annotation>', 1)
    stray = stray.replace('<Coordinate Order="0"', '<Coordinate\tOrder="0"', 1)  # expat ignores the stray one
    gap = text.replace("</Annotation><Annotation", "</Annotation>\n  <!-- a comment -->\n<Annotation", 1)
    groups_first = text.replace("<Annotations>", "<AnnotationGroups>" + text.split("<AnnotationGroups>")[1]
                                .split("</AnnotationGroups>")[0] + "</AnnotationGroups><Annotations>", 1)
    groups_first = groups_first[:groups_first.rindex("<AnnotationGroups>")] + "</ASAP_Annotations>"
    latin = text.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="ISO-8859-1"?>')
    for k, (variant, fast) in enumerate([(one, True), (stray, True), (groups_first, True), (gap, False), (latin, False)]):
        f = tmp_path / f"v{k}.xml"
        f.write_text(variant)
        assert (asap.read(f).parts is not None) == fast, k
        r, _ = _import(tmp_path / f"r{k}", f)
        assert state(r) == want, k


def test_parts_converted_by_workers_as_in_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large files are cut into runs of annotations that forked workers turn into checked tree entries: the
    same annotations as in one process; an error in a late part names its annotation and changes nothing."""
    from exactvc.formats import asap
    from exactvc.formats.common import import_sources

    monkeypatch.setattr(asap, "RUN", 2048)  # many parts from a small file
    f = tmp_path / "many.xml"
    f.write_text(_many(3000))
    read = asap.read(f)
    assert read.parts is not None and sum(1 for _ in read.parts()) > 50
    from exactvc.formats.importer import _workers
    assert _workers(f, 2) == 2  # forked workers can run here (one thread, Linux)
    got = []
    for workers in (1, 2):
        repo = repo_for(tmp_path / f"w{workers}", ["slide"])
        res = import_sources(repo, str(f), asap.read(f), image="slide", create_labels=True, workers=workers)
        assert res["features"] == 3000 and res["added"] == 3000
        got.append(state(repo))
    assert got[0] == got[1]
    bad = tmp_path / "bad.xml"
    bad.write_text(_many(3000, bad=2500))
    repo = repo_for(tmp_path / "wb", ["slide"])
    before = repo.working()
    with pytest.raises(InvalidInput, match=r"annotation 2500 \('c2500'\): group 'Ghost' is not declared"):
        import_sources(repo, str(bad), asap.read(bad), image="slide", create_labels=True, workers=2)
    assert repo.working() == before and not repo.labels(None).labels
