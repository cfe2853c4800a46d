"""fsck, gc and reachability on real repositories; kill -9 during import, commit and gc."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from exactvc import porcelain, tree
from exactvc.edit import Editor
from exactvc.errors import CorruptObject
from exactvc.maintenance import FsckReport, fsck, gc, reachable
from exactvc.objects import ImageRecord
from exactvc.repo import Repository
from exactvc.store import TYPE_CODES, DiskStore, Pack

AUTHOR = "T <t@x>"
BIG = 100_000
BATCH = 10_000


def square(x: float, y: float, s: float = 10) -> dict[str, object]:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]]}


def pos(i: int) -> tuple[int, int]:
    return (i % 4000) * 12, (i // 4000) * 12


def new_repo(path: Path) -> Repository:
    repo = Repository.init(path)
    repo.add_image_record(ImageRecord("img", "ab" * 32, 50000, 40000))
    repo.add_label("cell", shape="polygon")
    return repo


def add(repo: Repository, n: int, start: int, validate: bool = True) -> None:
    with Editor(repo, "img", validate=validate) as ed:
        for i in range(start, start + n):
            ed.add("cell", square(*pos(i)))


def objects_dir(path: Path) -> Path:
    return path / ".exact" / "objects"


def pack_files(path: Path) -> list[Path]:
    return sorted((objects_dir(path) / "pack").glob("pack-*.pack"))


def loose_files(path: Path) -> list[Path]:
    return [f for d in objects_dir(path).glob("[0-9a-f][0-9a-f]") for f in d.iterdir() if len(f.name) == 62]


def loose_path(path: Path, oid: bytes) -> Path:
    h = oid.hex()
    return objects_dir(path) / h[:2] / h[2:]


def head_annotations(repo: Repository, rev: str | None = "HEAD") -> int:
    """Read every annotation of ``rev`` (geometry included); returns how many, checked against the count."""
    entry, root = repo.tree_of("img", rev)
    n = 0
    for _k, rec in tree.items(repo.store, root):
        full = tree.join_record(repo.store, rec)
        assert full["l"] == "cell" and full["g"]
        n += 1
    assert n == entry.count
    return n


def assert_clean(rep: FsckReport) -> None:
    assert rep.ok, "\n".join(f"{p.oid} {p.type}: {p.message} <- {p.referenced_from}" for p in rep.problems)


# --- repositories -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 annotations in one commit (a pack), then small commits (loose objects)."""
    path = tmp_path_factory.mktemp("small") / "r"
    repo = new_repo(path)
    add(repo, 3000, 0)
    repo.commit("bulk", author=AUTHOR)
    for i in range(3):
        add(repo, 2, 3000 + 2 * i)
        repo.commit(f"small {i}", author=AUTHOR)
    return path


@pytest.fixture
def small(small_template: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "r"
    shutil.copytree(small_template, dst)
    return dst


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``pristine``: 3 annotations committed. ``uncommitted``: plus 100k in the working state.
    ``committed``: those committed, a few small commits and uncommitted edits on top."""
    d = tmp_path_factory.mktemp("big")
    pristine = d / "pristine"
    repo = new_repo(pristine)
    add(repo, 3, 0)
    repo.commit("base", author=AUTHOR)
    unc = d / "uncommitted"
    shutil.copytree(pristine, unc)
    repo = Repository.open(unc)
    for b in range(BIG // BATCH):
        add(repo, BATCH, 10 + b * BATCH, validate=False)
    committed = d / "committed"
    shutil.copytree(unc, committed)
    repo = Repository.open(committed)
    repo.commit("import", author=AUTHOR)
    for i in range(2):
        add(repo, 3, 200_000 + 3 * i)
        repo.commit(f"small {i}", author=AUTHOR)
    add(repo, 4, 300_000)  # uncommitted: gc must keep them
    return {"pristine": pristine, "uncommitted": unc, "committed": committed}


# --- reachability and fsck --------------------------------------------------------------------


def test_reachable_yields_every_object_once(small: Path) -> None:
    repo = Repository.open(small)
    got = list(reachable(repo))
    ids = [o for o, _t in got]
    assert len(ids) == len(set(ids))
    types = dict(got)
    assert {"commit", "snapshot", "labels", "image", "node"} <= set(types.values())
    log = repo.log()
    assert len(log) == 4
    for e in log:
        cid = bytes.fromhex(e.id)
        assert types[cid] == "commit"
        assert types[e.commit.root] == "snapshot"
    for oid, t in got:
        assert repo.store.get(oid)[0] == t


def test_fsck_clean_repository(small: Path) -> None:
    assert len(pack_files(small)) >= 1 and len(loose_files(small)) > 0  # both kinds of storage in use
    repo = Repository.open(small)
    calls: list[tuple[int, int]] = []
    rep = fsck(repo, progress=lambda d, t: calls.append((d, t)))
    assert_clean(rep)
    assert rep.checked == sum(1 for _ in reachable(repo))
    assert rep.checked > 60  # 3,000 annotations: ~95 leaves (random ids, so the count varies) and more
    assert calls and calls[-1][0] == rep.checked and all(d <= t for d, t in calls)
    assert orjson.loads(orjson.dumps(rep.to_dict()))["ok"] is True


def bulk_pack(path: Path) -> Pack:
    return max(DiskStore(objects_dir(path)).packs(), key=lambda p: p.count)


def test_fsck_reports_flipped_byte_in_pack_entry(small: Path) -> None:
    pack = bulk_pack(small)
    reach = dict(reachable(Repository.open(small)))
    # a reachable node stored whole in the pack
    for i, oid in enumerate(pack.iter_ids()):
        code, depth, payload = pack.entry(i)
        if code & 0x7F == TYPE_CODES["node"] and depth == 0 and reach.get(oid) == "node" and len(payload) > 200:
            off = pack.offset(i)
            break
    else:
        pytest.fail("no suitable pack entry")
    ppath = pack.path
    data = bytearray(ppath.read_bytes())
    data[off + 6 + len(payload) // 2] ^= 0x55
    ppath.write_bytes(bytes(data))

    rep = fsck(Repository.open(small))
    assert not rep.ok
    by_oid = {p.oid: p for p in rep.problems}
    p = by_oid[oid.hex()]
    assert p.type == "node"
    assert f"{ppath.name} at offset {off}" in p.message
    assert p.referenced_from and (p.referenced_from.startswith("node ") or "tree of image" in p.referenced_from)
    trailer = by_oid[None]
    assert trailer.type == "pack" and ppath.name in trailer.message and "trailer" in trailer.message
    assert len(rep.problems) == 2


def test_fsck_reports_truncated_loose_object(small: Path) -> None:
    repo = Repository.open(small)
    head = repo.head_commit()
    assert head is not None
    f = loose_path(small, head)
    f.chmod(0o644)
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 2])

    rep = fsck(Repository.open(small))
    h = head.hex()
    assert [(p.oid, p.type, p.message, p.referenced_from) for p in rep.problems] == [
        (h, "commit", f"object {h}: loose file .exact/objects/{h[:2]}/{h[2:]} does not decompress", "refs/heads/main")
    ]


def test_fsck_reports_missing_object_referenced_by_commit(small: Path) -> None:
    repo = Repository.open(small)
    parent = repo.log()[1]
    snap = parent.commit.root
    assert snap != repo.working()[1]
    loose_path(small, snap).unlink()

    rep = fsck(Repository.open(small))
    h = snap.hex()
    assert [(p.oid, p.type, p.message, p.referenced_from) for p in rep.problems] == [
        (h, "snapshot", f"object {h} (snapshot) is missing", f"commit {parent.id[:12]} (root)")
    ]


def test_fsck_reports_corrupt_pack_trailer(small: Path) -> None:
    clean = fsck(Repository.open(small))
    pack = bulk_pack(small)
    ppath = pack.path
    data = bytearray(ppath.read_bytes())
    data[-1] ^= 0xFF
    ppath.write_bytes(bytes(data))

    rep = fsck(Repository.open(small))
    assert [(p.oid, p.type) for p in rep.problems] == [(None, "pack")]
    assert ppath.name in rep.problems[0].message and "trailer" in rep.problems[0].message
    assert rep.checked == clean.checked  # every object still reads


def test_gc_refuses_when_a_reachable_object_is_missing(small: Path) -> None:
    repo = Repository.open(small)
    loose_path(small, repo.log()[1].commit.root).unlink()
    packs, loose = pack_files(small), sorted(loose_files(small))
    with pytest.raises(CorruptObject, match="missing"):
        gc(Repository.open(small))
    assert pack_files(small) == packs and sorted(loose_files(small)) == loose  # nothing removed
    assert not [p for p in (objects_dir(small) / "pack").iterdir() if p.name.startswith(".")]


# --- gc ---------------------------------------------------------------------------------------


def test_gc_drops_unreachable_keeps_reachable(small: Path) -> None:
    repo = Repository.open(small)
    main_log = [e.id for e in repo.log()]
    porcelain.switch(repo, "side", create=True)
    add(repo, 50, 10_000)
    repo.commit("side 1", author=AUTHOR)
    add(repo, 5, 10_100)
    repo.commit("side 2", author=AUTHOR)
    repo.query("img", (0, 0, 50000, 40000), rev="side")  # a spatial index of a tree about to become garbage
    with_side = {o for o, _ in reachable(repo)}
    porcelain.switch(repo, "main")
    porcelain.branch_delete(repo, "side", force=True)
    (small / ".exact" / "logs" / "HEAD").unlink()  # as if the HEAD reflog had expired (it keeps side 30 days)
    repo.query("img", (0, 0, 1000, 1000), rev="HEAD")
    # uncommitted work: annotations and a label
    add(repo, 7, 20_000)
    repo.add_label("tumor", shape="polygon")
    keep = {o for o, _ in reachable(repo)}
    gone = with_side - keep
    assert gone
    head_before = repo.head_commit()
    working_before = sorted(a.id for a in repo.annotations("img", None))
    head_ids = sorted(a.id for a in repo.annotations("img", "HEAD"))
    stored_before = sum(1 for _ in repo.store.iter_ids())
    cache = small / ".exact" / "cache" / "rtree"
    side_cache = [p for p in cache.iterdir() if bytes.fromhex(p.name[:64]) not in keep]
    assert side_cache
    time.sleep(0.02)  # file times come from a coarse clock: let the newest loose objects be older than gc

    calls: list[tuple[int, int]] = []
    rep = gc(repo, progress=lambda d, t: calls.append((d, t)))
    assert rep.kept == len(keep)
    assert rep.dropped == stored_before - len(keep)
    assert rep.bytes_after < rep.bytes_before
    assert calls and calls[-1][0] == calls[-1][1]
    assert len(pack_files(small)) == 1 and len(list((objects_dir(small) / "pack").glob("*.idx"))) == 1
    assert loose_files(small) == []
    assert [p for p in side_cache if p.exists()] == [] and any(cache.iterdir())

    fresh = Repository.open(small)
    assert not any(fresh.store.has(o) for o in gone)
    assert all(fresh.store.has(o) for o in keep)
    after = fsck(fresh)
    assert_clean(after)
    assert after.unreachable == 0 and after.checked == len(keep)
    assert fresh.head_commit() == head_before
    assert [e.id for e in fresh.log()] == main_log
    assert sorted(a.id for a in fresh.annotations("img", "HEAD")) == head_ids
    assert sorted(a.id for a in fresh.annotations("img", None)) == working_before
    assert fresh.labels().get("tumor") is not None
    fresh.commit("after gc", author=AUTHOR)
    assert_clean(fsck(Repository.open(small)))

    again = gc(Repository.open(small))  # nothing left to drop
    assert again.dropped == 0 and again.kept == len(keep) + 1  # the new commit


def test_gc_keeps_merge_state_and_stale_working(small: Path) -> None:
    repo = Repository.open(small)
    porcelain.switch(repo, "side", create=True)
    add(repo, 20, 30_000)
    side = bytes.fromhex(repo.commit("side", author=AUTHOR))
    porcelain.switch(repo, "main")
    porcelain.branch_delete(repo, "side", force=True)
    # a WORKING file whose base is not HEAD (HEAD moved under it): its snapshot is kept too
    add(repo, 3, 40_000)
    stale = repo.working()[1]
    porcelain.switch(repo, "side2", create=True, force=True)
    add(repo, 1, 50_000)
    repo.commit("moves HEAD", author=AUTHOR)
    (small / ".exact" / "WORKING").write_bytes(orjson.dumps({"base": repo.log()[1].id, "snapshot": stale.hex()}))
    (small / ".exact" / "MERGE_STATE").write_bytes(orjson.dumps({"theirs": side.hex(), "fingerprint": "ab" * 32}))
    (small / ".exact" / "logs" / "HEAD").unlink()  # only MERGE_STATE names side now
    time.sleep(0.02)
    gc(repo)
    fresh = Repository.open(small)
    assert fresh.store.has(side) and fresh.store.has(stale)
    assert [e.id for e in fresh.log(side.hex())][0] == side.hex()
    assert_clean(fsck(fresh))
    (small / ".exact" / "MERGE_STATE").unlink()
    (small / ".exact" / "WORKING").unlink()
    gc(fresh)
    assert not Repository.open(small).store.has(side) and not Repository.open(small).store.has(stale)


def test_gc_in_memory_repository() -> None:
    repo = Repository.memory()
    repo.add_image_record(ImageRecord("img", "ab" * 32, 50000, 40000))
    repo.add_label("cell", shape="polygon")
    add(repo, 30, 0)
    repo.commit("one", author=AUTHOR)
    rep = gc(repo)
    assert rep.dropped > 0 and rep.kept == sum(1 for _ in reachable(repo))
    assert_clean(fsck(repo))
    assert head_annotations(repo) == 30


# --- kill -9 ----------------------------------------------------------------------------------

CHILD = f"""
import sys
from exactvc.edit import Editor
from exactvc.maintenance import gc
from exactvc.repo import Repository

def say(msg):
    sys.stdout.write(msg + "\\n")
    sys.stdout.flush()

path, mode = sys.argv[1], sys.argv[2]
repo = Repository.open(path)
say("ready")
if mode == "import":
    for b in range({BIG // BATCH}):
        with Editor(repo, "img", validate=False) as ed:
            for i in range(1000 + b * {BATCH}, 1000 + (b + 1) * {BATCH}):
                x, y = (i % 4000) * 12, (i // 4000) * 12
                ed.add("cell", {{"type": "Polygon",
                                 "coordinates": [[[x, y], [x + 10, y], [x + 10, y + 10], [x, y + 10], [x, y]]]}})
        say(f"batch {{b}}")
    say("committing")
    say("done " + repo.commit("import", author="{AUTHOR}"))
elif mode == "commit":
    say("done " + repo.commit("import", author="{AUTHOR}"))
elif mode == "gc":
    gc(repo, progress=lambda d, t: say(f"progress {{d}} {{t}}"))
    say("done")
"""


def run_and_kill(path: Path, mode: str, when: Callable[[str], bool], delay: float) -> tuple[list[str], bool]:
    """Run the child; once a line satisfies ``when``, wait ``delay`` s and SIGKILL it.

    Returns the lines it printed and whether it was killed (False: it finished first).
    """
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    killed = False
    for line in proc.stdout:
        lines.append(line.strip())
        if when(lines[-1]):
            if delay:
                time.sleep(delay)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
            break
    lines += [x.strip() for x in proc.stdout]
    err = proc.stderr.read()
    rc = proc.wait(timeout=60)
    if killed and rc == -signal.SIGKILL:
        return lines, True
    assert rc == 0, err
    return lines, False


def ready(line: str) -> bool:
    return line == "ready"


def check_after_kill(path: Path, old_head: bytes, old_count: int, new_count: int, lines: list[str]) -> str:
    """fsck clean; HEAD is the old commit or, only if the commit completed, the new one; all readable."""
    repo = Repository.open(path)
    assert_clean(fsck(repo))
    head = repo.head_commit()
    assert head is not None
    done = [x[5:] for x in lines if x.startswith("done ")]
    if head == old_head:
        assert not done
        outcome = "old"
        assert head_annotations(repo) == old_count
    else:
        c = repo.commit_object(head)
        assert c.parents == (old_head,) and c.message == "import"
        assert not done or done[0] == head.hex()
        assert head_annotations(repo) == new_count
        outcome = "new"
    return outcome


def follow_up_commit(path: Path) -> bool:
    """A commit after the kill works, even when the killed process left a ref lock behind."""
    repo = Repository.open(path)
    add(repo, 1, 900_000)
    before = repo.head_commit()
    repo.commit("after kill", author=AUTHOR)
    assert repo.commit_object(repo.head_commit() or b"").parents == (before,)
    return True


@pytest.mark.slow
def test_kill_during_large_import(big: dict[str, Path], tmp_path: Path) -> None:
    old_head = Repository.open(big["pristine"]).head_commit()
    assert old_head is not None
    plans: list[tuple[Callable[[str], bool], float]] = [(ready, 0.1), (ready, 0.7), (ready, 2.0),
                                                        (lambda x: x == "committing", 0.0)]
    outcomes = []
    for n, (when, delay) in enumerate(plans):
        path = tmp_path / f"imp{n}"
        shutil.copytree(big["pristine"], path)
        lines, killed = run_and_kill(path, "import", when, delay)
        outcomes.append((delay, killed, check_after_kill(path, old_head, 3, 3 + BIG, lines)))
        follow_up_commit(path)
    print("import kills (delay, killed, HEAD):", outcomes)
    assert any(k for _d, k, _o in outcomes)


@pytest.mark.slow
def test_kill_during_commit_of_large_import(big: dict[str, Path], tmp_path: Path) -> None:
    old_head = Repository.open(big["uncommitted"]).head_commit()
    assert old_head is not None
    outcomes = []
    for n, delay in enumerate([0.0, 0.004, 0.008, 0.012, 0.05]):  # a commit takes ~10 ms after 'ready'
        path = tmp_path / f"c{n}"
        shutil.copytree(big["uncommitted"], path)
        lines, killed = run_and_kill(path, "commit", ready, delay)
        outcomes.append((delay, killed, check_after_kill(path, old_head, 3, 3 + BIG, lines),
                         follow_up_commit(path)))
    print("commit kills (delay, killed, HEAD, follow-up commit ok):", outcomes)


@pytest.mark.slow
def test_kill_during_gc(big: dict[str, Path], tmp_path: Path) -> None:
    src = Repository.open(big["committed"])
    head, refs = src.head_commit(), src.refs.list()
    count, working = src.count("img", "HEAD"), src.count("img", None)
    reach = sorted(o for o, _ in reachable(src))

    def progress_at(k: int) -> Callable[[str], bool]:
        return lambda x: x.startswith("progress") and int(x.split()[1]) >= k

    def packed(x: str) -> bool:  # the new pack is complete: removal starts now
        return x.startswith("progress") and x.split()[1] == x.split()[2]

    plans: list[tuple[Callable[[str], bool], float]] = [
        (ready, 0.05), (progress_at(2000), 0.0), (packed, 0.0), (packed, 0.002), (packed, 0.005),
    ]
    outcomes = []
    for n, (when, delay) in enumerate(plans):
        path = tmp_path / f"gc{n}"
        shutil.copytree(big["committed"], path)
        lines, killed = run_and_kill(path, "gc", when, delay)
        outcomes.append((n, killed, len(pack_files(path)), len(loose_files(path))))
        repo = Repository.open(path)
        assert_clean(fsck(repo))
        assert repo.head_commit() == head and repo.refs.list() == refs
        assert head_annotations(repo) == count and repo.count("img", None) == working
        assert sorted(o for o, _ in reachable(repo)) == reach
        if n in (0, 3):
            gc(repo)  # a gc after the killed one finishes the job
            fresh = Repository.open(path)
            assert len(list((objects_dir(path) / "pack").glob("pack-*.idx"))) == 1 and not loose_files(path)
            assert fresh.count("img", "HEAD") == count and fresh.count("img", None) == working
    print("gc kills (plan, killed, packs, loose):", outcomes)
    assert any(k for _n, k, _p, _l in outcomes)


def test_stale_ref_lock_does_not_block_a_commit(small: Path) -> None:
    lock = small / ".exact" / "refs" / "heads" / "main.lock"
    # what kill -9 inside DiskRefs.cas (between creating the lock and renaming it) leaves behind
    code = ("import os, sys, time; os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644); "
            "print('ready', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert lock.exists()
    repo = Repository.open(small)
    assert_clean(fsck(repo))
    add(repo, 1, 70_000)
    repo.commit("after a killed ref update", author=AUTHOR)
