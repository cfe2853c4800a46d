"""Viewer benchmark: the exactvc WebGL2 annotation layer against Annotorious v3 (OpenSeadragon), and the
annotation tile server under load.

    python bench/viewer.py [--sizes 10000,100000,1000000] [--peer-max 100000] [--out bench/results/viewer.json]

Not a test. In one headless Chromium run, on the same pixel-less 100,000 x 80,000 px slide and the same
cell polygons (bench/core.py's generator and bulk loader):

(a) browser, per size: time from navigation to annotations drawn, frame time p50/p95 and long tasks during a
    scripted 10 s pan/zoom (home -> deep zoom -> pan -> home), JS heap; ours at every size, the peer (its
    annotations from one gzip-compressed JSON file, through setAnnotations) up to --peer-max. At the largest
    size: what the layer represents at each zoom and the bytes it loads to show the whole slide.
(b) server, on the largest size, in the server process that has served all of (a) (a subprocess, heap never
    frozen): annotation tile requests p50/p99 at 8 concurrent clients replaying a scripted pan, and bytes per
    annotation on the wire.

The pages (bench/viewer_pages/) are bundled with esbuild from viewer/node_modules (`npm ci` in viewer/).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core  # noqa: E402
from _common import machine_info, median, percentile, print_table, ratio, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAGES = Path(__file__).resolve().parent / "viewer_pages"
VIEW_W, VIEW_H = 1280, 800
PAN_MS = 10_000
DEEP = 39.0  # zoom factor over home at the deepest point: ~2 image px per screen px
CLIENTS = 8
TARGETS = {"ttfa_ratio": 5.0, "frame_p95_ratio": 5.0, "long_task_ms": 200.0, "tile_p99_ms": 20.0,
           "overview_bytes": 5_000_000}
CHROMIUM_ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                 "--disable-background-networking", "--disable-component-update", "--enable-precise-memory-info"]
# a 1x1 white PNG: every slide tile of the pixel-less slide
TILE_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8ffff3f0005fe02fea7d6a4c40000000049454e44ae426082")


# --- the server subprocess ------------------------------------------------------------------------------


def child_serve(root: str, static: str) -> None:
    """``create_app`` for ROOT served as ``exact serve`` serves it (``make_server``), plus /bench/* from
    STATIC (files, ``.gz`` twins sent gzip-encoded)."""
    from server.app import create_app
    from server.waitress_server import make_server

    app = create_app({"root": root})
    flask_wsgi = app.wsgi_app
    base = Path(static)
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json",
             ".png": "image/png", ".map": "application/json"}

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/bench/"):
            return flask_wsgi(environ, start_response)
        p = (base / path[len("/bench/"):]).resolve()
        if base.resolve() not in p.parents or not (p.is_file() or Path(str(p) + ".gz").is_file()):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        headers = [("Content-Type", types.get(p.suffix, "application/octet-stream")), ("Cache-Control", "no-cache")]
        gz = Path(str(p) + ".gz")
        if gz.is_file() and "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            data = gz.read_bytes()
            headers.append(("Content-Encoding", "gzip"))
        else:
            data = p.read_bytes() if p.is_file() else gzip.decompress(gz.read_bytes())
        if p.suffix == ".png":
            headers[1] = ("Cache-Control", "max-age=3600")
        start_response("200 OK", [*headers, ("Content-Length", str(len(data)))])
        return [data]

    served: list[float] = []  # service time of each annotation tile request, ms (the server's own share)
    gc_pauses: list[float] = []  # every garbage collection in the server process, ms (observed, not tuned)
    gc_t0 = [0.0]

    def on_gc(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            gc_t0[0] = time.perf_counter()
        else:
            gc_pauses.append((time.perf_counter() - gc_t0[0]) * 1000)

    import gc

    gc.callbacks.append(on_gc)

    def timed(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == "/bench/noop":
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
            return [b"ok"]
        if path == "/bench/served":
            body = orjson.dumps({"served": served, "gc_ms": gc_pauses, "gc_objects": len(gc.get_objects())})
            served.clear()
            gc_pauses.clear()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if "/annotiles/" not in path:
            return wsgi(environ, start_response)
        t0 = time.perf_counter()
        out = b"".join(wsgi(environ, start_response))
        served.append((time.perf_counter() - t0) * 1000)
        return [out]

    app.wsgi_app = timed  # type: ignore[method-assign]
    srv = make_server(app, host="127.0.0.1", port=0, threads=8)
    print(f"listening on http://127.0.0.1:{srv.effective_port}", flush=True)  # type: ignore[union-attr]
    srv.run()


class Server:
    def __init__(self, root: Path, static: Path, log_path: Path) -> None:
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, __file__, "--child-serve", str(root), str(static)],
                                     stdout=subprocess.PIPE, stderr=self._log, cwd=ROOT,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stdout or []], daemon=True).start()
        first = lines.get(timeout=60).decode()
        m = re.search(r"(http://127\.0\.0\.1:\d+)", first)
        if m is None:
            raise RuntimeError(f"server did not start: {first!r}")
        self.url = m.group(1)

    def rss(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


# --- set-up ---------------------------------------------------------------------------------------------


def node_modules() -> Path:
    nm = Path(os.environ.get("EXACT_VIEWER_NODE_MODULES", ROOT / "viewer" / "node_modules"))
    if not (nm / "esbuild").is_dir() or not (nm / "@annotorious" / "openseadragon").is_dir():
        raise SystemExit(f"{nm} lacks esbuild or @annotorious/openseadragon: run `npm ci` in viewer/ first")
    return nm


def build_pages(static: Path) -> None:
    nm = node_modules()
    static.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(nm / ".bin" / "esbuild"), str(PAGES / "ours.js"), str(PAGES / "peer.js"), "--bundle",
                    "--format=esm", "--target=es2022", "--minify", f"--outdir={static}", "--log-level=warning"],
                   check=True, env={**os.environ, "NODE_PATH": str(nm)}, cwd=ROOT)
    for name in ("ours", "peer"):
        css = f'<link rel="stylesheet" href="/bench/{name}.css">' if (static / f"{name}.css").exists() else ""
        (static / f"{name}.html").write_text(
            f'<!doctype html><html><head><meta charset="utf-8">{css}<style>html,body{{margin:0}}'
            f'#v{{width:{VIEW_W}px;height:{VIEW_H}px;position:relative;background:#fff}}</style></head>'
            f'<body><div id="v"></div><script type="module" src="/bench/{name}.js"></script></body></html>')
    (static / "tile.png").write_bytes(TILE_PNG)


def make_repo(root: Path, n: int, seed: int, work: Path) -> tuple[core.Data, float]:
    from exactvc.access import AccessStore

    data = core.generate(n, seed, work / f"cells-{n}.geojson")
    (work / f"cells-{n}.geojson").unlink()
    _repo, load_s = core.load_bulk(data, root / f"v{n}", 50_000)
    AccessStore(root).set_settings(f"v{n}", anonymous_read=True)
    return data, load_s


def peer_file(data: core.Data, static: Path) -> str:
    """The same annotations for the peer: [id, label, flat ring] each, gzip-compressed."""
    names = [c[0] for c in core.CLASSES]
    colors = {c[0]: "#{:02x}{:02x}{:02x}".format(*c[1]) for c in core.CLASSES}
    rings = (data.coords / 100.0).reshape(data.n, -1).round(2).tolist()
    body = orjson.dumps({"colors": colors, "annotations": [
        [data.ids[i], names[int(data.labels[i])], rings[i]] for i in range(data.n)]})
    name = f"peer-{data.n}.json"
    (static / (name + ".gz")).write_bytes(gzip.compress(body, 6))
    return f"/bench/{name}"


# --- browser runs ---------------------------------------------------------------------------------------


def run_page(browser: Any, url: str, timeout_s: float, extra: Any = None) -> dict[str, Any]:
    ctx = browser.new_context(viewport={"width": VIEW_W + 20, "height": VIEW_H + 20})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    t0 = time.monotonic()
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready === '1' || !!document.body.dataset.error",
                           timeout=timeout_s * 1000, polling=100)
    err = page.evaluate("document.body.dataset.error || null")
    if err:
        ctx.close()
        raise RuntimeError(f"{url}: {err}")
    out: dict[str, Any] = {"ready_ms": page.evaluate("window.bench.ready"), "wall_ready_s": time.monotonic() - t0,
                           "open_ms": page.evaluate("window.benchOpen"),
                           "heap_ready": page.evaluate("window.bench.heap()"),
                           "annotile_bytes_ready": page.evaluate("window.bench.annotileBytes()")}
    if extra is not None:
        out.update(extra(page))
    pz = page.evaluate(f"window.bench.panZoom({PAN_MS}, {DEEP})")
    frames, longs = pz["frames"], pz["longs"]
    out.update({"frames": len(frames), "frame_p50_ms": median(frames), "frame_p95_ms": percentile(frames, 95),
                "frame_max_ms": max(frames) if frames else None, "long_tasks": len(longs),
                "long_task_max_ms": max(longs) if longs else 0.0, "heap_after": page.evaluate("window.bench.heap()"),
                "errors": errors})
    ctx.close()
    return out


def zoom_survey(page: Any) -> dict[str, Any]:
    """At the largest size: what the layer represents at each zoom (from home to the deepest)."""
    out = []
    for f in (1, 2, 4, 8, 16, 24, DEEP):
        s = page.evaluate(f"window.bench.zoomTo({f})")
        out.append({"zoom": f, **s})
    page.evaluate("window.bench.zoomTo(1)")
    return {"zoom_survey": out}


# --- the server under load ------------------------------------------------------------------------------


def pan_tiles(manifest: dict[str, Any], client: int, steps: int) -> tuple[list[str], list[int]]:
    """The tiles a client panning at geometry zoom (2 image px per screen px) asks for, in order, each once,
    and the step of the pan at which each comes into view."""
    extent, levels = manifest["extent"], manifest["levels"]
    have = {(lv["z"], x, y) for lv in manifest["geometry"] for x, y, _ in lv["tiles"]}
    w, h = VIEW_W * 2.0, VIEW_H * 2.0
    y0 = core.HEIGHT * (0.2 + 0.6 * client / CLIENTS)
    seen: set[tuple[int, int, int]] = set()
    out: list[str] = []
    step_of: list[int] = []
    for i in range(steps):
        x0 = 5000 + i * (core.WIDTH - 10000 - w) / steps
        box = (x0, y0, x0 + w, y0 + h)
        for z in range(levels):
            size = extent >> z
            grow = size / 2
            for ty in range(max(0, math.floor((box[1] - grow) / size)), min((1 << z) - 1, math.floor((box[3] + grow) / size)) + 1):
                for tx in range(max(0, math.floor((box[0] - grow) / size)), min((1 << z) - 1, math.floor((box[2] + grow) / size)) + 1):
                    k = (z, tx, ty)
                    if k in have and k not in seen:
                        seen.add(k)
                        out.append(f"g/{z}/{tx}/{ty}.bin")
                        step_of.append(i)
    return out, step_of


STEP_MS = 50.0  # a client moves its view every 50 ms (20 steps/s: 4,000 image px/s at 2 px a screen px)
STEPS = 300


def _client(url: str, base: str, paths: list[str], step_of: list[int], offset_s: float, barrier: Any,
            out: Any, index: int) -> None:
    """One panning client (its own process): at each step, the tiles newly in view, one after another.
    Every client is started, imported and connected before the barrier; the pan starts at the barrier
    (plus this client's own offset: clients are not in step). Puts (index, [(start_ms, latency_ms, bytes,
    status), ...]) on ``out``."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.connect()
    rows: list[tuple[float, float, int, int]] = []
    barrier.wait(120)
    t0 = time.perf_counter() + offset_s
    for p, step in zip(paths, step_of, strict=True):
        due = t0 + step * STEP_MS / 1000
        if time.perf_counter() < due:
            time.sleep(due - time.perf_counter())
        a = time.perf_counter()
        conn.request("GET", p if p.startswith("/") else f"{base}/{p}", headers={"Accept-Encoding": "gzip"})
        r = conn.getresponse()
        body = r.read()
        rows.append(((a - t0) * 1000, (time.perf_counter() - a) * 1000, len(body), r.status))
    conn.close()
    out.put((index, rows))


def _run_clients(url: str, base: str, jobs: list[tuple[list[str], list[int]]]) -> list[list[Any]]:
    """CLIENTS processes replaying ``jobs`` (paths, steps), all started and connected before the pan."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(jobs) + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=_client, args=(url, base, paths, steps, STEP_MS / 1000 * c / len(jobs), barrier,
                                               out, c), daemon=True) for c, (paths, steps) in enumerate(jobs)]
    for pr in procs:
        pr.start()
    barrier.wait(180)
    got = dict(out.get(timeout=600) for _ in procs)
    for pr in procs:
        pr.join(30)
    return [got[c] for c in range(len(jobs))]


def _summary(rows: list[tuple[float, float, int, int]]) -> dict[str, Any]:
    lat = [r[1] for r in rows]
    slow = sorted(r[0] for r in rows if r[1] > TARGETS["tile_p99_ms"])
    return {"requests": len(lat), "p50_ms": median(lat), "p99_ms": percentile(lat, 99), "max_ms": max(lat),
            "over_target": len(slow), "over_target_at_ms": [round(t) for t in slow[:40]],
            "errors": [f"{r[3]}" for r in rows if r[3] != 200][:10]}


def load_test(url: str, base: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """CLIENTS processes, each panning along its own row of the slide (pan_tiles), all at once; then the same
    clients on the same schedule asking for a no-op (/bench/noop, answered by the server's outermost WSGI
    layer): the floor this machine, its load and the HTTP server put under any request."""
    import urllib.request

    urllib.request.urlopen(f"{url}/bench/served").read()  # forget what was served before
    jobs = [pan_tiles(manifest, c, STEPS) for c in range(CLIENTS)]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    out = _run_clients(url, base, jobs)
    wall = time.perf_counter() - t0
    rows = [r for o in out for r in o]
    got = orjson.loads(urllib.request.urlopen(f"{url}/bench/served").read())
    served, gcs = got["served"], got["gc_ms"]
    load1 = os.getloadavg()[0]
    floor = _run_clients(url, base, [(["/bench/noop"] * len(p), s) for p, s in jobs])
    res = {"gc_collections": len(gcs), "gc_max_ms": max(gcs, default=0.0), "gc_total_ms": sum(gcs),
           "gc_objects": got["gc_objects"], **_summary(rows),
           "served_p50_ms": median(served), "served_p99_ms": percentile(served, 99), "served_max_ms": max(served),
           "wall_s": wall, "bytes": sum(r[2] for r in rows), "step_ms": STEP_MS, "steps": STEPS,
           "load_average": [load0, load1, os.getloadavg()[0]],
           "noop": _summary([r for o in floor for r in o])}
    return res


def wire_bytes(url: str, base: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Every geometry and id tile of the slide, gzip as sent: bytes per annotation."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    tot = {"g": 0, "i": 0}
    for kind in tot:
        for lv in manifest["geometry"]:
            for x, y, _ in lv["tiles"]:
                conn.request("GET", f"{base}/{kind}/{lv['z']}/{x}/{y}.bin", headers={"Accept-Encoding": "gzip"})
                tot[kind] += len(conn.getresponse().read())
    conn.close()
    n = manifest["count"]
    return {"geometry_bytes": tot["g"], "ids_bytes": tot["i"], "geometry_per_annotation": tot["g"] / n,
            "ids_per_annotation": tot["i"] / n}


# --- main -----------------------------------------------------------------------------------------------


def row(rid: str, name: str, unit: str, ours: float | None, peer: float | None, target: str | None,
        ok: bool | None, lower_better: bool = True, **details: Any) -> dict[str, Any]:
    r = ratio(peer, ours) if lower_better else ratio(ours, peer)
    return {"id": rid, "name": name, "unit": unit, "ours": ours, "git": peer, "ratio": r, "target": target,
            "pass": ok, "details": details}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    core.bench_args(ap, "viewer")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--peer-max", type=int, default=100_000, help="largest size the peer is run at")
    ap.add_argument("--server-only", action="store_true",
                    help="only part (b), the tile server under load (a fresh server: a quick check, not the figure)")
    ap.add_argument("--root", help="serve the repositories v{N} already in this folder (made by an earlier run "
                    "with --keep: its srv/) instead of loading new ones")
    ap.add_argument("--child-serve", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_serve:
        child_serve(*args.child_serve)
        return 0
    os.environ["EXACT_AUTHOR"] = core.EXACT_AUTHOR
    with core.work_dir(args, "viewer") as tmp:
        return run(args, tmp)


def browser_runs(url0: str, sizes: list[int], peer_urls: dict[int, str], results: dict[str, Any]) -> None:
    """Part (a): ours at every size (a cold first view, then a second one), the peer up to --peer-max."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        q = f"image={core.IMAGE}&w={core.WIDTH}&h={core.HEIGHT}"
        for n in sizes:
            last = n == max(sizes)
            core.log(f"ours at {n:,}")
            url = f"{url0}/bench/ours.html?repo=v{n}&{q}"
            cold = run_page(browser, url, 900)  # the first view of this commit: the server builds its tiles
            results["ours"][n] = run_page(browser, url, 900, zoom_survey if last else None)
            results["ours"][n]["cold"] = {k: cold[k] for k in ("ready_ms", "open_ms", "frame_p50_ms",
                                                               "frame_p95_ms", "long_task_max_ms")}
            if n in peer_urls:
                core.log(f"peer at {n:,}")
                try:
                    results["peer"][n] = run_page(browser, f"{url0}/bench/peer.html?data={peer_urls[n]}&{q}", 900)
                except Exception as exc:  # noqa: BLE001 - the peer failing is a result, not a crash
                    results["peer"][n] = {"error": str(exc)[:500]}
        browser.close()


def overview_rows(results: dict[str, Any], n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    survey = results["ours"][n].get("zoom_survey", [])
    home = survey[0] if survey else {}
    every = bool(survey) and home.get("counted") == home.get("count") and all(
        (s["counted"] > 0 or s["annotations"] > 0) for s in survey)
    rows.append(row("represented", f"every annotation represented at overview ({n:,}), and at each zoom", "",
                    home.get("counted"), None, f"= {n:,}", every))
    ov = results["ours"][n]["annotile_bytes_ready"]["bytes"]
    rows.append(row("overview_bytes", f"annotation bytes to show the whole slide, {n:,}", "bytes", ov, None,
                    "<= 5 MB", ov <= TARGETS["overview_bytes"]))
    return rows


def run(args: argparse.Namespace, tmp: Path) -> int:
    t_start = time.monotonic()
    sizes = [int(s) for s in args.sizes.split(",")]
    root, static = (Path(args.root) if args.root else tmp / "srv"), tmp / "static"
    root.mkdir(exist_ok=True)
    core.log("building the benchmark pages")
    build_pages(static)
    setup: dict[int, dict[str, Any]] = {}
    peer_urls: dict[int, str] = {}
    for n in [] if args.root else sizes:
        core.log(f"loading {n:,} polygons")
        data, load_s = make_repo(root, n, args.seed, tmp)
        setup[n] = {"load_s": load_s}
        if n <= args.peer_max:
            peer_urls[n] = peer_file(data, static)
        del data
    srv = Server(root, static, tmp / "server.log")
    results: dict[str, Any] = {"ours": {}, "peer": {}}
    try:
        if not args.server_only:
            browser_runs(srv.url, sizes, peer_urls, results)
        n = max(sizes)
        import urllib.request

        commit = json.loads(urllib.request.urlopen(f"{srv.url}/api/v1/repos/v{n}/resolve?rev=main").read())["commit"]
        base = f"/api/v1/repos/v{n}/images/{core.IMAGE}/annotiles/{commit}"
        manifest = json.loads(urllib.request.urlopen(f"{srv.url}{base}/manifest.json").read())
        core.log(f"server: {CLIENTS} clients panning over {n:,}")
        results["server"] = {"rss_before": srv.rss(), **load_test(srv.url, base, manifest)}
        results["server"]["rss_after"] = srv.rss()
        results["wire"] = wire_bytes(srv.url, base, manifest)
    finally:
        srv.stop()
    if not args.server_only:  # the same load on a fresh server, minutes later: what the long run changed
        core.log("server: the same load on a fresh server")
        srv = Server(root, static, tmp / "server-fresh.log")
        try:
            results["server_fresh"] = load_test(srv.url, base, manifest)
        finally:
            srv.stop()

    rows = []
    for n in [] if args.server_only else sizes:
        o, p = results["ours"][n], results["peer"].get(n) or {}
        peer_ok = "error" not in p

        def pv(k: str, p: dict[str, Any] = p, ok: bool = peer_ok) -> Any:
            return p.get(k) if ok else None
        tgt = n == 100_000
        rat = ratio(pv("ready_ms"), o["ready_ms"])
        rows.append(row(f"ttfa_{n}", f"time to annotations drawn, {n:,}", "ms", o["ready_ms"], pv("ready_ms"),
                        ">= 5x peer" if tgt else None, (rat is not None and rat >= 5) if tgt and rat else None))
        cold = o["cold"]["ready_ms"]
        rc = ratio(pv("ready_ms"), cold)
        rows.append(row(f"ttfa_cold_{n}", f"  same, first view of the commit (tiles built), {n:,}", "ms", cold,
                        pv("ready_ms"), ">= 5x peer" if tgt else None, (rc is not None and rc >= 5) if tgt and rc else None))
        po = pv("ready_ms") - pv("open_ms") if pv("ready_ms") is not None and pv("open_ms") is not None else None
        rows.append(row(f"after_open_{n}", f"  of which after the slide opened, {n:,}", "ms",
                        o["ready_ms"] - o["open_ms"], po, None, None))
        r95 = ratio(pv("frame_p95_ms"), o["frame_p95_ms"])
        rows.append(row(f"frame_p50_{n}", f"pan/zoom frame time p50, {n:,}", "ms", o["frame_p50_ms"],
                        pv("frame_p50_ms"), None, None))
        rows.append(row(f"frame_p95_{n}", f"pan/zoom frame time p95, {n:,}", "ms", o["frame_p95_ms"],
                        pv("frame_p95_ms"), ">= 5x peer" if tgt else None,
                        (r95 is not None and r95 >= 5) if tgt and r95 else None))
        big = n == max(sizes)
        rows.append(row(f"long_task_max_{n}", f"longest main-thread task in the pan, {n:,}", "ms",
                        o["long_task_max_ms"], pv("long_task_max_ms"), "<= 200 ms" if big else None,
                        o["long_task_max_ms"] <= TARGETS["long_task_ms"] if big else None))
        rows.append(row(f"heap_{n}", f"JS heap after the pan, {n:,}", "bytes", o["heap_after"], pv("heap_after"),
                        None, None))
    n = max(sizes)
    if not args.server_only:
        rows += overview_rows(results, n)
    s = results["server"]
    rows.append(row("tile_p50", f"annotation tile p50, {CLIENTS} clients panning, {n:,}", "ms", s["p50_ms"], None,
                    None, None))
    rows.append(row("tile_p99", f"annotation tile p99, {CLIENTS} clients panning, {n:,}", "ms", s["p99_ms"], None,
                    "<= 20 ms", s["p99_ms"] <= TARGETS["tile_p99_ms"]))
    rows.append(row("served_p99", "  of which in the server (WSGI in to body out), p99", "ms", s["served_p99_ms"],
                    None, None, None))
    la = ", ".join(f"{x:.1f}" for x in s["load_average"])
    rows.append(row("noop_p99", f"  floor: a no-op request, same clients and schedule, p99 (load {la})", "ms",
                    s["noop"]["p99_ms"], None, None, None))
    rows.append(row("gc_max", f"  longest garbage collection in the server during the load "
                    f"({s['gc_collections']} collections, {s['gc_objects']:,} tracked objects)", "ms",
                    s["gc_max_ms"], None, None, None))
    if "server_fresh" in results:
        f = results["server_fresh"]
        rows.append(row("tile_p99_fresh", f"  same load on a fresh server: p99 (p50 {f['p50_ms']:.2f} ms; no-op floor "
                        f"p99 {f['noop']['p99_ms']:.1f} ms)", "ms", f["p99_ms"], None, None, None))
    rows.append(row("bytes_per_annotation", "geometry bytes per annotation on the wire (gzip)", "bytes",
                    results["wire"]["geometry_per_annotation"], None, None, None))
    print()
    print(f"exactvc viewer benchmark: sizes {sizes}, peer Annotorious v3 up to {args.peer_max:,}, "
          f"{VIEW_W}x{VIEW_H} viewport, headless Chromium (SwiftShader WebGL)")
    print_table(rows)
    result = {"benchmark": "viewer", "sizes": sizes, "seed": args.seed, "machine": machine_info(["exactvc", "numpy"]),
              "setup": {str(k): v for k, v in setup.items()}, "rows": rows,
              "results": {k: ({str(n): r for n, r in v.items()} if k in ("ours", "peer") else v)
                          for k, v in results.items()}, "elapsed_s": time.monotonic() - t_start,
              "load_average_log": core.LOADS}
    write_json(args.out, result)
    core.log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
