"""A push moves every ref it names or none: one ref out of date leaves all of them where they were."""

from __future__ import annotations

from pathlib import Path

from exactvc import transfer
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

from .server_fixtures import (
    add_squares,
    admin,
    exact,
    fsck_clean,
    object_stream,
    ok,
    push_body,
    request,
    thread_server,
    update,
)

IMAGE = "slide-1"


def test_multi_ref_push_with_one_ref_out_of_date_moves_none(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    admin(root, "repo", "add", "proj")
    tok = admin(root, "user", "add", "alice")
    admin(root, "grant", "alice", "maintain", "proj")
    with thread_server(root) as srv:
        c = tmp_path / "c"
        ok(exact("clone", srv.repo_url("proj"), str(c), token=tok))
        repo = Repository.open(c)
        repo.add_label("cell", shape="polygon", color="#ff0000")
        repo.add_image_record(ImageRecord(IMAGE, "ab" * 32, 10000, 10000))
        add_squares(repo, IMAGE, 3)
        first = bytes.fromhex(repo.commit("first"))
        ok(exact("-C", str(c), "push", token=tok))
        add_squares(repo, IMAGE, 2, y0=5000)
        second = bytes.fromhex(repo.commit("second"))
        stream = object_stream(repo, list(transfer.objects_to_send(repo, [second], [first])))
        server_refs = Repository.open(root / "proj", search_parents=False).refs
        before = server_refs.list()
        # heads/main is named at the right old value, heads/dev claims an old value it never had
        body = push_body({"updates": [update("heads/main", first, second), update("heads/dev", second, first),
                                      update("heads/feature", None, second)]}, stream)
        r = request("POST", srv.repo_url("proj") + "/push", body, token=tok)
        assert r.status == 409, r.body
        assert r.error()["type"] == "non_fast_forward"
        statuses = {x["ref"]: x["status"] for x in r.json()["results"]}
        assert statuses == {"heads/main": "rejected", "heads/dev": "rejected", "heads/feature": "rejected"}
        assert server_refs.list() == before == {"heads/main": first}
        # the same push with every ref right moves all of them at once
        body = push_body({"updates": [update("heads/main", first, second), update("heads/feature", None, second)]},
                         stream)
        r = request("POST", srv.repo_url("proj") + "/push", body, token=tok)
        assert r.status == 200, r.body
        assert server_refs.list() == {"heads/feature": second, "heads/main": second}
    fsck_clean(root / "proj")
