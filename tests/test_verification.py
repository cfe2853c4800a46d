"""Verifications (second opinion): versioned in the annotation record, merged per user, filtered on export,
shown in blame; `exact verify` on the command line."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exactvc import porcelain, verification
from exactvc.errors import InvalidInput, NotFound
from exactvc.formats.registry import EXPORT_FORMATS
from exactvc.merge import merge_records
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

from .conftest import run_exact, square

ADA, BEN, CY = "Ada <ada@example.org>", "Ben <ben@example.org>", "Cy <cy@example.org>"


def seeded(path: Path, ids: list[str] | None = None) -> tuple[Repository, list[str]]:
    r = Repository.init(path)
    r.add_image_record(ImageRecord("img", "ab" * 32, 50000, 40000, levels=4, mpp=0.25))
    r.add_label("cell", shape="polygon", color="#ff0000")
    with r.edit("img") as ed:
        out = [ed.add("cell", square(100 * i, 100), id=ids[i] if ids else None) for i in range(3)]
    r.commit("seed", author=ADA)
    return r, out


def tree_id(r: Repository) -> bytes | None:
    return r.tree_of("img", "HEAD")[1]


def test_same_verifications_same_ids_and_the_annotation_keeps_its_id(tmp_path: Path) -> None:
    a, ids = seeded(tmp_path / "a")
    b, _ = seeded(tmp_path / "b", ids)
    assert tree_id(a) == tree_id(b)
    # the same verifications made in another order give the same tree
    verification.verify(a, "img", ids[0], True, "ok", author=ADA, when=1000)
    verification.verify(a, "img", ids[0], False, author=BEN, when=1001)
    verification.verify(b, "img", ids[0], False, author=BEN, when=1001)
    verification.verify(b, "img", ids[0], True, "ok", author=ADA, when=1000)
    assert tree_id(a) == tree_id(b)
    ann = a.annotation("img", ids[0])
    assert ann.id == ids[0] and [v["u"] for v in ann.verifications] == ["Ada", "Ben"]
    assert ann.to_dict()["verifications"][0] == {"user": "Ada", "yes": True, "time": 1000, "comment": "ok"}
    # verifying again replaces the user's entry; it does not add one
    verification.verify(a, "img", ids[0], True, author=BEN, when=1002)
    assert [(v["u"], v["y"]) for v in a.annotation("img", ids[0]).verifications] == [("Ada", True), ("Ben", True)]
    # a relabel or a redraw keeps them (as EXACT does)
    with a.edit("img") as ed:
        ed.update(ids[0], geometry=square(0, 0, 30))
    assert len(a.annotation("img", ids[0], rev=None).verifications) == 2
    fields = porcelain.diff(a, "HEAD~1", "HEAD")["images"]["img"]["changes"][0]["fields"]
    assert fields == ["verifications"]


def test_verify_keeps_uncommitted_edits_uncommitted(tmp_path: Path) -> None:
    r, ids = seeded(tmp_path / "r")
    with r.edit("img") as ed:
        ed.update(ids[1], label="cell", properties={"note": "draft"})
        ed.delete(ids[2])
    res = verification.verify(r, "img", ids[1], True, author=BEN)
    head = {a.id: a for a in r.annotations("img", "HEAD")}
    assert ids[2] in head and head[ids[1]].properties == {} and head[ids[1]].verifications[0]["u"] == "Ben"
    work = {a.id: a for a in r.annotations("img", None)}
    assert ids[2] not in work and work[ids[1]].properties == {"note": "draft"} and work[ids[1]].verifications
    assert r.resolve("HEAD").hex() == res["commit"]
    with pytest.raises(NotFound):
        verification.verify(r, "img", "00000000-0000-0000-0000-000000000000", True, author=BEN)
    with pytest.raises(InvalidInput):
        verification.verify(r, "img", ids[0], True, "x" * 5000, author=BEN)
    assert r.resolve("HEAD").hex() == res["commit"]


def test_concurrent_verifications_merge_without_conflict(tmp_path: Path) -> None:
    r, ids = seeded(tmp_path / "r")
    porcelain.branch_create(r, "ben")
    verification.verify(r, "img", ids[0], True, author=ADA, when=2000)
    verification.verify(r, "img", ids[1], True, author=ADA, when=2000)
    with r.edit("img") as ed:
        ed.update(ids[2], label="cell", properties={"grade": 2})
    r.commit("ada grades", author=ADA)
    porcelain.switch(r, "ben")
    verification.verify(r, "img", ids[0], False, "not a cell", author=BEN, when=2001)
    verification.verify(r, "img", ids[1], True, author=ADA, when=1999)  # the same user, earlier: loses
    verification.verify(r, "img", ids[2], True, author=BEN, when=2002)  # combines with ada's property change
    porcelain.switch(r, "main")
    porcelain.branch_create(r, "ben2", "ben")
    res = porcelain.merge(r, "ben", author=ADA)
    assert res["status"] == "merged" and not res["conflicts"], res
    got = {a.id: a for a in r.annotations("img")}
    assert [(v["u"], v["y"]) for v in got[ids[0]].verifications] == [("Ada", True), ("Ben", False)]
    assert [(v["u"], v["t"]) for v in got[ids[1]].verifications] == [("Ada", 2000)]
    assert got[ids[2]].properties == {"grade": 2} and got[ids[2]].verifications[0]["u"] == "Ben"
    # merging the other way round gives the same annotations (the rule is symmetric)
    porcelain.switch(r, "ben2")
    res2 = porcelain.merge(r, "main~1", author=BEN)
    assert res2["status"] == "merged" and not res2["conflicts"]
    assert r.tree_of("img", "ben2")[1] == r.tree_of("img", "main")[1]


def test_export_min_verifications_in_every_format(tmp_path: Path) -> None:
    r, ids = seeded(tmp_path / "r")
    verification.verify(r, "img", ids[0], True, author=ADA)
    verification.verify(r, "img", ids[0], True, author=BEN)
    verification.verify(r, "img", ids[1], True, author=ADA)
    verification.verify(r, "img", ids[1], False, author=BEN)
    verification.verify(r, "img", ids[2], False, author=CY)
    for fmt in EXPORT_FORMATS:
        counts = {}
        for n in (0, 1, 2, 3):
            buf = io.BytesIO()
            counts[n] = porcelain.export(r, "HEAD", None, fmt, buf, min_verifications=n)
        assert counts == {0: 3, 1: 2, 2: 1, 3: 0}, fmt
    buf = io.BytesIO()
    porcelain.export(r, "HEAD", None, "geojson", buf, min_verifications=2)
    assert [f["id"] for f in json.loads(buf.getvalue())["features"]] == [ids[0]]
    a, b = io.BytesIO(), io.BytesIO()
    porcelain.export(r, "HEAD", None, "geojson", a, min_verifications=1)
    porcelain.export(r, "HEAD", None, "geojson", b, min_verifications=1)
    assert a.getvalue() == b.getvalue()
    with pytest.raises(InvalidInput):
        porcelain.export(r, "HEAD", None, "geojson", io.BytesIO(), min_verifications=-1)


def test_blame_shows_verifications_and_does_not_blame_the_verifier_for_the_annotation(tmp_path: Path) -> None:
    r, ids = seeded(tmp_path / "r")
    seed = r.resolve("HEAD").hex()
    v1 = verification.verify(r, "img", ids[0], True, "fine", author=BEN)["commit"]
    v2 = verification.verify(r, "img", ids[0], False, author=CY)["commit"]
    rows = {row["id"]: row for row in porcelain.blame(r, "img")}
    assert rows[ids[0]]["commit"] == seed and rows[ids[0]]["author"] == ADA
    vs = rows[ids[0]]["verifications"]
    assert [(v["user"], v["yes"], v["commit"], v["author"]) for v in vs] == [("Ben", True, v1, BEN),
                                                                              ("Cy", False, v2, CY)]
    assert "verifications" not in rows[ids[1]]
    hist = porcelain.annotation_log(r, ids[0])
    assert [h["fields"] for h in hist[:2]] == [["verifications"], ["verifications"]]


def test_cli_verify_blame_and_export(tmp_path: Path) -> None:
    r, ids = seeded(tmp_path / "r")
    d = str(r.path)
    out = run_exact("-C", d, "verify", "img", ids[0], "--yes", "--comment", "mitosis, clearly", "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)["exactvc.verify/v1"]
    assert res["verification"]["user"] == "Test" and res["verification"]["comment"] == "mitosis, clearly"
    bl = run_exact("-C", d, "blame", "img", ids[0])
    assert "verified yes by Test" in bl.stdout and res["commit"][:12] in bl.stdout
    for args, code, needle in ((["img", ids[0]], 2, "--yes or --no"),
                               (["img", "nope", "--no"], 5, "not an annotation id"),
                               (["img", "00000000-0000-0000-0000-000000000000", "--no"], 4, "no annotation"),
                               (["other", ids[0], "--no"], 4, "no image")):
        bad = run_exact("-C", d, "verify", *args)
        assert bad.returncode == code and needle in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    ex = run_exact("-C", d, "export", "--min-verifications", "1", "-o", "-")
    assert [f["id"] for f in json.loads(ex.stdout)["features"]] == [ids[0]]
    bad = run_exact("-C", d, "export", "--min-verifications", "-2", "-o", "-")
    assert bad.returncode == 2
    # a bundle carries them: a repository that had only the seed gets the verification
    other = Repository.init(tmp_path / "other")
    assert run_exact("-C", d, "bundle", "create", str(tmp_path / "v.bundle"), "main").returncode == 0
    un = run_exact("-C", str(other.path), "bundle", "unbundle", str(tmp_path / "v.bundle"))
    assert un.returncode == 0, un.stderr
    got = Repository.open(other.path).annotation("img", ids[0], rev="main")
    assert [(v["u"], v["y"], v["c"]) for v in got.verifications] == [("Test", True, "mitosis, clearly")]


_entry = st.builds(lambda u, y, t: verification.entry(u, y, t), st.sampled_from(["ada", "ben", "cy"]), st.booleans(),
                   st.integers(0, 3))
_side = st.lists(_entry, max_size=3).map(lambda es: verification.with_entries(  # as stored: one per user, sorted
    {"g": [0, [1, 1]], "k": "point", "l": "a"}, list({e["u"]: e for e in es}.values())))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(_side, _side, _side)
def test_merge_of_verifications_is_symmetric_and_keeps_one_side_changes(base: Any, ours: Any, theirs: Any) -> None:
    m = verification.merge3(base, ours, theirs)
    assert m == verification.merge3(base, theirs, ours)
    assert len({e["u"] for e in m}) == len(m)
    if ours == base:
        assert m == sorted(verification.entries(theirs), key=lambda e: e["u"])
    got, kind, _fields = merge_records(base, ours, theirs, "field")
    assert kind is None and got is not None and verification.entries(got) == m
