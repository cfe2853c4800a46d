"""Scale-out benchmark (not a test): push, fetch and clone of a large repository, per object backend.

    python bench/scale.py [--n 1000000] [--out bench/results/scale.json] [--backends disk,s3] [--levels store,server]

A backend matrix: ``BACKENDS`` maps a name to a factory making an empty object store (and one that opens
the same store afresh, cold cache, as another process would). The local embedded store (disk) runs next
to S3 (a real SeaweedFS started here, the one the tests use) in the same run; PostgreSQL pairs are added
to the matrix the same way. Steps, on the repository's reachable objects:

* push  — every object into the backend as one pack (what a first push stores);
* fetch — a fresh store (cold cache) reads every object back (what serving a clone reads);
* clone — a fresh store's objects copied into a new local folder store (fetch + local write);
* warm fetch — the same reads again, now from the local cache.

The server level (``--levels server``, bench/scale_server.py) starts a real PostgreSQL too and measures the
same repository pushed, fetched and cloned with the CLI through ``exact serve --objects s3://... --db
postgresql://...`` next to the embedded ``exact serve`` (goal: each within 2x), then 16 clients pushing to 20
repositories through 1 and 3 server processes (throughput, latencies, CPU seconds of server, SeaweedFS and
PostgreSQL: where the time goes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common  # noqa: E402
import core as C  # noqa: E402

Factory = Callable[[Path, str], Any]  # (scratch folder, store name) -> ObjectStore


def disk_backend(tmp: Path, name: str) -> Any:
    from exactvc.store import DiskStore

    return DiskStore(tmp / "disk" / name)


def s3_backend(tmp: Path, name: str) -> Any:
    from exactvc.backends.s3 import open_s3_store

    return open_s3_store("s3://exact-test/bench", name, tmp / "s3cache" / uuid.uuid4().hex, 4 << 30)


BACKENDS: dict[str, Factory] = {"disk": disk_backend, "s3": s3_backend}


def objects(repo: Any) -> Iterator[Any]:
    from exactvc.maintenance import reachable
    from exactvc.store import Pending

    for oid, t in reachable(repo):
        yield Pending(oid, t, repo.store.get(oid)[1])


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_backend(name: str, factory: Factory, repo: Any, ids: list[bytes], tmp: Path) -> dict[str, Any]:
    from exactvc.store import DiskStore, Pending

    store_name = uuid.uuid4().hex
    target = factory(tmp, store_name)
    _, push_s = timed(lambda: target.write_pack(objects(repo), deltas=False))
    cold = factory(tmp, store_name)

    def read_all(s: Any) -> int:
        return sum(len(s.get_uncached(o)[1]) for o in ids)

    nbytes, fetch_s = timed(lambda: read_all(cold))
    _, warm_s = timed(lambda: read_all(cold))
    fresh = factory(tmp, store_name)
    local = DiskStore(tmp / "clone" / store_name)

    def clone() -> None:
        local.write_pack((Pending(o, *fresh.get_uncached(o)) for o in ids), deltas=False)

    _, clone_s = timed(clone)
    return {"backend": name, "push_s": push_s, "fetch_s": fetch_s, "clone_s": clone_s, "warm_fetch_s": warm_s,
            "objects": len(ids), "bytes": nbytes}


def _postmaster(pg: Any) -> int:
    """The pid of the PostgreSQL postmaster (its first line of postmaster.pid)."""
    return int((pg.data / "postmaster.pid").read_text().split()[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="annotations (the issue's figure: 1000000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--levels", default="store,server", help="store (object stores alone), server (exact serve)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--repos", type=int, default=20)
    ap.add_argument("--pushes", type=int, default=10, help="pushes per client in the concurrent phase")
    ap.add_argument("--out", default="bench/results/scale.json")
    args = ap.parse_args()
    names = [b for b in args.backends.split(",") if b]
    levels = {x for x in args.levels.split(",") if x}
    server: dict[str, Any] | None = None
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="exact-scale-") as t:
        tmp = Path(t)
        engine = pg = None
        if "s3" in names or "server" in levels:
            import os

            from tests.engines.seaweed import Seaweed

            engine = Seaweed(tmp / "seaweed")
            (tmp / "seaweed").mkdir()
            engine.start()
            os.environ.update(engine.env())
        try:
            data = C.generate(args.n, args.seed, tmp / "src" / f"{C.IMAGE}.geojson")
            repo, load_s = C.load_bulk(data, tmp / "local", 10_000)
            ids = [o.oid for o in objects(repo)]
            print(f"{args.n:,} annotations, {len(ids):,} objects (load {load_s:.1f} s)", flush=True)
            if "store" in levels:
                results = [run_backend(b, BACKENDS[b], repo, ids, tmp) for b in names]
            if "server" in levels:
                import scale_server

                from tests.engines.postgres import Postgres

                pg = Postgres(Path(tempfile.mkdtemp(prefix="exact-pg-")))  # outside tmp: the postgres user enters it
                pg.init()
                pg.start()
                counter = iter(range(1000))
                assert engine is not None and engine.proc is not None
                engines = {"seaweedfs": engine.proc.pid, "postgresql": _postmaster(pg)}
                server = scale_server.run_server_level(
                    args.n, tmp / "local", tmp, lambda: pg.database(f"bench_{next(counter)}"),  # type: ignore[union-attr]
                    f"s3://exact-test/bench-{uuid.uuid4().hex[:8]}", engines, args.clients, args.repos, args.pushes)
        finally:
            if pg is not None:
                import shutil

                pg.stop()
                shutil.rmtree(pg.root, ignore_errors=True)
            if engine is not None:
                engine.stop()
    base = next((r for r in results if r["backend"] == "disk"), None)
    rows = []
    for r in results:
        for step in ("push_s", "fetch_s", "clone_s", "warm_fetch_s"):
            ref = base[step] if base is not None else None
            ratio = r[step] / ref if ref else None
            target = "<= 2x disk" if step != "warm_fetch_s" and r["backend"] != "disk" else None
            rows.append({"name": f"{r['backend']} {step[:-2]}", "unit": "s", "ours": r[step], "git": ref,
                         "ratio": None if ratio is None else 1 / ratio if ratio else None, "target": target,
                         "pass": None if target is None or ratio is None else ratio <= 2.0})
    if server is not None:
        import scale_server

        rows += scale_server.rows(server)
        print()
        for c in server["concurrent"]:
            print(f"{c['backends']:>9} x{c['processes']}: {c['pushes']} pushes in {c['wall_s']:.1f} s "
                  f"({c['pushes_per_s']:.1f}/s, p50 {c['p50_s'] * 1000:.0f} ms, p95 {c['p95_s'] * 1000:.0f} ms); "
                  f"CPU s: " + ", ".join(f"{k} {v:.1f}" for k, v in c["cpu_s"].items())
                  + f"; latency sum {c['latency_sum_s']:.1f} s, in the push handler: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in c["server_phases_s"].items()))
    _common.print_table(rows)
    _common.write_json(args.out, {"n": args.n, "results": results, "server": server,
                                  "command": " ".join(sys.argv), "machine": _common.machine_info()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
