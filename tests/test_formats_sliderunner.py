"""SlideRunner SQLite: every schema generation, read-only, multi-rater labels, the traps, round trips."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from exactvc import geometry, porcelain
from exactvc.errors import InvalidInput
from exactvc.formats.registry import detect

from .formats_util import differences, export_bytes, repo_for, repo_with_images_of, round_trip, sample, state

MIDOG = sample("sliderunner/midog_MIDOG_HamamatsuXR.sqlite")
CMC = sample("sliderunner/mitos_wsi_cmc_TUPAC_stitched.sqlite")
DEMO = sample("sliderunner/sliderunner_doc_demo.sqlite")


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("path", [MIDOG, CMC, DEMO], ids=lambda p: p.name)
def test_sample_imports_read_only_and_round_trips(tmp_path: Path, path: Path) -> None:
    assert detect(path) == "sliderunner"
    h0 = digest(path)
    repo = repo_with_images_of(tmp_path / "r", "sliderunner", path)
    res = porcelain.import_(repo, None, str(path), create_labels=True)
    assert digest(path) == h0  # opened read-only, never written (no journal, no trigger run)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    live = con.execute("select count(*) from Annotations").fetchone()[0]
    assert res["features"] == live
    before = state(repo)
    r2, data = round_trip(tmp_path, repo, "sliderunner", ".sqlite")
    assert differences(state(r2), before) == []  # ids (guid), labels, geometry, every rater's label
    assert export_bytes(r2, "sliderunner") == data


def test_export_has_the_newest_schema_and_opens_read_only(tmp_path: Path) -> None:
    repo = repo_with_images_of(tmp_path / "r", "sliderunner", MIDOG)
    porcelain.import_(repo, None, str(MIDOG), create_labels=True)
    out = tmp_path / "out.sqlite"
    out.write_bytes(export_bytes(repo, "sliderunner"))
    con = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
    orig = sqlite3.connect(f"file:{MIDOG}?mode=ro", uri=True)
    for table in ("Slides", "Annotations", "Annotations_coordinates", "Annotations_label", "Classes", "Persons", "Log"):
        cols = [r[1] for r in con.execute(f"pragma table_info({table})")]
        assert set(cols) == {r[1] for r in orig.execute(f"pragma table_info({table})")}, table
    # the raters and their votes, agreedClass as stored (not a majority), class 0 for "unknown"
    q = ("select a.guid, a.agreedClass, group_concat(p.name || ':' || l.class, ',') from Annotations a "
         "join Annotations_label l on l.annoId = a.uid join Persons p on p.uid = l.person group by a.uid order by a.guid")
    names = lambda c: {r[0]: r[1] for r in c.execute("select uid, name from Classes")}  # noqa: E731
    def votes(c: sqlite3.Connection) -> dict:
        cls = names(c)
        return {g: (cls.get(agreed, 0), sorted((v.split(":")[0], cls.get(int(v.split(":")[1]), 0)) for v in vs.split(",")))
                for g, agreed, vs in c.execute(q)}
    assert votes(con) == votes(orig)
    assert con.execute("select count(*) from Annotations_label where class = 0").fetchone()[0] == 119


def test_multi_rater_labels_and_agreed_class(tmp_path: Path) -> None:
    repo = repo_with_images_of(tmp_path / "r", "sliderunner", MIDOG)
    porcelain.import_(repo, None, str(MIDOG), create_labels=True)
    anns = [a for img in state(repo).values() for a in img.values()]
    assert len(anns) == 1175
    persons = {v["person"] for (_l, _k, _g, p, _z) in anns for v in p["sliderunner"]["labels"]}
    assert persons == {"CB", "RK", "TD", "RetinaNet"}
    # the label is agreedClass, which is not always the majority of the votes
    disagree = 0
    for label, _k, _g, p, _z in anns:
        classes = [v["class"] for v in p["sliderunner"]["labels"]]
        top = max(set(classes), key=lambda c: (classes.count(c), str(c)))
        disagree += classes.count(top) * 2 > len(classes) and top != label
    assert disagree > 0


def test_column_order_orphans_and_open_polygons(tmp_path: Path) -> None:
    repo = repo_with_images_of(tmp_path / "r", "sliderunner", CMC)
    res = porcelain.import_(repo, None, str(CMC), create_labels=True)
    assert res["skipped"] == {"orphan label rows": 1}
    repo2 = repo_with_images_of(tmp_path / "r2", "sliderunner", DEMO)
    porcelain.import_(repo2, None, str(DEMO), create_labels=True)
    kinds = sorted(k for img in state(repo2).values() for (_l, k, _g, _p, _z) in img.values())
    assert kinds == ["box", "ellipse", "point", "point", "polygon"]


def _db(path: Path, rows: list[tuple], coords: list[tuple], labels: list[tuple] = ()) -> Path:
    """An old-generation database (no guid, deleted only where given), as older SlideRunner wrote."""
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE Slides (uid INTEGER PRIMARY KEY, filename TEXT, width INTEGER, height INTEGER, directory TEXT);
        CREATE TABLE Classes (uid INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE Persons (uid INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE Annotations (uid INTEGER PRIMARY KEY, slide INTEGER, type INTEGER, agreedClass INTEGER,
                                  deleted INTEGER DEFAULT 0);
        CREATE TABLE Annotations_coordinates (uid INTEGER PRIMARY KEY, coordinateX INTEGER, coordinateY INTEGER,
                                  coordinateZ INTEGER DEFAULT 0, slide INTEGER, annoId INTEGER, orderIdx INTEGER);
        CREATE TABLE Annotations_label (uid INTEGER PRIMARY KEY, person INTEGER, class INTEGER, annoId INTEGER);
        INSERT INTO Slides VALUES (1, 'C:\\slides\\s1.svs', 1000, 800, '');
        INSERT INTO Classes VALUES (1, 'Mitosis');
        INSERT INTO Persons VALUES (1, 'A'), (2, 'B');
    """)
    con.executemany("insert into Annotations(uid, slide, type, agreedClass, deleted) values (?, ?, ?, ?, ?)", rows)
    con.executemany("insert into Annotations_coordinates(coordinateX, coordinateY, coordinateZ, slide, annoId, "
                    "orderIdx) values (?, ?, ?, 1, ?, ?)", coords)
    con.executemany("insert into Annotations_label(person, class, annoId) values (?, ?, ?)", labels)
    con.commit()
    con.close()
    return path


def test_types_order_z_deleted_and_unknown(tmp_path: Path) -> None:
    f = _db(tmp_path / "old.sqlite",
            [(1, 1, 4, 0, 0), (2, 1, 5, 1, 0), (3, 1, 6, 1, 0), (4, 1, 3, 1, 1), (5, 1, 3, 1, 0), (6, 1, 255, 1, 0),
             (7, 1, 9, 1, 0)],
            [(10, 20, 0, 1, 1), (100, 100, 0, 2, 1), (120, 110, 0, 2, 2), (None, None, 2, 3, 1),
             (1, 1, 0, 4, 1), (5, 1, 0, 4, 2), (5, 5, 0, 4, 3),
             # orderIdx, not row order, gives the vertex order; the closing vertex repeated; z = 3
             (50, 50, 3, 5, 3), (0, 0, 3, 5, 1), (50, 0, 3, 5, 2), (0, 50, 3, 5, 4), (0, 0, 3, 5, 5)],
            [(1, 1, 2), (2, 0, 2)])
    repo = repo_for(tmp_path / "r", ["s1.svs"], 1000, 800)  # matched by file name, not the author's path
    res = porcelain.import_(repo, None, str(f), create_labels=True)
    assert res["skipped"] == {"annotations of unknown type 255": 1, "annotations of unknown type 9": 1,
                              "soft-deleted annotations": 1}
    anns = {p["sliderunner"]["uid"]: (label, k, g, p, z) for label, k, g, p, z in state(repo)["s1.svs"].values()}
    assert anns[1][:2] == ("unclassified", "point") and anns[1][3]["sliderunner"]["type"] == 4
    assert anns[2][1] == "ellipse" and geometry.bounds("ellipse", anns[2][2]) == (100, 95, 120, 115)
    assert [v["class"] for v in anns[2][3]["sliderunner"]["labels"]] == ["Mitosis", None]  # class 0: unknown
    assert anns[3][1] == "box" and geometry.bounds("box", anns[3][2]) == (0, 0, 1000, 800)
    assert anns[3][3]["image_label"] is True and anns[3][4] == (2, 0)
    # in row order the square would be a bow-tie (and refused as invalid)
    assert geometry.to_geojson("polygon", anns[5][2])["coordinates"] == [[[0, 0], [50, 0], [50, 50], [0, 50], [0, 0]]]
    assert anns[5][4] == (3, 0)
    r2, _ = round_trip(tmp_path, repo, "sliderunner", ".sqlite")
    assert differences(state(r2), state(repo)) == []


def test_bad_database_is_named_and_changes_nothing(tmp_path: Path) -> None:
    f = _db(tmp_path / "bad.sqlite", [(1, 1, 3, 1, 0)], [(0, 0, 0, 1, 1), (5, 5, 0, 1, 2)])
    repo = repo_for(tmp_path / "r", ["s1.svs"], 1000, 800)
    before = repo.working()
    with pytest.raises(InvalidInput) as e:
        porcelain.import_(repo, None, str(f), create_labels=True)
    assert str(f) in str(e.value) and "annotation uid 1" in str(e.value) and "2 vertices" in str(e.value)
    assert repo.working() == before
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"SQLite format 3\0" + b"\0" * 100)
    with pytest.raises(InvalidInput, match="junk.sqlite"):
        porcelain.import_(repo, None, str(junk))
    assert repo.working() == before


def test_streamed_read_slides_without_live_annotations_and_label_rows(tmp_path: Path) -> None:
    """Rows are read in uid order from three cursors side by side (nothing held but a batch): label rows of
    no annotation, before, between and after the annotations, are counted; a second slide whose annotations
    are all soft-deleted needs no image of the repository; the same guid twice is refused with both uids."""
    from exactvc.formats import sliderunner

    f = _db(tmp_path / "two.sqlite", [(2, 1, 1, 1, 0), (5, 1, 1, 1, 0), (9, 2, 1, 1, 1)],
            [(10, 10, 0, 2, 1), (20, 20, 0, 5, 1), (30, 30, 0, 9, 1)],
            [(1, 1, 1), (1, 1, 2), (2, 1, 2), (1, 1, 3), (1, 1, 5), (1, 1, 12)])
    con = sqlite3.connect(f)
    con.execute("insert into Slides values (2, 'other.svs', 10, 10, '')")
    con.commit()
    con.close()
    read = sliderunner.read(f)
    assert read.stream is not None and not any(s.records for s in read.images)
    assert [s.has_records for s in read.images] == [True, False]
    repo = repo_for(tmp_path / "r", ["s1.svs"], 1000, 800)
    res = porcelain.import_(repo, None, str(f), create_labels=True)
    assert res["features"] == 2 and res["skipped"] == {"orphan label rows": 3, "soft-deleted annotations": 1}
    anns = {p["sliderunner"]["uid"]: p["sliderunner"].get("labels") for (_l, _k, _g, p, _z) in
            state(repo)["s1.svs"].values()}
    assert anns == {2: [{"person": "A", "class": "Mitosis"}, {"person": "B", "class": "Mitosis"}],
                    5: [{"person": "A", "class": "Mitosis"}]}
    g = _db(tmp_path / "dup.sqlite", [(1, 1, 1, 1, 0), (2, 1, 1, 1, 0)], [(1, 1, 0, 1, 1), (2, 2, 0, 2, 1)])
    con = sqlite3.connect(g)
    con.execute("alter table Annotations add column guid TEXT")
    con.execute("update Annotations set guid = '0b9f6c55-8a36-4d43-9b1e-59c5b14e1a2c'")
    con.commit()
    con.close()
    before = repo.working()
    with pytest.raises(InvalidInput, match=r"annotation uid 1 and annotation uid 2 have the same id"):
        porcelain.import_(repo, None, str(g), create_labels=True)
    assert repo.working() == before
