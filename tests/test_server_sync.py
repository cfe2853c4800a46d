"""Sync between real servers and real clients: two institutions, concurrent pushers, retries, privacy.

Servers are `exact serve` subprocesses (or waitress in a thread); clients are the `exact` CLI.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from exactvc import porcelain
from exactvc.history import commit_changes
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

from .conftest import REAL_SLIDE, square
from .server_fixtures import (
    Reply,
    ServerProcess,
    add_squares,
    admin,
    annotation_ids,
    exact,
    fsck_clean,
    make_repo,
    make_root,
    object_stream,
    occurrences,
    ok,
    push_body,
    push_commit,
    repo_files,
    request,
    server_access,
    thread_server,
    update,
)

# every test on each backend pair: disk+SQLite and PostgreSQL(+S3) (tests/conftest.py backend_pair)
pytestmark = pytest.mark.usefixtures("backend_pair")
IMAGE = "slide-1"
T = TypeVar("T")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[str], ServerProcess]]:
    """Start `exact serve ROOT --port 0` subprocesses; all are stopped at teardown."""
    started: list[ServerProcess] = []

    def start(name: str) -> ServerProcess:
        s = ServerProcess(tmp_path / name, tmp_path / f"{name}.log")
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def tip(path: Path, ref: str) -> str:
    oid = Repository.open(path, search_parents=False).refs.read(ref)
    assert oid is not None, f"{path} has no {ref}"
    return oid.hex()


def props_on(path: Path, rev: str) -> set[str]:
    """The ``who`` property of every annotation of IMAGE at ``rev``."""
    return {str((a.properties or {}).get("who")) for a in Repository.open(path).annotations(IMAGE, rev)}


# --- two institutions -------------------------------------------------------------------------------


def test_two_institutions_exchange_a_branch(tmp_path: Path, serve: Callable[[str], ServerProcess]) -> None:
    ra, rb = tmp_path / "A", tmp_path / "B"
    make_root(ra)
    make_root(rb)
    admin(ra, "repo", "add", "study")
    admin(rb, "repo", "add", "study")
    alice_a = admin(ra, "user", "add", "alice")
    admin(ra, "grant", "alice", "maintain", "study")
    alice_b = admin(rb, "user", "add", "alice")
    admin(rb, "grant", "alice", "annotate", "study")  # a guest at B: may add branches, not touch main
    bob = admin(rb, "user", "add", "bob")
    admin(rb, "grant", "bob", "maintain", "study")
    A, B = serve("A"), serve("B")

    # alice keeps one token per server in her credentials file
    alice_cfg = tmp_path / "alice-config"
    ok(exact("login", A.url + "/", "--token", alice_a, config_dir=alice_cfg))
    ok(exact("login", B.url + "/", "--token", alice_b, config_dir=alice_cfg))

    def alice(*args: str) -> subprocess.CompletedProcess[str]:
        return exact("-C", str(a1), *args, config_dir=alice_cfg)

    def bob_(*args: str) -> subprocess.CompletedProcess[str]:
        return exact("-C", str(b1), *args, token=bob)

    # bob clones the (still empty) repository of institution B
    b1 = tmp_path / "bob"
    ok(exact("clone", B.repo_url("study"), str(b1), token=bob))

    # alice clones A, seeds it and pushes main there
    a1 = tmp_path / "alice"
    ok(exact("clone", A.repo_url("study"), str(a1), config_dir=alice_cfg))
    ok(alice("label", "add", "cell", "--shape", "polygon", "--color", "#ff0000"))
    ra_local = Repository.open(a1)
    ra_local.add_image_record(ImageRecord(IMAGE, "ef" * 32, 100000, 80000, levels=4, mpp=0.25))
    seed = add_squares(ra_local, IMAGE, 5, properties={"who": "seed"})
    ok(alice("commit", "-m", "seed"))
    ok(alice("push"))
    assert tip(ra / "study", "heads/main") == tip(a1, "heads/main")

    # alice starts a branch for the exchange, pushes it to A and to B
    ok(alice("switch", "-c", "exchange"))
    add_squares(Repository.open(a1), IMAGE, 3, y0=1000, properties={"who": "alice-1"})
    ok(alice("commit", "-m", "alice: first round"))
    ok(alice("push", "origin", "exchange"))
    ok(alice("remote", "add", "b", B.repo_url("study")))
    out = ok(alice("push", "b", "exchange", "-u"))
    assert "new branch" in out
    assert tip(rb / "study", "heads/exchange") == tip(a1, "heads/exchange")
    # the guest cannot touch B's main
    r = alice("push", "b", "main")
    assert r.returncode == 9 and "403" in r.stderr and "protected" in r.stderr, r.stderr
    assert "heads/main" not in json.loads(request("GET", B.repo_url("study") + "/info/refs", token=bob).body)["refs"]

    # bob fetches the branch from B into his clone
    out = ok(bob_("fetch"))
    assert "remotes/origin/exchange" in out
    ok(bob_("branch", "exchange", "origin/exchange"))
    ok(bob_("switch", "exchange"))
    assert annotation_ids(Repository.open(b1), IMAGE) == annotation_ids(Repository.open(a1), IMAGE)

    # both sides commit: bob moves a seed square and adds two, alice deletes another and adds two
    rb_local = Repository.open(b1)
    with rb_local.edit(IMAGE) as ed:
        ed.update(seed[0], geometry=square(5000, 5000, 40))
    add_squares(rb_local, IMAGE, 2, y0=2000, properties={"who": "bob"})
    ok(bob_("commit", "-m", "bob: move one, add two"))
    ok(bob_("push", "origin", "exchange"))

    ra_local = Repository.open(a1)
    with ra_local.edit(IMAGE) as ed:
        ed.delete(seed[4])
    add_squares(ra_local, IMAGE, 2, y0=3000, properties={"who": "alice-2"})
    ok(alice("commit", "-m", "alice: delete one, add two"))

    # alice's push to B is refused (B moved on), she pulls with a merge and pushes again
    r = alice("push", "b", "exchange")
    assert r.returncode == 6, r.stderr
    assert "non-fast-forward" in r.stderr
    out = ok(alice("pull", "b", "exchange"))
    assert out.startswith("Merged"), out
    merged = Repository.open(a1)
    anns = {a.id: a for a in merged.annotations(IMAGE)}
    assert len(anns) == 5 - 1 + 3 + 2 + 2
    assert seed[4] not in anns
    assert anns[seed[0]].geojson["coordinates"][0][0] == [5000, 5000]  # bob's move survived the merge
    assert props_on(a1, "HEAD") == {"seed", "alice-1", "alice-2", "bob"}
    ok(alice("push", "b", "exchange"))
    ok(alice("push", "origin", "exchange"))
    head = tip(a1, "heads/exchange")
    assert len(merged.commit_object(bytes.fromhex(head)).parents) == 2

    # bob pulls the merge (fast-forward) and sees exactly what alice has
    out = ok(bob_("pull", "origin", "exchange"))
    assert out.startswith("Fast-forward"), out
    assert tip(b1, "heads/exchange") == head
    assert tip(ra / "study", "heads/exchange") == head
    assert tip(rb / "study", "heads/exchange") == head
    assert annotation_ids(Repository.open(b1), IMAGE) == set(anns)

    # the REST API of each institution shows the same history
    for srv, tok in ((A, alice_a), (B, bob)):
        log = request("GET", f"{srv.url}/api/v1/repos/study/log?rev=exchange", token=tok).json()["log"]
        assert log[0]["id"] == head
    for path in (a1, b1, ra / "study", rb / "study"):
        fsck_clean(path)


# --- eight clients pushing to one branch at once -----------------------------------------------------

CLIENTS = 8
ROUNDS = 3


def test_concurrent_pushes_one_winner_per_round(tmp_path: Path, serve: Callable[[str], ServerProcess]) -> None:
    root = tmp_path / "srv"
    make_root(root)
    admin(root, "repo", "add", "busy")
    lead = admin(root, "user", "add", "lead")
    admin(root, "grant", "lead", "maintain", "busy")
    acc = server_access(root)
    tokens = []
    for i in range(CLIENTS):
        tokens.append(acc.add_user(f"u{i}"))
        acc.grant("busy", f"u{i}", "annotate")
    srv = serve("srv")
    url = srv.repo_url("busy")

    # the lead seeds main and the shared branch
    seed = tmp_path / "lead"
    ok(exact("clone", url, str(seed), token=lead))
    r = Repository.open(seed)
    r.add_label("cell", shape="polygon", color="#ff0000")
    r.add_image_record(ImageRecord(IMAGE, "ab" * 32, 100000, 100000, levels=4))
    add_squares(r, IMAGE, 2, properties={"who": "seed"})
    r.commit("seed")
    ok(exact("-C", str(seed), "push", token=lead))
    ok(exact("-C", str(seed), "branch", "shared", token=lead))
    ok(exact("-C", str(seed), "push", "origin", "shared", token=lead))

    clones = [tmp_path / f"c{i}" for i in range(CLIENTS)]

    def run_all(fn: Callable[[int], T], which: list[int]) -> list[T]:
        with ThreadPoolExecutor(len(which) or 1) as ex:
            return list(ex.map(fn, which))

    def setup(i: int) -> None:
        ok(exact("clone", url, str(clones[i]), token=tokens[i]))
        repo = Repository.open(clones[i])
        porcelain.branch_create(repo, "shared", "origin/shared")
        porcelain.switch(repo, "shared")

    run_all(setup, list(range(CLIENTS)))

    def pull(i: int) -> None:
        out = ok(exact("-C", str(clones[i]), "pull", "origin", "shared", token=tokens[i]))
        assert out.startswith(("Merged", "Fast-forward", "Already")), out

    expected = {"seed"}
    losers: list[int] = []
    for rnd in range(ROUNDS):
        run_all(pull, losers)  # last round's losers merge the winner's work into theirs
        for i in range(CLIENTS):
            repo = Repository.open(clones[i])
            with repo.edit(IMAGE) as ed:
                ed.add("cell", square(1000 * i, 1000 * rnd + 500), {"who": f"c{i}r{rnd}"})
            repo.commit(f"client {i}, round {rnd}", author=f"u{i} <u{i}@example.org>")
            expected.add(f"c{i}r{rnd}")
        barrier = threading.Barrier(CLIENTS)

        def push(i: int, barrier: threading.Barrier = barrier) -> subprocess.CompletedProcess[str]:
            barrier.wait(timeout=60)
            return exact("-C", str(clones[i]), "push", "origin", "shared", token=tokens[i])

        results = run_all(push, list(range(CLIENTS)))
        winners = [i for i, res in enumerate(results) if res.returncode == 0]
        assert len(winners) == 1, [(res.returncode, res.stderr) for res in results]
        losers = [i for i in range(CLIENTS) if i not in winners]
        for i in losers:
            res = results[i]
            assert res.returncode == 6, res.stderr
            err = res.stderr.lower()
            assert "non-fast-forward" in err and ("fetch" in err or "pull" in err), err
        # the winner's commit is what the server has
        assert tip(root / "busy", "heads/shared") == tip(clones[winners[0]], "heads/shared")

    # the last round's losers pull and push one after the other: every push now goes through
    for i in losers:
        pull(i)
        ok(exact("-C", str(clones[i]), "push", "origin", "shared", token=tokens[i]))
    assert props_on(root / "busy", "shared") == expected  # nothing lost
    run_all(pull, list(range(CLIENTS)))
    final = tip(root / "busy", "heads/shared")
    for c in clones:
        assert tip(c, "heads/shared") == final
        assert props_on(c, "HEAD") == expected
    for path in [root / "busy", *clones]:
        fsck_clean(path)


def test_simultaneous_push_requests_race_on_the_server(tmp_path: Path,
                                                       serve: Callable[[str], ServerProcess]) -> None:
    """The same race without client start-up spreading it out: 8 push requests sent at one instant,
    all from the same old tip, so the server's check and compare-and-swap decide (3 rounds)."""
    root = tmp_path / "srv"
    make_root(root)
    admin(root, "repo", "add", "busy")
    acc = server_access(root)
    tokens = []
    for i in range(CLIENTS):
        tokens.append(acc.add_user(f"u{i}"))
        acc.grant("busy", f"u{i}", "maintain")
    srv = serve("srv")
    url = srv.repo_url("busy")
    local = make_repo(tmp_path / "local", IMAGE, n=3)
    base = local.head_commit()
    assert base is not None
    r = request("POST", url + "/push", push_commit(local, "heads/main", None, base, []), token=tokens[0])
    assert r.status == 200, r.body
    winners = []
    for rnd in range(ROUNDS):
        bodies = []
        for i in range(CLIENTS):
            cid, _ = commit_changes(local, f"r{rnd}c{i}", None, IMAGE, f"round {rnd} client {i}",
                                    f"u{i} <u{i}@example.org>", start=base.hex(),
                                    create=[{"label": "cell", "geometry": square(100 * i, 100 * rnd + 5000),
                                             "properties": {"who": f"c{i}r{rnd}"}}])
            bodies.append((cid, push_commit(local, "heads/main", base, cid, [base])))
        barrier = threading.Barrier(CLIENTS)

        def send(i: int, bodies: list[tuple[bytes, bytes]] = bodies, barrier: threading.Barrier = barrier) -> Reply:
            barrier.wait(timeout=30)
            return request("POST", url + "/push", bodies[i][1], token=tokens[i])

        with ThreadPoolExecutor(CLIENTS) as ex:
            replies = list(ex.map(send, range(CLIENTS)))
        ok_ = [i for i, rep in enumerate(replies) if rep.status == 200]
        assert len(ok_) == 1, [(rep.status, rep.body[:200]) for rep in replies]
        for i, rep in enumerate(replies):
            if i != ok_[0]:
                assert rep.status == 409, rep.body
                err = rep.error()
                assert err["type"] == "non_fast_forward" and "non-fast-forward" in err["message"], err
        base = bodies[ok_[0]][0]
        winners.append(f"c{ok_[0]}r{rnd}")
        assert tip(root / "busy", "heads/main") == base.hex()
    assert props_on(root / "busy", "main") == {"None", *winners}
    fsck_clean(root / "busy")


# --- retries and privacy (in-process server) ---------------------------------------------------------


def test_resending_the_same_push_is_harmless(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    make_root(root)
    admin(root, "repo", "add", "proj")
    tok = admin(root, "user", "add", "alice")
    admin(root, "grant", "alice", "maintain", "proj")
    with thread_server(root) as srv:
        c = tmp_path / "c"
        ok(exact("clone", srv.repo_url("proj"), str(c), token=tok))
        repo = Repository.open(c)
        repo.add_label("cell", shape="polygon", color="#ff0000")
        repo.add_image_record(ImageRecord(IMAGE, "ab" * 32, 10000, 10000))
        add_squares(repo, IMAGE, 30)
        first = bytes.fromhex(repo.commit("first"))
        body = push_commit(repo, "heads/main", None, first, [])
        r1 = request("POST", srv.repo_url("proj") + "/push", body, token=tok)
        assert r1.status == 200, r1.body
        assert r1.json()["results"] == [{"ref": "heads/main", "status": "ok"}]
        before = repo_files(root / "proj")
        # the same bytes again (a client retrying after a lost reply): refused or accepted, nothing changes
        r2 = request("POST", srv.repo_url("proj") + "/push", body, token=tok)
        assert r2.status in (200, 409), r2.body
        if r2.status == 409:
            assert r2.error()["type"] == "non_fast_forward"
        assert repo_files(root / "proj") == before
        assert tip(root / "proj", "heads/main") == first.hex()
        # and the CLI has nothing to do
        assert "Everything up to date" in ok(exact("-C", str(c), "push", token=tok))
        add_squares(Repository.open(c), IMAGE, 1, y0=5000)
        ok(exact("-C", str(c), "commit", "-m", "second", token=tok))
        ok(exact("-C", str(c), "push", token=tok))
        second = tip(c, "heads/main")
        before = repo_files(root / "proj")
        r3 = request("POST", srv.repo_url("proj") + "/push", body, token=tok)  # the old push, late
        assert r3.status == 409 and r3.error()["type"] == "non_fast_forward"
        assert repo_files(root / "proj") == before
        assert tip(root / "proj", "heads/main") == second
        fsck_clean(root / "proj")


@pytest.mark.skipif(not REAL_SLIDE.exists(), reason="real slide not available")
def test_private_image_names_never_reach_the_server(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    make_root(root)
    admin(root, "repo", "add", "wsi")
    tok = admin(root, "user", "add", "alice")
    admin(root, "grant", "alice", "maintain", "wsi")
    with thread_server(root) as srv:
        c = tmp_path / "c"
        ok(exact("clone", srv.repo_url("wsi"), str(c), token=tok))
        ok(exact("-C", str(c), "label", "add", "cell", "--shape", "polygon", "--color", "#ff0000"))
        img = json.loads(ok(exact("-C", str(c), "image", "add", str(REAL_SLIDE), "--json")))["exactvc.image/v1"]
        name = img["name"]
        assert "cmu" not in name.lower()
        with Repository.open(c).edit(name) as ed:
            ed.add("cell", square(100, 100, 50), {"note": "a"})
        ok(exact("-C", str(c), "commit", "-m", "first annotation"))
        ok(exact("-C", str(c), "push", token=tok))
        # the clone remembers where the file is and what it was called ...
        assert occurrences(c, b"cmu_small_region")
        assert (c / ".exact" / "local.json").exists()
        # ... the server knows the image only by its public name
        assert occurrences(root, b"cmu_small_region") == []
        assert occurrences(root, str(REAL_SLIDE.parent).encode()) == []
        assert not list(root.rglob("local.json"))
        imgs = request("GET", f"{srv.url}/api/v1/repos/wsi/images", token=tok).json()["images"]
        assert [i["name"] for i in imgs] == [name]
        assert "cmu_small_region" not in json.dumps(imgs)
        # a second clone gets the annotations, not the private name
        c2 = tmp_path / "c2"
        ok(exact("clone", srv.repo_url("wsi"), str(c2), token=tok))
        assert occurrences(c2, b"cmu_small_region") == []
        assert Repository.open(c2).count(name) == 1
        fsck_clean(root / "wsi")


def test_annotated_tag_pushed_by_a_maintainer_can_be_cloned(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    make_root(root)
    make_repo(root / "proj", IMAGE, n=2)
    tok = server_access(root).add_user("max")
    server_access(root).grant("proj", "max", "maintain")
    with thread_server(root) as srv:
        c = tmp_path / "c"
        ok(exact("clone", srv.repo_url("proj"), str(c), token=tok))
        ok(exact("-C", str(c), "tag", "v1", "-m", "release 1"))
        local = Repository.open(c)
        tag_id = local.refs.read("tags/v1")
        assert tag_id is not None and local.store.get(tag_id)[0] == "tag"
        rep = request("POST", srv.repo_url("proj") + "/push",
                      push_body({"updates": [update("tags/v1", None, tag_id)]}, object_stream(local, [tag_id])),
                      token=tok)
        assert rep.status == 200, rep.body  # maintainers may push tags
        r = exact("clone", srv.repo_url("proj"), str(tmp_path / "c2"), token=tok)
        assert r.returncode == 0, r.stderr
        assert Repository.open(tmp_path / "c2").refs.read("tags/v1") == tag_id

