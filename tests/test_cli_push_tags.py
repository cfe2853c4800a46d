"""`exact push` of tags and SRC:DST refspecs, `exact fetch` of tags, against a real server (waitress in a
thread, the `exact` CLI as subprocesses), with the server's permission rules."""

from __future__ import annotations

import json
from pathlib import Path

from exactvc.repo import Repository

from .server_fixtures import add_squares, admin, exact, fsck_clean, ok, thread_server

IMAGE = "slide-1"


def test_push_tags_refspecs_and_fetch_tags(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    admin(root, "repo", "add", "proj")
    lead = admin(root, "user", "add", "lead")
    anna = admin(root, "user", "add", "anna")
    admin(root, "grant", "lead", "maintain", "proj")
    admin(root, "grant", "anna", "annotate", "proj")
    with thread_server(root) as srv:
        a, b = tmp_path / "a", tmp_path / "b"
        ok(exact("clone", srv.repo_url("proj"), str(a), token=lead))
        ok(exact("-C", str(a), "label", "add", "cell", "--shape", "polygon"))
        from exactvc.objects import ImageRecord

        Repository.open(a).add_image_record(ImageRecord(IMAGE, "ab" * 32, 10000, 10000))
        add_squares(Repository.open(a), IMAGE, 3)
        ok(exact("-C", str(a), "commit", "-m", "training set"))
        ok(exact("-C", str(a), "push", token=lead))
        ok(exact("-C", str(a), "tag", "v1", "-m", "Labels used to train v1"))
        ok(exact("-C", str(a), "tag", "light"))
        server = Repository.open(root / "proj")
        # one tag by name
        out = ok(exact("-C", str(a), "push", "origin", "v1", token=lead))
        assert "origin/tags/v1: new tag" in out
        local = Repository.open(a)
        assert server.refs.read("tags/v1") == local.refs.read("tags/v1")  # the annotated tag object itself
        assert server.store.get(server.refs.read("tags/v1") or b"")[0] == "tag"
        # every tag, and a SRC:DST refspec
        res = json.loads(ok(exact("-C", str(a), "push", "origin", "--tags", "HEAD:users/lead/x", "--json",
                                  token=lead)))["exactvc.push/v1"]
        assert {e["ref"]: e["status"] for e in res["updates"]} == {"heads/users/lead/x": "pushed",
                                                                 "tags/light": "pushed"}
        server = Repository.open(root / "proj")
        assert server.refs.read("tags/light") == local.head_commit()
        assert server.refs.read("heads/users/lead/x") == local.head_commit()
        assert local.refs.read("remotes/origin/users/lead/x") == local.head_commit()
        assert "Everything up to date" in ok(exact("-C", str(a), "push", "origin", "--tags", token=lead))
        # a clone has the tags; a later tag arrives with fetch
        ok(exact("clone", srv.repo_url("proj"), str(b), token=anna))
        assert Repository.open(b).refs.read("tags/v1") == local.refs.read("tags/v1")
        add_squares(Repository.open(a), IMAGE, 1, y0=500)
        ok(exact("-C", str(a), "commit", "-m", "more"))
        ok(exact("-C", str(a), "tag", "v2"))
        ok(exact("-C", str(a), "push", "origin", "main", "v2", token=lead))
        out = ok(exact("-C", str(b), "fetch", token=anna))
        assert "tag v2 ->" in out
        assert Repository.open(b).resolve("v2") == Repository.open(a).resolve("v2")
        # moving a tag needs --force; a tag of the same name with another value is kept by fetch
        ok(exact("-C", str(a), "tag", "-f", "light", "HEAD"))
        r = exact("-C", str(a), "push", "origin", "light", token=lead)
        assert r.returncode == 6 and "already exists" in r.stderr and "--force" in r.stderr, r.stderr
        ok(exact("-C", str(a), "push", "origin", "light", "--force", token=lead))
        r = exact("-C", str(b), "fetch", token=anna)
        assert r.returncode == 0 and "tag light kept" in r.stderr, r.stderr
        # annotators push their own branches by refspec, but no tags
        ok(exact("-C", str(b), "tag", "mine"))
        r = exact("-C", str(b), "push", "origin", "mine", token=anna)
        assert r.returncode == 9 and "tags" in r.stderr, r.stderr
        ok(exact("-C", str(b), "push", "origin", "HEAD:users/anna/draft", token=anna))
        r = exact("-C", str(b), "push", "origin", "HEAD:main2", token=anna)
        assert r.returncode == 0, r.stderr  # a new shared branch is allowed for annotators
        assert Repository.open(root / "proj").refs.read("tags/mine") is None
        # delete by refspec
        ok(exact("-C", str(a), "push", "origin", ":users/lead/x", token=lead))
        assert Repository.open(root / "proj").refs.read("heads/users/lead/x") is None
        r = exact("-C", str(a), "push", "origin", "nosuch", token=lead)
        assert r.returncode == 4 and "no local branch or tag" in r.stderr
    fsck_clean(root / "proj")
