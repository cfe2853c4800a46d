"""`exact serve --db postgresql://...`: the refs of every repository live in the shared PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from exactvc.backends.postgres import Database
from exactvc.backends.postgres_refs import PgRefs
from exactvc.objects import ImageRecord
from exactvc.refs import DiskRefs
from exactvc.repo import Repository

from .server_fixtures import add_squares, admin, exact, ok, request, thread_server


def test_push_through_a_server_on_postgres_moves_refs_in_the_database(tmp_path: Path, postgres: Any) -> None:
    url = postgres.database("t_" + uuid.uuid4().hex[:12])
    root = tmp_path / "srv"
    root.mkdir()
    assert "applied migration 1\napplied migration 2" in ok(exact("server", "migrate", "--root", str(root), "--db", url))
    assert "schema is up to date" in ok(exact("server", "migrate", "--root", str(root), "--db", url))
    (root / "backends.json").write_text(json.dumps({"db": url}))  # the admin commands follow it
    admin(root, "repo", "add", "proj")
    tok = admin(root, "user", "add", "alice")
    admin(root, "grant", "alice", "maintain", "proj")
    with thread_server(root, db=url) as srv:
        c = tmp_path / "c"
        ok(exact("clone", srv.repo_url("proj"), str(c), token=tok))
        repo = Repository.open(c)
        repo.add_label("cell", shape="polygon", color="#ff0000")
        repo.add_image_record(ImageRecord("slide-1", "ab" * 32, 10000, 10000))
        add_squares(repo, "slide-1", 3)
        first = repo.commit("first")
        ok(exact("-C", str(c), "push", token=tok))
        db = Database(url)
        try:
            assert PgRefs(db, "proj").list("heads/") == {"heads/main": bytes.fromhex(first)}
            assert [e.who for e in PgRefs(db, "proj").reflog("heads/main")] == ["alice"]
        finally:
            db.close()
        # the repository's own ref files did not move: the database is the one place refs live
        assert DiskRefs(root / "proj" / ".exact").read("heads/main") is None
        # ... and the folder opened directly (the administrator's `exact -C ROOT/proj ...`) reads them there
        assert Repository.open(root / "proj", search_parents=False).refs.read("heads/main") == bytes.fromhex(first)
        clone2 = tmp_path / "c2"
        ok(exact("clone", srv.repo_url("proj"), str(clone2), token=tok))
        assert Repository.open(clone2).refs.read("heads/main") == bytes.fromhex(first)


def test_bad_backend_settings_are_one_line_errors(tmp_path: Path) -> None:
    res = exact("serve", str(tmp_path), "--db", "mysql://x")
    assert res.returncode != 0 and "postgresql://" in res.stderr


def test_database_stopped_gives_503_then_ok(tmp_path: Path, postgres: Any) -> None:
    url = postgres.database("t_" + uuid.uuid4().hex[:12])
    root = tmp_path / "srv"
    root.mkdir()
    ok(exact("server", "migrate", "--root", str(root), "--db", url))
    (root / "backends.json").write_text(json.dumps({"db": url}))  # the admin commands follow it
    admin(root, "repo", "add", "proj")
    tok = admin(root, "user", "add", "alice")
    admin(root, "grant", "alice", "maintain", "proj")
    with thread_server(root, db=url) as srv:
        refs_url = srv.repo_url("proj") + "/info/refs"
        assert request("GET", refs_url, token=tok).status == 200
        with postgres.stopped():
            r = request("GET", refs_url, token=tok)
            assert r.status == 503, r.body
            assert r.error()["type"] == "backend_unavailable"
        assert request("GET", refs_url, token=tok).status == 200
