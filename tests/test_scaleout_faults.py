"""Faults and maintenance on S3 + PostgreSQL: `kill -9` of a server process in the middle of a push, and gc's
grace period for the pack of an upload in flight."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from exactvc import transfer
from exactvc.backends.config import Backends
from exactvc.backends.postgres import Database
from exactvc.backends.postgres_refs import PgRefs
from exactvc.objects import ImageRecord
from exactvc.repo import Repository
from exactvc.store import Pending
from tests.engines.seaweed import SECRET, Seaweed

from .server_fixtures import ServerProcess, add_squares, admin, exact, ok, push_commit
from .test_scaleout_server import scaled_root, server_fsck

IMAGE = "slide-1"


def _send(url: str, path: str, body: bytes, token: str, part: float) -> socket.socket:
    """Send the head of a push and ``part`` of its body, leaving the connection open."""
    u = urlsplit(url)
    s = socket.create_connection((u.hostname or "127.0.0.1", u.port or 80), timeout=30)
    head = (f"POST {path} HTTP/1.1\r\nHost: {u.netloc}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    s.sendall(head + body[: int(len(body) * part)])
    return s


def _kill9(srv: ServerProcess) -> None:
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    srv.stop()


def test_kill_9_in_the_middle_of_a_push_leaves_nothing_broken(tmp_path: Path, s3_env: Seaweed,
                                                              postgres: Any) -> None:
    root, objects, url, opts = scaled_root(tmp_path, postgres)
    tok = admin(root, "user", "add", "alice")
    admin(root, "grant", "alice", "maintain", "proj")
    srv = ServerProcess(root, tmp_path / "a.log", opts)
    db = Database(url)
    try:
        c = tmp_path / "c"
        ok(exact("clone", srv.repo_url("proj"), str(c), token=tok))
        repo = Repository.open(c)
        repo.add_label("cell", shape="polygon", color="#ff0000")
        repo.add_image_record(ImageRecord(IMAGE, "ab" * 32, 200000, 200000))
        add_squares(repo, IMAGE, 10)
        base = bytes.fromhex(repo.commit("seed"))
        ok(exact("-C", str(c), "push", token=tok))
        add_squares(repo, IMAGE, 20000, y0=10000)  # a push of a few MB: seconds of server work here
        big = bytes.fromhex(repo.commit("big"))
        body = push_commit(repo, "heads/main", base, big, [base])
        refs = PgRefs(db, "proj")
        # 1: killed while the body is arriving; 2: killed after the whole body was sent (reading,
        # verifying, uploading to S3 or moving the ref)
        for part, wait in ((0.5, 0.3), (1.0, 0.4)):
            conn = _send(srv.url, "/proj/push", body, tok, part)
            time.sleep(wait)
            _kill9(srv)
            conn.close()
            assert refs.read("heads/main") in (base, big)
            server_fsck(root, opts)  # every ref's closure is readable (an index-less upload is only a note)
            srv = ServerProcess(root, tmp_path / f"b{part}.log", opts)
        # the next push, through the process started after the kills, succeeds (or has nothing to do
        # when a killed one had moved the ref)
        ok(exact("-C", str(c), "remote", "add", "now", srv.repo_url("proj")))
        ok(exact("-C", str(c), "push", "now", "main", token=tok))
        assert refs.read("heads/main") == big
        rep = server_fsck(root, opts)
        assert rep["checked"] >= len(list(transfer.objects_to_send(repo, [big], [])))
        c2 = tmp_path / "c2"
        ok(exact("clone", srv.repo_url("proj"), str(c2), token=tok))
        assert len(list(Repository.open(c2).annotations(IMAGE))) == 20010
    finally:
        db.close()
        srv.stop()
    logs = [p.read_text(errors="replace") for p in tmp_path.glob("*.log")]
    assert len(logs) == 3 and all("exactvc server backends: objects: s3://" in text for text in logs)
    assert not any(SECRET in text for text in logs)  # the servers' logs never carry the credentials


def test_gc_keeps_the_pack_of_an_upload_in_flight(tmp_path: Path, s3_env: Seaweed, postgres: Any) -> None:
    root, objects, url, opts = scaled_root(tmp_path, postgres)
    backends = Backends(objects, url)
    server = backends.open_repository(root, "proj")
    work = Repository.init(tmp_path / "work")
    work.add_label("cell", shape="polygon", color="#ff0000")
    work.add_image_record(ImageRecord(IMAGE, "ab" * 32, 10000, 10000))
    add_squares(work, IMAGE, 5)
    first = bytes.fromhex(work.commit("first"))
    oids = list(transfer.objects_to_send(work, [first], []))
    server.store.write([Pending(o, *work.store.get(o)) for o in oids])
    server.refs.cas("heads/main", None, first)
    # a push in flight: its objects uploaded (a pack of its own, visible), its ref not moved yet
    add_squares(work, IMAGE, 5, y0=3000)
    second = bytes.fromhex(work.commit("second"))
    in_flight = list(transfer.objects_to_send(work, [second], [first]))
    server.store.write([Pending(o, *work.store.get(o)) for o in in_flight])
    gc = json.loads(ok(exact("server", "gc", "proj", "--root", str(root), *opts, "--json")))["exactvc.gc/v1"]
    assert gc["kept"] == len(oids)
    # the push completes now: its ref moves, and everything it names is still there
    server.refs.cas("heads/main", first, second)
    rep = server_fsck(root, opts)
    assert rep["checked"] == len(oids) + len(in_flight)
    # without a grace period the same situation loses the upload: the grace is what protects it
    add_squares(work, IMAGE, 5, y0=6000)
    third = bytes.fromhex(work.commit("third"))
    lost = list(transfer.objects_to_send(work, [third], [second]))
    server.store.write([Pending(o, *work.store.get(o)) for o in lost])
    ok(exact("server", "gc", "proj", "--root", str(root), *opts, "--grace", "0"))
    fresh = Backends(objects).object_store(tmp_path / "cold", "proj")
    assert not any(fresh.has(o) for o in lost)
    assert all(fresh.has(o) for o in oids + in_flight)
    backends.close()


def test_the_repository_lock_holds_across_processes_on_the_database(tmp_path: Path, s3_env: Seaweed,
                                                                    postgres: Any) -> None:
    from exactvc import maintenance
    from exactvc.errors import LockError

    root, objects, url, _opts = scaled_root(tmp_path, postgres)
    one, two = Backends(objects, url), Backends(objects, url)  # two pools: as two machines would have
    one.lock_timeout = two.lock_timeout = 0.3
    a, b = one.open_repository(root, "proj"), two.open_repository(root, "proj")
    try:
        with b.lock():
            try:
                maintenance.gc(a)  # gc takes the repository lock: here, the one on the database
                raise AssertionError("gc ran while another process held the repository lock")
            except LockError as exc:
                assert "repository is busy" in exc.message
        assert maintenance.gc(a).kept == 0  # released: gc runs (nothing is reachable yet)
    finally:
        one.close()
        two.close()
