"""Three `exact serve` processes on one PostgreSQL (objects in each repository's folder, or on a shared S3):
8 clients push to one branch in rounds through different processes; exactly one wins each round, the rest
get non-fast-forward, nothing is lost, fsck is clean."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from exactvc import transfer
from exactvc.backends.config import Backends
from exactvc.backends.postgres import Database
from exactvc.backends.postgres_refs import PgRefs
from exactvc.objects import ImageRecord
from exactvc.repo import Repository
from tests.engines.seaweed import BUCKET

from .conftest import square
from .server_fixtures import ServerProcess, admin, exact, ok, push_commit, request
from .test_scaleout_server import server_fsck

CLIENTS, ROUNDS = 8, 3


@pytest.mark.parametrize("objects", ["local", "s3"])
def test_three_processes_eight_clients_one_winner_per_round(tmp_path: Path, postgres: Any, s3_env: Any,
                                                            objects: str) -> None:
    url = postgres.database("t_" + uuid.uuid4().hex[:12])
    root = tmp_path / "srv"
    root.mkdir()
    opts: tuple[str, ...] = ("--db", url)
    if objects == "s3":
        opts += ("--objects", f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}")  # AWS_* from s3_env
    ok(exact("server", "migrate", "--root", str(root), "--db", url))
    conf = {"db": url, **({"objects": opts[-1]} if objects == "s3" else {})}
    (root / "backends.json").write_text(json.dumps(conf))  # the admin commands follow it
    admin(root, "repo", "add", "proj")
    tok = admin(root, "user", "add", "alice")
    admin(root, "grant", "alice", "maintain", "proj")
    servers = [ServerProcess(root, tmp_path / f"s{i}.log", opts) for i in range(3)]
    db = Database(url)
    try:
        c = tmp_path / "c"
        ok(exact("clone", servers[0].repo_url("proj"), str(c), token=tok))
        repo = Repository.open(c)
        repo.add_label("cell", shape="polygon", color="#ff0000")
        repo.add_image_record(ImageRecord("slide-1", "ab" * 32, 100000, 100000))
        base = bytes.fromhex(repo.commit("seed"))
        ok(exact("-C", str(c), "push", token=tok))
        refs = PgRefs(db, "proj")
        assert refs.read("heads/main") == base
        winners = []
        for rnd in range(ROUNDS):
            bodies = []
            for i in range(CLIENTS):  # eight commits on the same base, one per client
                repo.refs.cas("heads/main", repo.refs.read("heads/main"), base)
                with repo.edit("slide-1") as ed:
                    ed.add("cell", square(1000 * i, 1000 * rnd + 500), {"who": f"c{i}r{rnd}"})
                new = bytes.fromhex(repo.commit(f"client {i} round {rnd}"))
                bodies.append((new, push_commit(repo, "heads/main", base, new, [base])))
            barrier = threading.Barrier(CLIENTS)

            def push(i: int, bodies: list[tuple[bytes, bytes]] = bodies, barrier: threading.Barrier = barrier) -> Any:
                barrier.wait(timeout=60)
                return request("POST", servers[i % 3].repo_url("proj") + "/push", bodies[i][1], token=tok)

            with ThreadPoolExecutor(CLIENTS) as pool:
                replies = list(pool.map(push, range(CLIENTS)))
            won = [i for i, r in enumerate(replies) if r.status == 200]
            assert len(won) == 1, [(r.status, r.body[:200]) for r in replies]
            for i, r in enumerate(replies):
                if i not in won:
                    assert r.status == 409 and r.error()["type"] == "non_fast_forward", r.body
            base = bodies[won[0]][0]
            winners.append(base)
            assert refs.read("heads/main") == base
        # nothing lost: every winner is in the history, every object reachable from the tip is stored
        server_repo = Backends.load(root, *(dict(zip(opts[::2], opts[1::2], strict=True)).get(k)
                                             for k in ("--objects", "--db"))).open_repository(root, "proj")
        assert server_repo.store.has(base)
        reachable = set(transfer.objects_to_send(server_repo, [base], []))
        assert set(winners) <= reachable
        assert [e.new for e in refs.reflog("heads/main")][-ROUNDS:] == [w.hex() for w in winners]
        server_fsck(root, opts)
    finally:
        db.close()
        for s in servers:
            s.stop()
