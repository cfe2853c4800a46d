"""Pull requests on one real server (waitress in a thread): the role matrix and every refusal of
acceptance point 3 (nothing changes after a refusal), the diff endpoint and the geometric comparison."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exactvc import bundle
from exactvc.access import AccessStore
from exactvc.repo import Repository

from .conftest import square
from .server_fixtures import (
    ThreadServer,
    add_squares,
    make_repo,
    ref_files,
    repo_files,
    request,
    thread_server,
    users,
)

IMAGE = "slide-1"


@dataclass
class World:
    srv: ThreadServer
    root: Path
    tok: dict[str, str]
    ids: list[str]

    def call(self, method: str, path: str, body: Any = None, who: str = "amy") -> Any:
        return request(method, f"{self.srv.url}/api/v1/repos/proj{path}", body, token=self.tok[who])


def _branch(root: Path, branch: str, ids: list[str], extra: list[dict[str, Any]] | None = None) -> str:
    """bob's branch on the server: relabel ids[:6], redraw ids[6:8], add 3 squares (+ extra creations)."""
    repo = Repository.open(root / "proj")
    from exactvc.history import commit_changes

    main = repo.refs.read("heads/main")
    create = [{"label": "cell", "geometry": square(5000 + 40 * i, 5000)} for i in range(3)] + (extra or [])
    update = [{"id": i, "label": "tumor"} for i in ids[:6]] + [
        {"id": i, "geometry": square(3000 + 30 * k, 3000, 12)} for k, i in enumerate(ids[6:8])]
    cid, _ = commit_changes(repo, branch, None, IMAGE, "bob's review", "bob <bob@x>", create=create,
                            update=update, start=main.hex() if main else None)
    return cid.hex()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    root = tmp_path / "root"
    repo = make_repo(root / "proj", IMAGE)
    repo.add_label("tumor", shape="polygon", color="#0000ff")
    ids = add_squares(repo, IMAGE, 40)
    repo.commit("cells", author="seed <s@x>")
    tok = users(root, {"amy": "maintain", "bob": "annotate", "rita": "read", "root": "admin"}, "proj")
    with thread_server(root) as srv:
        yield World(srv, root, tok, sorted(ids))


def _open(w: World, branch: str = "users/bob/r", extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    _branch(w.root, branch, w.ids, extra)
    rep = w.call("POST", "/pulls", {"title": "Relabel", "source": branch, "target": "main"}, who="bob")
    assert rep.status == 201, rep.body
    pr: dict[str, Any] = rep.json()
    return pr


def test_pull_request_lifecycle_and_role_matrix(world: World) -> None:
    w = world
    pr = _open(w)
    n = pr["number"]
    assert pr["state"] == "open" and pr["author"] == "bob"
    assert pr["summary"]["counts"] == {"added": 3, "modified": 8, "deleted": 0, "property_only": 0}
    assert pr["summary"]["relabels"] == [{"old": "cell", "new": "tumor", "count": 6}]
    # read users see and comment, but may not open, decide or approve
    assert w.call("GET", "/pulls?state=open", who="rita").json()["pulls"][0]["number"] == n
    assert w.call("POST", "/pulls", {"title": "x", "source": "users/bob/r"}, who="rita").status == 403
    c = w.call("POST", f"/pulls/{n}/comments", {"body": "looks right", "annotation": w.ids[0],
                                                "viewport": [0, 0, 100, 100]}, who="rita")
    assert c.status == 201 and c.json()["anchor"]["label"] == "tumor", c.body
    rep = w.call("POST", f"/pulls/{n}/decisions", {"decision": "reject", "ids": [w.ids[0]]}, who="rita")
    assert rep.status == 403 and rep.error()["type"] == "forbidden"
    assert w.call("GET", f"/pulls/{n}/decisions").json()["rejected"] == 0
    assert w.call("POST", f"/pulls/{n}/reviews", {"kind": "approve"}, who="rita").status == 403
    # the author cannot approve their own pull request, even as a maintainer
    AccessStore(w.root).grant("proj", "bob", "maintain")
    rep = w.call("POST", f"/pulls/{n}/reviews", {"kind": "approve"}, who="bob")
    assert rep.status == 403 and "own" in rep.error()["message"]
    AccessStore(w.root).grant("proj", "bob", "annotate")
    # decisions on annotations the pull request does not change: refused, nothing recorded
    rep = w.call("POST", f"/pulls/{n}/decisions", {"decision": "reject", "ids": [w.ids[30]]})
    assert rep.status == 422 and "not changed" in rep.error()["message"]
    assert w.call("GET", f"/pulls/{n}/decisions").json()["decisions"] == []
    # changes, paged and by bbox
    page1 = w.call("GET", f"/pulls/{n}/changes?limit=5").json()
    assert len(page1["changes"]) == 5 and page1["next_cursor"] and page1["total"] == 11
    page2 = w.call("GET", f"/pulls/{n}/changes?limit=5&cursor={page1['next_cursor']}").json()
    assert {c["id"] for c in page1["changes"]}.isdisjoint({c["id"] for c in page2["changes"]})
    boxed = w.call("GET", f"/pulls/{n}/changes?bbox=4990,4990,5200,5020").json()["changes"]
    assert {c["change"] for c in boxed} == {"added"} and len(boxed) == 3
    # a required approval into the protected main: merging is refused until it is there
    assert w.call("PUT", "/settings", {"required_approvals": 1}, who="root").status == 200
    assert w.call("GET", "", who="rita").json()["settings"]["required_approvals"] == 1
    before = ref_files(w.root / "proj")
    rep = w.call("POST", f"/pulls/{n}/merge", {})
    assert rep.status == 409 and rep.error()["type"] == "not_mergeable" and "approval" in rep.error()["message"]
    assert ref_files(w.root / "proj") == before
    assert w.call("POST", f"/pulls/{n}/reviews", {"kind": "approve", "body": "ok"}).status == 201
    pv = w.call("GET", f"/pulls/{n}/merge").json()
    assert pv["mergeable"] is True and pv["conflicts"] == [], pv
    # reject one relabel by id, all redraws by bbox; merge
    assert w.call("POST", f"/pulls/{n}/decisions", {"decision": "reject", "ids": [w.ids[1]]}).json()["rejected"] == 1
    got = w.call("POST", f"/pulls/{n}/decisions", {"decision": "reject", "bbox": [2990, 2990, 3100, 3020]}).json()
    assert got["rejected"] == 3, got
    rep = w.call("POST", f"/pulls/{n}/merge", {})
    assert rep.status == 200, rep.body
    res = rep.json()
    assert res["rejected"] == 3 and res["applied"] == 8
    repo = Repository.open(w.root / "proj")
    main = repo.refs.read("heads/main")
    assert main is not None and main.hex() == res["merge_commit"]
    assert {a.id: a.label for a in repo.annotations(IMAGE)}[w.ids[1]] == "cell"
    assert {a.id: a.label for a in repo.annotations(IMAGE)}[w.ids[2]] == "tumor"
    assert w.call("GET", f"/pulls/{n}", who="rita").json()["state"] == "merged"
    ag = w.call("GET", f"/pulls/{n}/agreement").json()
    assert ag["rejected"] == 3 and ag["accepted_share"] == round(8 / 11, 4)
    assert ag["relabel_confusion"]["cell"]["tumor"] == {"proposed": 6, "rejected": 1}


def test_failing_check_blocks_until_a_maintainer_overrides(world: World) -> None:
    w = world
    # a duplicate: the same square as an existing cell
    pr = _open(w, extra=[{"label": "cell", "geometry": square(780, 0)}])
    n = pr["number"]
    ck = w.call("GET", f"/pulls/{n}/checks").json()
    assert ck["status"] == "failed"
    dup = next(c for c in ck["checks"] if c["name"] == "duplicates")
    assert dup["count"] == 1 and dup["problems"][0]["label"] == "cell"
    before = repo_files(w.root / "proj")
    rep = w.call("POST", f"/pulls/{n}/merge", {})
    assert rep.status == 409 and "check" in rep.error()["message"]
    assert repo_files(w.root / "proj") == before
    rep = w.call("POST", f"/pulls/{n}/merge", {"override_checks": True})
    assert rep.status == 200, rep.body
    assert w.call("GET", f"/pulls/{n}/checks").json()["overridden_by"] == "amy"  # recorded


def test_image_changes_and_compare(world: World) -> None:
    w = world
    head = _branch(w.root, "users/bob/x", w.ids)
    rep = w.call("GET", f"/images/{IMAGE}/changes?old=main&new={head}&limit=2", who="rita")
    body = rep.json()
    assert rep.status == 200 and body["total"] == 11 and len(body["changes"]) == 2 and body["next_cursor"]
    assert body["counts"]["modified"] == 8
    ch = w.call("GET", f"/images/{IMAGE}/changes?old=main&new={head}&kind=modified&label=tumor").json()["changes"]
    assert len(ch) == 6 and all(c["label"] == {"old": "cell", "new": "tumor"} for c in ch)
    cmp = w.call("GET", f"/images/{IMAGE}/compare?a=main&b={head}", who="rita").json()
    assert cmp["total"]["matched"] == 32 and len(cmp["only_in_b"]) == 11 and len(cmp["only_in_a"]) == 8
    # the same comparison paged for the viewer: every entry once over the pages, with geometries
    seen: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(20):
        pg = w.call("GET", f"/images/{IMAGE}/matches?a=main&b={head}&limit=7&cursor={cursor}").json()
        assert pg["labels"] == cmp["labels"] and pg["total"] == cmp["total"]
        seen += pg["items"]
        if pg["next_cursor"] is None:
            break
        cursor = pg["next_cursor"]
    assert pg["counts"] == {"matched": 32, "only_in_a": 8, "only_in_b": 11} and len(seen) == 51
    assert {(x["a"]["id"], x["b"]["id"]) for x in seen if x["status"] == "matched"} == {
        (p["a"], p["b"]) for p in cmp["matched"]}
    assert sorted(x["a"]["id"] for x in seen if x["status"] == "only_in_a") == cmp["only_in_a"]
    assert sorted(x["b"]["id"] for x in seen if x["status"] == "only_in_b") == cmp["only_in_b"]
    # the three squares bob added at (5000..5090, 5000): only in B, and alone in that window
    win = w.call("GET", f"/images/{IMAGE}/matches?a=main&b={head}&bbox=4990,4990,5200,5020").json()["items"]
    assert [x["status"] for x in win] == ["only_in_b"] * 3 and win[0]["b"]["geometry"]["type"] == "Polygon"
    assert w.call("GET", f"/images/{IMAGE}/matches?a=main&b={head}&status=nope").status == 422
    assert w.call("GET", f"/images/{IMAGE}/matches?a=main&b={head}&cursor=x").status == 422
    assert w.call("GET", f"/images/{IMAGE}/changes?old=main").status == 422


def test_forged_bundle_changes_nothing(world: World, tmp_path: Path) -> None:
    w = world
    clone = tmp_path / "clone"
    src = Repository.open(w.root / "proj")
    _branch(w.root, "users/bob/b", w.ids)
    path = tmp_path / "b.bundle"
    bundle.create(src, path, ["main..users/bob/b"])
    # take the branch away again: the server must learn it from the bundle
    tipb = src.refs.read("heads/users/bob/b")
    src.refs.cas("heads/users/bob/b", tipb, None, "t", "drop")
    data = path.read_bytes()
    before = repo_files(w.root / "proj")
    for bad in (data[:-40], data[:200] + bytes([data[200] ^ 1]) + data[201:], b"EXBNDL1\n" + data[8:20]):
        rep = request("POST", f"{w.srv.url}/api/v1/repos/proj/bundles?title=x", bad, token=w.tok["amy"])
        assert rep.status in (409, 422), rep.body
        assert rep.error()["type"] in ("bad_stream", "missing_reference", "invalid_object"), rep.body
        assert repo_files(w.root / "proj") == before
    assert request("POST", f"{w.srv.url}/api/v1/repos/proj/bundles", data, token=w.tok["bob"]).status == 403
    rep = request("POST", f"{w.srv.url}/api/v1/repos/proj/bundles?title=From%20B", data, token=w.tok["amy"])
    assert rep.status == 201, rep.body
    assert rep.json()["pull"]["summary"]["total"] == 11
    del clone


def test_conflicts_drafts_threads_and_lapsing_decisions(world: World) -> None:
    w = world
    from exactvc.history import commit_changes

    repo = Repository.open(w.root / "proj")
    _branch(w.root, "users/bob/c", w.ids)
    rep = w.call("POST", "/pulls", {"title": "Draft", "source": "users/bob/c", "draft": True}, who="bob")
    assert rep.status == 201 and rep.json()["state"] == "draft"
    n = rep.json()["number"]
    dup = w.call("POST", "/pulls", {"title": "again", "source": "users/bob/c"}, who="bob")
    assert dup.status == 409 and dup.error()["type"] == "already_exists"
    assert w.call("POST", f"/pulls/{n}/reviews", {"kind": "approve"}).status == 201
    rep = w.call("POST", f"/pulls/{n}/merge", {})
    assert rep.status == 409 and "draft" in rep.error()["message"]
    # only the author or a maintainer changes it
    assert w.call("PATCH", f"/pulls/{n}", {"state": "open"}, who="rita").status == 403
    assert w.call("PATCH", f"/pulls/{n}", {"state": "open", "title": "Ready"}, who="bob").json()["title"] == "Ready"
    # a thread: comment, reply, resolve
    c = w.call("POST", f"/pulls/{n}/comments", {"body": "why?"}, who="rita").json()
    w.call("POST", f"/pulls/{n}/comments", {"body": "because", "reply_to": c["id"]}, who="bob")
    got = w.call("PATCH", f"/pulls/{n}/comments/{c['id']}", {"resolved": True}, who="rita").json()["comments"]
    assert [x["thread"] for x in got] == [c["id"], c["id"]] and all(x["resolved"] for x in got)
    # decisions: one on an annotation bob changes again lapses, the other survives the push
    w.call("POST", f"/pulls/{n}/decisions", {"decision": "reject", "ids": [w.ids[0], w.ids[1]]})
    tip = repo.refs.read("heads/users/bob/c")
    commit_changes(repo, "users/bob/c", tip, IMAGE, "again", "bob <b@x>",
                   update=[{"id": w.ids[0], "label": "cell", "geometry": square(1, 1, 9)}])
    d = w.call("GET", f"/pulls/{n}/decisions").json()
    assert [x["id"] for x in d["decisions"]] == [w.ids[1]]
    # main moves: the same annotation redrawn differently there, another deleted -> conflicts, resolved
    commit_changes(repo, "main", repo.refs.read("heads/main"), IMAGE, "on main", "amy <a@x>",
                   update=[{"id": w.ids[7], "geometry": square(700, 700, 11)}], delete=[w.ids[5]])
    pv = w.call("GET", f"/pulls/{n}/merge").json()
    assert pv["conflicts"], pv
    kinds = {c["id"]: c["kind"] for c in pv["conflicts"]}
    assert kinds == {w.ids[7]: "modify/modify", w.ids[5]: "delete/modify"}, kinds
    w.call("POST", f"/pulls/{n}/reviews", {"kind": "approve"})
    before = ref_files(w.root / "proj")
    rep = w.call("POST", f"/pulls/{n}/merge", {})
    assert rep.status == 409 and rep.error()["type"] == "not_mergeable" and "unresolved" in rep.error()["message"]
    assert ref_files(w.root / "proj") == before
    rep = w.call("POST", f"/pulls/{n}/merge", {"resolutions": [{"side": "ours", "ids": [w.ids[7]]},
                                                                {"side": "theirs"}]})
    assert rep.status == 200, rep.body
    assert rep.json()["conflicts_resolved"] == len(pv["conflicts"])
    ann = {a.id: a for a in Repository.open(w.root / "proj").annotations(IMAGE)}
    assert ann[w.ids[5]].label == "tumor"  # theirs: bob's relabel kept
    assert ann[w.ids[7]].geojson == square(700, 700, 11)  # ours: main's outline
    ag = w.call("GET", f"/pulls/{n}/agreement").json()
    corrected = {x["id"]: x["iou"] for x in ag["corrected_geometry"]["annotations"]}
    assert set(corrected) == {w.ids[0], w.ids[7]} and all(0 <= v < 1 for v in corrected.values()), corrected


def test_merge_preview_applies_the_rejections(world: World) -> None:
    """The preview is what merging produces: rejecting the changes that conflict with the target removes
    the conflicts from the preview, and the merge then needs no resolutions."""
    w = world
    from exactvc.history import commit_changes

    repo = Repository.open(w.root / "proj")
    n = _open(w)["number"]
    # main redraws ids[6] (bob redraws it too) and deletes ids[0] (bob relabels it): two conflicts
    commit_changes(repo, "main", repo.refs.read("heads/main"), IMAGE, "on main", "amy <a@x>",
                   update=[{"id": w.ids[6], "geometry": square(800, 800, 11)}], delete=[w.ids[0]])
    pv = w.call("GET", f"/pulls/{n}/merge").json()
    assert {c["id"]: c["kind"] for c in pv["conflicts"]} == {w.ids[6]: "modify/modify", w.ids[0]: "delete/modify"}
    assert pv["rejected"] == 0 and pv["applied"] == 11
    # reject one of them: only the other is left in the preview
    assert w.call("POST", f"/pulls/{n}/decisions", {"decision": "reject", "ids": [w.ids[6]]}).status == 200
    pv = w.call("GET", f"/pulls/{n}/merge").json()
    assert [c["id"] for c in pv["conflicts"]] == [w.ids[0]], pv["conflicts"]
    assert pv["rejected"] == 1 and pv["applied"] == 10
    # reject both: no conflict left, and merging needs no resolution
    w.call("POST", f"/pulls/{n}/decisions", {"decision": "reject", "ids": [w.ids[0]]})
    w.call("POST", f"/pulls/{n}/reviews", {"kind": "approve"})
    pv = w.call("GET", f"/pulls/{n}/merge").json()
    assert pv["conflicts"] == [] and pv["mergeable"] is True and pv["rejected"] == 2, pv
    rep = w.call("POST", f"/pulls/{n}/merge", {})
    assert rep.status == 200, rep.body
    assert rep.json()["conflicts_resolved"] == 0 and rep.json()["rejected"] == 2
    ann = {a.id: a for a in Repository.open(w.root / "proj").annotations(IMAGE)}
    assert w.ids[0] not in ann  # main's delete stands
    assert ann[w.ids[6]].geojson == square(800, 800, 11)  # main's outline, bob's redraw rejected
    assert ann[w.ids[1]].label == "tumor"  # an accepted (undecided) relabel merged


def test_merge_preview_conflicts_are_the_merge_conflicts(world: World) -> None:
    """With a rejection that leaves a conflict, the preview's conflicts are exactly those the merge asks to
    resolve, and resolving them as the preview listed them merges."""
    w = world
    from exactvc.history import commit_changes

    repo = Repository.open(w.root / "proj")
    n = _open(w)["number"]
    commit_changes(repo, "main", repo.refs.read("heads/main"), IMAGE, "on main", "amy <a@x>",
                   update=[{"id": w.ids[6], "geometry": square(800, 800, 11)},
                           {"id": w.ids[7], "geometry": square(900, 900, 11)}])
    w.call("POST", f"/pulls/{n}/decisions", {"decision": "reject", "ids": [w.ids[7], w.ids[2]]})
    w.call("POST", f"/pulls/{n}/reviews", {"kind": "approve"})
    pv = w.call("GET", f"/pulls/{n}/merge").json()
    assert [c["id"] for c in pv["conflicts"]] == [w.ids[6]] and pv["rejected"] == 2
    rep = w.call("POST", f"/pulls/{n}/merge", {})
    assert rep.status == 409 and "1 conflict " in rep.error()["message"], rep.body
    rep = w.call("POST", f"/pulls/{n}/merge", {"resolutions": [{"side": "theirs", "ids": [c["id"] for c in
                                                                                         pv["conflicts"]]}]})
    assert rep.status == 200, rep.body
    assert rep.json()["conflicts_resolved"] == 1
    ann = {a.id: a for a in Repository.open(w.root / "proj").annotations(IMAGE)}
    assert ann[w.ids[6]].geojson == square(3000 + 30 * 0, 3000, 12)  # bob's redraw, chosen
    assert ann[w.ids[7]].geojson == square(900, 900, 11)  # bob's redraw rejected: main's
    assert ann[w.ids[2]].label == "cell"  # bob's relabel rejected


def test_conflicts_route_pages_the_three_values_and_edited_resolutions(world: World) -> None:
    """GET .../conflicts lists each conflict with base / ours / theirs (paged, bbox), and the merge takes
    per-field and edited resolutions, refusing a bad edited value with nothing changed."""
    w = world
    from exactvc.history import commit_changes

    repo = Repository.open(w.root / "proj")
    repo.add_label("stroma", shape="polygon", color="#00ffff")
    repo.commit("a third area label", author="amy <a@x>")
    n = _open(w)["number"]
    # main redraws ids[6] and ids[7] (bob redraws both) and relabels and redraws ids[0] (bob relabels it to
    # tumor): three modify/modify conflicts
    commit_changes(repo, "main", repo.refs.read("heads/main"), IMAGE, "on main", "amy <a@x>",
                   update=[{"id": w.ids[6], "geometry": square(800, 800, 11)},
                           {"id": w.ids[7], "geometry": square(900, 900, 11)},
                           {"id": w.ids[0], "label": "stroma", "geometry": square(1000, 1000, 11)}])
    first = w.call("GET", f"/pulls/{n}/conflicts?limit=2").json()
    assert first["total"] == 3 and len(first["conflicts"]) == 2 and first["next_cursor"]
    rest = w.call("GET", f"/pulls/{n}/conflicts?limit=2&cursor={first['next_cursor']}").json()
    assert rest["next_cursor"] is None and len(rest["conflicts"]) == 1
    every = {c["id"]: c for c in first["conflicts"] + rest["conflicts"]}
    assert set(every) == {w.ids[0], w.ids[6], w.ids[7]}
    c6 = every[w.ids[6]]
    assert c6["kind"] == "modify/modify" and c6["fields"] == ["geometry"]
    assert c6["ours"]["geometry"] == square(800, 800, 11) and c6["theirs"]["geometry"] == square(3000, 3000, 12)
    assert c6["base"]["geometry"]["type"] == "Polygon" and c6["base"]["id"] == w.ids[6]
    c0 = every[w.ids[0]]  # ids[0]: bob relabels it tumor, main stroma (and redraws it)
    assert c0["fields"] == ["label"] and c0["ours"]["label"] == "stroma" and c0["theirs"]["label"] == "tumor"
    near = w.call("GET", f"/pulls/{n}/conflicts?bbox=780,780,820,820").json()
    assert [c["id"] for c in near["conflicts"]] == [w.ids[6]]
    w.call("POST", f"/pulls/{n}/reviews", {"kind": "approve"})
    before = ref_files(w.root / "proj")
    for bad, why in [({"side": "edit", "ids": [w.ids[6]], "value": {"label": "nope", "geometry": square(1, 1)}},
                      "unknown label"),
                     ({"side": "edit", "ids": [w.ids[6]], "value": {"label": "cell",
                                                                    "geometry": square(-50, 1)}}, "outside"),
                     ({"side": "edit", "ids": [w.ids[6], w.ids[7]], "value": {"label": "cell",
                                                                              "geometry": square(1, 1)}}, "one id"),
                     ({"side": "theirs", "fields": {"shape": "ours"}}, "fields")]:
        rep = w.call("POST", f"/pulls/{n}/merge", {"resolutions": [bad, {"side": "theirs"}]})
        assert 400 <= rep.status < 500 and why in rep.error()["message"], (bad, rep.body)
        assert ref_files(w.root / "proj") == before
    rep = w.call("POST", f"/pulls/{n}/merge", {"resolutions": [
        {"side": "edit", "ids": [w.ids[6]], "value": {"label": "tumor", "geometry": square(850, 850, 20)}},
        {"side": "theirs", "ids": [w.ids[0]], "fields": {"geometry": "ours"}},
        {"side": "ours"}]})
    assert rep.status == 200, rep.body
    ann = {a.id: a for a in Repository.open(w.root / "proj").annotations(IMAGE)}
    assert ann[w.ids[6]].geojson == square(850, 850, 20) and ann[w.ids[6]].label == "tumor"  # the edited value
    assert ann[w.ids[0]].geojson == square(1000, 1000, 11) and ann[w.ids[0]].label == "tumor"  # their label, our outline
    assert ann[w.ids[7]].geojson == square(900, 900, 11)  # ours
    assert w.call("GET", f"/pulls/{n}/conflicts").status == 422  # merged: nothing left to preview


def test_pr_merge_resolves_conflicts_from_the_cli(world: World, tmp_path: Path) -> None:
    """`exact pr merge N --resolve SIDE[:IDS]` (and --resolutions FILE) sends the resolutions; a bad side is
    a usage error and nothing changes."""
    import json

    from exactvc.history import commit_changes

    from .server_fixtures import exact, ok

    w = world
    repo = Repository.open(w.root / "proj")
    n = _open(w)["number"]
    commit_changes(repo, "main", repo.refs.read("heads/main"), IMAGE, "on main", "amy <a@x>",
                   update=[{"id": w.ids[6], "geometry": square(800, 800, 11)},
                           {"id": w.ids[7], "geometry": square(900, 900, 11)}])
    w.call("POST", f"/pulls/{n}/reviews", {"kind": "approve"})
    clone = tmp_path / "amy"
    ok(exact("clone", f"{w.srv.url}/proj", str(clone), token=w.tok["amy"]))
    before = ref_files(w.root / "proj")
    bad = exact("-C", str(clone), "pr", "merge", str(n), "--resolve", "mine", token=w.tok["amy"])
    assert bad.returncode == 2 and "--resolve 'mine'" in bad.stderr
    left = exact("-C", str(clone), "pr", "merge", str(n), "--resolve", f"theirs:{w.ids[6]}", token=w.tok["amy"])
    assert left.returncode == 6 and "1 conflict " in left.stderr, left.stderr
    assert ref_files(w.root / "proj") == before
    res_file = tmp_path / "res.json"
    res_file.write_text(json.dumps([{"side": "edit", "ids": [w.ids[7]],
                                     "value": {"label": "tumor", "geometry": square(950, 950, 20)}}]))
    out = ok(exact("-C", str(clone), "pr", "merge", str(n), "--resolutions", str(res_file), "--resolve",
                   f"theirs:{w.ids[6]}", "--json", token=w.tok["amy"]))
    assert json.loads(out)["exactvc.pr/v1"]["conflicts_resolved"] == 2
    ann = {a.id: a for a in Repository.open(w.root / "proj").annotations(IMAGE)}
    assert ann[w.ids[6]].geojson == square(3000, 3000, 12)  # theirs
    assert ann[w.ids[7]].geojson == square(950, 950, 20) and ann[w.ids[7]].label == "tumor"  # the edited value
