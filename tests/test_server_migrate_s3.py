"""`exact server migrate --objects s3://... --db postgresql://...`: a local (embedded) server's repositories
copied into S3 + PostgreSQL, every object read back from S3 and re-hashed; idempotent; a clone from the
migrated server equals a clone from the original."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from exactvc.objects import ImageRecord
from exactvc.repo import Repository
from tests.engines.seaweed import BUCKET, Seaweed

from .server_fixtures import add_squares, admin, exact, fsck_clean, ok, thread_server
from .test_scaleout_server import server_fsck

IMAGE = "slide-1"


def _migrate(root: Path, opts: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(ok(exact("server", "migrate", "--root", str(root), *opts, "--json")))
    return {r["name"]: r for r in out["exactvc.server-migrate/v1"]["repositories"]}


def _clone_state(path: Path) -> tuple[dict[str, bytes], list[str], set[str]]:
    r = Repository.open(path)
    return (r.refs.list("remotes/"), [e.id for e in r.log()], {a.id for a in r.annotations(IMAGE)})


def test_migrate_a_local_server_to_s3_and_postgres(tmp_path: Path, s3_env: Seaweed, postgres: Any) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    admin(root, "repo", "add", "proj")
    admin(root, "repo", "add", "empty")
    tok = admin(root, "user", "add", "alice")
    admin(root, "grant", "alice", "maintain", "proj")
    with thread_server(root) as srv:  # the embedded server: files and SQLite under ROOT
        c = tmp_path / "c"
        ok(exact("clone", srv.repo_url("proj"), str(c), token=tok))
        repo = Repository.open(c)
        repo.add_label("cell", shape="polygon", color="#ff0000")
        repo.add_image_record(ImageRecord(IMAGE, "ab" * 32, 10000, 10000))
        add_squares(repo, IMAGE, 30)
        repo.commit("first")
        add_squares(repo, IMAGE, 3, y0=4000)  # few objects: pushed as loose files
        repo.commit("second")
        ok(exact("-C", str(c), "tag", "v1"))
        ok(exact("-C", str(c), "branch", "side"))
        ok(exact("-C", str(c), "push", token=tok))
        ok(exact("-C", str(c), "push", "--tags", token=tok))
        ok(exact("-C", str(c), "push", "origin", "side", token=tok))
        before = tmp_path / "before"
        ok(exact("clone", srv.repo_url("proj"), str(before), token=tok))
    url = postgres.database("t_" + uuid.uuid4().hex[:12])
    opts = ("--objects", f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}", "--db", url)
    first = _migrate(root, opts)
    local = Repository.open(root / "proj", search_parents=False)
    local_ids = list(local.store.iter_ids())
    assert {"heads/main", "heads/side", "tags/v1"} <= set(local.refs.list())
    n_refs = len(local.refs.list())
    assert first["proj"]["objects"] == len(local_ids) == first["proj"]["copied"] == first["proj"]["verified"]
    assert first["proj"]["refs_written"] == n_refs and not first["proj"]["problems"]
    assert first["empty"]["objects"] == 0
    again = _migrate(root, opts)  # idempotent: nothing new to copy, everything verified again
    assert again["proj"]["copied"] == 0 and again["proj"]["verified"] == len(local_ids)
    assert again["proj"]["refs_written"] == 0 and again["proj"]["refs_same"] == n_refs
    server_fsck(root, opts)
    objects, db = opts[1], opts[3]
    with thread_server(root, objects=objects, db=db) as srv:
        after = tmp_path / "after"
        ok(exact("clone", srv.repo_url("proj"), str(after), token=tok))
        fsck_clean(after)
    assert _clone_state(after) == _clone_state(before)
    assert Repository.open(after).refs.list("tags/") == Repository.open(before).refs.list("tags/")
