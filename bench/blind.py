"""Blind mode's cost on a server, and agreement's speed: the same requests as an annotator (scoped view,
exactvc/visibility.py) and as a maintainer (the plain repository) in the same run; the pairwise agreement
table of the raters' branches.

    python bench/blind.py                       # 8 raters x 2,000 cells, 40 commits each, ~1 min
    python bench/blind.py --raters 3 --cells 500

The repository: ``--raters`` branches ``users/rN/study`` from a seeded ``main``, each with ``--commits``
commits adding ``--cells`` squares in all. Requests (real HTTP, waitress in this process, 127.0.0.1): the
refs advertisement, annotations of the rater's own branch (a page), the log, a commit by full id, an
annotation-tile manifest; the median and p95 of ``--n`` each. Writes bench/results/blind.json.
"""

from __future__ import annotations

import argparse
import http.client
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, median, percentile, print_table, write_json  # noqa: E402


def square(x: float, y: float, s: float = 10) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]]}


def build(root: Path, raters: int, cells: int, commits: int, seed: int) -> dict[str, Any]:
    from exactvc.access import AccessStore
    from exactvc.history import commit_changes
    from exactvc.objects import ImageRecord
    from exactvc.repo import Repository

    rng = random.Random(seed)
    repo = Repository.init(root / "study")
    for name in ("tumor", "stroma", "immune"):
        repo.add_label(name, shape="polygon", color="#336699")
    repo.add_image_record(ImageRecord("slide", "ab" * 32, 200000, 200000, levels=6, mpp=0.25))
    repo.commit("seed", author="lead <l@x>")
    truth = [(100 + 30 * (i % 300), 100 + 30 * (i // 300), rng.choice(("tumor", "stroma", "immune")))
             for i in range(cells)]
    tips = {}
    for r in range(raters):
        branch, parent = f"users/r{r}/study", None
        per = max(1, cells // commits)
        for c in range(0, cells, per):
            batch = [{"label": lb if rng.random() > 0.2 else "immune", "geometry": square(x + rng.choice((0, 1, 2)), y)}
                     for x, y, lb in truth[c:c + per] if rng.random() < 0.92]
            if not batch:
                continue
            parent, _ = commit_changes(repo, branch, parent, "slide", f"r{r} {c}", f"r{r} <r{r}@x>",
                                       create=batch, start="main")
        tips[branch] = parent
    acc = AccessStore(root)
    tokens = {"annotator": acc.add_user("r0"), "maintainer": acc.add_user("lead")}
    acc.grant("study", "r0", "annotate")
    acc.grant("study", "lead", "maintain")
    acc.set_settings("study", mode="blind")
    return {"tokens": tokens, "tips": tips}


def get(port: int, path: str, token: str) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t0 = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    resp.read()
    dt = time.perf_counter() - t0
    conn.close()
    return resp.status, dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raters", type=int, default=8)
    ap.add_argument("--cells", type=int, default=2000)
    ap.add_argument("--commits", type=int, default=40)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "blind.json"))
    args = ap.parse_args()
    from server.app import create_app
    from server.waitress_server import make_server

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        w = build(root, args.raters, args.cells, args.commits, args.seed)
        build_s = time.perf_counter() - t0
        app = create_app({"root": str(root)})
        srv = make_server(app, host="127.0.0.1", port=0, threads=4)
        port = srv.effective_port  # type: ignore[union-attr]
        threading.Thread(target=srv.run, daemon=True).start()
        own = "users/r0/study"
        tip = w["tips"][own].hex()
        routes = {
            "refs advertisement": "/study/info/refs",
            "annotations page (own branch)": f"/api/v1/repos/study/images/slide/annotations?rev={own}&limit=500",
            "log (own branch)": f"/api/v1/repos/study/log?rev={own}&n=50",
            "commit by full id": f"/api/v1/repos/study/commits/{tip}",
            "annotation tiles manifest": f"/api/v1/repos/study/images/slide/annotiles/{tip}/manifest.json",
        }
        rows, results = [], {}
        for name, path in routes.items():
            times: dict[str, list[float]] = {"annotator": [], "maintainer": []}
            for who in ("annotator", "maintainer"):  # warm caches once for each
                status, _ = get(port, path, w["tokens"][who])
                assert status == 200, (name, who, status)
            for _ in range(args.n):  # interleaved: both see the same machine load
                for who in ("annotator", "maintainer"):
                    times[who].append(get(port, path, w["tokens"][who])[1])
            ours, peer = median(times["annotator"]) * 1e3, median(times["maintainer"]) * 1e3
            results[name] = {"annotator_ms": {"median": ours, "p95": percentile(times["annotator"], 95) * 1e3},
                             "maintainer_ms": {"median": peer, "p95": percentile(times["maintainer"], 95) * 1e3}}
            rows.append({"name": f"{name}, median", "unit": "ms", "ours": ours, "git": peer,
                         "ratio": peer / ours if ours else None, "target": "<= 1.5x", "pass": ours <= 1.5 * peer + 1})
        # agreement: the pairwise table of every rater's branch (maintainer), cold (new process state: new branches)
        t0 = time.perf_counter()
        status, dt = get(port, "/api/v1/repos/study/agreement?branches=users/*/study", w["tokens"]["maintainer"])
        assert status == 200
        pairs = args.raters * (args.raters - 1) // 2
        results["agreement table"] = {"seconds": dt, "pairs": pairs, "cells_per_rater": args.cells}
        rows.append({"name": f"agreement table, {args.raters} raters ({pairs} pairs)", "unit": "s", "ours": dt,
                     "git": None, "ratio": None, "target": None, "pass": None})
        srv.task_dispatcher.shutdown(timeout=5)  # type: ignore[union-attr]
        srv.trigger.pull_trigger(srv.close)  # type: ignore[union-attr]
    print("exactvc = an annotator's scoped (blind) view; git/peer = the maintainer's plain view, same requests")
    print_table(rows)
    write_json(args.out, {"args": vars(args), "build_s": build_s, "results": results, "machine": machine_info()})


if __name__ == "__main__":
    main()
