"""Annotation-map benchmark: a 10,000-annotation map served as lazily built DeepZoom tiles (ours) against
one patch per request cut from openslide (the peer: what a map of <img> patches, EXACT's way, asks for).

    python bench/maps.py [--n 10000] [--size 30000x20000] [--patch 64] [--per-row 100] [--pans 16]

Not a test. One synthetic pyramidal slide (exactvc.testing.slides, cached in --workdir), ``--n`` point
annotations of one label at seeded random places, a repository with anonymous read served by ``exact serve``
(a subprocess; the slide indexed with --slides). The peer is a waitress child process of this script:
``/patch/I.jpeg`` = openslide ``read_region`` of patch I's square at level 0, JPEG-encoded, per request.

Measured, in this order, under whatever else the machine runs (the load average is recorded):

(a) headless Chromium, ours: navigation -> first map tile drawn and -> the first view fully drawn, cold (the
    server has never built this map) and warm (a new browser context, the server's caches warm); then
    ``--pans`` pans by one viewport at one map pixel per screen pixel, each timed until fully drawn (cold tiles).
(b) HTTP, 6 connections (a browser's per-host limit), on a second map of the same size never touched by (a)
    (order=position), ours vs the peer on the same views: the first view (ours: the tile URLs Chromium
    asked for in (a), on the second map; the peer: every patch in that view) and ``--pans`` 1:1 viewports
    of the map's lower half (ours: the tiles under each; the peer: the patches under each): time per view,
    per-request latency p50 / p99.
"""

from __future__ import annotations

import argparse
import math
import os
import queue
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.request import urlopen

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, percentile, print_table, ratio, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                 "--disable-background-networking", "--disable-component-update"]
VIEW = {"width": 1280, "height": 860}
CONNS = 6
TARGET_OPEN_S = 2.0


# --- the peer: one patch per request from openslide ---------------------------------------------------


def peer_serve(slide: str, origins_file: str, side: int) -> None:
    import io

    import openslide
    from waitress import create_server

    osr = openslide.OpenSlide(slide)
    origins = [tuple(int(v) for v in line.split()) for line in Path(origins_file).read_text().splitlines()]
    pat = re.compile(r"^/patch/(\d+)\.jpeg$")

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        m = pat.match(environ.get("PATH_INFO", ""))
        if not m or int(m.group(1)) >= len(origins):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such patch"]
        x, y = origins[int(m.group(1))]
        im = osr.read_region((x, y), 0, (side, side)).convert("RGB")
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=95, subsampling=0)
        start_response("200 OK", [("Content-Type", "image/jpeg"), ("Content-Length", str(buf.tell()))])
        return [buf.getvalue()]

    srv = create_server(app, host="127.0.0.1", port=0, threads=8)
    print(f"listening on http://127.0.0.1:{srv.effective_port}/", flush=True)  # type: ignore[union-attr]
    srv.run()


# --- processes ----------------------------------------------------------------------------------------


def start(cmd: list[str], log: Path, timeout: float = 600) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("EXACT_TOKEN", None)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(log, "wb"), env=env)  # noqa: SIM115
    lines: queue.Queue[bytes] = queue.Queue()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=drain, daemon=True).start()
    try:
        first = lines.get(timeout=timeout).decode()
    except queue.Empty:
        proc.kill()
        raise SystemExit(f"{cmd[:4]} did not start within {timeout} s: {log.read_text()[-2000:]}") from None
    m = re.search(r"listening on (http://127\.0\.0\.1:\d+)/", first)
    if not m:
        proc.kill()
        raise SystemExit(f"unexpected first line {first!r}: {log.read_text()[-2000:]}")
    return proc, m.group(1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# --- data ---------------------------------------------------------------------------------------------


def prepare(args: argparse.Namespace, work: Path) -> tuple[Path, Path]:
    from exactvc.access import AccessStore
    from exactvc.repo import Repository
    from exactvc.testing.slides import make_pyramidal_tiff

    w, h = (int(v) for v in args.size.split("x"))
    slides = work / "slides"
    slides.mkdir(parents=True, exist_ok=True)
    slide = slides / f"bench-{w}x{h}-s{args.seed}.svs"
    if not slide.exists():
        t = time.perf_counter()
        make_pyramidal_tiff(slide.with_suffix(".tmp"), w, h, tile=256, aperio=True, seed=args.seed)
        slide.with_suffix(".tmp").rename(slide)
        print(f"slide {w}x{h} generated in {time.perf_counter() - t:.1f} s", flush=True)
    root = work / "root"
    for p in root.glob("*") if root.exists() else []:
        if p.name != ".slides":  # the slide index (and its companion levels) is kept between runs
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    repo = Repository.init(root / "bench")
    repo.add_image(slide, name="slide")
    repo.add_label("mitosis", shape="point", color="#00ff00", key="m")
    repo.add_label("other", shape="point", color="#ff00ff", key="o")
    rnd = random.Random(args.seed)
    with repo.edit("slide") as ed:
        for _ in range(args.n):
            ed.add("mitosis", {"type": "Point", "coordinates": [rnd.randrange(64, w - 64), rnd.randrange(64, h - 64)]})
    repo.commit(f"{args.n} mitoses", author="Bench <bench@example.org>")
    AccessStore(root).set_settings("bench", anonymous_read=True)
    return root, slide


# --- measuring ----------------------------------------------------------------------------------------


def fetch_all(urls: list[str]) -> tuple[float, list[float]]:
    """Fetch every URL over CONNS parallel connections: (wall seconds, per-request seconds)."""
    lat: list[float] = []
    lock = threading.Lock()

    def one(u: str) -> None:
        t = time.perf_counter()
        with urlopen(u, timeout=120) as r:
            r.read()
        with lock:
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CONNS) as ex:
        list(ex.map(one, urls))
    return time.perf_counter() - t0, lat


def map_info(url: str, query: str) -> dict[str, Any]:
    import orjson

    with urlopen(f"{url}/api/v1/repos/bench/maps?{query}&limit=0", timeout=600) as r:
        return dict(orjson.loads(r.read()))


def browser_part(url: str, query: str, pans: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        try:
            for run in ("cold", "warm"):
                ctx = b.new_context(viewport=VIEW)
                page = ctx.new_page()
                tiles: list[str] = []
                page.on("request", lambda r, tiles=tiles: tiles.append(r.url) if "/maps/" in r.url and
                        r.url.endswith(".jpeg") else None)
                page.goto(f"{url}/bench/map?{query}")
                page.wait_for_function("() => window.exact && window.exact.firstTileAt", timeout=120000, polling=20)
                first = page.evaluate("() => window.exact.firstTileAt")
                page.wait_for_function("""() => { const v = window.exact.viewer; const it = v && v.world.getItemAt(0);
                    return it && it.getFullyLoaded() && !v.world.needsDraw(); }""", timeout=120000, polling=20)
                full = page.evaluate("() => performance.now()")
                out[run] = {"first_tile_s": first / 1000, "full_view_s": full / 1000, "tiles": len(tiles)}
                if run == "cold":
                    out["first_view_tiles"] = sorted(set(tiles))
                    out["pans"] = pan(page, pans)
                ctx.close()
        finally:
            b.close()
    return out


def pan(page: Any, steps: int) -> list[float]:
    """Pan by one viewport (left to right, then a row of views down, in the map's upper half) at one map px
    per screen px; each step timed until its tiles are drawn (two frames first, so that OpenSeadragon has
    seen the new view before "fully loaded" is asked)."""
    page.evaluate("""() => { const v = window.exact.viewer.viewport; v.zoomTo(v.imageToViewportZoom(1), null, true);
        const b = v.viewportToImageRectangle(v.getBounds(true));
        v.panTo(v.imageToViewportCoordinates(new window.exact.Point(b.width / 2, b.height / 2)), true); }""")
    page.evaluate("() => window.exact.whenIdle()")
    times = []
    for _ in range(steps):
        t = page.evaluate("""async () => { const v = window.exact.viewer.viewport, m = window.exact.map;
            const b = v.viewportToImageRectangle(v.getBounds(true));
            let x = b.x + b.width, y = b.y;
            if (x + b.width > m.width) { x = 0; y = b.y + b.height; }
            if (y + b.height > m.height / 2) y = 0;
            const t0 = performance.now();
            v.panTo(v.imageToViewportCoordinates(new window.exact.Point(x + b.width / 2, y + b.height / 2)), true);
            await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
            await window.exact.whenIdle();
            return performance.now() - t0; }""")
        times.append(t / 1000)
    return times


def views(m: dict[str, Any], steps: int, w: int, h: int) -> list[tuple[int, int, int, int]]:
    """``steps`` 1:1 viewports of w x h map pixels in the lower half of the map, left to right, row by row."""
    out = []
    x, y = 0, m["height"] // 2
    for _ in range(steps):
        out.append((x, y, w, h))
        x += w
        if x + w > m["width"]:
            x, y = 0, y + h
        if y + h > m["height"]:
            y = m["height"] // 2
    return out


def tiles_under(url: str, m: dict[str, Any], view: tuple[int, int, int, int]) -> list[str]:
    x, y, w, h = view
    t, lv = m["tile_size"], m["max_level"]
    cols, rows = math.ceil(m["width"] / t), math.ceil(m["height"] / t)
    return [f"{url}{m['dzi'][:-4]}_files/{lv}/{c}_{r}.jpeg" for r in range(y // t, min(rows, (y + h - 1) // t + 1))
            for c in range(x // t, min(cols, (x + w - 1) // t + 1))]


def patches_under(m: dict[str, Any], view: tuple[int, int, int, int]) -> list[int]:
    x, y, w, h = view
    p, per = m["spec"]["patch"], m["spec"]["per_row"]
    out = []
    for r in range(y // p, (y + h - 1) // p + 1):
        for c in range(x // p, min(per, (x + w - 1) // p + 1)):
            if r * per + c < m["count"]:
                out.append(r * per + c)
    return out


def row(rid: str, name: str, unit: str, ours: float | None, peer: float | None, target: str | None = None,
        ok: bool | None = None) -> dict[str, Any]:
    return {"id": rid, "name": name, "unit": unit, "ours": ours, "git": peer, "ratio": ratio(peer, ours),
            "target": target, "pass": ok}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="annotations on the map (10,000)")
    ap.add_argument("--size", default="30000x20000", help="slide WIDTHxHEIGHT")
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--per-row", type=int, default=100)
    ap.add_argument("--pans", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", default="/tmp/exactvc-bench-maps")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "maps.json"))
    ap.add_argument("--peer-serve", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer_serve:
        peer_serve(args.peer_serve[0], args.peer_serve[1], int(args.peer_serve[2]))
        return 0
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    root, slide = prepare(args, work)
    load_before = os.getloadavg()
    t = time.perf_counter()
    ours, url = start([sys.executable, "-m", "exactvc.cli", "serve", str(root), "--port", "0", "--slides",
                       str(slide.parent)], work / "server.log")
    print(f"exact serve up in {time.perf_counter() - t:.1f} s (slide indexed)", flush=True)
    results: dict[str, Any] = {"n": args.n, "size": args.size, "patch": args.patch, "per_row": args.per_row,
                               "machine": machine_info(), "load_before": load_before}
    peer = None
    try:
        query = f"label=mitosis&patch={args.patch}&per_row={args.per_row}"
        br = browser_part(url, query, args.pans)
        results["browser"] = {k: v for k, v in br.items() if k != "first_view_tiles"}
        print(f"browser: {results['browser']}", flush=True)
        # (b) a second map of the same size that nobody has asked for yet
        t = time.perf_counter()
        m = map_info(url, query + "&order=position")
        results["open_map_api_s"] = time.perf_counter() - t
        first_map = br["first_view_tiles"][0].split("/maps/")[1].split("_files")[0]
        first_urls = [u.replace(first_map, m["map"]) for u in br["first_view_tiles"]]
        ours_first, ours_first_lat = fetch_all(first_urls)
        # the peer's first view: every patch in the view Chromium opened (fit to the width, the top rows)
        view_w = VIEW["width"] - 300  # the side panel
        rows_in_view = math.ceil(m["width"] * (VIEW["height"] - 40) / view_w / m["spec"]["patch"])
        first_patches = list(range(min(m["count"], rows_in_view * m["spec"]["per_row"])))
        origins = work / "origins.txt"
        ps = m["spec"]["patch"] * m["spec"]["scale"]
        pages: list[dict[str, Any]] = []
        off: int | None = 0
        while off is not None:
            with urlopen(f"{url}/api/v1/repos/bench/maps/{m['map']}/patches?offset={off}&limit=1000") as r:
                import orjson

                pg = orjson.loads(r.read())
            pages.extend(pg["patches"])
            off = pg["next_offset"]
        origins.write_text("".join(f"{p['source'][0]} {p['source'][1]}\n" for p in pages))
        peer, purl = start([sys.executable, __file__, "--peer-serve", str(slide), str(origins), str(ps)],
                           work / "peer.log")
        peer_first, peer_first_lat = fetch_all([f"{purl}/patch/{i}.jpeg" for i in first_patches])
        ours_pan, ours_lat, peer_pan, peer_lat = [], [], [], []
        for v in views(m, args.pans, view_w, VIEW["height"] - 40):
            s, lat = fetch_all(tiles_under(url, m, v))
            ours_pan.append(s)
            ours_lat.extend(lat)
            s, lat = fetch_all([f"{purl}/patch/{i}.jpeg" for i in patches_under(m, v)])
            peer_pan.append(s)
            peer_lat.extend(lat)
        results["http"] = {
            "first_view": {"ours_s": ours_first, "ours_requests": len(first_urls), "peer_s": peer_first,
                           "peer_requests": len(first_patches)},
            "pan_s": {"ours": ours_pan, "peer": peer_pan},
            "latency_s": {"ours": sorted(ours_lat), "peer": sorted(peer_lat)},
        }
    finally:
        stop(ours)
        if peer is not None:
            stop(peer)
    results["load_after"] = os.getloadavg()
    b, hp = results["browser"], results["http"]
    ms = 1000.0
    rows = [
        row("open_first_tile", "open the map: navigation -> first tile drawn (Chromium, cold)", "s",
            b["cold"]["first_tile_s"], None, f"<= {TARGET_OPEN_S} s", b["cold"]["first_tile_s"] <= TARGET_OPEN_S),
        row("open_full_view", "open the map: navigation -> first view fully drawn (Chromium, cold)", "s",
            b["cold"]["full_view_s"], None, f"<= {TARGET_OPEN_S} s", b["cold"]["full_view_s"] <= TARGET_OPEN_S),
        row("open_full_view_warm", "open again (new browser context, server warm): fully drawn", "s",
            b["warm"]["full_view_s"], None),
        row("browser_pan_p50", "Chromium pan by one view, 1:1, until drawn: p50", "ms",
            percentile(b["pans"], 50) * ms, None),
        row("browser_pan_p99", "Chromium pan by one view, 1:1, until drawn: p99", "ms",
            percentile(b["pans"], 99) * ms, None),
        row("http_first_view", f"first view over HTTP ({hp['first_view']['ours_requests']} tiles vs "
            f"{hp['first_view']['peer_requests']} patches)", "s", hp["first_view"]["ours_s"], hp["first_view"]["peer_s"]),
        row("http_pan_p50", "pan by one view over HTTP: p50", "ms", percentile(hp["pan_s"]["ours"], 50) * ms,
            percentile(hp["pan_s"]["peer"], 50) * ms),
        row("http_pan_p99", "pan by one view over HTTP: p99", "ms", percentile(hp["pan_s"]["ours"], 99) * ms,
            percentile(hp["pan_s"]["peer"], 99) * ms),
        row("latency_p50", "request latency while panning (tile vs patch): p50", "ms",
            percentile(hp["latency_s"]["ours"], 50) * ms, percentile(hp["latency_s"]["peer"], 50) * ms),
        row("latency_p99", "request latency while panning (tile vs patch): p99", "ms",
            percentile(hp["latency_s"]["ours"], 99) * ms, percentile(hp["latency_s"]["peer"], 99) * ms),
    ]
    results["rows"] = rows
    print(f"\n{args.n} annotations, map {args.per_row} per row x {args.patch} px, slide {args.size}; "
          f"load average {load_before[0]:.1f} before, {results['load_after'][0]:.1f} after "
          f"({os.cpu_count()} CPUs, shared)\n")
    results["table"] = print_table(rows)
    write_json(args.out, results)
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
