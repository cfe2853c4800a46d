"""The CLI around merges, reverts, labels and imports: refusals in the middle of a merge, duplicate
conflicts, field-wise resolution, reverts, label edits that keep what was not given, duplicate ids in a file.

Every command runs as a real `exact` subprocess on a repository on disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exactvc import porcelain
from exactvc.merge import load_state
from exactvc.repo import Repository

from .conftest import run_exact, square


def ok(*args: str, cwd: Path | None = None) -> str:
    r = run_exact(*args, cwd=cwd)
    assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stderr}{r.stdout}"
    return r.stdout


def js(*args: str) -> Any:
    out = json.loads(ok(*args, "--json"))
    assert len(out) == 1
    return next(iter(out.values()))


def conflicted(repo: Repository) -> tuple[str, str]:
    """main and x relabel one annotation differently; `exact merge x` leaves a conflict. (path, annotation id)"""
    with repo.edit("img") as ed:
        a = ed.add("cell", square(100, 100))
        ed.add("cell", square(300, 300))
    repo.commit("base")
    porcelain.branch_create(repo, "x")
    repo.add_label("tumor", shape="polygon")
    repo.add_label("stroma", shape="polygon")
    with repo.edit("img") as ed:
        ed.update(a, label="tumor")
    repo.commit("ours: tumor")
    porcelain.switch(repo, "x")
    repo.add_label("tumor", shape="polygon")
    repo.add_label("stroma", shape="polygon")
    with repo.edit("img") as ed:
        ed.update(a, label="stroma")
    repo.commit("theirs: stroma")
    porcelain.switch(repo, "main")
    d = str(repo.path)
    r = run_exact("-C", d, "merge", "x")
    assert r.returncode == 6, r.stderr
    return d, a


def test_commit_switch_checkout_revert_refused_during_a_merge(repo: Repository) -> None:
    d, _a = conflicted(repo)
    head = repo.resolve("HEAD")
    ok("-C", d, "branch", "other")
    for args in (["commit", "-m", "half merged"], ["switch", "-f", "other"], ["switch", "other"],
                 ["checkout", "-f", "HEAD~1"], ["checkout", "other"], ["revert", "HEAD"]):
        r = run_exact("-C", d, *args)
        assert r.returncode == 6, (args, r.stderr)
        assert r.stderr.startswith("error: ") and "--continue" in r.stderr and "--abort" in r.stderr, r.stderr
    again = Repository.open(d)
    assert again.resolve("HEAD") == head and again.current_branch() == "main"
    assert load_state(again) is not None  # the merge is still there to finish
    ok("-C", d, "resolve", "--image", "img", "--ours")
    ok("-C", d, "merge", "--continue")
    assert len(Repository.open(d).commit_object(Repository.open(d).resolve("HEAD")).parents) == 2


def test_resolve_needs_every_conflicting_field(repo: Repository) -> None:
    d, a = conflicted(repo)
    cf = js("-C", d, "conflicts")["conflicts"]
    assert [c["fields"] for c in cf] == [["label"]]
    r = run_exact("-C", d, "resolve", f"img:{a}", "--field", "geometry=theirs")
    assert r.returncode == 2 and "label" in r.stderr and "not decided" in r.stderr, r.stderr
    assert len(js("-C", d, "conflicts")["conflicts"]) == 1  # still in conflict
    res = js("-C", d, "resolve", f"img:{a}", "--field", "label=theirs")
    assert res["remaining"] == 0
    ok("-C", d, "merge", "--continue")
    assert Repository.open(d).annotation("img", a).label == "stroma"


def test_merge_duplicates_as_conflicts(repo: Repository) -> None:
    with repo.edit("img") as ed:
        ed.add("cell", square(10, 10))
    repo.commit("base")
    porcelain.branch_create(repo, "y")
    with repo.edit("img") as ed:
        ed.add("cell", square(1000, 1000, 20))
    repo.commit("ours adds")
    porcelain.switch(repo, "y")
    with repo.edit("img") as ed:
        ed.add("cell", square(1002, 1001, 20))  # the same cell, drawn again
        ed.add("cell", square(5000, 5000))
    repo.commit("theirs adds")
    porcelain.switch(repo, "main")
    d = str(repo.path)
    r = run_exact("-C", d, "merge", "y", "--duplicates=conflict")
    assert r.returncode == 6, r.stderr  # conflicts, not a corrupt repository (8)
    cf = js("-C", d, "conflicts")["conflicts"]
    assert [c["kind"] for c in cf] == ["duplicate"] and cf[0]["theirs"] is not None
    ok("-C", d, "resolve", "--image", "img", "--ours")
    ok("-C", d, "merge", "--continue")
    assert Repository.open(d).count("img") == 3
    assert js("-C", d, "fsck")["ok"] is True


def test_revert_reports_the_reverted_commit_and_refuses_empty(repo: Repository) -> None:
    with repo.edit("img") as ed:
        a = ed.add("cell", square(1, 1))
    repo.commit("one")
    with repo.edit("img") as ed:
        ed.add("cell", square(500, 500))
    target = repo.commit("two")
    with repo.edit("img") as ed:
        ed.update(a, properties={"n": 1})
    three = repo.commit("three")
    d = str(repo.path)
    assert f"Reverted {target[:12]} in " in ok("-C", d, "revert", "HEAD~1")
    head = Repository.open(d).resolve("HEAD")
    r = run_exact("-C", d, "revert", target)  # already undone: nothing to revert
    assert r.returncode == 1 and "nothing to revert" in r.stderr, r.stderr
    assert Repository.open(d).resolve("HEAD") == head
    res = js("-C", d, "revert", "HEAD~1")  # HEAD~1 is "three" now
    assert res["reverted"] == three and res["commit"] != head.hex()
    assert Repository.open(d).annotation("img", a).properties == {}


def test_label_add_keeps_what_is_not_given(repo: Repository) -> None:
    d = str(repo.path)
    ok("-C", d, "label", "add", "mitosis", "--order", "7")
    lb = {x["name"]: x for x in js("-C", d, "label", "ls")["labels"]}["mitosis"]
    assert (lb["shape"], lb["color"], lb["key"], lb["size"], lb["order"]) == ("point", "#00ff00", "1", [50, 50], 7)
    ok("-C", d, "label", "set", "mitosis", "--color", "#123456")
    lb = {x["name"]: x for x in js("-C", d, "label", "ls")["labels"]}["mitosis"]
    assert (lb["color"], lb["key"], lb["size"]) == ("#123456", "1", [50, 50])
    r = run_exact("-C", d, "label", "set", "nope", "--color", "#123456")
    assert r.returncode == 4 and "no label" in r.stderr
    r = run_exact("-C", d, "label", "add", "fresh")
    assert r.returncode == 2 and "--shape" in r.stderr


def test_label_shape_change_that_annotations_do_not_fit(repo: Repository, tmp_path: Path) -> None:
    with repo.edit("img") as ed:
        a = ed.add("cell", square(10, 10))
    repo.commit("a cell")
    d = str(repo.path)
    r = run_exact("-C", d, "label", "add", "cell", "--shape", "point")
    assert r.returncode == 6 and a in r.stderr and "--force" in r.stderr, r.stderr
    assert {x["name"]: x for x in js("-C", d, "label", "ls")["labels"]}["cell"]["shape"] == "polygon"
    ok("-C", d, "label", "add", "cell", "--shape", "multipolygon")  # polygons fit a multipolygon label
    res = js("-C", d, "label", "add", "cell", "--shape", "box", "--force")
    assert res["misfits"] == [{"image": "img", "id": a, "kind": "polygon"}]
    # a label made by --create-labels takes the kinds its file uses, and the file imports again
    out = tmp_path / "pts.geojson"
    out.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": g, "properties": {"classification": {"name": "blob"}}}
        for g in ({"type": "Point", "coordinates": [5, 5]},
                  {"type": "MultiPoint", "coordinates": [[7, 7], [9, 9]]})]}))
    ok("-C", d, "import", str(out), "--image", "img", "--create-labels")
    assert {x["name"]: x for x in js("-C", d, "label", "ls")["labels"]}["blob"]["shape"] == "point"
    ok("-C", d, "import", str(out), "--image", "img")


@pytest.mark.parametrize("ids", [("same", "same"), ("same", "other", "same")])
def test_import_refuses_two_features_with_one_id(repo: Repository, tmp_path: Path, ids: tuple[str, ...]) -> None:
    repo.commit("image and labels")
    uid = {"same": "6f1c1f0e-3f4e-4d4a-9a53-0c7d5a1d2b01", "other": "6f1c1f0e-3f4e-4d4a-9a53-0c7d5a1d2b02"}
    f = tmp_path / "dup.geojson"
    f.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": uid[k], "geometry": square(10 + 50 * i, 10),
         "properties": {"classification": {"name": "cell"}}} for i, k in enumerate(ids)]}))
    d = str(repo.path)
    r = run_exact("-C", d, "import", str(f), "--image", "img")
    last = len(ids) - 1
    assert r.returncode == 5 and uid["same"] in r.stderr and f"features 0 and {last}" in r.stderr, r.stderr
    assert js("-C", d, "status")["clean"] is True
