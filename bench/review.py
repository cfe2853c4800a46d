"""Review benchmark: pull requests on a slide with a million annotations (issue 12, acceptance 4).

    python bench/review.py [--n 1000000] [--changes 10000] [--rejections 1000] [--out bench/results/review.json]

Not a test. One virtual slide of ``--n`` cell polygons (the data of ``core.py``: same generator and
seed, loaded with the fast bulk loader), committed on ``main`` of a repository under a server ROOT.
The slide's spatial index is built first (a reviewer has opened the slide's tiles and annotations
before the diff view asks for changes). A branch ``users/bob/review`` then changes ``--changes``
annotations (half relabelled, 30 % redrawn, 20 % added; ``--spread regions``, the default: the
changed ones lie in 2,000 px windows of ~800 cells, as an annotator works region by region;
``--spread random``: anywhere, the worst case, which touches nearly every tree leaf), and a real server (waitress in this process,
127.0.0.1) is asked over HTTP, with the process's diff cache emptied before each cold step:

1. diff endpoint, first page: ``GET /pulls/N/changes?limit=500`` (cold: the diff is computed), and
   the p99 of ``--requests`` further requests (random 2,000 px windows and cursor pages);
2. mergeability + checks of a new revision: bob pushes one more change, ``GET /pulls/N/merge`` records
   the revision, runs the validation and duplicate checks and computes the merge preview;
3. merging with ``--rejections`` rejections (decided in one request; the decision is timed too):
   the rejection commit on the source, then the merge commit on ``main``.

``--profile``: a diagnostic run, every request of the timed steps under cProfile (server side, a WSGI
middleware); summaries are written next to the JSON as ``review-profile-<step>.txt``. The rows of such a
run are slower than a user's and say so (``profiled``).

There is no peer to compare with (no other tool reviews annotations change by change), so the peer
column is empty. Prints a table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import core as C  # noqa: E402
from _common import machine_info, now, percentile, print_table, write_json  # noqa: E402

TARGETS = {"first_page_s": 1.0, "merge_preview_s": 2.0, "merge_s": 2.0}


def _call(url: str, method: str, path: str, token: str, body: Any = None) -> tuple[Any, float]:
    from tests.server_fixtures import request

    t0 = now()
    rep = request(method, url + "/api/v1/repos/proj" + path, body, token=token, timeout=600)
    secs = now() - t0
    if rep.status >= 400:
        raise SystemExit(f"{method} {path}: {rep.status} {rep.body[:300]!r}")
    return rep.json(), secs


class _Profiler:
    """WSGI middleware: each request under cProfile, into the profile of the current step (``step``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.step: str | None = None
        self.profiles: dict[str, Any] = {}

    def __call__(self, environ: Any, start_response: Any) -> Any:
        import cProfile

        if self.step is None:
            return self.app(environ, start_response)
        prof = self.profiles.setdefault(self.step, cProfile.Profile())
        return list(prof.runcall(lambda: list(self.app(environ, start_response))))

    def write(self, out: str) -> None:
        from _common import profile_summary

        for step, prof in self.profiles.items():
            base = Path(out).with_name(f"review-profile-{step}")
            prof.dump_stats(str(base) + ".prof")
            Path(str(base) + ".txt").write_text(profile_summary(str(base) + ".prof", 40))
            C.log(f"profile of {step}: {base}.txt")


def _branch(repo: Any, data: C.Data, k: int, rng: np.random.Generator, spread: str = "regions") -> dict[str, Any]:
    from exactvc import porcelain

    porcelain.switch(repo, "users/bob/review", create=True)
    want = int(k * 0.8)
    if spread == "random":
        idx = rng.choice(data.n, size=want, replace=False)
    else:  # an annotator works region by region: ~800 cells per 2,000 px window
        got: set[int] = set()
        for _ in range(1000):
            if len(got) >= want:
                break
            pick, _box = C.region_indices(data, rng, min(800, want - len(got)))
            got.update(int(i) for i in pick)
        idx = rng.permutation(np.array(sorted(got))[:want])
    relabel, redraw = idx[: k // 2], idx[k // 2:]
    names = [c[0] for c in C.CLASSES]
    new = C.shifted(data, redraw, rng)
    t0 = now()
    with repo.edit(C.IMAGE) as ed:
        for i in relabel:
            ed.update(data.ids[i], label=names[(int(data.labels[i]) + 1) % len(names)])
        for j, i in enumerate(redraw):
            ed.update(data.ids[i], geometry=C.geojson_geometry(new[j]))
        pool = C.generate(max(4 * (k - len(idx)), 1000), 99, data.path.parent / "adds.geojson")
        order = rng.permutation(pool.n)[: k - len(idx)]
        # new annotations get new time-ordered ids from the editor, as in the viewer
        items = [(lb, g, p, z, None) for lb, g, p, z, _id in C.items_for(pool.ids[:len(order)], pool.coords[order],
                                                                         pool.labels[order])]
        added = ed.add_many(items)
    repo.commit(f"review: {k} changes")
    C.log(f"branch with {k} changes in {now() - t0:.1f}s")
    return {"relabel": [data.ids[i] for i in relabel], "redraw": [data.ids[i] for i in redraw], "added": added}


def run(args: argparse.Namespace, tmp: Path) -> int:
    from exactvc import spatial
    from exactvc.access import AccessStore
    from exactvc.pulls import review
    from tests.server_fixtures import thread_server

    rng = np.random.default_rng(args.seed)
    data = C.generate(args.n, args.seed, tmp / "src" / f"{C.IMAGE}.geojson")
    C.log(f"generated {args.n} cells")
    root = tmp / "root"
    repo, load_s = C.load_bulk(data, root / "proj", 50_000)
    C.log(f"loaded in {load_s:.1f}s")
    _e, main_tree = repo.tree_of(C.IMAGE, "main")
    t0 = now()
    spatial.open_or_build(repo.store, main_tree, repo.exact_dir / "cache" / "rtree")
    C.log(f"spatial index of main in {now() - t0:.1f}s (the viewer's first request builds it)")
    changed = _branch(repo, data, args.changes, rng, args.spread)
    acc = AccessStore(root)
    tok = {u: acc.add_user(u) for u in ("amy", "bob")}
    acc.grant("proj", "amy", "maintain")
    acc.grant("proj", "bob", "annotate")
    rows: list[dict[str, Any]] = []
    details: dict[str, Any] = {"load_s": round(load_s, 2),
                               "notes": "no gc.freeze(): the collector walks the whole process, harness included"}
    with thread_server(root) as srv:
        prof = None
        if args.profile:
            prof = _Profiler(srv.app.wsgi_app)
            srv.app.wsgi_app = prof  # type: ignore[method-assign]
            details["profiled"] = True

        def step(name: str | None) -> None:
            if prof is not None:
                prof.step = name

        review._CACHE.clear()
        step("create")
        pr, create_s = _call(srv.url, "POST", "/pulls", tok["bob"],
                             {"title": "bench", "source": "users/bob/review", "target": "main"})
        n = pr["number"]
        details["create_with_checks_s"] = round(create_s, 3)
        assert pr["summary"]["total"] == args.changes, pr["summary"]
        review._CACHE.clear()
        step("first_page")
        page, first_s = _call(srv.url, "GET", f"/pulls/{n}/changes?limit=500", tok["amy"])
        assert len(page["changes"]) == 500
        rows.append(C.row("first_page", f"diff endpoint: first 500 of {args.changes} changes (cold)", "s",
                          first_s, None, f"<= {TARGETS['first_page_s']} s", first_s <= TARGETS["first_page_s"]))
        review._CACHE.clear()
        step("image_first_page")
        _img, img_s = _call(srv.url, "GET", f"/images/{C.IMAGE}/changes?old=main&new=users/bob/review&limit=500",
                            tok["amy"])
        rows.append(C.row("image_first_page", "image changes endpoint: first page (cold)", "s", img_s, None,
                          f"<= {TARGETS['first_page_s']} s", img_s <= TARGETS["first_page_s"]))
        step("pages")
        times = []
        cursor = page["next_cursor"]
        for r in range(args.requests):
            if r % 2 and cursor:
                got, s = _call(srv.url, "GET", f"/pulls/{n}/changes?limit=500&cursor={cursor}", tok["amy"])
                cursor = got["next_cursor"] or page["next_cursor"]
            else:
                x, y = rng.uniform(0, C.WIDTH - C.WINDOW), rng.uniform(0, C.HEIGHT - C.WINDOW)
                _got, s = _call(srv.url, "GET", f"/pulls/{n}/changes?bbox={x},{y},{x + C.WINDOW},{y + C.WINDOW}",
                                tok["amy"])
            times.append(s)
        p99 = percentile(times, 99)
        rows.append(C.row("page_p99", f"diff endpoint: p99 of {args.requests} pages / 2,000 px windows", "ms",
                          p99 * 1000, None, None, None, median_ms=round(percentile(times, 50) * 1000, 2)))
        step(None)
        # a new revision: checks and mergeability
        touched = set(changed["relabel"]) | set(changed["redraw"])
        one = next(i for i in range(data.n) if data.ids[i] not in touched)
        with repo.edit(C.IMAGE) as ed:
            ed.update(data.ids[one], label=C.CLASSES[(int(data.labels[one]) + 1) % len(C.CLASSES)][0])
        repo.commit("one more")
        review._CACHE.clear()
        step("merge_preview")
        pv, pv_s = _call(srv.url, "GET", f"/pulls/{n}/merge", tok["amy"])
        step(None)
        ck, _ = _call(srv.url, "GET", f"/pulls/{n}/checks", tok["amy"])
        rows.append(C.row("merge_preview", "new revision: checks + mergeability (cold)", "s", pv_s, None,
                          f"<= {TARGETS['merge_preview_s']} s", pv_s <= TARGETS["merge_preview_s"],
                          checks=ck["status"], conflicts=len(pv["conflicts"])))
        rej = (changed["relabel"][: args.rejections // 2] + changed["added"][: args.rejections // 4]
               + changed["redraw"][: args.rejections - args.rejections // 2 - args.rejections // 4])
        dec, dec_s = _call(srv.url, "POST", f"/pulls/{n}/decisions", tok["amy"], {"decision": "reject", "ids": rej})
        assert dec["rejected"] == len(rej), dec["rejected"]
        details["decide_s"] = round(dec_s, 3)
        _call(srv.url, "POST", f"/pulls/{n}/reviews", tok["amy"], {"kind": "approve"})
        review._CACHE.clear()
        step("merge")
        res, merge_s = _call(srv.url, "POST", f"/pulls/{n}/merge", tok["amy"],
                             {"override_checks": ck["status"] == "failed"})
        assert res["rejected"] == len(rej)
        rows.append(C.row("merge", f"merge with {len(rej)} rejections (cold)", "s", merge_s, None,
                          f"<= {TARGETS['merge_s']} s", merge_s <= TARGETS["merge_s"]))
        step(None)
        if prof is not None:
            prof.write(args.out)
    print_table(rows)
    result = {"benchmark": "review", "n": args.n, "changes": args.changes, "spread": args.spread, "rows": rows, "details": details,
              "machine": machine_info(["exactvc", "shapely", "numpy", "orjson"]), "loads": C.LOADS}
    write_json(args.out, result)
    print(json.dumps({r["id"]: r["ours"] for r in rows}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    C.bench_args(ap, "review")
    ap.add_argument("--changes", type=int, default=10_000)
    ap.add_argument("--rejections", type=int, default=1_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--profile", action="store_true",
                    help="diagnostic run: the timed requests under cProfile (slower rows, marked profiled)")
    ap.add_argument("--spread", choices=["regions", "random"], default="regions",
                    help="changed annotations: region by region (default) or uniformly at random over the slide")
    args = ap.parse_args()
    with C.work_dir(args, "review") as tmp:
        return run(args, tmp)


if __name__ == "__main__":
    sys.exit(main())
