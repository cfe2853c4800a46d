"""Acceptance 1 of issue 15: a blind study with three annotators on a real server.

Three annotators (ann, bob, cid) clone the study with real ``exact`` clients, annotate on their branches
``users/NAME/study`` and push. In blind mode none of them can read another's branch or annotations through
any route: the refs advertisement, the REST routes that take a revision (by branch name, full and short
commit id), annotation tiles by commit, counts, pull requests, the sync protocol (clone, fetch, negotiate,
asking for an object id directly), bundles and the viewer (headless Chromium). "Nothing leaked" is checked
strictly: the answer for another annotator's branch or commit is byte for byte the answer for one that does
not exist (the asked name put back), and no body carries another's commit, tree or annotation ids.

The maintainer sees every branch, gets the agreement table (REST and the viewer; its figures recomputed
here from the raters' shapes by brute force) and merges a consensus into main through a pull request.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from exactvc.access import AccessStore
from exactvc.repo import Repository

from ..conftest import square
from ..server_fixtures import Reply, exact, ok, request
from ..test_agreement import LABELS, _brute, _rater
from .conftest import IMAGE, Site, Tab

STUDY = "study"
RATERS = ("ann", "bob", "cid")
UNKNOWN_ID = "5e" * 32  # a commit id no repository has


@dataclass
class Study:
    site: Site
    tokens: dict[str, str]
    shapes: dict[str, list[tuple[float, float, float, str]]]
    clones: dict[str, Path]
    commits: dict[str, str] = field(default_factory=dict)  # rater -> commit id of their branch
    secrets: dict[str, set[str]] = field(default_factory=dict)  # rater -> ids only their work has
    main: str = ""
    seed_count: int = 0
    pulls: dict[str, int] = field(default_factory=dict)  # the consensus's and ann's pull requests

    def get(self, who: str, path: str, body: Any = None, method: str = "GET") -> Reply:
        return request(method if body is None else "POST", self.site.url + path, body, token=self.tokens[who])

    def url(self) -> str:
        return f"{self.site.url}/{STUDY}"


def _exact(who: str, study: Study, *args: str) -> str:
    return ok(exact(*args, token=study.tokens[who], author=f"{who} <{who}@lab>"))


@pytest.fixture(scope="module")
def study(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Study]:
    base = tmp_path_factory.mktemp("study")
    repo = Repository.init(site.root / STUDY)
    repo.add_image(site.root.parent / (site.root.name + "-slides") / "cmu.svs", name=IMAGE)
    for i, name in enumerate(LABELS):
        repo.add_label(name, shape="polygon", color=f"#{40 * i:02x}8040")
    with repo.edit(IMAGE) as ed:  # what everyone sees on main: two reference cells
        ed.add(LABELS[0], square(40, 40))
        ed.add(LABELS[1], square(80, 40))
    repo.commit("Study seed", author="lead <lead@lab>")
    main = repo.resolve("HEAD")
    acc = AccessStore(site.root)
    tokens = {}
    for who, role in (*((r, "annotate") for r in RATERS), ("lead", "maintain")):
        tokens[who] = acc.add_user(who)
        acc.grant(STUDY, who, role)
        site.passwords[who] = f"pw-{who}-study-horse"
        acc.set_password(who, site.passwords[who])
    acc.set_settings(STUDY, mode="blind")
    rng = random.Random(15)
    truth = [(200.0 + 40 * (i % 10), 200.0 + 40 * (i // 10), rng.choice(LABELS)) for i in range(40)]
    shapes = {r: _rater(rng, truth, keep=0.9, relabel=0.2, extra=2 + k, at=(200.0 + 300 * k, 1000.0))
              for k, r in enumerate(RATERS)}
    st = Study(site, tokens, shapes, {}, main=main.hex(), seed_count=2)
    for r in RATERS:  # each rater: clone, branch, annotate, commit, push, with the real client
        d = base / r
        _exact(r, st, "clone", st.url(), str(d))
        _exact(r, st, "-C", str(d), "switch", "-c", f"users/{r}/study")
        mine = Repository.open(d)
        with mine.edit(IMAGE) as ed:
            ids = [ed.add(lb, square(x, y, s)) for x, y, s, lb in shapes[r]]
        _exact(r, st, "-C", str(d), "commit", "-m", f"{r}'s cells")
        _exact(r, st, "-C", str(d), "push", "origin", f"users/{r}/study")
        st.clones[r] = d
        cid = mine.resolve("HEAD")
        st.commits[r] = cid.hex()
        entry, tree_id = mine.tree_of(IMAGE, "HEAD")
        st.secrets[r] = {cid.hex(), mine.commit_object(cid).root.hex(), *ids}
        if tree_id is not None:
            st.secrets[r].add(tree_id.hex())
    yield st


def _others(study: Study, who: str) -> set[str]:
    return {s for r in RATERS if r != who for s in study.secrets[r]}


def _no_secret(study: Study, who: str, reply: Reply, asked: str = "") -> None:
    text = reply.body.decode(errors="replace").replace(asked, "<asked>") if asked else reply.body.decode(errors="replace")
    leaked = [s for s in _others(study, who) if s in text or s[:12] in text]
    assert not leaked, (reply.status, text[:400])


def _same_as_unknown(study: Study, who: str, path: str, hidden: str, unknown: str, body: Any = None) -> Reply:
    """``path`` with ``hidden`` (another's branch or commit) answers exactly as with ``unknown`` (none)."""
    h = study.get(who, path.replace("{X}", hidden), _fill(body, hidden))
    u = study.get(who, path.replace("{X}", unknown), _fill(body, unknown))
    assert h.status in (401, 403, 404, 422), (path, h.status, h.body[:300])
    assert (h.status, h.body.replace(hidden.encode(), b"<X>")) == (u.status, u.body.replace(unknown.encode(), b"<X>")), \
        (path, h.body[:300], u.body[:300])
    _no_secret(study, who, h, hidden)
    return h


def _fill(body: Any, x: str) -> Any:
    return None if body is None else json.loads(json.dumps(body).replace("{X}", x))


REV_ROUTES = [
    "/api/v1/repos/study/images/cmu/annotations?rev={X}",
    "/api/v1/repos/study/images/cmu/annotations?rev={X}&bbox=0,0,3000,3000",
    "/api/v1/repos/study/images?rev={X}",
    "/api/v1/repos/study/labels?rev={X}",
    "/api/v1/repos/study/log?rev={X}",
    "/api/v1/repos/study/log?rev={X}~1",
    "/api/v1/repos/study/commits/{X}",
    "/api/v1/repos/study/diff?old=main&new={X}",
    "/api/v1/repos/study/diff?old={X}&new=main&stat=1",
    "/api/v1/repos/study/images/cmu/changes?old=main&new={X}",
    "/api/v1/repos/study/images/cmu/compare?a=main&b={X}",
    "/api/v1/repos/study/images/cmu/matches?a={X}&b=main",
    "/api/v1/repos/study/resolve?rev={X}",
    "/api/v1/repos/study/agreement?rev=main&rev={X}",
    "/api/v1/repos/study/artefacts?rev={X}",
    "/api/v1/repos/study/runs?commit={X}",
    "/-/label-counts/study/cmu?rev={X}",
    "/api/v1/repos/study/images/cmu/verifications/pending?rev={X}",
]
COMMIT_ROUTES = [
    "/api/v1/repos/study/images/cmu/annotiles/{X}/manifest.json",
    "/api/v1/repos/study/images/cmu/annotiles/{X}/g/0/0/0.bin",
    "/api/v1/repos/study/images/cmu/annotiles/{X}/d/0/0/0.bin",  # density tiles
]


def test_refs_advertisement_and_repository_info_show_only_own_branch_and_main(study: Study) -> None:
    for who in RATERS:
        for route in (f"/{STUDY}/info/refs", f"/api/v1/repos/{STUDY}/refs"):
            r = study.get(who, route)
            assert r.status == 200
            assert set(r.json()["refs"]) == {"heads/main", f"heads/users/{who}/study"}, r.json()
            _no_secret(study, who, r)
        info = study.get(who, f"/api/v1/repos/{STUDY}")
        assert info.status == 200 and "blind" in info.body.decode()
        _no_secret(study, who, info)
    lead = set(study.get("lead", f"/api/v1/repos/{STUDY}/refs").json()["refs"])
    assert {f"heads/users/{r}/study" for r in RATERS} <= lead


def test_every_revision_route_answers_another_annotators_work_as_unknown(study: Study) -> None:
    for who in RATERS:
        other = next(r for r in RATERS if r != who)
        oid = study.commits[other]
        for route in REV_ROUTES:
            _same_as_unknown(study, who, route, f"users/{other}/study", "users/nobody/study")
            _same_as_unknown(study, who, route, oid, UNKNOWN_ID)  # full commit id
            _same_as_unknown(study, who, route, oid[:12], UNKNOWN_ID[:12])  # short id
        for route in COMMIT_ROUTES:
            _same_as_unknown(study, who, route, oid, UNKNOWN_ID)
        aid = sorted(s for s in study.secrets[other] if "-" in s)[0]
        r = study.get(who, f"/api/v1/repos/study/images/cmu/annotiles/{oid}/records/{aid}")
        assert r.status == 404
        _no_secret(study, who, r, oid)
        # a verification started from another's revision, and an analysis over one
        aid0 = sorted(s for s in study.secrets[other] if "-" in s)[0]  # an annotation id
        _same_as_unknown(study, who, f"/api/v1/repos/study/images/cmu/annotations/{aid0}/verifications",
                         f"users/{other}/study", "users/nobody/study", body={"yes": True, "from": "{X}"})
        _same_as_unknown(study, who, "/api/v1/repos/study/analyses", f"users/{other}/study", "users/nobody/study",
                         body={"image": IMAGE, "plugin": "eiph", "rev": "{X}"})
        # their own work reads fine through the same routes (the refusals above are not blanket ones)
        mine = study.get(who, f"/api/v1/repos/study/images/cmu/annotations?rev=users/{who}/study&limit=5000")
        assert mine.status == 200 and mine.json()["count"] == study.seed_count + len(study.shapes[who])
        own = study.get(who, f"/api/v1/repos/study/images/cmu/annotiles/{study.commits[who]}/manifest.json")
        assert own.status == 200


def test_counts_on_main_and_in_the_exact_api_hold_no_one_elses_work(study: Study) -> None:
    for who in RATERS:
        imgs = study.get(who, "/api/v1/repos/study/images").json()["images"]
        assert [i["annotations"] for i in imgs] == [study.seed_count]
        counts = study.get(who, "/-/label-counts/study/cmu").json()
        assert counts["count"] == study.seed_count and sum(counts["labels"].values()) == study.seed_count
        compat = study.get(who, "/api/v1/annotations/annotations/?limit=5000")
        assert compat.status == 200 and compat.json()["count"] == study.seed_count
        _no_secret(study, who, compat)
        listing = study.get(who, "/api/v1/repos/study/images/cmu/annotations?limit=5000")
        assert listing.json()["count"] == study.seed_count
        _no_secret(study, who, listing)


def test_sync_protocol_clone_fetch_negotiate_and_object_ids(study: Study, tmp_path: Path) -> None:
    for who in RATERS:
        other = next(r for r in RATERS if r != who)
        oid = study.commits[other]
        # negotiate: another's commit is "not here", exactly as an unknown id
        r = study.get(who, f"/{STUDY}/negotiate", {"ids": [oid, UNKNOWN_ID, study.main]})
        assert r.status == 200 and r.json()["have"] == [study.main]
        # fetch asking for the object id directly: refused with the words for a missing object
        _same_as_unknown(study, who, f"/{STUDY}/fetch", oid, UNKNOWN_ID, body={"wants": ["{X}"], "haves": []})
        # claiming to have another's commit changes nothing in what is sent
        h = study.get(who, f"/{STUDY}/fetch", {"wants": [study.main], "haves": [oid]})
        u = study.get(who, f"/{STUDY}/fetch", {"wants": [study.main], "haves": [UNKNOWN_ID]})
        assert h.status == u.status == 200 and h.body == u.body
        # a fresh clone and a fetch with the real client: only main and their own branch, none of the objects
        d = tmp_path / f"{who}-again"
        _exact(who, study, "clone", study.url(), str(d))
        _exact(who, study, "-C", str(d), "fetch")
        got = Repository.open(d)
        assert set(got.refs.list()) == {"heads/main", "remotes/origin/main", f"remotes/origin/users/{who}/study"}
        for s in _others(study, who):
            if re.fullmatch(r"[0-9a-f]{64}", s):
                assert not got.store.has(bytes.fromhex(s)), s
        fail = exact("-C", str(d), "log", f"origin/users/{other}/study", token=study.tokens[who])
        assert fail.returncode != 0


def test_a_push_cannot_name_another_annotators_commit(study: Study) -> None:
    """Knowing bob's commit id, ann cannot point her branch at it, nor build a commit on it: the server
    answers as for an id it does not have, and nothing moves."""
    from exactvc.objects import Commit

    from ..server_fixtures import object_stream, push_body, update

    ann = Repository.open(study.clones["ann"])
    before = study.get("lead", f"/api/v1/repos/{STUDY}/refs").json()["refs"]
    mine = bytes.fromhex(study.commits["ann"])

    def push(new: bytes, oids: list[bytes]) -> Reply:
        body = push_body({"updates": [update("heads/users/ann/other", None, new)]}, object_stream(ann, oids))
        return request("POST", f"{study.url()}/push", body, token=study.tokens["ann"])

    for hidden in (bytes.fromhex(study.commits["cid"]), bytes.fromhex(UNKNOWN_ID)):
        r = push(hidden, [])
        assert r.status in (409, 422) and r.error()["type"] == "missing_reference", r.body
        assert b"neither sent nor stored" in r.body
        # a new commit of hers whose parent is the hidden one
        c = Commit(root=ann.commit_object(mine).root, parents=(hidden,), author="ann <a@x>", committer="ann <a@x>",
                   time=1, tz=0, message="on top", generation=9)
        cid = ann.put("commit", c.to_body())
        r = push(cid, [cid])
        assert r.error()["type"] == "missing_reference" and hidden.hex() in r.body.decode(), r.body
    assert study.get("lead", f"/api/v1/repos/{STUDY}/refs").json()["refs"] == before


def test_bundles_and_proposals_are_refused_to_annotators(study: Study, tmp_path: Path) -> None:
    who = "bob"
    d = study.clones[who]
    b = tmp_path / "b.exbundle"
    _exact(who, study, "-C", str(d), "bundle", "create", str(b), f"users/{who}/study")
    up = exact("-C", str(d), "bundle", "upload", str(b), token=study.tokens[who])
    assert up.returncode != 0 and "maintain" in up.stderr
    r = study.get(who, f"/api/v1/repos/{STUDY}/bundles", b.read_bytes())
    assert r.status == 403
    r = study.get(who, f"/api/v1/repos/{STUDY}/proposals", {"image": IMAGE, "plugin": "blobs"})
    assert r.status == 403 and "blind" in r.error()["message"]


def test_maintainer_agreement_table_pull_requests_and_consensus(study: Study, tmp_path: Path) -> None:
    # the agreement table: maintainers only, its figures those of a brute-force count
    for who in RATERS:
        r = study.get(who, "/api/v1/repos/study/agreement?branches=users/*/study")
        assert r.status == 403
        _no_secret(study, who, r)
    table = study.get("lead", "/api/v1/repos/study/agreement?branches=users/*/study&match=iou=0.5").json()
    assert table["raters"] == [f"users/{r}/study" for r in RATERS]
    seed = [(40.0, 40.0, 10.0, LABELS[0]), (80.0, 40.0, 10.0, LABELS[1])]  # every branch holds main's two too
    for i, a in enumerate(RATERS):
        for j, b in enumerate(RATERS):
            if i < j:
                want = _brute(seed + study.shapes[a], seed + study.shapes[b])
                assert table["f1"][i][j] == pytest.approx(want["f1"], abs=1e-4)
                assert table["kappa"][i][j] == pytest.approx(want["kappa"], abs=1e-4)
    # the consensus: the lead starts from ann's work, adds one of cid's extra cells, and proposes it for main
    lead_dir = tmp_path / "lead"
    _exact("lead", study, "clone", study.url(), str(lead_dir))
    _exact("lead", study, "-C", str(lead_dir), "fetch")
    _exact("lead", study, "-C", str(lead_dir), "branch", "consensus", "origin/users/ann/study")
    _exact("lead", study, "-C", str(lead_dir), "switch", "consensus")
    lead = Repository.open(lead_dir)
    local = exact("-C", str(lead_dir), "agreement", "--branches", "origin/users/*/study", "--json")
    assert local.returncode == 0, local.stderr  # the same table from the maintainer's clone
    assert json.loads(local.stdout)["exactvc.agreement-table/v1"]["kappa"] == table["kappa"]
    x, y, s, lb = study.shapes["cid"][-1]
    with lead.edit(IMAGE) as ed:
        extra = ed.add(lb, square(x, y, s))
    _exact("lead", study, "-C", str(lead_dir), "commit", "-m", "Consensus: ann's cells and one of cid's")
    _exact("lead", study, "-C", str(lead_dir), "push", "origin", "consensus")
    pr = study.get("lead", f"/api/v1/repos/{STUDY}/pulls", {"title": "Consensus", "source": "consensus",
                                                            "target": "main"})
    assert pr.status == 201, pr.body
    n = pr.json()["number"]
    mine = study.get("ann", f"/api/v1/repos/{STUDY}/pulls", {"title": "ann's own", "source": "users/ann/study",
                                                             "target": "main"})
    assert mine.status == 201, mine.body
    m = mine.json()["number"]
    study.pulls = {"consensus": n, "ann": m}
    # annotators see neither the consensus branch nor its pull request; ann sees her own, bob not hers
    for who in RATERS:
        listed = {p["number"] for p in study.get(who, f"/api/v1/repos/{STUDY}/pulls?state=all").json()["pulls"]}
        assert n not in listed and (m in listed) == (who == "ann")
        for sub in ("", "/changes", "/reviews", "/comments", "/decisions", "/checks", "/merge", "/agreement"):
            _same_as_unknown(study, who, f"/api/v1/repos/{STUDY}/pulls/{{X}}{sub}", str(n), "999")
            if who != "ann":
                _same_as_unknown(study, who, f"/api/v1/repos/{STUDY}/pulls/{{X}}{sub}", str(m), "999")
        _same_as_unknown(study, who, "/api/v1/repos/study/log?rev={X}", "consensus", "nothing-here")
    assert {p["number"] for p in study.get("lead", f"/api/v1/repos/{STUDY}/pulls").json()["pulls"]} == {n, m}
    merged = study.get("lead", f"/api/v1/repos/{STUDY}/pulls/{n}/merge", {})
    assert merged.status == 200, merged.body
    on_main = study.get("lead", "/api/v1/repos/study/images/cmu/annotations?rev=main&limit=5000").json()
    want = {a.id for a in Repository.open(study.clones["ann"]).annotations(IMAGE, "HEAD")} | {extra}
    assert {a["id"] for a in on_main["annotations"]} == want


def _wait(tab: Tab) -> None:
    tab.page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60000)


def test_viewer_another_annotators_branch_shows_an_error_and_no_shapes(tab: Tab, study: Study) -> None:
    tab.sign_in("bob")
    seen: list[str] = []
    tab.page.on("request", lambda r: seen.append(r.url))
    # cid's work (ann's reached main through the consensus merge above: what a merge reaches is shared)
    for rev in ("users/cid/study", study.commits["cid"], study.commits["cid"][:12]):
        tab.page.goto(f"{study.url()}/slide/{IMAGE}?rev={rev}")
        _wait(tab)
        err = tab.page.locator("#page-error")
        assert err.count() == 1 and "no revision" in err.inner_text()
        assert tab.page.locator("#viewer").count() == 0
        x, y, s, _lb = study.shapes["cid"][0]
        assert tab.page.evaluate(f"() => window.exact.annotationsAt({x + s / 2}, {y + s / 2})") == []
    assert not [u for u in seen if study.commits["cid"] in u and "annotiles" in u]
    assert len(tab.errors) == 3 and all(e.startswith("Error: no revision") for e in tab.errors)  # bootPage logs
    tab.errors.clear()
    # his own branch draws his shapes, and its revision picker offers no one else's branch
    tab.page.goto(f"{study.url()}/slide/{IMAGE}?rev=users/bob/study&x=400&y=300&zoom=1")
    _wait(tab)
    assert tab.page.locator("#page-error").count() == 0
    tab.idle()
    x, y, s, _lb = study.shapes["bob"][0]
    assert len(tab.page.evaluate(f"() => window.exact.annotationsAt({x + s / 2}, {y + s / 2})")) == 1
    html = tab.page.content()
    assert "users/ann" not in html and "users/cid" not in html and "consensus" not in html
    # the pull request list page shows none of the hidden ones
    tab.page.goto(f"{study.url()}/pulls?state=all")
    _wait(tab)
    assert tab.page.locator(".error").count() == 0 and tab.page.locator("#no-pulls").count() == 1
    assert "Consensus" not in tab.page.content() and "users/ann" not in tab.page.content()
    # a pull request between branches he may not see: its page shows the error and no changes
    tab.page.goto(f"{study.url()}/pull/{study.pulls['ann']}")
    _wait(tab)
    assert "no pull request" in tab.page.locator(".error, #page-error").first.inner_text()
    assert "users/ann" not in tab.page.content()
    tab.errors.clear()
    # the agreement page is the maintainers' (not linked for him)
    tab.page.goto(study.url())
    _wait(tab)
    assert tab.page.locator("#agreement-link").count() == 0
    tab.page.goto(f"{study.url()}/agreement?branches=users/*/study")
    _wait(tab)
    assert tab.page.locator(".error").count() == 1 and tab.page.locator("table.agreement").count() == 0
    assert "maintain" in tab.page.locator(".error").inner_text()


def test_viewer_agreement_page_for_the_maintainer(tab: Tab, study: Study) -> None:
    tab.sign_in("lead")
    tab.page.goto(study.url())
    _wait(tab)
    assert tab.page.locator("#agreement-link").count() == 1  # the image set page links it in a blind study
    tab.page.goto(f"{study.url()}/pulls?state=all")
    _wait(tab)  # the maintainer's list holds both pull requests
    assert {int(n) for n in tab.page.locator("#pull-list tr[data-number]").evaluate_all(
        "rows => rows.map((r) => r.dataset.number)")} == set(study.pulls.values())
    tab.page.goto(f"{study.url()}/agreement?branches=users/*/study")
    _wait(tab)
    assert tab.page.locator(".error").count() == 0
    rest = study.get("lead", "/api/v1/repos/study/agreement?branches=users/*/study").json()
    for tid, key in (("#agreement-f1", "f1"), ("#agreement-kappa", "kappa")):
        cells = tab.page.locator(f"{tid} td[data-a='users/ann/study'][data-b='users/cid/study']")
        assert cells.inner_text() == f"{rest[key][0][2]:.3f}"
        assert tab.page.locator(f"{tid} tbody tr").count() == len(RATERS)
    assert tab.errors == []
