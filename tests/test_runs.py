"""Experiments pinned to commits: `exact run` with a real training script in a real git repository,
artefacts byte-identical, reproduce, sync through a real server, crashes (issue 13, acceptance 1, 2, 4)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pygit2
import pytest

from exactvc import artefacts, runs
from exactvc.maintenance import fsck
from exactvc.porcelain import export
from exactvc.repo import Repository

from .conftest import REAL_SLIDE, square
from .server_fixtures import AUTHOR, admin, exact, fsck_clean, ok, push_body, request, thread_server, update

TRAIN = '''
import json, os, sys
import exactvc
from exactvc.runs import log_metric
from settings import VERSION

lr = float(os.environ["EXACT_PARAM_LR"])
ds = exactvc.Dataset(os.environ["EXACT_REPO"], os.environ["EXACT_REV"], patch=(512, 512))
seen = {}
pixels = 0
for i, (px, anns) in enumerate(ds):
    assert px.shape == (512, 512, 3) and str(px.dtype) == "uint8"
    if i < 3:
        pixels += int(px.sum())
    for a in anns:
        seen[a["id"]] = a["label"]
run_dir = os.environ["EXACT_RUN_DIR"]
with open(os.path.join(run_dir, "artefacts", "seen.json"), "w") as f:
    json.dump(sorted(seen), f)
model = (f"{lr}:{len(seen)}:{pixels}:{VERSION}\\n" * 200000).encode()
with open(os.path.join(run_dir, "artefacts", "model.bin"), "wb") as f:
    f.write(model)
for step in range(3):
    log_metric("loss", 1.0 / (step + 1) * lr, step)
with open(os.path.join(run_dir, "metrics.json"), "w") as f:
    json.dump({"annotations": len(seen), "pixels": pixels, "version": VERSION}, f)
'''


def _git_repo(path: Path) -> pygit2.Repository:
    path.mkdir(parents=True)
    g = pygit2.init_repository(str(path))
    (path / "train.py").write_text(TRAIN)
    (path / "settings.py").write_text("VERSION = 1\n")
    g.index.add_all()
    g.index.write()
    sig = pygit2.Signature("T", "t@example.org")
    g.create_commit("HEAD", sig, sig, "code", g.index.write_tree(), [])
    g.remotes.create("origin", "https://example.org/ml/code.git")
    return g


def _labels_repo(path: Path) -> tuple[Repository, str, bytes]:
    r = Repository.init(path)
    r.add_label("cell", shape="polygon", color="#ff0000")
    r.add_label("tumor", shape="polygon", color="#0000ff")
    rec = r.add_image(REAL_SLIDE)
    with r.edit(rec.name) as ed:
        for i in range(40):
            ed.add("cell" if i % 3 else "tumor", square(30 + (i % 8) * 260, 40 + (i // 8) * 500, 80))
    return r, rec.name, bytes.fromhex(_commit(r, "labels v1"))


def _commit(r: Repository, msg: str) -> str:
    return r.commit(msg, author=AUTHOR)


def _exact_env() -> dict[str, str]:
    env = dict(os.environ)
    env["EXACT_AUTHOR"] = AUTHOR
    env.pop("EXACT_RUN_DIR", None)
    return env


def _run(labels: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exactvc.cli", "-C", str(labels), *args], cwd=cwd,
                          capture_output=True, text=True, env=_exact_env(), timeout=300)


def _run_json(labels: Path, *args: str) -> dict:
    r = _run(labels, labels, *args, "--json")
    assert r.returncode == 0, r.stderr + r.stdout
    return next(iter(json.loads(r.stdout).values()))


@pytest.mark.skipif(not REAL_SLIDE.exists(), reason="real slide not available")
def test_run_records_commit_code_state_metrics_and_reproduces(tmp_path: Path) -> None:
    labels, image, c1 = _labels_repo(tmp_path / "labels")
    code = tmp_path / "code"
    g = _git_repo(code)
    (code / "settings.py").write_text("VERSION = 2\n")  # uncommitted
    expected_patch = g.diff("HEAD", None).patch
    assert expected_patch and "VERSION = 2" in expected_patch

    r = _run(tmp_path / "labels", code, "run", "--name", "baseline", "-p", "lr=0.01", "--",
             sys.executable, "train.py")
    assert r.returncode == 0, r.stderr + r.stdout
    (run_id, oid), = runs.all_runs(Repository.open(tmp_path / "labels")).items()
    repo = Repository.open(tmp_path / "labels")
    body = runs.load(repo, oid)
    assert body["status"] == "succeeded" and body["exit"] == 0
    assert body["commit"] == c1 and body["params"] == {"lr": "0.01"}
    assert body["command"] == [sys.executable, "train.py"]
    cs = body["code"]
    assert cs["commit"] == str(g.head.target) and cs["dirty"] is True and cs["branch"] == g.head.shorthand
    assert cs["remote"] == "https://example.org/ml/code.git"
    assert Path(cs["path"]) == code.resolve()
    diff = b"".join(artefacts.iter_bytes(repo, cs["diff"])).decode()
    assert diff == expected_patch
    # the script read exactly the annotations of the commit through exactvc.Dataset
    want = sorted(a.id for a in repo.annotations(image, c1.hex()))
    seen_id = next(a for a in body["artefacts"] if artefacts.load(repo, a)["name"] == "seen.json")
    assert json.loads(b"".join(artefacts.iter_bytes(repo, seen_id))) == want
    assert body["datasets"] and body["datasets"][0]["commit"] == c1.hex()
    shown = _run_json(tmp_path / "labels", "run", "show", run_id[:8])
    assert shown["metrics"]["annotations"] == len(want) and shown["metrics"]["version"] == 2
    assert [s for s, _v in shown["history"]["loss"]] == [0, 1, 2]
    # the model comes back byte-identical, by name and by id
    model = code / "model.bin"
    got = _run(tmp_path / "labels", code, "artefact", "get", "model.bin", "-o", str(tmp_path / "m1.bin"))
    assert got.returncode == 0, got.stderr
    mid = next(a for a in shown["artefacts"] if a["name"] == "model.bin")["id"]
    assert _run(tmp_path / "labels", code, "artefact", "get", mid[:10], "-o", str(model)).returncode == 0
    assert (tmp_path / "m1.bin").read_bytes() == model.read_bytes()
    assert len(model.read_bytes()) > 2 * artefacts.CHUNK  # chunked
    import blake3

    assert blake3.blake3(model.read_bytes()).hexdigest() == next(
        a for a in shown["artefacts"] if a["name"] == "model.bin")["hash"]

    # labels move on; reproduce rebuilds what the run saw
    with repo.edit(image) as ed:
        ed.add("cell", square(1500, 2500, 40))
    _commit(repo, "labels v2")
    (code / "settings.py").write_text("VERSION = 3\n")  # the code moved on too
    rep = _run_json(tmp_path / "labels", "run", "reproduce", run_id, str(tmp_path / "again"))
    again = tmp_path / "again"
    assert (again / "code" / "settings.py").read_text() == "VERSION = 2\n"
    assert (again / "code" / "train.py").read_text() == TRAIN
    for f in rep["labels"]:
        import io

        buf = io.BytesIO()
        export(repo, c1.hex(), Path(f).stem, "geojson", buf)
        assert (again / f).read_bytes() == buf.getvalue()
    rr = subprocess.run(["sh", str(again / "reproduce.sh")], capture_output=True, text=True, env=_exact_env(),
                        timeout=300)
    assert rr.returncode == 0, rr.stderr + rr.stdout
    after = runs.listing(Repository.open(tmp_path / "labels"))
    assert len(after) == 2
    second = next(d for d in after if d["id"] != run_id)
    assert second["commit"] == c1.hex() and second["metrics"] == shown["metrics"]
    assert second["name"] == "baseline-reproduced"
    assert fsck(Repository.open(tmp_path / "labels")).ok


def test_artefacts_are_chunked_deduplicated_and_attach_to_commits(tmp_path: Path) -> None:
    r = Repository.init(tmp_path / "r")
    c = bytes.fromhex(_commit_empty(r))
    data = os.urandom(3 * artefacts.CHUNK + 12345)
    f = tmp_path / "w.bin"
    f.write_bytes(data)
    before = sum(1 for _ in r.store.iter_ids())
    a1 = artefacts.attach_to_commit(r, c, f, kind="model")
    mid = sum(1 for _ in r.store.iter_ids())
    a2 = artefacts.attach_to_commit(r, c, f, name="copy.bin", kind="model")
    after = sum(1 for _ in r.store.iter_ids())
    assert a1["chunks"] == 4 and mid - before == 5  # 4 chunks + 1 artefact
    assert after - mid == 1  # the same bytes again: only a new artefact object
    assert {a["name"] for a in artefacts.of_commit(r, c)} == {"w.bin", "copy.bin"}
    out = tmp_path / "out.bin"
    artefacts.write_file(r, bytes.fromhex(a2["id"]), out)
    assert out.read_bytes() == data
    assert b"".join(artefacts.iter_bytes(r, bytes.fromhex(a1["id"]), 1000, artefacts.CHUNK + 7)) == \
        data[1000:artefacts.CHUNK + 7]
    rep = fsck(r)
    assert rep.ok and rep.unreachable == 0
    # gc keeps what refs reach
    from exactvc.maintenance import gc

    gc(r)
    artefacts.write_file(r, bytes.fromhex(a1["id"]), out)
    assert out.read_bytes() == data
    # a wrong kind and a missing file are one-line errors
    bad = exact("-C", str(tmp_path / "r"), "artefact", "add", "HEAD", str(f), "--kind", "weights")
    assert bad.returncode == 2 and bad.stderr.startswith("error:")
    miss = exact("-C", str(tmp_path / "r"), "artefact", "add", "HEAD", str(tmp_path / "nope"))
    assert miss.returncode == 4 and miss.stderr.startswith("error:")


def _commit_empty(r: Repository) -> str:
    return r.commit("empty", author=AUTHOR, allow_empty=True)


def _script(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.py"
    p.write_text(text)
    return p


def test_failed_and_crashed_runs_are_kept_and_the_repository_stays_clean(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    r = Repository.init(lab)
    _commit_empty(r)
    failing = _script(tmp_path, "from exactvc.runs import log_metric\nlog_metric('acc', 0.5)\nraise SystemExit(3)\n")
    res = _run(lab, tmp_path, "run", "--name", "bad", "--", sys.executable, str(failing))
    assert res.returncode == 3
    d = _run_json(lab, "run", "show", "bad")
    assert d["status"] == "failed" and d["exit"] == 3 and d["metrics"] == {"acc": 0.5}
    # kill -9 of both exact run and the command while it runs
    slow = tmp_path / "slow.py"
    slow.write_text("import os, time\nfrom exactvc.runs import log_metric\nlog_metric('epoch', 1, 1)\n"
                    "open(os.path.join(os.environ['EXACT_RUN_DIR'], 'artefacts', 'ckpt.bin'), 'wb').write(b'x' * 999)\n"
                    "open(os.path.join(os.environ['EXACT_RUN_DIR'], 'ready'), 'w').close()\ntime.sleep(120)\n")
    p = subprocess.Popen([sys.executable, "-m", "exactvc.cli", "-C", str(lab), "run", "--name", "killed", "--",
                          sys.executable, str(slow)], cwd=tmp_path, env=_exact_env())
    rdirs: list[Path] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rdirs = [d for d in (lab / ".exact" / "runs").glob("*") if (d / "ready").exists()]
        if rdirs:
            break
        time.sleep(0.05)
    assert rdirs, "the command never started"
    owner = json.loads((rdirs[0] / "owner.json").read_text())
    os.kill(owner["child"], signal.SIGKILL)
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    _wait_gone(owner["child"])
    assert fsck(Repository.open(lab)).ok
    listed = _run_json(lab, "runs")
    killed = next(x for x in listed if x["name"] == "killed")
    assert killed["status"] == "failed" and killed["metrics"] == {"epoch": 1}
    full = _run_json(lab, "run", "show", "killed")
    assert [a["name"] for a in full["artefacts"] if a["name"] == "ckpt.bin"] == ["ckpt.bin"]
    assert "interrupted" in full["note"]
    assert not (lab / ".exact" / "runs" / killed["id"]).exists()
    rep = fsck(Repository.open(lab))
    assert rep.ok, rep.problems
    # an interrupted command (SIGINT to exact run) is a failed run too
    p = subprocess.Popen([sys.executable, "-m", "exactvc.cli", "-C", str(lab), "run", "--name", "int", "--",
                          sys.executable, str(slow)], cwd=tmp_path, env=_exact_env())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any((d / "ready").exists()
                                                  for d in (lab / ".exact" / "runs").glob("*")):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    assert p.wait(60) != 0
    d = _run_json(lab, "run", "show", "int")
    assert d["status"] == "failed" and d["note"] == "interrupted"
    # a command that does not exist
    nope = _run(lab, tmp_path, "run", "--", "no-such-command-xyz")
    assert nope.returncode == 4 and nope.stderr.startswith("error:")


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.05)


def test_run_tag_and_lists(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    r = Repository.init(lab)
    _commit_empty(r)
    s = _script(tmp_path, "import json, os, sys\njson.dump({'f1': float(sys.argv[1])}, "
                          "open(os.path.join(os.environ['EXACT_RUN_DIR'], 'metrics.json'), 'w'))\n")
    for v in ("0.5", "0.7"):
        assert _run(lab, tmp_path, "run", "--name", f"m{v}", "--", sys.executable, str(s), v).returncode == 0
    ls = _run_json(lab, "runs")
    assert [x["metrics"]["f1"] for x in ls] == [0.5, 0.7]
    best = ls[1]["id"]
    assert _run_json(lab, "run", "tag", best, "champion")["run"] == best
    assert _run_json(lab, "run", "show", "champion")["id"] == best
    assert _run_json(lab, "run", "show", best)["aliases"] == ["champion"]
    assert _run_json(lab, "run", "tag", ls[0]["id"], "champion")["previous"] == best
    assert _run_json(lab, "runs", "--name", "m0.5")[0]["aliases"] == ["champion"]
    miss = _run(lab, lab, "run", "show", "nothing-like-this")
    assert miss.returncode == 4 and miss.stderr.startswith("error:")


def test_runs_travel_through_a_server_and_forged_artefacts_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    admin(root, "repo", "add", "proj")
    tok = admin(root, "user", "add", "alice")
    admin(root, "grant", "alice", "maintain", "proj")
    with thread_server(root) as srv:
        a = tmp_path / "a"
        ok(exact("clone", srv.repo_url("proj"), str(a), token=tok))
        repo = Repository.open(a)
        repo.add_label("cell", shape="polygon", color="#ff0000")
        _commit_empty(repo)
        s = _script(tmp_path, "import json, os\nd = os.environ['EXACT_RUN_DIR']\n"
                              "json.dump({'f1': 0.8}, open(os.path.join(d, 'metrics.json'), 'w'))\n"
                              "open(os.path.join(d, 'artefacts', 'w.bin'), 'wb').write(bytes(range(256)) * 9000)\n")
        env = _exact_env() | {"EXACT_TOKEN": tok}
        res = subprocess.run([sys.executable, "-m", "exactvc.cli", "-C", str(a), "run", "-p", "k=v", "--",
                              sys.executable, str(s)], cwd=tmp_path, capture_output=True, text=True, env=env)
        assert res.returncode == 0, res.stderr
        (run_id, _oid), = runs.all_runs(Repository.open(a)).items()
        ok(exact("-C", str(a), "run", "tag", run_id, "champion"))
        pushed = json.loads(ok(exact("-C", str(a), "push", "--json", token=tok)))["exactvc.push/v1"]
        assert pushed["runs"] == 1
        # a clone elsewhere gets the run, its metrics and artefacts, and they verify
        b = tmp_path / "b"
        ok(exact("clone", srv.repo_url("proj"), str(b), token=tok))
        fsck_clean(b)
        shown = json.loads(ok(exact("-C", str(b), "run", "show", "champion", "--json")))["exactvc.run/v1"]
        assert shown["id"] == run_id and shown["metrics"] == {"f1": 0.8} and shown["params"] == {"k": "v"}
        ok(exact("-C", str(b), "artefact", "get", "w.bin", "-o", str(tmp_path / "w.bin")))
        assert (tmp_path / "w.bin").read_bytes() == bytes(range(256)) * 9000
        # --no-runs leaves them out
        c = tmp_path / "c"
        ok(exact("clone", "--no-runs", srv.repo_url("proj"), str(c), token=tok))
        assert not runs.all_runs(Repository.open(c))
        fsck_clean(root / "proj")
        # a forged artefact: its chunk list names bytes that do not hash to the chunk's id
        from exactvc import codec
        from exactvc.transfer import MAGIC

        local = Repository.open(a)
        rid, roid = next(iter(runs.all_runs(local).items()))
        body = runs.load(local, roid)
        good = body["artefacts"][-1]
        art = artefacts.load(local, good)
        chunk = art["chunks"][0]
        forged_data = codec.pack_canonical(b"not the model")
        import struct
        import zlib

        import blake3

        frame = struct.pack("<B32sI", 8, chunk, len(z := zlib.compress(forged_data))) + z
        end = struct.pack("<BI", 0, 1)
        stream = MAGIC + frame + end
        stream += blake3.blake3(stream).digest()
        new_run = dict(body, name="forged")
        from exactvc.objects import encode

        run_oid, _ = encode("run", new_run)
        rep = request("POST", srv.repo_url("proj") + "/push",
                      push_body({"updates": [update(f"runs/{rid}", roid, run_oid)]}, stream), token=tok)
        assert rep.status in (400, 422), rep.body
        assert rep.json()["error"]["type"] in ("bad_stream", "invalid_object", "missing_reference")
        fsck_clean(root / "proj")
        # a run ref pointing at a commit is refused
        commit = Repository.open(a).head_commit()
        assert commit is not None
        rep = request("POST", srv.repo_url("proj") + "/push",
                      push_body({"updates": [update(f"runs/{'ab' * 16}", None, commit)]}, _empty_stream()),
                      token=tok)
        assert rep.status == 422, rep.body


def _empty_stream() -> bytes:
    import struct

    import blake3

    from exactvc.transfer import MAGIC

    s = MAGIC + struct.pack("<BI", 0, 0)
    return s + blake3.blake3(s).digest()


def test_rest_routes_for_runs_metrics_and_artefact_ranges(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    admin(root, "repo", "add", "proj")
    tok = admin(root, "user", "add", "alice")
    admin(root, "grant", "alice", "read", "proj")
    other = admin(root, "user", "add", "bob")
    lab = root / "proj"
    _commit_empty(Repository.open(lab))
    payload = os.urandom(artefacts.CHUNK * 2 + 999)
    (tmp_path / "payload.bin").write_bytes(payload)
    s = _script(tmp_path, "import json, os, shutil\nd = os.environ['EXACT_RUN_DIR']\n"
                          "json.dump({'f1': 0.9}, open(os.path.join(d, 'metrics.json'), 'w'))\n"
                          f"shutil.copy({str(tmp_path / 'payload.bin')!r}, os.path.join(d, 'artefacts', 'model.pt'))\n")
    assert _run(lab, tmp_path, "run", "--name", "r1", "-p", "lr=1", "--", sys.executable, str(s)).returncode == 0
    with thread_server(root) as srv:
        base = f"{srv.url}/api/v1/repos/proj"
        got = request("GET", f"{base}/runs", token=tok)
        assert got.status == 200, got.body
        (row,) = got.json()["runs"]
        assert row["name"] == "r1" and row["metrics"] == {"f1": 0.9} and row["params"] == {"lr": "1"}
        assert request("GET", f"{base}/runs?name=zzz", token=tok).json()["runs"] == []
        assert len(request("GET", f"{base}/runs?commit=HEAD", token=tok).json()["runs"]) == 1
        one = request("GET", f"{base}/runs/{row['id'][:8]}", token=tok).json()
        assert one["id"] == row["id"] and one["python"] and one["packages"]
        art = next(a for a in one["artefacts"] if a["name"] == "model.pt")
        full = request("GET", f"{base}/artefacts/{art['id']}", token=tok)
        assert full.status == 200 and full.body == payload
        assert full.headers.get("etag") == f'"{art["hash"]}"'
        part = request("GET", f"{base}/artefacts/{art['id']}", token=tok,
                       headers={"Range": f"bytes={artefacts.CHUNK - 5}-{artefacts.CHUNK + 9}"})
        assert part.status == 206 and part.body == payload[artefacts.CHUNK - 5:artefacts.CHUNK + 10]
        assert part.headers["content-range"] == f"bytes {artefacts.CHUNK - 5}-{artefacts.CHUNK + 9}/{len(payload)}"
        tail = request("GET", f"{base}/artefacts/{art['id']}", token=tok, headers={"Range": "bytes=-100"})
        assert tail.status == 206 and tail.body == payload[-100:]
        bad = request("GET", f"{base}/artefacts/{art['id']}", token=tok, headers={"Range": f"bytes={len(payload)}-"})
        assert bad.status == 416 and bad.error()["type"] == "range_not_satisfiable"
        assert request("GET", f"{base}/artefacts/{'0' * 64}", token=tok).status == 404
        table = request("GET", f"{base}/metrics", token=tok).json()
        assert table["metrics"] == ["f1"] and len(table["rows"]) == 1
        # no role: 404 as for a repository that does not exist; anonymous: 401
        assert request("GET", f"{base}/runs", token=other).status == 404
        assert request("GET", f"{base}/artefacts/{art['id']}").status == 401


def test_short_commit_ids_and_runs_refs_resolve_beside_runs(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    r = Repository.init(lab)
    c = _commit_empty(r)
    s = _script(tmp_path, "print('ok')\n")
    assert _run(lab, tmp_path, "run", "--", sys.executable, str(s)).returncode == 0
    (run_id, _oid), = runs.all_runs(Repository.open(lab)).items()
    r = Repository.open(lab)
    assert r.resolve(c[:8]).hex() == c  # prefix search walks refs, runs' included
    assert r._peel(runs.all_runs(r)[run_id]).hex() == c  # a run peels to its labels commit
    log = exact("-C", str(lab), "log", "--json")
    assert log.returncode == 0, log.stderr
    assert exact("-C", str(lab), "branch").returncode == 0


def test_fsck_reports_an_artefact_whose_size_and_chunks_disagree(tmp_path: Path) -> None:
    r = Repository.init(tmp_path / "r")
    c = bytes.fromhex(_commit_empty(r))
    aid, body = artefacts.store_bytes(r, b"x" * (artefacts.CHUNK + 1), "a.bin")
    assert fsck(r).ok
    bad = dict(body, size=10 * artefacts.CHUNK, commit=c)
    bid = r.put("artefact", bad)
    r.refs.cas(f"artefacts/{c.hex()}/{bid.hex()}", None, bid)
    rep = fsck(r)
    assert not rep.ok and any("lists 2 chunks" in p.message for p in rep.problems)
    assert aid != bid


def test_code_state_names_large_untracked_files_instead_of_copying_them(tmp_path: Path) -> None:
    from exactvc.runexec import MAX_UNTRACKED, code_state

    code = tmp_path / "code"
    g = _git_repo(code)
    (code / "new_module.py").write_text("X = 1\n")
    (code / "data.bin").write_bytes(b"\0" * (MAX_UNTRACKED + 1))
    state, patch = code_state(Repository.init(tmp_path / "lab"), code)
    assert state is not None and state["dirty"] and state["commit"] == str(g.head.target)
    assert b"new_module.py" in patch and b"data.bin" not in patch
    assert state["untracked_skipped"] == ["data.bin"]
    clean = tmp_path / "clean"
    _git_repo(clean)
    st, p = code_state(Repository.init(tmp_path / "lab2"), clean)
    assert st is not None and st["dirty"] is False and p == b""
    assert code_state(Repository.init(tmp_path / "lab3"), tmp_path / "lab3") == (None, b"")
