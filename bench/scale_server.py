"""The server level of bench/scale.py: the same large repository pushed, fetched and cloned through
``exact serve`` on S3 + PostgreSQL and through the embedded server (files and SQLite) in the same run, and
concurrent pushes to many repositories from many clients through 1 and 3 server processes.

Where the time goes: for the concurrent phase, the CPU seconds of the server processes, of SeaweedFS and of
PostgreSQL (every process of each, from /proc), next to the phase's wall time and the push latencies; and
the pushes' own account (their ``Server-Timing`` header, summed over all pushes: reading and verifying,
storing the objects, the hook, moving the refs) against the sum of the latencies the clients saw (the rest
is waiting for a thread, the network and authentication).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
AUTHOR = "Bench <bench@example.org>"
_TICK = os.sysconf("SC_CLK_TCK")


def exact(*args: str, token: str | None = None, cwd: Path | None = None, timeout: float = 3600) -> str:
    env = {**os.environ, "EXACT_AUTHOR": AUTHOR, "PYTHONPATH": str(ROOT)}
    env.pop("EXACT_TOKEN", None)
    if token:
        env["EXACT_TOKEN"] = token
    r = subprocess.run([sys.executable, "-m", "exactvc.cli", *args], capture_output=True, text=True, env=env,
                       cwd=cwd, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"exact {' '.join(args[:3])} failed ({r.returncode}): {r.stderr[-2000:]}")
    return r.stdout


class Serve:
    """``exact serve ROOT --port 0 [--processes N] [backend options]`` in a subprocess."""

    def __init__(self, root: Path, opts: tuple[str, ...], processes: int = 1, threads: int = 8) -> None:
        self.log = open(root.parent / f"{root.name}-{uuid.uuid4().hex[:6]}.log", "wb")  # noqa: SIM115
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        args = [sys.executable, "-m", "exactvc.cli", "serve", str(root), "--port", "0", "--threads", str(threads),
                "--processes", str(processes), *opts]
        if processes > 1:  # pre-forked workers need a known port
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            args[args.index("0")] = str(port)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)/", line)
        if m is None:
            self.stop()
            raise RuntimeError(f"exact serve did not start: {line!r}")
        self.url = m.group(1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and all its descendants now alive."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(d)] = int(fields[1])
        times[int(d)] = (int(fields[11]) + int(fields[12])) / _TICK
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += times.get(p, 0.0)
        todo += [c for c, pp in parents.items() if pp == p]
    return total


def make_server_root(root: Path, opts: tuple[str, ...], repos: list[str]) -> str:
    """ROOT with ``repos`` created on the given backends and user ``bench`` (site admin); its token."""
    root.mkdir(parents=True)
    for name in repos:
        exact("server", "repo", "add", name, "--root", str(root), *opts)
    return exact("server", "user", "add", "bench", "--site-admin", "--root", str(root), *opts).strip()


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def big_repo_steps(local: Path, tmp: Path, label: str, opts: tuple[str, ...]) -> dict[str, float]:
    """push, fetch and clone of the repository at ``local`` through one server on ``opts``."""
    root = tmp / f"root-{label}"
    tok = make_server_root(root, opts, ["big"])
    srv = Serve(root, opts)
    try:
        url = f"{srv.url}/big"
        remote = f"to-{label}"
        exact("-C", str(local), "remote", "add", remote, url)
        push_s = timed(lambda: exact("-C", str(local), "push", remote, "main", token=tok))
        empty = tmp / f"fetch-{label}"
        exact("init", str(empty))
        exact("-C", str(empty), "remote", "add", "origin", url)
        fetch_s = timed(lambda: exact("-C", str(empty), "fetch", "origin", token=tok))
        clone_s = timed(lambda: exact("clone", url, str(tmp / f"clone-{label}"), token=tok))
    finally:
        srv.stop()
    return {"push_s": push_s, "fetch_s": fetch_s, "clone_s": clone_s}


def _bodies(repos: list[str], clients: int, per_client: int, tmp: Path, annotations: int) -> tuple[
        dict[str, Any], list[list[tuple[str, bytes]]]]:
    """A seed commit per repository and, per client, its pushes: (repository, push body), each a new branch
    with ``annotations`` new annotations on the seed (no two clients race for one ref)."""
    sys.path.insert(0, str(ROOT))
    from exactvc import transfer
    from exactvc.objects import ImageRecord
    from exactvc.repo import Repository
    from tests.server_fixtures import add_squares, push_body, update

    seeds: dict[str, Any] = {}
    work: dict[str, Any] = {}
    for name in repos:
        w = Repository.init(tmp / "work" / name)
        w.add_label("cell", shape="polygon", color="#ff0000")
        w.add_image_record(ImageRecord("slide-1", "ab" * 32, 200000, 200000))
        add_squares(w, "slide-1", 20)
        seeds[name] = (w, bytes.fromhex(w.commit("seed")))
        work[name] = w
    plan: list[list[tuple[str, bytes]]] = []
    for i in range(clients):
        mine = []
        for k in range(per_client):
            name = repos[(i * per_client + k) % len(repos)]
            w, seed = seeds[name]
            w.refs.cas("heads/main", w.refs.read("heads/main"), seed)
            w.set_working(seed, w.commit_object(seed).root)
            add_squares(w, "slide-1", annotations, x0=5000 + 3000 * i, y0=5000 + 3000 * k)
            new = bytes.fromhex(w.commit(f"client {i} push {k}"))
            data = transfer.stream_bytes(w, list(transfer.objects_to_send(w, [new], [seed])))
            mine.append((name, push_body({"updates": [update(f"heads/c{i}-{k}", None, new)]}, data)))
        plan.append(mine)
    return seeds, plan


def concurrent_pushes(tmp: Path, label: str, opts: tuple[str, ...], processes: int, plan: list[list[tuple[str, bytes]]],
                      seeds: dict[str, Any], engines: dict[str, int]) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from exactvc import transfer
    from tests.server_fixtures import push_body, request, update

    root = tmp / f"croot-{label}-{processes}"
    tok = make_server_root(root, opts, sorted(seeds))
    srv = Serve(root, opts, processes=processes)
    try:
        for name, (w, seed) in seeds.items():  # every repository gets its seed (not timed)
            data = transfer.stream_bytes(w, list(transfer.objects_to_send(w, [seed], [])))
            r = request("POST", f"{srv.url}/{name}/push", push_body({"updates": [update("heads/main", None, seed)]},
                                                                   data), token=tok)
            assert r.status == 200, r.body[:300]
        latencies: list[float] = []
        phases: dict[str, float] = {}
        failures: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(len(plan))

        def client(mine: list[tuple[str, bytes]]) -> None:
            barrier.wait(60)
            for name, body in mine:
                t0 = time.perf_counter()
                r = request("POST", f"{srv.url}/{name}/push", body, token=tok, timeout=300)
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    for part in r.headers.get("server-timing", "").split(","):
                        k, _, dur = part.strip().partition(";dur=")
                        if dur:
                            phases[k] = phases.get(k, 0.0) + float(dur) / 1000
                    if r.status != 200:
                        failures.append(f"{r.status} {r.body[:200]!r}")

        cpu0 = {k: cpu_seconds(p) for k, p in {**engines, "server": srv.proc.pid}.items()}
        t0 = time.perf_counter()
        with ThreadPoolExecutor(len(plan)) as pool:
            list(pool.map(client, plan))
        wall = time.perf_counter() - t0
        cpu1 = {k: cpu_seconds(p) for k, p in {**engines, "server": srv.proc.pid}.items()}
    finally:
        srv.stop()
    if failures:
        raise RuntimeError(f"{len(failures)} pushes failed: {failures[:3]}")
    lat = sorted(latencies)
    n = len(lat)
    return {"backends": label, "processes": processes, "pushes": n, "wall_s": wall, "pushes_per_s": n / wall,
            "p50_s": lat[n // 2], "p95_s": lat[min(n - 1, int(n * 0.95))],
            "latency_sum_s": round(sum(lat), 2),
            "server_phases_s": {k: round(v, 2) for k, v in phases.items()},
            "cpu_s": {k: round(cpu1[k] - cpu0[k], 2) for k in cpu1}}


def run_server_level(n: int, local_repo: Path, tmp: Path, new_db: Callable[[], str], objects: str,
                     engines: dict[str, int], clients: int = 16, repos: int = 20, per_client: int = 5,
                     annotations: int = 200) -> dict[str, Any]:
    """``new_db()``: the URL of a fresh PostgreSQL database; ``objects``: an s3:// prefix of this run."""
    out: dict[str, Any] = {"n": n, "big": {}, "concurrent": [], "clients": clients, "repositories": repos,
                           "pushes_per_client": per_client, "annotations_per_push": annotations}
    for label in ("embedded", "s3+pg"):
        opts = () if label == "embedded" else ("--objects", f"{objects}/big", "--db", new_db())
        print(f"server level: {label}: push, fetch, clone of {n:,} annotations", flush=True)
        out["big"][label] = big_repo_steps(local_repo, tmp, label, opts)
    names = [f"r{i:02d}" for i in range(repos)]
    seeds, plan = _bodies(names, clients, per_client, tmp, annotations)
    for label in ("embedded", "s3+pg"):
        for procs in (1, 3):
            opts = () if label == "embedded" else ("--objects", f"{objects}/c{procs}", "--db", new_db())
            print(f"server level: {label}, {procs} process(es): {clients} clients x {per_client} pushes to "
                  f"{repos} repositories", flush=True)
            out["concurrent"].append(concurrent_pushes(tmp, label, opts, procs, plan, seeds,
                                                       engines if label != "embedded" else {}))
    return out


def rows(server: dict[str, Any]) -> list[dict[str, Any]]:
    """Table rows: the big repository's steps (S3+PG against embedded) and the concurrent throughput."""
    out = []
    emb, s3 = server["big"]["embedded"], server["big"]["s3+pg"]
    for step in ("push_s", "fetch_s", "clone_s"):
        ratio = s3[step] / emb[step] if emb[step] else None
        out.append({"name": f"serve s3+pg {step[:-2]} ({server['n']:,} ann.)", "unit": "s", "ours": s3[step],
                    "git": emb[step], "ratio": None if not ratio else 1 / ratio, "target": "<= 2x embedded",
                    "pass": None if ratio is None else ratio <= 2.0})
    by = {(c["backends"], c["processes"]): c for c in server["concurrent"]}
    for (label, procs), c in sorted(by.items()):
        ref = by.get(("embedded", procs))
        out.append({"name": f"{server['clients']} clients -> {server['repositories']} repos, {label}, {procs} proc",
                    "unit": "/s", "ours": c["pushes_per_s"], "git": ref["pushes_per_s"] if ref else None,
                    "ratio": (c["pushes_per_s"] / ref["pushes_per_s"]) if ref else None, "target": None,
                    "pass": None})
    return out
