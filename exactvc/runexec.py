"""Running a command as a recorded run, and re-creating what a run saw (``exact run reproduce``).

The run object is written (status ``running``) before the command starts; when it ends, the metrics
and artefacts it left in ``$EXACT_RUN_DIR`` are attached and the status becomes ``succeeded`` or
``failed``. If ``exact run`` itself dies (kill -9), the run folder ``.exact/runs/<id>/`` stays with its
owner's pid: the next command that lists runs finds the owner gone and finishes the run as ``failed``
with what it had logged (:func:`recover`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3

from . import artefacts, runs
from .errors import InvalidInput, NotFound, UsageError
from .fsutil import atomic_write

if TYPE_CHECKING:
    from .repo import Repository


MAX_UNTRACKED = 1 << 20  # untracked files larger than this are named in the code state, not put in its diff


def run_dir(repo: Repository, run_id: str) -> Path:
    if repo.exact_dir is None:
        raise UsageError("runs need a repository on disk")
    return repo.exact_dir / "runs" / run_id


def packages_list() -> list[str]:
    from importlib import metadata

    names = set()
    for d in metadata.distributions():
        n = d.metadata["Name"] if d.metadata else None
        if n:
            names.add(f"{n.lower()}=={d.version}")
    return sorted(names)


def code_state(repo: Repository, cwd: Path) -> tuple[dict[str, Any] | None, bytes]:
    """The git repository around ``cwd`` (pygit2): path, remote, commit, branch, dirty, and the patch of
    the working tree against HEAD (untracked files included; exactvc's own folders left out)."""
    import pygit2

    found = pygit2.discover_repository(str(cwd))
    if found is None:
        return None, b""
    g = pygit2.Repository(found)
    if g.workdir is None:
        return None, b""
    remote = None
    names = [r.name for r in g.remotes if r.name]
    if names:
        remote = g.remotes["origin" if "origin" in names else str(names[0])].url
    state: dict[str, Any] = {"path": str(Path(g.workdir).resolve()), "remote": remote, "commit": None,
                             "branch": None, "dirty": False}
    patch = b""
    if not g.head_is_unborn:
        state["commit"] = str(g.head.target)
        state["branch"] = None if g.head_is_detached else g.head.shorthand
        flags = (pygit2.enums.DiffOption.INCLUDE_UNTRACKED | pygit2.enums.DiffOption.RECURSE_UNTRACKED_DIRS
                 | pygit2.enums.DiffOption.SHOW_UNTRACKED_CONTENT | pygit2.enums.DiffOption.SHOW_BINARY)
        diff = g.diff("HEAD", None, flags=flags)
        parts = []
        skipped = []
        for i, delta in enumerate(diff.deltas):
            path = delta.new_file.path or delta.old_file.path
            if path.startswith(".exact/") or "/.exact/" in path or path == ".exact":
                continue
            if delta.status == pygit2.enums.DeltaStatus.UNTRACKED:
                try:
                    big = os.path.getsize(os.path.join(g.workdir, path)) > MAX_UNTRACKED
                except OSError:
                    big = False
                if big:  # data or checkpoints left in the code folder: named, not copied into the diff
                    skipped.append(path)
                    continue
            p = diff[i]
            if p is not None:
                parts.append(p.data)
        patch = b"".join(parts)
        if skipped:
            state["untracked_skipped"] = sorted(skipped)
    state["dirty"] = bool(patch)
    return state, patch


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def start(repo: Repository, command: list[str], params: dict[str, str], rev: str = "HEAD",
          name: str | None = None, cwd: str | os.PathLike[str] = ".") -> tuple[str, bytes, Path]:
    """Record a new run (status running) and prepare its folder; returns (run id, object, folder)."""
    if not command:
        raise UsageError("exact run needs a command after --")
    commit = repo.resolve(rev)
    run_id = uuid.uuid4().hex
    rdir = run_dir(repo, run_id)
    (rdir / "artefacts").mkdir(parents=True)
    here = Path(cwd).resolve()
    code, patch = code_state(repo, here)
    if code is not None:
        code["diff"] = artefacts.store_bytes(repo, patch, "code.diff", "diff")[0] if patch else None
    pk = packages_list()
    pk_text = ("\n".join(pk) + "\n").encode()
    pk_id = artefacts.store_bytes(repo, pk_text, "packages.txt", "config")[0]
    body: dict[str, Any] = {
        "id": run_id, "name": name or "", "status": "running", "commit": commit,
        "params": {str(k): str(v) for k, v in sorted(params.items())}, "command": list(command),
        "cwd": str(here), "start": int(time.time() * 1000), "end": None, "exit": None,
        "python": sys.version.split()[0], "packages": blake3.blake3(pk_text).hexdigest(),
        "code": code, "metrics": {}, "artefacts": [pk_id], "predictions": {}, "datasets": [],
    }
    atomic_write(rdir / "owner.json", json.dumps({"pid": os.getpid(), "child": None}).encode())
    atomic_write(rdir / "params.json", json.dumps(body["params"], sort_keys=True).encode())
    oid = runs.save(repo, body, None)
    return run_id, oid, rdir


def execute(repo: Repository, command: list[str], params: dict[str, str], rev: str = "HEAD",
            name: str | None = None, cwd: str | os.PathLike[str] = ".", stdout: int | None = None) -> dict[str, Any]:
    """Run ``command`` as a run and return it as :func:`exactvc.runs.describe` gives it (``stdout``: a file
    descriptor for the command's output, e.g. stderr's when our own stdout carries JSON)."""
    run_id, _oid, rdir = start(repo, command, params, rev, name, cwd)
    body = runs.load(repo, _oid)
    env = dict(os.environ)
    env.update({"EXACT_REPO": str(repo.path), "EXACT_REV": body["commit"].hex(), "EXACT_RUN_ID": run_id,
                "EXACT_RUN_DIR": str(rdir)})
    for k, v in body["params"].items():
        env[f"EXACT_PARAM_{k.upper()}"] = v
    code: int
    interrupted = False
    try:
        proc = subprocess.Popen(command, cwd=str(Path(cwd).resolve()), env=env, stdout=stdout)
    except OSError as exc:
        finish(repo, run_id, 127, note=f"could not start {command[0]!r}: {exc.strerror or exc}")
        raise NotFound(f"cannot run {command[0]!r}: {exc.strerror or exc}") from None
    atomic_write(rdir / "owner.json", json.dumps({"pid": os.getpid(), "child": proc.pid}).encode())

    def forward(signum: int, _frame: Any) -> None:
        nonlocal interrupted
        interrupted = True
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    finish(repo, run_id, code, note="interrupted" if interrupted else None)
    _r, oid = runs.resolve(repo, run_id)
    return runs.describe(repo, run_id, oid)


def _read_metrics(rdir: Path) -> dict[str, list[list[Any]]]:
    out: dict[str, list[list[Any]]] = {}
    p = rdir / "metrics.json"
    if p.is_file():
        try:
            data = json.loads(p.read_text("utf-8"))
        except (ValueError, UnicodeDecodeError):
            data = {}
        if isinstance(data, dict):
            for k, v in data.items():
                if isinstance(v, list):
                    hist = []
                    for i, x in enumerate(v):
                        if isinstance(x, list) and len(x) == 2:
                            hist.append([None if x[0] is None else int(x[0]), runs.clean_value(x[1])])
                        else:
                            hist.append([i, runs.clean_value(x)])
                    out[str(k)] = hist
                else:
                    out[str(k)] = [[None, runs.clean_value(v)]]
    p = rdir / "metrics.jsonl"
    if p.is_file():
        for line in p.read_text("utf-8", "replace").splitlines():
            try:
                m = json.loads(line)
                out.setdefault(str(m["name"]), []).append(
                    [None if m.get("step") is None else int(m["step"]), runs.clean_value(m.get("value"))])
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash
    return out


def finish(repo: Repository, run_id: str, exit_code: int | None, note: str | None = None) -> None:
    """Attach what the run left in its folder and mark it succeeded (exit 0) or failed."""
    rdir = run_dir(repo, run_id)
    metrics = _read_metrics(rdir)
    attached: list[bytes] = []
    adir = rdir / "artefacts"
    if adir.is_dir():
        for f in sorted(adir.rglob("*")):
            if f.is_file():
                rel = f.relative_to(adir).as_posix()
                kind = "model" if f.suffix in (".pt", ".pth", ".ckpt", ".onnx", ".pkl", ".joblib", ".h5",
                                               ".safetensors") else "other"
                attached.append(artefacts.store_file(repo, f, rel.replace("/", "__"), kind)[0])
    datasets = []
    dp = rdir / "datasets.jsonl"
    if dp.is_file():
        for line in dp.read_text("utf-8", "replace").splitlines():
            with contextlib.suppress(ValueError):
                d = json.loads(line)
                if isinstance(d, dict) and d not in datasets:
                    datasets.append(d)

    def change(b: dict[str, Any]) -> dict[str, Any]:
        hist = dict(b.get("metrics") or {})
        hist.update(metrics)
        b["metrics"] = hist
        b["artefacts"] = list(dict.fromkeys([*b.get("artefacts", []), *attached]))
        b["datasets"] = datasets or b.get("datasets", [])
        b["status"] = "succeeded" if exit_code == 0 and note != "interrupted" else "failed"
        b["exit"] = exit_code
        b["end"] = int(time.time() * 1000)
        if note:
            b["note"] = note
        return b

    runs.update(repo, run_id, change)
    shutil.rmtree(rdir, ignore_errors=True)


def recover(repo: Repository) -> list[str]:
    """Finish as failed every run left ``running`` whose ``exact run`` and command are both gone."""
    if repo.exact_dir is None or not (repo.exact_dir / "runs").is_dir():
        return []
    done = []
    for rdir in sorted((repo.exact_dir / "runs").iterdir()):
        if not rdir.is_dir():
            continue
        try:
            owner = json.loads((rdir / "owner.json").read_text("utf-8"))
        except (OSError, ValueError):
            owner = {}
        if _alive(owner.get("pid")) or _alive(owner.get("child")):
            continue
        cur = repo.refs.read(runs.ref_of(rdir.name)) if len(rdir.name) == 32 else None
        if cur is None:
            if time.time() - rdir.stat().st_mtime > 60:
                shutil.rmtree(rdir, ignore_errors=True)  # the run object was never written
            continue
        if runs.load(repo, cur)["status"] == "running":
            finish(repo, rdir.name, None, note="interrupted: exact run ended without finishing the run")
            done.append(rdir.name)
        else:
            shutil.rmtree(rdir, ignore_errors=True)
    return done


# --- reproduce ------------------------------------------------------------------------------------------


def reproduce(repo: Repository, ident: str, dest: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """A folder with the labels exported at the run's commit, the code at its commit with the stored diff
    applied, and ``reproduce.sh`` re-running the command as a new run on the same commit."""
    import shlex

    import pygit2

    from .porcelain import export

    run_id, oid = runs.resolve(repo, ident)
    body = runs.load(repo, oid)
    out = Path(dest) if dest is not None else Path(f"run-{run_id[:12]}")
    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"{out} exists and is not empty")
    commit = body.get("commit")
    if commit is None:
        raise InvalidInput(f"run {run_id[:12]} records no labels commit")
    (out / "labels").mkdir(parents=True, exist_ok=True)
    snap = repo.snapshot_object(repo.commit_object(commit).root)
    files = []
    for image in sorted(snap.images):
        with open(out / "labels" / f"{image}.geojson", "wb") as f:
            export(repo, commit.hex(), image, "geojson", f)
        files.append(f"labels/{image}.geojson")
    code = body.get("code") or None
    code_dir = None
    if code is not None and code.get("commit"):
        src = code["path"] if Path(code["path"]).is_dir() else code.get("remote")
        if not src:
            raise NotFound(f"the code repository {code['path']} is not here and has no remote")
        code_dir = out / "code"
        g = pygit2.clone_repository(src, str(code_dir))
        target = g.get(code["commit"])
        if target is None:
            raise NotFound(f"code commit {code['commit'][:12]} is not in {src}")
        g.checkout_tree(target, strategy=pygit2.enums.CheckoutStrategy.FORCE)
        g.set_head(target.id)
        if code.get("diff") is not None:
            patch = b"".join(artefacts.iter_bytes(repo, code["diff"]))
            g.apply(pygit2.Diff.parse_diff(patch), pygit2.enums.ApplyLocation.WORKDIR)
    params = " ".join(f"-p {shlex.quote(f'{k}={v}')}" for k, v in body.get("params", {}).items())
    name = shlex.quote((body.get("name") or run_id[:12]) + "-reproduced")
    where = "code" if code_dir is not None else "."
    script = ("#!/bin/sh\n# re-run of run " + run_id + "\nset -e\ncd \"$(dirname \"$0\")/" + where + "\"\n"
              f"exec {shlex.quote(sys.executable)} -m exactvc.cli -C {shlex.quote(str(repo.path))} run "
              f"--name {name} --rev {commit.hex()} {params} -- "
              + " ".join(shlex.quote(c) for c in body.get("command", [])) + "\n")
    (out / "reproduce.sh").write_text(script)
    (out / "reproduce.sh").chmod(0o755)
    (out / "run.json").write_text(json.dumps(runs.describe(repo, run_id, oid), indent=2, sort_keys=True))
    return {"run": run_id, "path": str(out), "commit": commit.hex(), "labels": files,
            "code": str(code_dir) if code_dir else None, "script": str(out / "reproduce.sh")}
