"""Acceptance 1 of issue 12: review across institutions with two real servers and real clients.

Institution A holds the project; B has a copy on its own server. B's annotator clones from B, relabels
50 annotations, redraws 10 and adds 20 on a branch, pushes it to A (where they have the annotate role)
and opens a pull request there with `exact pr create`; A's maintainer comments, rejects 5 changes,
approves; a new push makes the approval stale; A approves again and merges. The same flow through a
bundle for an air-gapped B.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exactvc.access import AccessStore
from exactvc.repo import Repository

from .conftest import square
from .server_fixtures import ServerProcess, add_squares, exact, fsck_clean, make_repo, ok, users

IMAGE = "slide-1"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[str], ServerProcess]]:
    started: list[ServerProcess] = []

    def start(name: str) -> ServerProcess:
        s = ServerProcess(tmp_path / name, tmp_path / f"{name}.log")
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def _j(out: str, kind: str = "pr") -> Any:
    return json.loads(out)[f"exactvc.{kind}/v1"]


def _institutions(tmp_path: Path, serve: Callable[[str], ServerProcess]) -> dict[str, Any]:
    ra, rb = tmp_path / "A", tmp_path / "B"
    repo = make_repo(ra / "proj", IMAGE)
    repo.add_label("tumor", shape="polygon", color="#0000ff")
    ids = add_squares(repo, IMAGE, 200)
    repo.commit("200 cells", author="seed <s@x>")
    ta = users(ra, {"amy": "maintain", "max": "maintain", "bob": "annotate", "root": "admin"}, "proj")
    AccessStore(ra).set_settings("proj", required_approvals=1)
    a = serve("A")
    ok(exact("clone", a.repo_url("proj"), str(rb / "proj"), token=ta["root"]))
    tb = users(rb, {"bob": "annotate"}, "proj")
    b = serve("B")
    ok(exact("clone", b.repo_url("proj"), str(tmp_path / "bob"), token=tb["bob"]))
    ok(exact("clone", a.repo_url("proj"), str(tmp_path / "amy"), token=ta["amy"]))
    return {"a": a, "b": b, "ta": ta, "tb": tb, "ids": sorted(ids), "bob": tmp_path / "bob",
            "amy": tmp_path / "amy", "ra": ra, "rb": rb}


def _bobs_work(w: dict[str, Any]) -> dict[str, list[str]]:
    """50 relabels, 10 redraws, 20 additions on users/bob/review in bob's clone (committed)."""
    bob = w["bob"]
    ok(exact("-C", str(bob), "switch", "-c", "users/bob/review"))
    ids = w["ids"]
    repo = Repository.open(bob)
    with repo.edit(IMAGE) as ed:
        for i in ids[:50]:
            ed.update(i, label="tumor")
        for k, i in enumerate(ids[50:60]):
            ed.update(i, geometry=square(20 * (k % 10) + 2, 400 + 2, 12))
        added = [ed.add("cell", square(6000 + 30 * k, 6000)) for k in range(20)]
    ok(exact("-C", str(bob), "commit", "-m", "Relabel tumour cells, redraw, add"))
    return {"relabelled": ids[:50], "redrawn": ids[50:60], "added": added}


def _annotations(path: Path, rev: str) -> dict[str, Any]:
    return {a.id: a.to_dict() for a in Repository.open(path).annotations(IMAGE, rev)}


def _expected(bob: Path, base: str, head: str, rejected: list[str]) -> dict[str, Any]:
    """The target after the merge: the head's annotations, each rejected one as it was at the base."""
    old, new = _annotations(bob, base), _annotations(bob, head)
    out = dict(new)
    for r in rejected:
        if r in old:
            out[r] = old[r]
        else:
            out.pop(r, None)
    return out


def test_review_across_institutions(tmp_path: Path, serve: Callable[[str], ServerProcess]) -> None:
    w = _institutions(tmp_path, serve)
    bob, amy, ta = w["bob"], w["amy"], w["ta"]
    work = _bobs_work(w)
    base = Repository.open(bob).refs.read("heads/main")
    assert base is not None
    ok(exact("-C", str(bob), "remote", "add", "a", w["a"].repo_url("proj")))
    ok(exact("-C", str(bob), "push", "a", "users/bob/review", token=ta["bob"]))
    pr = _j(ok(exact("-C", str(bob), "pr", "create", "a", "--title", "Tumour cells", "--body", "from B",
                     "--json", token=ta["bob"])))
    n = pr["number"]
    assert pr["author"] == "bob" and pr["summary"]["counts"] == {"added": 20, "modified": 60, "deleted": 0,
                                                                  "property_only": 0}
    r = exact("-C", str(bob), "pr", "review", str(n), "-r", "a", "--approve", token=ta["bob"])
    assert r.returncode == 9 and "error:" in r.stderr  # annotators do not approve, nor anyone their own
    # A's checks ran on the revision
    shown = _j(ok(exact("-C", str(amy), "pr", "show", str(n), "--json", token=ta["amy"])))
    assert shown["checks"]["status"] == "passed" and shown["checks"]["head"] == pr["head"]
    assert shown["merge_preview"]["mergeable"] is False  # no approval yet
    # A's maintainer comments on two annotations, rejects five changes, approves
    c1 = _j(ok(exact("-C", str(amy), "pr", "comment", str(n), "--annotation", work["relabelled"][0], "-m",
                     "not a tumour cell", "--json", token=ta["amy"])))
    _j(ok(exact("-C", str(amy), "pr", "comment", str(n), "--annotation", work["redrawn"][0], "-m",
                "outline too wide", "--json", token=ta["amy"])))
    assert c1["anchor"]["annotation"] == work["relabelled"][0] and c1["anchor"]["geometry"]["type"] == "Polygon"
    rejected = [work["relabelled"][1], work["relabelled"][2], work["redrawn"][1], work["redrawn"][2],
                work["added"][0]]
    d = _j(ok(exact("-C", str(amy), "pr", "decide", str(n), *rejected, "--reject", "--json", token=ta["amy"])))
    assert d["rejected"] == 5 and d["undecided"] == 75
    ok(exact("-C", str(amy), "pr", "review", str(n), "--approve", "-m", "good", token=ta["amy"]))
    # bob pushes again (relabels the commented annotation back): the approval is stale, decisions stay
    repo = Repository.open(bob)
    with repo.edit(IMAGE) as ed:
        ed.update(work["relabelled"][0], label="cell")
        ed.update(w["ids"][150], label="tumor")
    ok(exact("-C", str(bob), "commit", "-m", "Fix after review"))
    ok(exact("-C", str(bob), "push", "a", "users/bob/review", token=ta["bob"]))
    shown = _j(ok(exact("-C", str(amy), "pr", "show", str(n), "--json", token=ta["amy"])))
    assert shown["approvals"]["stale"] == ["amy"] and shown["approvals"]["valid"] == []
    assert len(shown["revisions"]) == 2
    r = exact("-C", str(amy), "pr", "merge", str(n), token=ta["amy"])
    assert r.returncode == 6 and "approval" in r.stderr, r.stderr
    comments = _j(ok(exact("-C", str(amy), "pr", "show", str(n), "--json", token=ta["amy"])))
    assert comments["summary"]["total"] == 80  # 49 + 1 relabels, 10 redraws, 20 added
    from .server_fixtures import request

    cs = request("GET", f"{w['a'].url}/api/v1/repos/proj/pulls/{n}/comments", token=ta["amy"]).json()["comments"]
    assert [c["outdated"] for c in cs] == [True, False]
    dec = request("GET", f"{w['a'].url}/api/v1/repos/proj/pulls/{n}/decisions", token=ta["amy"]).json()
    assert dec["rejected"] == 5
    ok(exact("-C", str(amy), "pr", "review", str(n), "--approve", "-m", "still good", token=ta["amy"]))
    res = _j(ok(exact("-C", str(amy), "pr", "merge", str(n), "--json", token=ta["amy"])))
    assert res["rejected"] == 5 and res["applied"] == 75
    head = Repository.open(bob).refs.read("heads/users/bob/review")
    assert head is not None
    # the target holds exactly the accepted changes, annotation by annotation
    got = _annotations(w["ra"] / "proj", "main")
    assert got == _expected(bob, base.hex(), head.hex(), rejected)
    # history: the rejection commit on top of the source, then the merge
    ra = Repository.open(w["ra"] / "proj")
    mc = ra.commit_object(bytes.fromhex(res["merge_commit"]))
    assert mc.parents == (base, bytes.fromhex(res["review_commit"]))
    rc = ra.commit_object(bytes.fromhex(res["review_commit"]))
    assert rc.parents == (head,) and rc.message.startswith(f"Review of pull request #{n}: 5 changes rejected")
    assert all(x in rc.message for x in rejected)
    # pr list and checkout from A, B fetches the result; every repository is fsck-clean
    lst = _j(ok(exact("-C", str(amy), "pr", "list", "--state", "merged", "--json", token=ta["amy"])))
    assert [p["number"] for p in lst] == [n]
    ok(exact("-C", str(amy), "pr", "checkout", str(n), token=ta["amy"]))
    assert Repository.open(amy).current_branch() == f"pr/{n}"
    ag = request("GET", f"{w['a'].url}/api/v1/repos/proj/pulls/{n}/agreement", token=ta["amy"]).json()
    assert ag["rejected"] == 5 and ag["relabel_confusion"]["cell"]["tumor"]["rejected"] == 2
    for p in (w["ra"] / "proj", w["rb"] / "proj", bob, amy):
        fsck_clean(p)


def test_review_through_a_bundle(tmp_path: Path, serve: Callable[[str], ServerProcess]) -> None:
    w = _institutions(tmp_path, serve)
    bob, amy, ta = w["bob"], w["amy"], w["ta"]
    work = _bobs_work(w)
    base = Repository.open(bob).refs.read("heads/main")
    assert base is not None
    f = tmp_path / "review.bundle"
    made = _j(ok(exact("-C", str(bob), "bundle", "create", str(f), "main..users/bob/review", "--json")), "bundle")
    assert list(made["refs"]) == ["users/bob/review"] and made["prerequisites"] == [base.hex()]
    # carried to A: checked against a clone of A, then uploaded by a maintainer
    v = _j(ok(exact("-C", str(amy), "bundle", "verify", str(f), "--json")), "bundle")
    assert v["ok"] is True and v["new"] > 0
    forged = tmp_path / "forged.bundle"
    data = f.read_bytes()
    forged.write_bytes(data[:-100] + bytes(b ^ 0xFF for b in data[-100:-60]) + data[-60:])
    r = exact("-C", str(amy), "bundle", "verify", str(forged))
    assert r.returncode == 5 and "error:" in r.stderr
    r = exact("-C", str(amy), "bundle", "upload", str(forged), "--title", "x", token=ta["max"])
    assert r.returncode == 5, r.stderr
    up = _j(ok(exact("-C", str(amy), "bundle", "upload", str(f), "--title", "From B (air-gapped)", "--json",
                     token=ta["max"])), "bundle")
    n = up["pull"]["number"]
    assert up["branch"] == "bundles/users/bob/review" and up["pull"]["summary"]["total"] == 80
    rejected = work["added"][:3] + work["relabelled"][:2]
    ok(exact("-C", str(amy), "pr", "decide", str(n), *rejected, "--reject", token=ta["amy"]))
    ok(exact("-C", str(amy), "pr", "review", str(n), "--approve", token=ta["amy"]))
    res = _j(ok(exact("-C", str(amy), "pr", "merge", str(n), "--json", token=ta["amy"])))
    assert res["rejected"] == 5
    head = Repository.open(bob).refs.read("heads/users/bob/review")
    assert head is not None
    assert _annotations(w["ra"] / "proj", "main") == _expected(bob, base.hex(), head.hex(), rejected)
    # and back: a bundle of A's main unbundles into B's copy
    back = tmp_path / "back.bundle"
    ok(exact("-C", str(amy), "fetch", token=ta["amy"]))
    ok(exact("-C", str(amy), "branch", "merged", "origin/main"))
    ok(exact("-C", str(amy), "bundle", "create", str(back), f"{base.hex()}..merged"))
    u = _j(ok(exact("-C", str(bob), "bundle", "unbundle", str(back), "--json")), "bundle")
    assert u["updated"] == {"merged": res["merge_commit"]}
    for p in (w["ra"] / "proj", bob, amy):
        fsck_clean(p)
