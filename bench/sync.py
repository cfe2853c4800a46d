"""Sync benchmark: exactvc push, fetch and clone over HTTP against git over ``file://``.

    python bench/sync.py [--n 1000000] [--out bench/results/sync.json] [--profile auto|none|STEP,...]

Not a test. A server ROOT holds one repository and a maintainer (token from
``AccessStore``); ``python -m exactvc.cli serve ROOT --port 0`` serves it on
127.0.0.1 in a child process (so client and server do not share a GIL). A
local repository holds one virtual slide (100,000 x 80,000 px, an
``ImageRecord``, no pixels) with ``--n`` cell polygons (the data of
``core.py``: same generator, same seed), loaded with ``Editor.add_many``
(batches of 50,000, ``validate=False``) and committed. It is pushed (timed,
no target) and cloned once (the "second clone", made before any change).
Then, in this one run:

1. push of a 100-annotation change (100 annotations modified at random across
   the slide, one commit): request body bytes and objects sent, and time of
   ``exactvc.remote.push`` in-process (median of ``--trials`` changes; each
   push from a freshly opened repository); ``exact push`` (CLI subprocess)
   for reference
2. fetch of the same change into the second clone (``exactvc.remote.fetch``):
   time and bytes received; ``exact fetch`` for reference
3. full clone of the repository (``exactvc.remote.clone``): time and bytes

Peer: git holding the same annotations as one GeoJSON file (one feature per
line, sorted by id), pushed to a bare repository over ``file://``; the same
100-line change pushed, fetched into a second clone, then a full ``git clone``.
Pack sizes come from git's own progress output (``--progress``).

Also reported: whether the server's repository is ``fsck`` clean at the end.
Prints a table, writes JSON (``--out``), profiles the steps that miss their
targets (``--profile auto``: the client against the server child, then the
server in-process under cProfile). See bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core as C  # noqa: E402  (data generation, git helpers; importing it isolates a snapshot too)
from _common import (  # noqa: E402
    dir_size,
    human_bytes,
    machine_info,
    median,
    now,
    print_table,
    profile_steps,
    profile_summary,
    run_measured,
    write_json,
)
from _common import profile_call as _common_profile_call  # noqa: E402

REPO_NAME = "slides"
USER = "maintainer"
BATCH = 50_000
KB = 1000
TARGETS = {"push_bytes": 200 * KB, "push_ms": 500.0, "fetch_ms": 500.0, "clone_s": 60.0}
GIT_BIG_FILE = 512 * 1024 * 1024  # git's default core.bigFileThreshold: larger blobs are never deltified
GIT_BIG = "4g"  # the raised threshold of the "tuned" git variant
SERVER_START_S = 60.0
log = C.log
row = C.row


# --- helpers ----------------------------------------------------------------------------------------------


def exact_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "exact"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "exactvc.cli"]


def cli_json(stdout: bytes) -> dict[str, Any]:
    """The payload of ``exact ... --json`` (one versioned key)."""
    try:
        d = orjson.loads(stdout)
        return dict(next(iter(d.values()))) if isinstance(d, dict) and d else {}
    except (orjson.JSONDecodeError, StopIteration, TypeError, ValueError):
        return {}


def other_benchmarks() -> list[str]:
    """Other benchmark processes on the machine (they distort timings; recorded in the JSON)."""
    r = subprocess.run(["pgrep", "-af", r"bench/[A-Za-z_]+\.py"], capture_output=True, text=True, timeout=10)
    me = str(os.getpid())
    return [ln[:200] for ln in r.stdout.splitlines() if ln.strip() and ln.split()[0] != me]


def fast_forward(path: Path) -> None:
    """Like ``exact pull`` after a fetch: move the clone's main to origin/main (untimed)."""
    from exactvc.merge import merge
    from exactvc.repo import Repository

    res = merge(Repository.open(path), "remotes/origin/main")
    assert res.status in ("fast-forward", "up-to-date"), res.status


def vm_hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


@contextmanager
def record_requests() -> Iterator[list[dict[str, Any]]]:
    """Every HTTP request the exactvc client makes meanwhile: method, path, body/response bytes, wall ms."""
    from exactvc import remote

    orig = remote.Client._req
    reqs: list[dict[str, Any]] = []

    def _req(self: Any, method: str, path: str, body: bytes | None = None, ctype: str = "application/json") -> bytes:
        t0 = now()
        out = orig(self, method, path, body, ctype)
        reqs.append({"method": method, "path": path, "sent": len(body or b""), "received": len(out),
                     "ms": (now() - t0) * 1000})
        return out

    remote.Client._req = _req  # type: ignore[method-assign]
    try:
        yield reqs
    finally:
        remote.Client._req = orig  # type: ignore[method-assign]


def summarize_requests(reqs: list[dict[str, Any]], total_ms: float) -> dict[str, Any]:
    in_http = sum(r["ms"] for r in reqs)
    return {"requests": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in reqs],
            "bytes_sent": sum(r["sent"] for r in reqs), "bytes_received": sum(r["received"] for r in reqs),
            "http_ms": in_http, "client_ms": total_ms - in_http}


def timed(fn: Any) -> tuple[Any, float, list[dict[str, Any]]]:
    """(result, seconds, requests) of ``fn()``; no collection first: the collector runs as in a user's process."""
    with record_requests() as reqs:
        t0 = now()
        out = fn()
        secs = now() - t0
    return out, secs, reqs


_PROGRESS = re.compile(r"(Writing|Receiving|Unpacking) objects: 100% \((\d+)/(\d+)\), ([\d.]+) (bytes|KiB|MiB|GiB)")
_UNITS = {"bytes": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def git_pack(stderr: bytes) -> dict[str, Any]:
    """Objects and pack bytes from git's last ``... objects: 100% (k/k), SIZE`` progress line (2 decimals)."""
    text = stderr.decode(errors="replace").replace("\r", "\n")
    found = _PROGRESS.findall(text)
    if not found:
        return {"objects": 0 if "Everything up-to-date" in text else None, "pack_bytes": None}
    phase, _k, total, num, unit = found[-1]
    return {"objects": int(total), "pack_bytes": int(float(num) * _UNITS[unit]), "phase": phase}


# --- the exactvc server -------------------------------------------------------------------------------------


class Server:
    """``python -m exactvc.cli serve ROOT --port 0`` in a child process; its URL from its first stdout line."""

    def __init__(self, root: Path, logs: Path) -> None:
        self.root = root
        self.out = logs / "server.out"
        self.err = logs / "server.err"
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""
        self.peak_rss: int | None = None

    def start(self) -> str:
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen([sys.executable, "-m", "exactvc.cli", "serve", str(self.root), "--port", "0"],
                                         stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        deadline = now() + SERVER_START_S
        while now() < deadline:
            text = self.out.read_text(errors="replace")
            if "\n" in text:
                m = re.search(r"http://127\.0\.0\.1:\d+/", text.splitlines()[0])
                if not m:
                    self.stop()
                    raise SystemExit(f"unexpected server banner: {text.splitlines()[0]!r}")
                self.base = m.group(0)
                return self.base
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited ({self.proc.returncode}): {self.err.read_text()[-2000:]}")
            threading.Event().wait(0.05)
        self.stop()
        raise SystemExit(f"server did not start within {SERVER_START_S:.0f} s")

    def stop(self) -> None:
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            self.peak_rss = vm_hwm(p.pid)
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=15)
        self.proc = None


class ProfiledApp:
    """WSGI middleware: requests run under ``self.prof`` when it is set (waitress with one worker thread)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.prof: cProfile.Profile | None = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        prof = self.prof
        if prof is None:
            return self.app(environ, start_response)
        prof.enable()  # this thread only
        try:
            return list(self.app(environ, start_response))
        finally:
            prof.disable()


@contextmanager
def inprocess_server(root: Path) -> Iterator[tuple[str, ProfiledApp]]:
    """The same Flask app under waitress in a thread of this process (for server-side profiles only)."""
    import logging

    from waitress import create_server

    from server.app import create_app

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth" chatter
    app = ProfiledApp(create_app({"root": str(root)}))
    srv = create_server(app, host="127.0.0.1", port=0, threads=1, max_request_body_size=1 << 31)
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    try:
        yield f"http://127.0.0.1:{srv.effective_port}/", app  # type: ignore[union-attr]
    finally:
        srv.close()
        th.join(timeout=5)


# --- the benchmark -----------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.bench_args(ap, "sync")
    ap.add_argument("--changes", type=int, default=100, help="annotations modified per change (default 100)")
    ap.add_argument("--trials", type=int, default=3, help="changes pushed and fetched in-process (default 3)")
    ap.add_argument("--profile", default="auto", help="auto (steps that miss a target), none, or push,fetch,clone")
    ap.add_argument("--no-git-tuned", action="store_true",
                    help=f"skip the git variant with core.bigFileThreshold={GIT_BIG} (run when the file is over 512 MiB)")
    args = ap.parse_args()
    if args.trials < 1:
        raise SystemExit("--trials must be at least 1")
    with C.work_dir(args, "sync") as tmp:
        os.environ["EXACT_AUTHOR"] = C.EXACT_AUTHOR
        os.environ["EXACT_CONFIG_DIR"] = str(tmp / "config")  # never the user's credentials
        os.environ.pop("EXACT_PROGRESS", None)
        server = Server(tmp / "server", tmp)
        try:
            return run(args, tmp, server)
        finally:
            server.stop()


def run(args: argparse.Namespace, tmp: Path, server: Server) -> int:
    from exactvc import remote, transfer
    from exactvc.access import AccessStore
    from exactvc.maintenance import fsck
    from exactvc.repo import Repository

    rng = np.random.default_rng(args.seed + 3)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    setup: dict[str, Any] = {}
    t_start = now()
    results_dir = Path(args.out).resolve().parent
    busy_start = other_benchmarks()
    if busy_start:
        log(f"WARNING: other benchmarks are running, timings will be distorted: {busy_start}")
        notes.append(f"other benchmarks were running at the start: {busy_start}")

    # --- data + the local repository
    log(f"generating {args.n:,} polygons")
    data = C.generate(args.n, args.seed, tmp / "src" / f"{C.IMAGE}.geojson")
    setup["generate_s"] = data.gen_s
    if data.ids != sorted(data.ids):
        raise SystemExit("generated ids are not in sorted order: the GeoJSON file would not be sorted by id")
    log(f"  {human_bytes(data.file_bytes)} in {data.gen_s:.1f} s")

    local = tmp / "local"
    repo, setup["exactvc_load_s"] = C.load_bulk(data, local, BATCH)
    setup["exactvc_local_bytes"] = C.exact_size(local)
    log(f"exactvc load (Editor.add_many, batches of {BATCH:,}, validate=False) + commit: "
        f"{setup['exactvc_load_s']:.1f} s, {human_bytes(setup['exactvc_local_bytes'])}")

    # --- the server: ROOT/slides, a maintainer, `exact serve` in a child process
    sroot = tmp / "server"
    Repository.init(sroot / REPO_NAME)
    acc = AccessStore(sroot)
    token = acc.add_user(USER)
    acc.grant(REPO_NAME, USER, "maintain")
    os.environ["EXACT_TOKEN"] = token  # for the client here and the CLI children
    base = server.start()
    url = base + REPO_NAME
    log(f"server {base} (pid {server.proc.pid if server.proc else '?'})")
    remote.remote_add(repo, "origin", url)

    # --- initial push (reported, no target)
    log("exactvc: initial push")
    res0, secs, reqs = timed(lambda: remote.push(Repository.open(local), "origin", "main", set_upstream=True))
    setup["exactvc_initial_push"] = {"s": secs, "bytes": res0["bytes"], "objects": res0["objects"],
                                     **summarize_requests(reqs, secs * 1000)}
    setup["exactvc_initial_push"].pop("requests")
    log(f"  {secs:.1f} s, {human_bytes(res0['bytes'])}, {res0['objects']:,} objects")

    log("exactvc: second clone (before any change)")
    clone2 = tmp / "clone2"
    cres, secs, _ = timed(lambda: remote.clone(url, clone2))
    setup["exactvc_clone_before_changes"] = {"s": secs, "bytes": cres["bytes"], "objects": cres["objects"]}
    log(f"  {secs:.1f} s, {human_bytes(cres['bytes'])}")

    # --- 1 + 2. changes: push each, fetch each into the second clone
    states: list[dict[int, bytes]] = []  # git's overrides (feature index -> text) after each change
    overrides: dict[int, bytes] = {}

    def change(label: str) -> np.ndarray:
        idx = C.random_indices(data, rng, args.changes)
        new = C.shifted(data, idx, rng)
        C._ours_edit(repo, data, idx, new, f"fix {len(idx)} outlines ({label})")  # updates data.coords too
        for i in idx:
            overrides[int(i)] = C.feature_bytes(data.ids[i], data.coords[i], int(data.labels[i]))
        states.append(dict(overrides))
        return idx

    push_t: list[dict[str, Any]] = []
    fetch_t: list[dict[str, Any]] = []
    push_types: dict[str, Any] = {}
    for t in range(args.trials):
        change(f"trial {t}")
        old_tip = Repository.open(clone2).refs.read("remotes/origin/main")
        res, secs, reqs = timed(lambda: remote.push(Repository.open(local), "origin", "main"))
        assert res["status"] == "pushed", res
        push_t.append({"ms": secs * 1000, "bytes": res["bytes"], "objects": res["objects"],
                       "server_objects": res["server"].get("objects"), "server_new": res["server"].get("new"),
                       **summarize_requests(reqs, secs * 1000)})
        if t == 0:  # what was sent, by type, and how many as deltas (recomputed, untimed)
            lr = Repository.open(local)
            sent = list(transfer.objects_with_bases(lr, [bytes.fromhex(res["new"])], [bytes.fromhex(res["old"])]))
            kinds: dict[str, int] = {}
            for oid, _b in sent:
                k = lr.store.get(oid)[0]
                kinds[k] = kinds.get(k, 0) + 1
            push_types = {"by_type": kinds, "with_delta_base": sum(1 for _o, b in sent if b is not None)}
        fres, fsecs, freqs = timed(lambda: remote.fetch(Repository.open(clone2), "origin"))
        new_tip = Repository.open(clone2).refs.read("remotes/origin/main")
        assert new_tip is not None and new_tip.hex() == res["new"] and new_tip != old_tip, (fres, res)
        fetch_t.append({"ms": fsecs * 1000, "bytes": fres["bytes"], "objects": fres["objects"],
                        **summarize_requests(freqs, fsecs * 1000)})
        # like `exact pull`: fast-forward the clone's main (untimed), so every trial fetches one change into
        # an up-to-date clone (a main left behind makes later fetches resend older changes: see the notes)
        fast_forward(clone2)
        log(f"  trial {t}: push {secs * 1000:.0f} ms {human_bytes(res['bytes'])} {res['objects']} objects; "
            f"fetch {fsecs * 1000:.0f} ms {human_bytes(fres['bytes'])}")

    log("exactvc: CLI push / fetch (reference)")
    change("cli")
    cli_push = run_measured([*exact_cmd(), "-C", str(local), "push", "--json"], timeout=600)
    cli_push_out = cli_json(cli_push["stdout"])
    cli_fetch = run_measured([*exact_cmd(), "-C", str(clone2), "fetch", "--json"], timeout=600)
    cli_fetch_out = cli_json(cli_fetch["stdout"])
    fast_forward(clone2)
    log(f"  exact push {cli_push['seconds'] * 1000:.0f} ms, exact fetch {cli_fetch['seconds'] * 1000:.0f} ms")
    startup = [run_measured([sys.executable, "-c", "import exactvc.cli, exactvc.remote"], timeout=60)["seconds"] * 1000
               for _ in range(3)]

    # --- 3. full clone
    log("exactvc: full clone")
    full = tmp / "clone-full"
    clone_err = None
    try:
        fullres, clone_s, creqs = timed(lambda: remote.clone(url, full))
        full_count = Repository.open(full).count(C.IMAGE)
        if full_count != data.n:
            raise RuntimeError(f"the clone holds {full_count} annotations, expected {data.n}")
        log(f"  {clone_s:.1f} s, {human_bytes(fullres['bytes'])}, {fullres['objects']:,} objects")
    except Exception as exc:  # a failing clone is a result, not a reason to lose the others
        clone_err = f"{type(exc).__name__}: {str(exc)[:1000]}"
        fullres, clone_s, creqs = {"bytes": None, "objects": None}, None, []
        cb = setup["exactvc_clone_before_changes"]
        notes.append(f"exactvc full clone FAILED: {clone_err}. The clone made before any change (one commit, "
                     f"{data.n:,} annotations) took {cb['s']:.1f} s, {human_bytes(cb['bytes'])}.")
        log(f"  FAILED: {clone_err}")
    shutil.rmtree(full, ignore_errors=True)
    cli_clone = run_measured([*exact_cmd(), "-C", str(tmp), "clone", url, "clone-cli", "--json"], timeout=1800,
                             check=False)
    cli_clone_out = cli_json(cli_clone["stdout"])
    if cli_clone["returncode"] != 0:
        cli_clone_out = {"returncode": cli_clone["returncode"],
                         "stderr": cli_clone["stderr"].decode(errors="replace")[-1000:]}
        cli_clone["seconds"] = None
    log(f"  exact clone (CLI) {cli_clone_out if cli_clone['seconds'] is None else cli_clone['seconds']}, "
        f"peak RSS {human_bytes(cli_clone['maxrss_bytes'] or 0)}")
    shutil.rmtree(tmp / "clone-cli", ignore_errors=True)

    # --- profiles of the steps that miss a target (before the server stops: the client pass uses it)
    pre_rows = {  # step -> passed
        "push": median([p["bytes"] for p in push_t]) <= TARGETS["push_bytes"]
        and median([p["ms"] for p in push_t]) <= TARGETS["push_ms"],
        "fetch": median([f["ms"] for f in fetch_t]) <= TARGETS["fetch_ms"],
        "clone": clone_s is not None and clone_s <= TARGETS["clone_s"],
    }
    steps = profile_steps(args.profile, [step for step, ok in pre_rows.items() if not ok])
    profiles: dict[str, str] = {}
    if steps:
        pre = results_dir / f"sync-n{data.n}-profile"
        try:
            profiles = run_profiles(steps, pre, tmp, url, sroot, change, server)
        except Exception as exc:  # a profile must not lose the measurements
            notes.append(f"profiling failed: {type(exc).__name__}: {exc}")
            log(f"profiling failed: {exc!r}")
    server.stop()
    setup["server_peak_rss_bytes"] = server.peak_rss

    log("fsck of the server repository")
    t0 = now()
    rep = fsck(Repository.open(sroot / REPO_NAME))
    fsck_s = now() - t0
    fsck_d = rep.to_dict()
    fsck_d["problems"] = fsck_d["problems"][:20]
    log(f"  ok={rep.ok} in {fsck_s:.1f} s ({rep.checked:,} objects checked)")

    # --- git: the same annotations as one GeoJSON file, a bare repository over file://
    busy_mid = other_benchmarks()
    git = run_git(args, tmp, data, states)

    # --- rows
    pm = median([p["ms"] for p in push_t])
    pb = median([p["bytes"] for p in push_t])
    gpush, gfetch = git["push"], git["fetch"]
    rows.append(row(
        "push_bytes", f"1. push {args.changes} edits: request body", "bytes", pb, gpush["pack_bytes"],
        f"<= {human_bytes(TARGETS['push_bytes'])}", pb <= TARGETS["push_bytes"],
        exactvc={"trials_bytes": [p["bytes"] for p in push_t], "objects": push_t[0]["objects"], **push_types,
                 "all_requests_sent": [p["bytes_sent"] for p in push_t]},
        git={"objects": gpush["objects"], "measure": "pack size from `git push --progress`"},
    ))
    rows.append(row(
        "push_objects", f"1. push {args.changes} edits: objects sent", "", push_t[0]["objects"], gpush["objects"],
        None, None, exactvc={"trials": [p["objects"] for p in push_t]},
    ) | {"ratio": None})
    rows.append(row(
        "push_ms", f"1. push {args.changes} edits (in-process)", "ms", pm, gpush["seconds"] * 1000,
        f"<= {TARGETS['push_ms']:.0f} ms", pm <= TARGETS["push_ms"],
        exactvc={"trials": push_t, "note": "exactvc.remote.push from a freshly opened Repository; median of trials"},
        git={"command": "git push origin main (file://, bare)", **gpush},
    ))
    rows.append(row(
        "push_cli_ms", f"1. push {args.changes} edits (`exact push`, reference)", "ms",
        cli_push["seconds"] * 1000, gpush["seconds"] * 1000, None, None,
        exactvc={"result": cli_push_out, "python_startup_import_ms": startup},
    ))
    fm = median([f["ms"] for f in fetch_t])
    fb = median([f["bytes"] for f in fetch_t])
    rows.append(row(
        "fetch_ms", f"2. fetch {args.changes} edits (in-process)", "ms", fm, gfetch["seconds"] * 1000,
        f"<= {TARGETS['fetch_ms']:.0f} ms", fm <= TARGETS["fetch_ms"],
        exactvc={"trials": fetch_t},
        git={"command": "git fetch origin (second clone)", **gfetch},
    ))
    rows.append(row(
        "fetch_bytes", f"2. fetch {args.changes} edits: bytes received", "bytes", fb, gfetch["pack_bytes"],
        None, None, exactvc={"trials_bytes": [f["bytes"] for f in fetch_t]},
    ))
    rows.append(row(
        "fetch_cli_ms", f"2. fetch {args.changes} edits (`exact fetch`, reference)", "ms",
        cli_fetch["seconds"] * 1000, gfetch["seconds"] * 1000, None, None, exactvc={"result": cli_fetch_out},
    ))
    gclone = git["clone"]
    rows.append(row(
        "clone_s", "3. full clone (in-process)", "s", clone_s, gclone["seconds"],
        f"<= {TARGETS['clone_s']:.0f} s", clone_s is not None and clone_s <= TARGETS["clone_s"],
        exactvc={"objects": fullres["objects"], "error": clone_err,
                 **(summarize_requests(creqs, clone_s * 1000) if clone_s is not None else {})},
        git={"command": "git clone file://... (with checkout)", **gclone,
             "no_checkout": git["clone_no_checkout"]},
    ))
    rows.append(row(
        "clone_bytes", "3. full clone: bytes received", "bytes", fullres["bytes"], gclone["pack_bytes"], None, None,
    ))
    rows.append(row(
        "clone_cli_s", "3. full clone (`exact clone`, reference)", "s", cli_clone["seconds"], gclone["seconds"],
        None, None, exactvc={"result": cli_clone_out, "maxrss_bytes": cli_clone["maxrss_bytes"]},
        git={"maxrss_bytes": gclone.get("maxrss_bytes")},
    ))
    ip = setup["exactvc_initial_push"]
    rows.append(row(
        "initial_push_s", f"0. initial push ({data.n:,} annotations)", "s", ip["s"], git["initial_push"]["seconds"],
        None, None, exactvc=ip, git=git["initial_push"],
    ))
    rows.append(row(
        "initial_push_bytes", "0. initial push: bytes sent", "bytes", ip["bytes"], git["initial_push"]["pack_bytes"],
        None, None,
    ))
    rows.append(row("fsck_ok", "server repository fsck clean at the end", "", rep.ok, None, "clean", rep.ok,
                    exactvc={"fsck_s": fsck_s, **fsck_d}))
    if git.get("tuned"):
        tu = git["tuned"]
        notes.append(
            f"the GeoJSON file ({human_bytes(data.file_bytes)}) is over git's core.bigFileThreshold (512 MiB): "
            f"by default git never deltifies it, so every push/fetch carries the whole file compressed. "
            f"With -c core.bigFileThreshold={GIT_BIG}: push {tu['push']['seconds'] * 1000:.0f} ms, "
            f"{human_bytes(tu['push']['pack_bytes'] or 0)}; fetch {tu['fetch']['seconds'] * 1000:.0f} ms, "
            f"{human_bytes(tu['fetch']['pack_bytes'] or 0)} (details in the JSON, git.tuned).")
    if any(f["objects"] > p["objects"] for f, p in zip(fetch_t, push_t, strict=True)):
        notes.append("a fetch received more objects than the push of the same change sent: "
                     f"push {[p['objects'] for p in push_t]}, fetch {[f['objects'] for f in fetch_t]}")
    busy_end = other_benchmarks()
    if busy_mid or busy_end:
        notes.append(f"other benchmarks were running before git's part: {busy_mid}; at the end: {busy_end}")

    print()
    print(f"exactvc sync benchmark: n={data.n:,} polygons, GeoJSON {human_bytes(data.file_bytes)}; "
          f"exactvc over HTTP (waitress child on 127.0.0.1), git over file://")
    print_table(rows)
    for nt in notes:
        print("note:", nt)
    result = {
        "benchmark": "sync",
        "n": data.n,
        "seed": args.seed,
        "changes": args.changes,
        "trials": args.trials,
        "machine": machine_info(["exactvc", "waitress", "flask", "numpy", "orjson", "blake3"]),
        "exactvc_source": C.exactvc_source(),
        "data": {"image": [C.WIDTH, C.HEIGHT], "vertices": C.VERTICES, "geojson_bytes": data.file_bytes},
        "setup": setup,
        "rows": rows,
        "git": git,
        "fsck": fsck_d,
        "profiles": profiles,
        "notes": notes,
        "other_benchmarks": {"start": busy_start, "before_git": busy_mid, "end": busy_end},
        "elapsed_s": now() - t_start,
        "load_average_log": C.LOADS,
    }
    write_json(args.out, result)
    log(f"wrote {args.out}")
    for name, p in profiles.items():
        if name.endswith("_error"):
            print(f"\nprofiled step {name[:-6]} raised: {p}")
            continue
        print(f"\n##### profile: {name} ({p}) #####")
        print("\n".join(Path(p).read_text().splitlines()[:60]))
    return 0


def caught(fn: Any) -> Any:
    """``fn`` wrapped so that its exception is returned, not raised (a failing step still gets its profile)."""

    def call() -> Any:
        try:
            return fn()
        except Exception as exc:
            return exc

    return call


def run_profiles(steps: set[str], pre: Path, tmp: Path, url: str, sroot: Path, change: Any,
                 server: Server) -> dict[str, str]:
    """Client pass against the server child, then server pass with the app in-process under cProfile.

    Returns name -> summary file; a profiled call that raised is listed as ``<name>_error``.
    """
    from exactvc import remote
    from exactvc.repo import Repository

    local, clone2 = tmp / "local", tmp / "clone2"
    out: dict[str, str] = {}

    def profile_call(fn: Any, base: str, top: int = 40) -> None:
        res, _ = _common_profile_call(caught(fn), base, top)
        if isinstance(res, Exception):
            out[Path(base).name.split("-profile-")[-1].replace("-", "_") + "_error"] = f"{type(res).__name__}: {str(res)[:500]}"
    # client side
    if "push" in steps or "fetch" in steps:
        change("profile client")
        if "push" in steps:
            profile_call(lambda: remote.push(Repository.open(local), "origin", "main"), f"{pre}-push-client", top=40)
            out["push_client"] = f"{pre}-push-client.txt"
        else:
            remote.push(Repository.open(local), "origin", "main")
        if "fetch" in steps:
            profile_call(lambda: remote.fetch(Repository.open(clone2), "origin"), f"{pre}-fetch-client", top=40)
            out["fetch_client"] = f"{pre}-fetch-client.txt"
        else:
            remote.fetch(Repository.open(clone2), "origin")
        fast_forward(clone2)
    if "clone" in steps:
        profile_call(lambda: remote.clone(url, tmp / "clone-prof"), f"{pre}-clone-client", top=40)
        shutil.rmtree(tmp / "clone-prof", ignore_errors=True)
        out["clone_client"] = f"{pre}-clone-client.txt"
    # server side: stop the child, serve the same ROOT from a thread here with a profiling middleware
    server.stop()
    with inprocess_server(sroot) as (base, app):
        purl = base + REPO_NAME
        for repo_path in (local, clone2):  # point both at the in-process server (keeping origin/* refs)
            r = Repository.open(repo_path)
            r.set_config("remotes", {**remote.remotes(r), "origin": purl})
        remote.Client(purl).refs()  # open the repository in the server before profiling

        def server_profile(name: str, fn: Any) -> None:
            app.prof = cProfile.Profile()
            try:
                res = caught(fn)()
            finally:
                prof, app.prof = app.prof, None
            base_path = f"{pre}-{name}-server"
            if isinstance(res, Exception):
                out[f"{name}_server_error"] = f"{type(res).__name__}: {str(res)[:500]}"
            prof.dump_stats(base_path + ".prof")
            Path(base_path + ".txt").write_text(profile_summary(base_path + ".prof", 40))
            out[f"{name}_server"] = base_path + ".txt"

        if "push" in steps or "fetch" in steps:
            change("profile server")
            if "push" in steps:
                server_profile("push", lambda: remote.push(Repository.open(local), "origin", "main"))
            else:
                remote.push(Repository.open(local), "origin", "main")
            if "fetch" in steps:
                server_profile("fetch", lambda: remote.fetch(Repository.open(clone2), "origin"))
        if "clone" in steps:
            server_profile("clone", lambda: remote.clone(purl, tmp / "clone-prof"))
            shutil.rmtree(tmp / "clone-prof", ignore_errors=True)
    return out


# --- git ------------------------------------------------------------------------------------------------------


def run_git(args: argparse.Namespace, tmp: Path, data: C.Data, states: list[dict[int, bytes]]) -> dict[str, Any]:
    g = C.Git(tmp / "git", tmp / "home")
    g.work.mkdir(parents=True)
    (tmp / "home").mkdir(exist_ok=True)
    gfile = g.work / f"{C.IMAGE}.geojson"
    bare = tmp / "git-remote.git"
    gurl = f"file://{bare}"
    out: dict[str, Any] = {}

    def git_in(cwd: Path, *a: str, timeout: float = 1800) -> dict[str, Any]:
        r = run_measured(["git", *a], cwd=cwd, env=g.env, timeout=timeout)
        info = {"seconds": r["seconds"], "maxrss_bytes": r["maxrss_bytes"], **git_pack(r["stderr"])}
        return info

    log("git: add + commit, bare repository, initial push")
    t0 = now()
    g.run("init", "-q", "-b", "main")
    shutil.copyfile(data.path, gfile)
    g.run("add", gfile.name)
    g.run("commit", "-q", "-m", f"import {data.n} cells")
    out["load_s"] = now() - t0
    run_measured(["git", "init", "-q", "--bare", "-b", "main", str(bare)], env=g.env, timeout=60)
    g.run("remote", "add", "origin", gurl)
    out["initial_push"] = git_in(g.work, "push", "--progress", "origin", "main")
    out["bare_bytes_after_initial_push"] = dir_size(bare)
    log(f"  initial push {out['initial_push']['seconds']:.1f} s, {human_bytes(out['initial_push']['pack_bytes'] or 0)}")
    clone2 = tmp / "git-clone2"
    out["clone_before_changes"] = git_in(tmp, "clone", "--progress", gurl, str(clone2))

    def rev(cwd: Path, name: str) -> str:
        r = run_measured(["git", "rev-parse", name], cwd=cwd, env=g.env, timeout=60)
        return r["stdout"].decode().strip()

    def replay(info: dict[str, Any], cwd: Path, new: str, old: str, cfg: tuple[str, ...]) -> None:
        """No size in git's progress output (small transfers show none): rebuild the pack the transfer
        sent (``pack-objects --revs --thin --stdout --delta-base-offset``, as send-pack / upload-pack), untimed."""
        if info["pack_bytes"] is not None:
            return
        r = subprocess.run(["git", *cfg, "pack-objects", "--revs", "--thin", "--stdout", "--delta-base-offset", "-q"],
                           cwd=cwd, env=g.env, input=f"{new}\n^{old}\n".encode(), capture_output=True, timeout=900,
                           check=True)
        info["pack_bytes"] = len(r.stdout)
        info["pack_measure"] = "rebuilt with git pack-objects (no size in the progress output)"

    def one_change(state: dict[int, bytes], label: str, cfg: tuple[str, ...] = ()) -> dict[str, Any]:
        C.git_write_file(data, gfile, state)
        g.run("commit", "-q", "-a", "-m", f"fix outlines ({label})")
        old, new = rev(g.work, "origin/main"), rev(g.work, "HEAD")
        before = dir_size(bare)
        push = git_in(g.work, *cfg, "push", "--progress", "origin", "main", timeout=900)
        push["bare_growth_bytes"] = dir_size(bare) - before
        replay(push, g.work, new, old, cfg)
        fetch = git_in(clone2, *cfg, "fetch", "--progress", "origin", timeout=900)
        if rev(clone2, "origin/main") != new:
            raise RuntimeError("git fetch did not bring the pushed commit")
        replay(fetch, bare, new, old, cfg)
        log(f"  git {label}: push {push['seconds'] * 1000:.0f} ms {human_bytes(push['pack_bytes'] or 0)}; "
            f"fetch {fetch['seconds'] * 1000:.0f} ms {human_bytes(fetch['pack_bytes'] or 0)}")
        return {"push": push, "fetch": fetch}

    log(f"git: {args.changes}-line change, push, fetch (default config)")
    ch = one_change(states[0], "default config")
    out["push"], out["fetch"] = ch["push"], ch["fetch"]
    if data.file_bytes > GIT_BIG_FILE and not args.no_git_tuned and len(states) > 1:
        log(f"git: next change with -c core.bigFileThreshold={GIT_BIG} (the file is over 512 MiB)")
        try:
            out["tuned"] = {"config": f"core.bigFileThreshold={GIT_BIG}",
                            **one_change(states[1], "bigFileThreshold raised", ("-c", f"core.bigFileThreshold={GIT_BIG}"))}
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            out["tuned"] = None
            out["tuned_error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
    log("git: full clone")
    out["clone"] = git_in(tmp, "clone", "--progress", gurl, str(tmp / "git-clone-full"))
    shutil.rmtree(tmp / "git-clone-full", ignore_errors=True)
    out["clone_no_checkout"] = git_in(tmp, "clone", "--progress", "--no-checkout", gurl, str(tmp / "git-clone-nc"))
    shutil.rmtree(tmp / "git-clone-nc", ignore_errors=True)
    out["bare_bytes_end"] = dir_size(bare)
    log(f"  {out['clone']['seconds']:.1f} s (no checkout {out['clone_no_checkout']['seconds']:.1f} s), "
        f"{human_bytes(out['clone']['pack_bytes'] or 0)}")
    return out


if __name__ == "__main__":
    sys.exit(main())
