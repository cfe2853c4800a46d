"""`exact serve --objects s3://... --db postgresql://...` and the `exact server ...` commands on the same
backends: objects on a real SeaweedFS, refs on a real PostgreSQL, nothing in the repository's own folder."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from exactvc.backends.config import Backends
from exactvc.backends.postgres import Database
from exactvc.backends.postgres_refs import PgRefs
from exactvc.objects import ImageRecord
from exactvc.repo import Repository
from tests.engines.seaweed import BUCKET, SECRET, Seaweed

from .server_fixtures import add_squares, admin, annotation_ids, exact, fsck_clean, ok, request, thread_server

IMAGE = "slide-1"


def scaled_root(tmp_path: Path, postgres: Any) -> tuple[Path, str, str, tuple[str, ...]]:
    """A server ROOT with repository ``proj`` created on S3 + PostgreSQL, user alice (maintain)."""
    url = postgres.database("t_" + uuid.uuid4().hex[:12])
    objects = f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}"
    root = tmp_path / "srv"
    root.mkdir()
    opts = ("--objects", objects, "--db", url)
    assert "Created repository proj" in ok(exact("server", "repo", "add", "proj", "--root", str(root), *opts))
    # the other admin commands (users, grants) follow ROOT/backends.json: users live in the database too
    (root / "backends.json").write_text(json.dumps({"objects": objects, "db": url}))
    return root, objects, url, opts


def server_fsck(root: Path, opts: tuple[str, ...], name: str = "proj") -> dict[str, Any]:
    r = exact("server", "fsck", name, "--root", str(root), *opts, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    rep: dict[str, Any] = json.loads(r.stdout)["exactvc.fsck/v1"]
    assert rep["ok"] is True and rep["checked"] > 0
    return rep


def test_push_and_clone_through_a_server_on_s3_and_postgres(tmp_path: Path, s3_env: Seaweed, postgres: Any) -> None:
    root, objects, url, opts = scaled_root(tmp_path, postgres)
    tok = admin(root, "user", "add", "alice")
    admin(root, "grant", "alice", "maintain", "proj")
    with thread_server(root, objects=objects, db=url) as srv:
        c = tmp_path / "c"
        ok(exact("clone", srv.repo_url("proj"), str(c), token=tok))
        repo = Repository.open(c)
        repo.add_label("cell", shape="polygon", color="#ff0000")
        repo.add_image_record(ImageRecord(IMAGE, "ab" * 32, 10000, 10000))
        ids = set(add_squares(repo, IMAGE, 40))
        first = repo.commit("first")
        ok(exact("-C", str(c), "push", token=tok))
        c2 = tmp_path / "c2"
        ok(exact("clone", srv.repo_url("proj"), str(c2), token=tok))
        assert annotation_ids(Repository.open(c2), IMAGE) == ids
        fsck_clean(c2)
    # refs in PostgreSQL, objects on S3, none of either in the repository's folder under ROOT
    db = Database(url)
    try:
        assert PgRefs(db, "proj").list() == {"heads/main": bytes.fromhex(first)}
    finally:
        db.close()
    local = root / "proj" / ".exact"
    assert not [p for p in (local / "objects").rglob("*") if p.is_file()]
    assert not [p for p in (local / "refs").rglob("*") if p.is_file()]
    store = Backends(objects).object_store(tmp_path / "elsewhere", "proj")  # another machine: cold cache
    assert store.has(bytes.fromhex(first)) and len(store.packs()) >= 1
    assert (root / ".cache" / "objects" / "proj").is_dir()  # the server's bounded cache of immutable packs
    server_fsck(root, opts)


def test_credentials_never_show_in_output_logs_or_errors(tmp_path: Path, s3_env: Seaweed, postgres: Any,
                                                          monkeypatch: Any) -> None:
    root, objects, url, opts = scaled_root(tmp_path, postgres)
    seen = [ok(exact("serve", "--help")), ok(exact("server", "fsck", "--help"))]
    rep = exact("server", "fsck", "proj", "--root", str(root), *opts)
    seen += [rep.stdout, rep.stderr]
    (root / "backends.json").write_text(json.dumps({"objects": objects, "db": url}))
    with thread_server(root) as srv:  # the settings from ROOT/backends.json
        r = request("GET", srv.repo_url("proj") + "/info/refs")
        seen.append(r.body.decode())
        assert r.status in (401, 404)
    # a wrong secret and an unreachable endpoint: one-line errors, exit 75, the secret nowhere
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET + "-wrong")
    bad = exact("server", "fsck", "proj", "--root", str(root))
    assert bad.returncode != 0, bad.stdout
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    down = exact("server", "fsck", "proj", "--root", str(root))
    assert down.returncode == 75 and "object storage is unavailable" in down.stderr, down.stderr
    assert len(down.stderr.strip().splitlines()) == 1
    seen += [bad.stdout, bad.stderr, down.stdout, down.stderr]
    with thread_server(root) as srv:
        tok = admin(root, "user", "add", "bob", "--site-admin")
        r = request("GET", srv.repo_url("proj") + "/info/refs", token=tok)
        assert r.status == 503 and r.error()["type"] == "backend_unavailable"
        seen.append(r.body.decode())
    for text in seen:
        assert SECRET not in text


def test_object_storage_stopped_gives_503_then_the_push_succeeds(tmp_path: Path, s3_env: Seaweed,
                                                                  postgres: Any) -> None:
    root, objects, url, opts = scaled_root(tmp_path, postgres)
    tok = admin(root, "user", "add", "alice")
    admin(root, "grant", "alice", "maintain", "proj")
    with thread_server(root, objects=objects, db=url) as srv:
        c = tmp_path / "c"
        ok(exact("clone", srv.repo_url("proj"), str(c), token=tok))
        repo = Repository.open(c)
        repo.add_label("cell", shape="polygon", color="#ff0000")
        repo.add_image_record(ImageRecord(IMAGE, "ab" * 32, 10000, 10000))
        add_squares(repo, IMAGE, 5)
        first = repo.commit("first")
        ok(exact("-C", str(c), "push", token=tok))
        add_squares(repo, IMAGE, 5, y0=5000)
        second = repo.commit("second")
        with s3_env.stopped():
            r = exact("-C", str(c), "push", token=tok)
            assert r.returncode != 0 and "(503): object storage is unavailable" in r.stderr, r.stderr
            assert "127.0.0.1" not in r.stderr  # the endpoint is not the client's business
            reply = request("GET", srv.repo_url("proj") + "/info/refs", token=tok)
            # the ref read comes from PostgreSQL, which is up; the object store is listed at most every 0.5 s
            assert reply.status in (200, 503)
            if reply.status == 503:
                assert reply.error()["type"] == "backend_unavailable"
            else:
                assert reply.json()["refs"]["heads/main"] == first  # nothing half-written: the ref did not move
        ok(exact("-C", str(c), "push", token=tok))
        r2 = request("GET", srv.repo_url("proj") + "/info/refs", token=tok)
        assert r2.status == 200 and r2.json()["refs"]["heads/main"] == second
    server_fsck(root, opts)


def test_bad_backend_settings_are_one_line_errors(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    admin(root, "repo", "add", "proj")
    r = exact("server", "fsck", "proj", "--root", str(root), "--objects", "s3:/bucket")
    assert r.returncode != 0 and "s3://BUCKET/PREFIX" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (root / "backends.json").write_text(json.dumps({"objects": "s3://b/p", "bucket": "x"}))
    r = exact("server", "fsck", "proj", "--root", str(root))
    assert r.returncode != 0 and "unknown setting 'bucket'" in r.stderr, r.stderr
    (root / "backends.json").write_text(json.dumps({"db": "postgresql://u:hunter2@db.internal/x", "cache_bytes": -1}))
    r = exact("server", "repo", "add", "other", "--root", str(root))
    assert r.returncode != 0 and "cache_bytes" in r.stderr and "hunter2" not in r.stderr, r.stderr
    (root / "backends.json").write_text(json.dumps({"db": "mysql://u:hunter2@db.internal/x"}))
    r = exact("serve", str(root))
    assert r.returncode != 0 and "postgresql://" in r.stderr and "hunter2" not in r.stderr, r.stderr


def test_a_second_machine_with_an_empty_root_serves_the_same_repositories(tmp_path: Path, s3_env: Seaweed,
                                                                          postgres: Any) -> None:
    root_a, objects, url, opts = scaled_root(tmp_path, postgres)
    tok_a = admin(root_a, "user", "add", "alice")
    admin(root_a, "grant", "alice", "maintain", "proj")
    root_b = tmp_path / "machine-b"  # nothing shared with root_a but the backends (users live there too)
    root_b.mkdir()
    (root_b / "backends.json").write_text(json.dumps({"objects": objects, "db": url}))
    again = exact("server", "repo", "add", "proj", "--root", str(root_b))
    assert again.returncode != 0 and "exists already" in again.stderr, again.stderr
    again = exact("server", "user", "add", "alice", "--root", str(root_b))
    assert again.returncode != 0 and "alice" in again.stderr, again.stderr  # the same users on every machine
    tok_b = tok_a
    admin(root_b, "grant", "alice", "maintain", "proj")  # its folder on machine b is made here
    with thread_server(root_a, objects=objects, db=url) as a, thread_server(root_b) as b:
        c = tmp_path / "c"
        ok(exact("clone", b.repo_url("proj"), str(c), token=tok_b))
        repo = Repository.open(c)
        repo.add_label("cell", shape="polygon", color="#ff0000")
        repo.add_image_record(ImageRecord(IMAGE, "ab" * 32, 10000, 10000))
        ids = set(add_squares(repo, IMAGE, 7))
        repo.commit("through machine b")
        ok(exact("-C", str(c), "push", token=tok_b))
        c2 = tmp_path / "c2"
        ok(exact("clone", a.repo_url("proj"), str(c2), token=tok_a))  # machine a serves what b received
        assert annotation_ids(Repository.open(c2), IMAGE) == ids
    assert server_fsck(root_b, ())["checked"] > 0  # the settings from root_b/backends.json
