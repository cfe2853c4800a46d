"""Acceptance (issue 15, item 2): second opinion with N = 2 on a real server. An annotation one user verified
is not exported with --min-verifications 2, after the second user it is; the verifications survive push
and clone, merge from two users' branches without a conflict and show in `exact blame`."""

from __future__ import annotations

import json
from pathlib import Path

from exactvc.access import AccessStore
from exactvc.repo import Repository

from .server_fixtures import add_squares, exact, fsck_clean, make_repo, ok, request, thread_server, users


def exported_ids(clone: Path, n: int) -> list[str]:
    out = ok(exact("-C", str(clone), "export", "--min-verifications", str(n), "-o", "-"))
    return [f["id"] for f in json.loads(out)["features"]]


def test_second_opinion_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    repo = make_repo(root / "study", author="amy <amy@exactvc>")
    ids = add_squares(repo, "slide-1", 3)
    repo.commit("amy's cells", author="amy <amy@exactvc>")
    tok = users(root, {"amy": "annotate", "bob": "annotate", "carol": "annotate", "lead": "maintain",
                       "rita": "read"}, "study")
    AccessStore(root).set_settings("study", mode="second-opinion", opinions=2)
    target = ids[1]
    api = "/api/v1/repos/study/images/slide-1"
    with thread_server(root) as srv:
        # what needs verifying: all three for bob, none for amy (she drew them)
        pend = request("GET", srv.url + api + "/verifications/pending", token=tok["bob"]).json()
        assert (pend["mode"], pend["opinions"], pend["total"]) == ("second-opinion", 2, 3)
        assert [p["id"] for p in pend["pending"]] == sorted(ids)
        assert request("GET", srv.url + api + "/verifications/pending", token=tok["amy"]).json()["pending"] == []
        # bob verifies on the command line in his clone and pushes his branch
        bob = tmp_path / "bob"
        ok(exact("clone", srv.repo_url("study"), str(bob), token=tok["bob"]))
        ok(exact("-C", str(bob), "switch", "-c", "users/bob/verify"))
        ok(exact("-C", str(bob), "verify", "slide-1", target, "--yes", "--comment", "a cell", author="bob <b@x>"))
        assert target not in exported_ids(bob, 2) and target in exported_ids(bob, 1)
        ok(exact("-C", str(bob), "push", "origin", "users/bob/verify", token=tok["bob"]))
        # carol verifies in the viewer's way (REST: a commit on users/carol/edits, from main)
        rep = request("POST", srv.url + f"{api}/annotations/{target}/verifications", {"yes": True}, token=tok["carol"])
        assert rep.status == 201, rep.body
        assert rep.json()["branch"] == "users/carol/edits" and rep.json()["verifications"][0]["user"] == "carol"
        left = request("GET", srv.url + api + "/verifications/pending", token=tok["carol"]).json()
        assert target not in [p["id"] for p in left["pending"]] and left["rev"] == "users/carol/edits"
        # refusals change nothing
        before = dict(Repository.open(root / "study").refs.list())
        for who, body, status in (("rita", {"yes": True}, 403), (None, {"yes": True}, 401),
                                  ("carol", {"yes": "sure"}, 422), ("carol", {"yes": True, "x": 1}, 422)):
            r = request("POST", srv.url + f"{api}/annotations/{target}/verifications", body,
                        token=tok[who] if who else None)
            assert r.status == status and r.error()["message"], (who, r.status, r.body)
        r = request("POST", srv.url + f"{api}/annotations/00000000-0000-0000-0000-000000000000/verifications",
                    {"yes": True}, token=tok["carol"])
        assert r.status == 404 and "no annotation" in r.error()["message"]
        assert dict(Repository.open(root / "study").refs.list()) == before
        # the lead clones, merges both verifiers' branches (no conflict), exports with N = 2, pushes main
        lead = tmp_path / "lead"
        ok(exact("clone", srv.repo_url("study"), str(lead), token=tok["lead"]))
        assert exported_ids(lead, 1) == []
        ok(exact("-C", str(lead), "merge", "origin/users/bob/verify", author="lead <lead@exactvc>"))
        assert exported_ids(lead, 2) == [] and exported_ids(lead, 1) == [target]
        res = ok(exact("-C", str(lead), "merge", "origin/users/carol/edits", "--json", author="lead <lead@exactvc>"))
        assert json.loads(res)["exactvc.merge/v1"]["conflicts"] == []
        assert exported_ids(lead, 2) == [target]
        ok(exact("-C", str(lead), "push", token=tok["lead"]))
        # a fresh clone has them, with their commits, in blame
        fresh = tmp_path / "fresh"
        ok(exact("clone", srv.repo_url("study"), str(fresh), token=tok["rita"]))
        assert exported_ids(fresh, 2) == [target]
        fsck_clean(fresh)
        fsck_clean(root / "study")
        blame = json.loads(ok(exact("-C", str(fresh), "blame", "slide-1", target, "--json")))["exactvc.blame/v1"]
        row = blame[0]
        assert row["author"] == "amy <amy@exactvc>"  # the verifiers are not blamed for the cell itself
        assert [(v["user"], v["yes"], v["comment"]) for v in row["verifications"]] == [("bob", True, "a cell"),
                                                                                       ("carol", True, "")]
        assert row["verifications"][0]["author"] == "bob <b@x>"
        assert row["verifications"][1]["author"] == "carol <carol@exactvc>"
        text = ok(exact("-C", str(fresh), "blame", "slide-1", target))
        assert "verified yes by bob" in text and "verified yes by carol" in text
        # once on main with two verifiers, nobody is asked for it any more
        pend = request("GET", srv.url + api + "/verifications/pending?rev=main", token=tok["lead"]).json()
        assert target not in [p["id"] for p in pend["pending"]] and pend["verified"] == 1
